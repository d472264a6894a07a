#!/usr/bin/env python3
"""Benchmark: what ``sbatch-service`` costs over Slurm's own commands.

On the real single-node cluster (``$SLURM_CONF``, else ``tests/slurm/local-slurm
start``), whole processes, interleaved rounds, medians:

1. keep-alive no-op: ``sbatch-service start S`` of a running service (what the
   cron entry costs every period) against the floor of one bare ``squeue -n
   S-service -u USER`` process (any watchdog must ask Slurm once).
2. ``sbatch-service status S`` against the same floor.
3. a start/stop cycle: ``sbatch-service start S`` + ``sbatch-service stop S``
   against ``sbatch`` of the very batch script sbatch-service wrote, polling
   ``squeue`` every 0.2 s until RUNNING, then ``scancel --batch --signal=TERM``
   and polling until gone (the same work done by hand). The difference is
   mostly start's deliberate 1 s watch of a running job (START_CONFIRM).

Runs in the benchmark venv (see ``benchlib.py``).

    python3 bench/bench_service.py [--rounds 9] [--cycles 5]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

REPO = benchlib.REPO
USER = pwd.getpwuid(os.geteuid()).pw_name


def make_site(root: Path, slug: str) -> Path:
    import yaml

    jobs = root / "jobs"
    jobs.mkdir(parents=True)
    for folder in (root, jobs):
        folder.chmod(0o755)
    config = root / "process-control.yaml"
    config.write_text(yaml.safe_dump({
        "job_directory": str(jobs), "output_directory": str(root / "log"),
        "state_directory": str(root / "state"), "run_directory": str(root / "run"),
        "output_crontab": "console", "user": USER}))
    (jobs / f"{slug}.yaml").write_text(yaml.safe_dump({
        "runner": "slurm", "command": "/bin/sleep 100000", "kill_grace": "5s", "service": {}}))
    (jobs / f"{slug}.yaml").chmod(0o644)
    return config


def wait_state(env: dict[str, str], job_id: str, done) -> None:
    while True:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True,
                             text=True, env=env).stdout.strip()
        if done(out):
            return
        time.sleep(0.2)


def main() -> None:
    benchlib.ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args()
    env = benchlib.slurm_environment()
    env["PYTHONPATH"] = str(REPO)
    env.pop("PROCESS_CONTROL_CONFIG", None)
    print(benchlib.versions())
    root = Path(tempfile.mkdtemp(prefix="pc-bench-service-"))
    slug = f"bench{os.getpid()}"
    name = f"{slug}-service"
    try:
        config = make_site(root, slug)
        svc = [sys.executable, "-m", "run_job.service_cli", "--config", str(config)]
        subprocess.run(svc + ["start", slug], check=True, env=env, stdout=subprocess.DEVNULL)
        floor = ["squeue", "-h", "-n", name, "-u", USER]
        medians = benchlib.interleaved({
            "squeue (floor)": lambda: benchlib.time_command(floor, env=env),
            "start, running (keep-alive)": lambda: benchlib.time_command(svc + ["start", slug], env=env),
            "status": lambda: benchlib.time_command(svc + ["status", slug], env=env),
        }, args.rounds)
        base = medians["squeue (floor)"]
        print(f"\n1-2. one service, {args.rounds} rounds (medians):")
        for case, value in medians.items():
            print(f"  {case:30s} {value * 1000:8.1f} ms  {value / base:5.2f}x  (+{(value - base) * 1000:.1f} ms)")
        subprocess.run(svc + ["stop", slug], check=True, env=env, stdout=subprocess.DEVNULL)

        script = root / "state" / "services" / f"{slug}.sbatch"
        by_hand_argv = ["sbatch", "--parsable", f"--job-name={name}-hand",
                        f"--output={root / 'hand.log'}", "--open-mode=append", "--partition=service-pool",
                        str(script)]

        def cycle() -> float:
            began = time.perf_counter()
            subprocess.run(svc + ["start", slug], check=True, env=env, stdout=subprocess.DEVNULL)
            subprocess.run(svc + ["stop", slug], check=True, env=env, stdout=subprocess.DEVNULL)
            return time.perf_counter() - began

        def by_hand() -> float:
            began = time.perf_counter()
            job_id = subprocess.run(by_hand_argv, check=True, env=env, capture_output=True,
                                    text=True).stdout.strip().split(";")[0]
            wait_state(env, job_id, lambda s: s == "RUNNING")
            subprocess.run(["scancel", "--batch", "--signal=TERM", job_id], check=True, env=env)
            wait_state(env, job_id, lambda s: s in ("", "COMPLETED", "FAILED", "CANCELLED"))
            return time.perf_counter() - began

        medians = benchlib.interleaved({"by hand (floor)": by_hand, "start + stop": cycle}, args.cycles)
        base = medians["by hand (floor)"]
        print(f"\n3. start/stop cycle, {args.cycles} rounds (medians):")
        for case, value in medians.items():
            print(f"  {case:30s} {value:8.2f} s   {value / base:5.2f}x  (+{value - base:.2f} s)")
    finally:
        subprocess.run(["scancel", "-n", name, "-u", USER], env=env)
        subprocess.run(["scancel", "-n", f"{name}-hand", "-u", USER], env=env)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
