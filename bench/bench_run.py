#!/usr/bin/env python3
"""Benchmark: ``run-job --job`` wrapper cost, output capture, ``--status`` over 1,000 jobs.

Everything runs as whole processes in the benchmark venv (Debian's
``/usr/bin/python3``, newest PyPI releases; see ``benchlib.py``), with
bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed, the package
compiled first). run-job is started through a launcher identical to the
console script pip writes. Cases and baselines are interleaved, several
rounds, medians reported.

1. wrapper: ``run-job --job t`` on a ``/bin/true`` job against ``python3 -c
   'import yaml'``; with a minimal config (the embedded defaults plus the
   four folders, no ``logging``) and with the reference's example config
   (its ``logging`` section included, syslog pointed at a missing socket);
   warm (validation cache hit) and cold (cache emptied before each run).
   Targets (warm): <= 1.5x (minimal), <= 2x (reference).
2. capture: 1 GB of 100-byte lines and 200 MB with no newline, written by
   the job, against ``cmd > file 2>&1``. Net throughput = payload / (time of
   the run - time of the same harness running ``/bin/true``). run-job's peak
   RSS is its VmHWM, sampled from /proc while it runs. Target: >= 0.9x the
   redirect, RSS < 40 MiB.
3. status: ``run-job --status`` over 1,000 job files (warm cache and cold)
   against a fresh process parsing the 1,000 files once with PyYAML's C
   loader. Target: <= 3x.

    python3 bench/bench_run.py [--rounds 7] [--only wrapper,capture,status]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

REPO = benchlib.REPO
LAUNCHER = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from run_job.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""
FLOOR = """
import os, sys, yaml
folder = sys.argv[1]
for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name), "rb") as handle:
        yaml.load(handle.read(), Loader=yaml.CSafeLoader)
"""
MiB = 1024 * 1024
LAST_CPU = [0.0]  # user+system seconds of the last run_timed process (and its children)


def bench_env(cache_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PROCESS_CONTROL_CONFIG", None)
    env["PYTHONPATH"] = str(REPO)
    env["XDG_CACHE_HOME"] = str(cache_home)
    return env


class Site:
    def __init__(self, root: Path, reference: bool) -> None:
        import pwd

        import yaml

        self.root = root
        self.jobs = root / "jobs"
        self.jobs.mkdir(parents=True)
        for folder in (root, self.jobs):
            folder.chmod(0o755)
        user = pwd.getpwuid(os.geteuid()).pw_name
        if reference:
            data = yaml.safe_load((REPO / "tests" / "data" / "reference" /
                                   "process-control.example.yaml").read_text())
            data["logging"]["handlers"]["syslog"]["address"] = str(root / "no-syslog" / "log")
        else:
            data = {}
        data.update({"job_directory": str(self.jobs), "output_directory": str(root / "log"),
                     "state_directory": str(root / "state"), "run_directory": str(root / "run"),
                     "output_crontab": "console", "user": user})
        if reference:
            data.setdefault("default_job_config", {}).pop("failmail", None)  # no SMTP in a bench
        self.config = root / "process-control.yaml"
        self.config.write_text(yaml.safe_dump(data))

    def job(self, slug: str, command: str) -> None:
        import yaml

        path = self.jobs / f"{slug}.yaml"
        path.write_text(yaml.safe_dump({"command": command, "timeout": "1h"}))
        path.chmod(0o644)


def run_timed(argv: list[str], env: dict[str, str], *, sample_rss: bool = False,
              stdout=subprocess.DEVNULL, new_session: bool = False) -> tuple[float, int]:
    """(seconds, peak RSS in KiB of the process itself, 0 if not sampled)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=subprocess.STDOUT,
                            start_new_session=new_session)
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG if sample_rss else 0)
        if pid:
            break
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {argv}")
    LAST_CPU[0] = usage.ru_utime + usage.ru_stime
    return elapsed, peak


def median_ratio(samples: dict[str, list[float]], case: str, base: str) -> float:
    return statistics.median(c / b for c, b in zip(samples[case], samples[base]))


def bench_wrapper(tmp: Path, launcher: str, rounds: int, runs: int) -> list[str]:
    py = sys.executable
    out = []
    for label, reference, target in (("minimal config", False, 1.5), ("reference config", True, 2.0)):
        root = tmp / f"wrapper {label}"
        site = Site(root, reference)
        site.job("t", "/bin/true")
        cache = root / "cache"
        env = bench_env(cache)
        rj = [py, launcher, "--config", str(site.config), "--job", "t"]
        run_timed(rj, env)  # creates folders and the cache entry
        samples: dict[str, list[float]] = {"baseline": [], "warm": [], "cold": []}
        cpu: dict[str, list[float]] = {"baseline": [], "warm": [], "cold": []}
        for _ in range(rounds):
            for case in ("baseline", "warm", "cold"):
                total = total_cpu = 0.0
                for _ in range(runs):
                    if case == "cold":
                        shutil.rmtree(cache, ignore_errors=True)
                    argv = [py, "-c", "import yaml"] if case == "baseline" else rj
                    total += run_timed(argv, env)[0]
                    total_cpu += LAST_CPU[0]
                samples[case].append(total / runs)
                cpu[case].append(total_cpu / runs)
        base = statistics.median(samples["baseline"])
        for case in ("warm", "cold"):
            ratio = median_ratio(samples, case, "baseline")
            cpu_ratio = median_ratio(cpu, case, "baseline")
            verdict = "" if case == "cold" else (" OK" if ratio <= target else f" MISSES target {target}x")
            out.append(f"wrapper, {label}, {case:4}: {statistics.median(samples[case]) * 1000:6.1f} ms"
                       f" vs import yaml {base * 1000:5.1f} ms = {ratio:.2f}x{verdict}"
                       f" (CPU time {cpu_ratio:.2f}x)")
        shutil.rmtree(root / "log", ignore_errors=True)
    return out


def bench_capture(tmp: Path, launcher: str, rounds: int, gigabyte: int, nonl: int) -> list[str]:
    py = sys.executable
    root = tmp / "capture"
    site = Site(root, False)
    env = bench_env(root / "cache")
    line = "x" * 99
    shapes = {
        "100-byte lines": (f"sh -c \"yes {line} | head -c {gigabyte}\"", gigabyte),
        "no newline": (f"head -c {nonl} /dev/zero", nonl),
    }
    site.job("true", "/bin/true")
    for slug, (command, _) in shapes.items():
        site.job(slug.replace(" ", "-"), command)
    out_file = root / "redirect.out"

    # Each timed run starts with no dirty pages (os.sync) and leaves no file
    # behind: a gigabyte still being written back throttles whoever writes next.
    def redirect(command: str) -> float:
        import shlex

        os.sync()
        with open(out_file, "wb") as f:
            # in its own session, as cron runs `cmd > file 2>&1` and as run-job runs
            # a job: with the scheduler's autogroups (one per session) a process
            # tree in a new session is one scheduling entity, which matters
            # on a loaded 2-core host
            seconds = run_timed(shlex.split(command), env, stdout=f, sample_rss=True,
                                new_session=True)[0]
        out_file.unlink()
        return seconds

    def runjob(slug: str) -> tuple[float, int]:
        os.sync()
        result = run_timed([py, launcher, "--config", str(site.config), "--job", slug], env,
                           sample_rss=True)
        shutil.rmtree(root / "log" / slug, ignore_errors=True)
        return result

    runjob("true")
    lines = []
    for shape, (command, size) in shapes.items():
        slug = shape.replace(" ", "-")
        red, red_true, rj, rj_true, rss = [], [], [], [], []
        for i in range(rounds if size >= 500_000_000 else 3 * rounds):
            for which in ("redirect", "run-job") if i % 2 == 0 else ("run-job", "redirect"):
                if which == "redirect":
                    red_true.append(redirect("/bin/true"))
                    red.append(redirect(command))
                else:
                    rj_true.append(runjob("true")[0])
                    seconds, peak = runjob(slug)
                    rj.append(seconds)
                    rss.append(peak)
        net_red = [size / max(t - z, 1e-9) for t, z in zip(red, red_true)]
        net_rj = [size / max(t - z, 1e-9) for t, z in zip(rj, rj_true)]
        # ratio of the medians: the per-round ratio of two differences is too noisy
        ratio = statistics.median(net_rj) / statistics.median(net_red)
        peak = max(rss) / 1024
        lines.append(
            f"capture, {shape} ({size / 1e6:.0f} MB): run-job {statistics.median(net_rj) / MiB:7.0f} MiB/s"
            f" vs redirect {statistics.median(net_red) / MiB:7.0f} MiB/s = {ratio:.2f}x"
            f"{' OK' if ratio >= 0.9 else ' MISSES target 0.9x'};"
            f" peak RSS {peak:.1f} MiB{' OK' if peak < 40 else ' MISSES target 40 MiB'}")
    return lines


def bench_status(tmp: Path, launcher: str, rounds: int, count: int) -> list[str]:
    py = sys.executable
    root = tmp / "status"
    site = Site(root, False)
    for i in range(count):
        path = site.jobs / f"job-{i:04d}.yaml"
        path.write_text(
            f"name: Job number {i}\ndescription: Processes batch {i} of the nightly data.\n"
            f"command:\n  - /usr/local/bin/process --batch {i}\n  - /usr/local/bin/report --batch {i}\n"
            f"schedule: \"{i % 60} {i % 24} * * *\"\ntimeout: 30\n"
            f"environment:\n  BATCH: {i}\n  MODE: nightly\ntag: [nightly, batch]\n")
        path.chmod(0o644)
    cache = root / "cache"
    env = bench_env(cache)
    status = [py, launcher, "--config", str(site.config), "--status"]
    floor = [py, "-c", FLOOR, str(site.jobs)]
    run_timed(status, env)
    samples: dict[str, list[float]] = {"floor": [], "warm": [], "cold": []}
    for _ in range(rounds):
        samples["floor"].append(run_timed(floor, env)[0])
        samples["warm"].append(run_timed(status, env)[0])
        shutil.rmtree(cache, ignore_errors=True)
        samples["cold"].append(run_timed(status, env)[0])
    base = statistics.median(samples["floor"])
    out = []
    for case in ("warm", "cold"):
        ratio = median_ratio(samples, case, "floor")
        verdict = " OK" if ratio <= 3 else " MISSES target 3x"
        out.append(f"status, {count} jobs, {case}: {statistics.median(samples[case]):.3f} s vs"
                   f" parse-once floor {base:.3f} s = {ratio:.2f}x{verdict}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=10, help="wrapper runs per round and case")
    parser.add_argument("--only", default="wrapper,capture,status")
    parser.add_argument("--capture-bytes", type=int, default=1_000_000_000)
    parser.add_argument("--nonl-bytes", type=int, default=200_000_000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="where the sites live (default /dev/shm: a gigabyte written to a disk "
                             "is timed mostly by writeback, which varies 2x between runs)")
    args = parser.parse_args()
    benchlib.ensure_venv()
    print(benchlib.versions())
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "run_job")],
                   env=bench_env(Path(tempfile.gettempdir())), check=True)
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="pc-bench-run-", dir=args.dir) as tmp_name:
        tmp = Path(tmp_name)
        launcher = tmp / "run-job"
        launcher.write_text(LAUNCHER.format(python=sys.executable))
        launcher.chmod(0o755)
        results = []
        if "wrapper" in only:
            results += bench_wrapper(tmp, str(launcher), args.rounds, args.runs)
            print("\n".join(results[-4:]), flush=True)
        if "capture" in only:
            lines = bench_capture(tmp, str(launcher), max(3, args.rounds // 2), args.capture_bytes,
                                  args.nonl_bytes)
            results += lines
            print("\n".join(lines), flush=True)
        if "status" in only:
            lines = bench_status(tmp, str(launcher), max(3, args.rounds // 2), args.jobs)
            results += lines
            print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
