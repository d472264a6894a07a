#!/usr/bin/env python3
"""Benchmark: ``cron-generate --stdout`` against the parse-once floor.

For each size (1,000 and 10,000 generated job files with 60 distinct
schedules) it times, in the same run, interleaved, several rounds of:

- floor: a fresh Python process that reads every job file once and parses it
  with PyYAML's C loader (``yaml.load(data, Loader=yaml.CSafeLoader)``), i.e.
  the least any tool must do to look at every job;
- cron-generate: ``python -m cron_generate --config CFG --stdout`` (load the
  config, validate every job file, render), output to /dev/null.

Both are whole processes (interpreter start-up included). Reported: medians,
the ratio cron-generate / floor (target: <= 4 at 10,000 jobs) and the growth
from 1,000 to 10,000 jobs (linear: about 10x, less while start-up dominates).
``--profile`` adds a cProfile of one in-process run at the largest size.

It runs in a venv made with Debian's ``/usr/bin/python3 -m venv`` holding the
newest PyPI releases of PyYAML, jsonschema, croniter and filelock, kept under
``$XDG_CACHE_HOME/process-control-bench/venv`` (outside the repo); the script
creates it and re-runs itself there. Job folders are temporary.

    python3 bench/bench_cron.py [--rounds 5] [--sizes 1000,10000] [--profile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import REPO, ensure_venv  # noqa: E402

FLOOR_SCRIPT = r"""
import os, sys, yaml
folder = sys.argv[1]
n = 0
for name in sorted(os.listdir(folder)):
    if name.endswith(".yaml"):
        with open(os.path.join(folder, name), "rb") as f:
            yaml.load(f.read(), Loader=yaml.CSafeLoader)
        n += 1
print(n)
"""


SCHEDULES = [f"{m} {h} * * *" for m, h in zip(range(0, 60, 3), range(20))]  # 20
SCHEDULES += [f"*/{s} * * * *" for s in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)]  # 11
SCHEDULES += [f"{m} */{h} * * 1-5" for m, h in zip(range(7, 60, 7), (2, 3, 4, 6, 8, 12, 2, 3))]  # 8
SCHEDULES += [f"{m} {h} 1,15 * *" for m, h in zip((5, 10, 15, 20, 25, 35, 40), (1, 2, 3, 4, 5, 6, 7))]  # 7
SCHEDULES += ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@midnight", "@annually"]  # 7
SCHEDULES += [f"{m} {h} * * sun" for m, h in zip((1, 2, 3, 4, 5, 6, 7), (8, 9, 10, 11, 12, 13, 14))]  # 7
if len(set(SCHEDULES)) != 60:
    raise SystemExit(f"bench bug: {len(set(SCHEDULES))} distinct schedules, not 60")

JOB = """\
name: Generated job {i}
description: >
  Benchmark job number {i}; it moves files from one place to another
  and reports how many it moved.
command:
  - /usr/bin/env true --batch {i}
  - /bin/echo "done {i}"
schedule: "{schedule}"
timeout: {timeout}
allow_overtime: {overtime}
environment:
  BATCH: {i}
  QUEUE: queue-{q}
  VERBOSE: true
tag: [bench, group-{q}]
failmail:
  from_address: jobs@example.org
  to_address: ops@example.org
{disabled}"""


def make_site(root: Path, n: int) -> Path:
    jobs = root / "jobs"
    jobs.mkdir(parents=True)
    for i in range(n):
        (jobs / f"job-{i:05d}.yaml").write_text(JOB.format(
            i=i, schedule=SCHEDULES[i % 60], timeout=(i % 7) * 5, overtime=str(i % 2 == 0).lower(),
            q=i % 13, disabled="disabled: true\n" if i % 50 == 0 else ""), encoding="utf-8")
    cfg = root / "process-control.yaml"
    cfg.write_text(
        f"job_directory: {jobs}\n"
        f"output_directory: {root / 'log'}\n"
        f"state_directory: {root / 'state'}\n"
        f"run_directory: {root / 'run'}\n"
        "output_crontab: console\n"
        "user: process-control\n"
        "runner_path: /usr/bin/run-job\n"
        "service_runner_path: /usr/bin/sbatch-service\n", encoding="utf-8")
    return cfg


def timed(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return elapsed


def profile(cfg: Path, env: dict, top: int) -> str:
    code = (
        "import cProfile, pstats, io, sys, contextlib\n"
        "from cron_generate.cli import main\n"
        "prof = cProfile.Profile()\n"
        "with open('/dev/null', 'w') as devnull, contextlib.redirect_stdout(devnull):\n"
        f"    prof.runcall(main, ['--config', {str(cfg)!r}, '--stdout'])\n"
        "out = io.StringIO()\n"
        f"pstats.Stats(prof, stream=out).sort_stats('cumulative').print_stats({top})\n"
        "out.write('\\n--- by own time ---\\n')\n"
        f"pstats.Stats(prof, stream=out).sort_stats('tottime').print_stats({top})\n"
        "print(out.getvalue())\n")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--profile", action="store_true", help="cProfile one run at the largest size")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    ensure_venv()

    import croniter
    import filelock
    import jsonschema
    import yaml
    from importlib.metadata import version

    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("PROCESS_CONTROL_CONFIG", None)
    print(f"python {sys.version.split()[0]} ({sys.executable}); PyYAML {yaml.__version__} "
          f"(C loader: {yaml.__with_libyaml__}), jsonschema {version('jsonschema')}, "
          f"croniter {version('croniter')}, filelock {filelock.__version__}; {os.cpu_count()} CPUs")
    del croniter, jsonschema
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-cron-") as tmp:
        for n in sizes:
            cfg = make_site(Path(tmp) / str(n), n)
            floor_argv = [sys.executable, "-c", FLOOR_SCRIPT, str(cfg.parent / "jobs")]
            gen_argv = [sys.executable, "-m", "cron_generate", "--config", str(cfg), "--stdout"]
            timed(floor_argv, env), timed(gen_argv, env)  # warm the page cache and .pyc files
            floors, gens = [], []
            for _ in range(args.rounds):
                floors.append(timed(floor_argv, env))
                gens.append(timed(gen_argv, env))
            results[n] = (statistics.median(floors), statistics.median(gens))
            f, g = results[n]
            print(f"{n:>6} jobs: floor {f * 1000:8.1f} ms   cron-generate {g * 1000:8.1f} ms   "
                  f"ratio {g / f:5.2f}x   (rounds: {args.rounds}, medians)")
        if len(sizes) > 1:
            small, large = sizes[0], sizes[-1]
            print(f"growth {small} -> {large} jobs: floor {results[large][0] / results[small][0]:.2f}x, "
                  f"cron-generate {results[large][1] / results[small][1]:.2f}x "
                  f"(jobs x{large / small:g})")
            per_floor = (results[large][0] - results[small][0]) / (large - small)
            per_gen = (results[large][1] - results[small][1]) / (large - small)
            print(f"marginal cost per job: floor {per_floor * 1e6:.0f} us, cron-generate {per_gen * 1e6:.0f} us "
                  f"({per_gen / per_floor:.2f}x)")
        if args.profile:
            print(profile(Path(tmp) / str(sizes[-1]) / "process-control.yaml", env, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
