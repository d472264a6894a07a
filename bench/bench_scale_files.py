#!/usr/bin/env python3
"""Benchmark: ``--status``, ``--validate`` and cron-generate over 10,000 and 100,000 job files.

For each size N a site of N generated job files (a name, description, two
commands, one of 60 distinct schedules, one file in seven hashed with ``H``,
timeout, environment, tags) is measured as whole processes (a fresh process
each, start-up included), interleaved, several rounds, medians:

- floor: a fresh Python process that reads every file once and parses it
  with PyYAML's C loader (``yaml.load(data, Loader=yaml.CSafeLoader)``),
  keeping nothing;
- ``run-job --config CFG --status``: cold (the validation cache emptied
  before the run) and warm (the cache as the previous ``--status`` left it);
- ``run-job --config CFG --validate``: cold and warm (``--validate`` never
  uses the cache: the two differ only by what is in the page cache);
- ``cron-generate --config CFG --stdout``: cold and warm (likewise);
- ``--status`` again with a state folder holding a history of
  ``--history`` entries for every job (cold and warm).

Each figure: the median wall time, its ratio to the floor's, the median peak
RSS of the process (``wait4``'s ``ru_maxrss``) and its ratio to the floor's;
and per case the growth from the smallest to the largest N (time(N2) /
time(N1): N2/N1 means linear). Targets (issue 18): <= 3x the floor's time,
< 2x its peak RSS, linear.

``--repo PATH`` measures the code of another checkout (its package on
``PYTHONPATH``; bytecode goes to a prefix in the temporary folder, nothing is
written into PATH), so the same script measures before and after.

    python3 bench/bench_scale_files.py [--jobs 10000,100000] [--rounds 3] [--repo PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

FLOOR = """
import os, sys, yaml
folder = sys.argv[1]
for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name), "rb") as handle:
        yaml.load(handle.read(), Loader=yaml.CSafeLoader)
"""
SCHEDULES = [f"{minute} {hour} * * *" for hour in range(15) for minute in (0, 15, 30, 45)][:60]
HASHED = ["H H * * *", "H(0-29) 3 * * *", "H/15 * * * *", "H 4 * * 1-5", "H H(6-18) * * *",
          "H 2 H * *", "H H * * 0"]
TIME = "/usr/bin/time"  # GNU time (Debian package time)
CASES = ("floor", "status cold", "status warm", "validate cold", "validate warm", "cron cold",
         "cron warm", "status+history cold", "status+history warm")


def job_text(i: int) -> str:
    schedule = HASHED[(i // 7) % len(HASHED)] if i % 7 == 3 else SCHEDULES[i % 60]
    return (f"name: Job number {i}\n"
            f"description: Processes batch {i} of the nightly data.\n"
            f"command:\n  - /usr/local/bin/process --batch {i}\n  - /usr/local/bin/report --batch {i}\n"
            f'schedule: "{schedule}"\n'
            f"timeout: {30 + i % 5}{'m' if i % 2 else ''}\n"
            f"environment:\n  BATCH: {i}\n  MODE: {('nightly', 'weekly', 'adhoc')[i % 3]}\n"
            f"tag: [{('nightly', 'batch', 'report')[i % 3]}, group-{i % 11}]\n")


def history_text(slug: str, i: int, count: int, now: datetime, user: str) -> str:
    entries = []
    for n in range(count):
        started = now - timedelta(hours=count - n, minutes=i % 50)
        failed = i % 10 == 0 and n == count - 1
        entries.append({
            "job": slug, "run_id": f"{started.strftime('%Y%m%dT%H%M%S.%f')}Z-{n}", "runner": "local",
            "host": "bench", "user": user, "pid": 1000 + n, "slurm_job_id": None,
            "command": [f"/usr/local/bin/process --batch {i}"],
            "started_at": started.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "ended_at": (started + timedelta(seconds=3)).isoformat(timespec="microseconds").replace(
                "+00:00", "Z"),
            "duration_s": 3.0, "exit_code": 1 if failed else 0, "signal": None,
            "outcome": "failed" if failed else "success", "reason": "", "job_file_sha256": "0" * 64,
            "run_dir": None, "alerts": {"consecutive_failures": 1 if failed else 0}})
    return "[\n" + ",\n".join(json.dumps(e, separators=(",", ":")) for e in entries) + "\n]\n"


def make_site(root: Path, count: int, history: int) -> tuple[Path, Path, Path]:
    """(jobs folder, config, config with histories) of a fresh site of ``count`` jobs."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    jobs = root / "jobs"
    jobs.mkdir(parents=True)
    for folder in (root, jobs):
        folder.chmod(0o755)
    for i in range(count):
        path = jobs / f"job-{i:06d}.yaml"
        path.write_text(job_text(i))
        path.chmod(0o644)
    state_hist = root / "state-history"
    state_hist.mkdir()
    now = datetime.now(timezone.utc)
    for i in range(count):
        slug = f"job-{i:06d}"
        (state_hist / f"{slug}.history.json").write_text(history_text(slug, i, history, now, user))
    configs = []
    for name, state in (("config.yaml", root / "state"), ("config-history.yaml", state_hist)):
        config = root / name
        config.write_text(f"job_directory: {jobs}\noutput_directory: {root}/log\n"
                          f"state_directory: {state}\nrun_directory: {root}/run\n"
                          f"output_crontab: console\nuser: {user}\n")
        configs.append(config)
    return jobs, configs[0], configs[1]


def run_measured(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of one whole process; it must succeed.

    The peak RSS comes from GNU time (``%M``: its child's ``ru_maxrss``): the
    rusage of a child forked straight from this process would count this
    process's own pages, which the child shares until it execs."""
    with tempfile.NamedTemporaryFile("r", prefix="rss-") as out:
        started = time.perf_counter()
        proc = subprocess.run([TIME, "-f", "%M", "-o", out.name, *argv], env=env, cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"benchmark command failed ({proc.returncode}): {argv}\n"
                             f"{proc.stderr.decode()[-3000:]}")
        return elapsed, int(out.read().split()[-1])


def measure_size(root: Path, count: int, args: argparse.Namespace, env: dict[str, str]) -> dict:
    t0 = time.perf_counter()
    jobs, config, config_hist = make_site(root, count, args.history)
    print(f"  {count} jobs generated in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    cache = Path(env["XDG_CACHE_HOME"]) / "process-control"
    py = sys.executable
    runjob = [py, "-m", "run_job", "--config"]
    argvs = {
        "floor": [py, "-c", FLOOR, str(jobs)],
        "status": [*runjob, str(config), "--status"],
        "validate": [*runjob, str(config), "--validate"],
        "cron": [py, "-m", "cron_generate", "--config", str(config), "--stdout"],
        "status+history": [*runjob, str(config_hist), "--status"],
    }
    # the order of a round: every warm case right after a run that fills the cache
    order = ["floor", "status cold", "status warm", "validate warm", "cron warm", "validate cold",
             "cron cold", "status+history cold", "status+history warm"]
    order = [case for case in order if case in args.cases]
    samples: dict[str, list[tuple[float, int]]] = {case: [] for case in order}
    run_measured(argvs["status"], env, root)  # warm-up: bytecode, page cache
    for number in range(args.rounds):
        for case in order:
            if case.endswith(" cold"):
                shutil.rmtree(cache, ignore_errors=True)
            result = run_measured(argvs[case.removesuffix(" cold").removesuffix(" warm")], env, root)
            samples[case].append(result)
            print(f"  round {number + 1} {count} {case}: {result[0]:.2f} s {result[1] / 1024:.0f} MiB",
                  file=sys.stderr, flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return {case: (statistics.median(t for t, _ in values), statistics.median(r for _, r in values))
            for case, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="10000,100000", help="comma-separated sizes (default 10000,100000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--history", type=int, default=5, help="history entries per job of the history case")
    parser.add_argument("--repo", default=str(benchlib.REPO), help="the checkout measured (default: this one)")
    parser.add_argument("--only", default=",".join(CASES[1:]),
                        help="comma-separated cases (the floor always runs): " + ", ".join(CASES[1:]))
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="where the sites live (default /dev/shm)")
    args = parser.parse_args()
    benchlib.ensure_venv()
    sizes = [int(size) for size in args.jobs.split(",")]
    args.cases = {"floor", *args.only.split(",")}
    unknown = args.cases - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    repo = Path(args.repo).resolve()
    print(benchlib.versions())
    commit = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%h %s"], capture_output=True,
                            text=True).stdout.strip()
    print(f"code measured: {repo} ({commit[:70]})")
    print(f"{args.rounds} rounds, medians; load average at start: {os.getloadavg()[0]:.2f}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="pc-bench-scale-", dir=args.dir) as tmp_name:
        tmp = Path(tmp_name)
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("PROCESS_CONTROL_CONFIG", None)
        env.update(PYTHONPATH=str(repo), PYTHONPYCACHEPREFIX=str(tmp / "pycache"),
                   XDG_CACHE_HOME=str(tmp / "cache"), HOME=str(tmp))
        for count in sizes:
            results[count] = measure_size(tmp / f"site-{count}", count, args, env)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    header = f"{'case':<22}" + "".join(f"{'N=' + str(n):>38}" for n in sizes)
    print(header)
    print(f"{'':<22}" + "".join(f"{'seconds   x floor    MiB   x floor':>38}" for _ in sizes)
          + ("   growth" if len(sizes) > 1 else ""))
    for case in CASES:
        if case not in args.cases:
            continue
        line = f"{case:<22}"
        for count in sizes:
            seconds, rss = results[count][case]
            floor_s, floor_rss = results[count]["floor"]
            line += f"{seconds:>14.2f} {seconds / floor_s:>8.2f}x {rss / 1024:>7.1f} {rss / floor_rss:>7.2f}x"
        if len(sizes) > 1:
            growth = results[sizes[-1]][case][0] / results[sizes[0]][case][0]
            line += f"   x{growth:.1f} (for x{sizes[-1] / sizes[0]:g})"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
