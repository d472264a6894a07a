#!/usr/bin/env python3
"""Benchmark: check-jobs-icinga and ``run-job --metrics`` against
``run-job --status --json`` over the same jobs (issue #13: each within 3x).

1,000 job files (60 distinct schedules, a few invalid), each with a history
of 20 runs as run-job writes it (some failing, some late, a few paused).
Whole processes, start-up included, interleaved, medians of several rounds,
after one warm-up run of each (the validation cache filled, as on a host
where cron runs the jobs). Also what ``metrics.textfile_directory`` adds to
one ``run-job --job`` of a trivial job (its textfile written at start and end).

Runs in the Debian-python venv of the other benchmarks (``benchlib``).

    python3 bench/bench_monitor.py [--rounds 7] [--jobs 1000] [--history 20]
"""

from __future__ import annotations

import argparse
import json
import pwd
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import REPO, ensure_venv, interleaved, versions  # noqa: E402

SCHEDULES = [f"{m} {h} * * *" for m, h in zip(range(0, 60, 3), range(20))]
SCHEDULES += [f"*/{s} * * * *" for s in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)]
SCHEDULES += [f"{m} */{h} * * 1-5" for m, h in zip(range(7, 60, 7), (2, 3, 4, 6, 8, 12, 2, 3))]
SCHEDULES += [f"{m} {h} 1,15 * *" for m, h in zip((5, 10, 15, 20, 25, 35, 40), (1, 2, 3, 4, 5, 6, 7))]
SCHEDULES += ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@midnight", "@annually"]
SCHEDULES += [f"{m} {h} * * sun" for m, h in zip((1, 2, 3, 4, 5, 6, 7), (8, 9, 10, 11, 12, 13, 14))]

JOB = """\
name: Generated job {i}
description: benchmark job {i}
command:
  - /usr/bin/env true --batch {i}
schedule: "{schedule}"
timeout: 30
tag: [bench, group-{q}]
"""


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_site(root: Path, jobs: int, length: int) -> Path:
    folder, state = root / "jobs", root / "state"
    folder.mkdir(parents=True)
    state.mkdir()
    now = datetime.now(timezone.utc)
    user = pwd.getpwuid(os.geteuid()).pw_name
    for i in range(jobs):
        slug = f"job-{i:05d}"
        if i % 100 == 99:
            (folder / f"{slug}.yaml").write_text("command: [unclosed\n")
            continue
        (folder / f"{slug}.yaml").write_text(JOB.format(i=i, schedule=SCHEDULES[i % 60], q=i % 13))
        age = timedelta(hours=6) if i % 17 == 0 else timedelta(minutes=1)  # some late
        entries = []
        for n in range(length):
            started = now - age - timedelta(hours=length - n)
            outcome = "failed" if (i % 10 == 0 and n >= length - 2) else "success"
            entries.append({
                "job": slug, "run_id": f"{started.strftime('%Y%m%dT%H%M%S.%f')}Z-{n}", "runner": "local",
                "host": "bench", "user": user, "pid": 1000 + n, "slurm_job_id": None,
                "command": ["/usr/bin/env true"], "started_at": iso(started),
                "ended_at": iso(started + timedelta(seconds=3)), "duration_s": 3.0,
                "exit_code": 0 if outcome == "success" else 1, "signal": None, "outcome": outcome,
                "reason": "", "job_file_sha256": "0" * 64, "run_dir": None,
                "alerts": {"consecutive_failures": 2 if outcome == "failed" and n == length - 1 else 0}})
        (state / f"{slug}.history.json").write_text(
            "[\n" + ",\n".join(json.dumps(e, separators=(",", ":")) for e in entries) + "\n]\n")
        if i % 50 == 7:
            (state / f"{slug}.pause.json").write_text(json.dumps({
                "job": slug, "by": "ops", "since": iso(now), "until": None, "reason": "bench",
                "source": "manual"}))
    cfg = root / "process-control.yaml"
    cfg.write_text(f"job_directory: {folder}\noutput_directory: {root / 'log'}\n"
                   f"state_directory: {state}\nrun_directory: {root / 'run'}\n"
                   f"output_crontab: console\nuser: {user}\n")
    return cfg


def case(argv: list[str], env: dict, ok: tuple[int, ...] = (0,)):
    def run() -> float:
        start = time.perf_counter()
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        elapsed = time.perf_counter() - start
        if proc.returncode not in ok:
            raise SystemExit(f"{argv} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
        return elapsed
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--history", type=int, default=20, help="history entries per job")
    args = parser.parse_args()
    ensure_venv()
    print(versions())
    with tempfile.TemporaryDirectory(prefix="pc-bench-monitor-") as tmp:
        root = Path(tmp)
        cfg = make_site(root / "site", args.jobs, args.history)
        env = dict(os.environ, PYTHONPATH=str(REPO), XDG_CACHE_HOME=str(root / "cache"),
                   HOME=str(root))
        env.pop("PROCESS_CONTROL_CONFIG", None)
        py = sys.executable
        cases = {
            "status --json": case([py, "-m", "run_job", "--config", str(cfg), "--status", "--json"], env),
            "check-jobs-icinga": case([py, "-m", "run_job.check_cli", "--config", str(cfg)], env,
                                      ok=(0, 1, 2)),
            "run-job --metrics": case([py, "-m", "run_job", "--config", str(cfg), "--metrics"], env),
        }
        for run in cases.values():  # warm-up: the validation cache, the page cache
            run()
        medians = interleaved(cases, args.rounds)
        base = medians["status --json"]
        print(f"{args.jobs} jobs, {args.history} history entries each, {args.rounds} rounds (medians):")
        for name, value in medians.items():
            print(f"  {name:<20} {value * 1000:8.1f} ms   {value / base:5.2f}x")

        # what the textfile adds to one run of a trivial job
        one = root / "one"
        one.mkdir()
        (one / "jobs").mkdir()
        (one / "jobs" / "tiny.yaml").write_text("command: /bin/true\nschedule: '*/5 * * * *'\n")
        (one / "prom").mkdir()
        plain = one / "plain.yaml"
        plain.write_text(f"job_directory: {one / 'jobs'}\noutput_directory: {one / 'log'}\n"
                         f"state_directory: {one / 'state'}\nrun_directory: {one / 'run'}\n"
                         f"output_crontab: console\nuser: {pwd.getpwuid(os.geteuid()).pw_name}\n")
        metered = one / "metered.yaml"
        metered.write_text(plain.read_text() + f"metrics: {{textfile_directory: {one / 'prom'}}}\n")
        runs = {
            "run-job --job": case([py, "-m", "run_job", "--config", str(plain), "tiny"], env),
            "+ textfile": case([py, "-m", "run_job", "--config", str(metered), "tiny"], env),
        }
        for run in runs.values():
            run()
        medians = interleaved(runs, max(args.rounds, 11))
        print("one run of a trivial job (medians):")
        for name, value in medians.items():
            print(f"  {name:<20} {value * 1000:8.1f} ms   {value / medians['run-job --job']:5.2f}x")


if __name__ == "__main__":
    main()
