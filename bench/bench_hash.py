#!/usr/bin/env python3
"""Benchmark: how 1,000 jobs ``H H * * *`` spread over the day.

For each seed (the host name, then a few fixed ones) it expands ``H H * * *``
for 1,000 slugs (``job-0000`` ... ``job-0999``) exactly as cron-generate does
(``schedule.expand``: SHA-256 of seed, slug and field position) and prints
the largest minute bucket (jobs starting in the same minute of the day), how
many minutes hold 0, 1, 2, ... jobs, and the fewest and most jobs in one hour.
Beside it, the same figures for 1,000 uniform random draws into the 1,440
minutes (median and 5th-95th percentile of 500 trials): what a perfect hash
gives. ``--jobs`` and ``--seeds`` change the sizes. Pure computation: no venv,
no files; any Python 3.11 with this checkout on the path.

    python3 bench/bench_hash.py [--jobs 1000] [--seeds 5]
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from run_job.config.schedule import expand, start_minutes  # noqa: E402


def buckets(seed: str, jobs: int) -> Counter:
    minutes: Counter = Counter()
    for i in range(jobs):
        minutes.update(start_minutes(expand("H H * * *", seed, f"job-{i:04d}")))
    return minutes


def describe(minutes: Counter, jobs: int) -> str:
    sizes = Counter(minutes.values())
    sizes[0] = 1440 - len(minutes)
    hours = Counter()
    for minute, count in minutes.items():
        hours[minute // 60] += count
    spread = ", ".join(f"{k}:{sizes[k]}" for k in sorted(sizes))
    return (f"largest minute bucket {max(minutes.values())}; minutes holding n jobs {{{spread}}};"
            f" jobs per hour {min(hours.values())}-{max(hours.values())} (mean {jobs / 24:.1f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    seeds = [socket.gethostname()] + [f"seed-{i}" for i in range(args.seeds - 1)]
    print(f"{args.jobs} jobs 'H H * * *' (python {sys.version.split()[0]})")
    for seed in seeds:
        print(f"  hash_seed {seed!r}: {describe(buckets(seed, args.jobs), args.jobs)}")
    rng = random.Random(1)
    maxima = sorted(max(Counter(rng.randrange(1440) for _ in range(args.jobs)).values())
                    for _ in range(500))
    used = []
    rng = random.Random(2)
    for _ in range(500):
        used.append(len(set(rng.randrange(1440) for _ in range(args.jobs))))
    used.sort()
    print(f"  uniform random (500 trials): largest bucket median {statistics.median(maxima):g}"
          f" (5-95%: {maxima[25]}-{maxima[475]}); minutes used median {statistics.median(used):g}"
          f" (5-95%: {used[25]}-{used[475]})")
    for seed in seeds[:1]:
        print(f"  hash_seed {seed!r}: minutes used {len(buckets(seed, args.jobs))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
