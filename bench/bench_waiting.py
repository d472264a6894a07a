#!/usr/bin/env python3
"""Benchmark: what a waiting local run costs (memory and CPU), N runs at once.

N jobs whose command is ``sleep S`` are started at once with ``run-job --job``
(a warm validation cache: each job ran once before). Once every run has
waited for a while, for each waiting run-job process:

- its proportional set size (PSS, ``/proc/PID/smaps_rollup``; with N
  processes of the same interpreter the shared pages are divided by N, so
  PSS is mostly the process's private memory) and its ``Pss_Anon``;
- its CPU time (utime + stime, ``/proc/PID/stat``) over a measured window.

Baseline, measured in the same run: N bare interpreters of the same venv
(``python -I -S -c 'import time; time.sleep(S)'``) at once: the least any
Python process waiting costs. Reported: medians and maxima, and the ratio
of the median PSS to the baseline's. ``--repo`` measures another checkout's
code (e.g. a worktree of the commit before a change), with the same venv.

    python3 bench/bench_waiting.py [--runs 100] [--rounds 3] [--repo PATH]
"""

from __future__ import annotations

import argparse
import os
import pwd
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")


def make_site(root: Path, runs: int, seconds: float) -> Path:
    import yaml

    jobs = root / "jobs"
    jobs.mkdir(parents=True)
    os.chmod(root, 0o755)
    os.chmod(jobs, 0o755)
    config = root / "process-control.yaml"
    config.write_text(yaml.safe_dump({
        "job_directory": str(jobs), "output_directory": str(root / "log"),
        "state_directory": str(root / "state"), "run_directory": str(root / "run"),
        "output_crontab": "console", "user": pwd.getpwuid(os.geteuid()).pw_name}))
    for i in range(runs):
        path = jobs / f"wait-{i}.yaml"
        path.write_text(yaml.safe_dump({"command": f"sleep {seconds:g}"}))
        path.chmod(0o644)
    return config


def smaps(pid: int) -> dict[str, int]:
    found = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Pss", "Pss_Anon", "Rss"):
                found[key] = int(rest.split()[0])
    return found


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def measure(procs: list[subprocess.Popen], settle: float, window: float) -> dict[str, float]:
    time.sleep(settle)
    pids = [p.pid for p in procs if p.poll() is None]
    before = {pid: cpu_ticks(pid) for pid in pids}
    time.sleep(window)
    after = {pid: cpu_ticks(pid) for pid in pids if os.path.exists(f"/proc/{pid}")}
    mem = [smaps(pid) for pid in after]
    cpu = sum(after[pid] - before[pid] for pid in after) / HZ
    return {"pss_median": statistics.median(m["Pss"] for m in mem),
            "pss_max": max(m["Pss"] for m in mem),
            "anon_median": statistics.median(m["Pss_Anon"] for m in mem),
            "cpu_share": cpu / window, "alive": len(after)}


def one_round(args: argparse.Namespace, env: dict[str, str], config: Path) -> tuple[dict, dict]:
    seconds = args.settle + args.window + 5
    bare = [subprocess.Popen([sys.executable, "-I", "-S", "-c",
                              f"import time; time.sleep({seconds})"]) for _ in range(args.runs)]
    try:
        base = measure(bare, 1.0, args.window)
    finally:
        for p in bare:
            p.kill()
            p.wait()
    runs = [subprocess.Popen([sys.executable, "-m", "run_job", "--config", str(config), "--job",
                              f"wait-{i}"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for i in range(args.runs)]
    try:
        case = measure(runs, args.settle, args.window)
    finally:
        for p in runs:
            p.wait()
    return base, case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=4.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of CPU measured")
    parser.add_argument("--repo", default=str(benchlib.REPO), help="the checkout to measure")
    args = parser.parse_args()
    benchlib.ensure_venv()
    env = dict(os.environ, PYTHONPATH=os.path.abspath(args.repo))
    os.chdir(tempfile.gettempdir())  # python -m puts the working folder first on sys.path
    print(benchlib.versions())
    print(f"code: {args.repo}; {args.runs} runs waiting at once; {args.rounds} rounds")
    root = Path(tempfile.mkdtemp(prefix="pc-bench-waiting-"))
    try:
        config = make_site(root / "site", args.runs, args.settle + args.window + 2)
        # a warm validation cache, as from cron's second minute on: one run of each first
        warm = [subprocess.Popen([sys.executable, "-m", "run_job", "--config", str(config),
                                  "--job", f"wait-{i}"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for i in range(args.runs)]
        for p in warm:
            p.wait()
        bases, cases = [], []
        for _ in range(args.rounds):
            base, case = one_round(args, env, config)
            bases.append(base)
            cases.append(case)

        def med(rows: list[dict], key: str) -> float:
            return statistics.median(r[key] for r in rows)
        print(f"{'':28}{'PSS median':>12}{'PSS max':>10}{'Pss_Anon':>10}{'CPU (cores)':>13}")
        for name, rows in (("bare interpreter", bases), ("waiting run-job", cases)):
            print(f"{name:28}{med(rows, 'pss_median'):>9.0f} kB{med(rows, 'pss_max'):>7.0f} kB"
                  f"{med(rows, 'anon_median'):>7.0f} kB{med(rows, 'cpu_share'):>13.4f}")
        print(f"ratio (PSS median, run-job / bare interpreter): "
              f"{med(cases, 'pss_median') / med(bases, 'pss_median'):.2f}x")
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
