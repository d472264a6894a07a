#!/usr/bin/env python3
"""Benchmark: ``run-job --validate`` over 10,000 job files against the parse-once floor.

A job directory of 10,000 generated files (60 distinct schedules, as a real
job directory repeats a handful; each file with a name, description, two
commands, timeout, environment and tags) is validated by the real command,
interleaved with the floor, several rounds:

- floor: a fresh Python process that reads every file once and parses it with
  PyYAML's C loader (``yaml.load(data, Loader=yaml.CSafeLoader)``);
- validate: ``python -m run_job --config CFG --validate`` (every file read,
  parsed, checked against the JSON Schema, schedules, commands, durations).

Both are whole processes. Reported: medians and the ratio (target: <= 4).

    python3 bench/bench_validate.py [--jobs 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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


def make_jobs(folder: Path, count: int) -> None:
    schedules = [f"{minute} {hour} * * *" for hour in range(15) for minute in (0, 15, 30, 45)][:60]
    for i in range(count):
        (folder / f"job-{i:05d}.yaml").write_text(
            f"name: Job number {i}\n"
            f"description: Processes batch {i} of the nightly data.\n"
            f"command:\n  - /usr/local/bin/process --batch {i}\n  - /usr/local/bin/report --batch {i}\n"
            f'schedule: "{schedules[i % 60]}"\n'
            "timeout: 30\n"
            f"environment:\n  BATCH: {i}\n  MODE: nightly\n"
            "tag: [nightly, batch]\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    benchlib.ensure_venv()
    with tempfile.TemporaryDirectory(prefix="pc-bench-validate-") as tmp:
        root = Path(tmp)
        jobs = root / "jobs"
        jobs.mkdir()
        make_jobs(jobs, args.jobs)
        config = root / "config.yaml"
        config.write_text(f"job_directory: {jobs}\noutput_directory: {root}/log\nstate_directory: {root}/state\n"
                          f"run_directory: {root}/run\noutput_crontab: console\n")
        python = sys.executable
        cases = {
            "floor": lambda: benchlib.time_command([python, "-c", FLOOR, str(jobs)]),
            "validate": lambda: benchlib.time_command([python, "-m", "run_job", "--config", str(config),
                                                       "--validate"]),
        }
        medians = benchlib.interleaved(cases, args.rounds)
    print(benchlib.versions())
    print(f"{args.jobs} job files, {args.rounds} rounds, medians:")
    for name, value in medians.items():
        print(f"  {name:10s} {value:7.3f} s")
    ratio = medians["validate"] / medians["floor"]
    print(f"ratio validate/floor: {ratio:.2f} (target <= 4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
