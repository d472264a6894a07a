"""Hashed schedules (Jenkins' H): expansion, validation, spread (config/schedule.py)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timezone

import pytest

from run_job.config.schedule import (check_schedule, expand, field_values, has_hash, next_start,
                                     start_minutes)
from run_job.config.validate import hash_report

UTC = timezone.utc


def test_the_same_job_on_the_same_seed_always_gets_the_same_times():
    # Golden values: SHA-256 of seed, slug and position, so they hold on every
    # host and Python version (hash() is salted per process).
    assert expand("H H * * *", "host-a", "nightly-report") == "2 0 * * *"
    assert expand("H H * * *", "host-a", "nightly-report") == expand("H H * * *", "host-a", "nightly-report")
    assert expand("H H * * *", "host-b", "nightly-report") != "2 0 * * *"
    assert expand("H H * * *", "host-a", "other-job") != "2 0 * * *"


@pytest.mark.parametrize("schedule, check", [
    ("H * * * *", lambda f: 0 <= int(f[0]) <= 59),
    ("0 H * * *", lambda f: 0 <= int(f[1]) <= 23),
    ("0 0 H * *", lambda f: 1 <= int(f[2]) <= 28),  # every month has it
    ("0 0 * H *", lambda f: 1 <= int(f[3]) <= 12),
    ("0 0 * * H", lambda f: 0 <= int(f[4]) <= 6),  # 7 would be Sunday twice
    ("H(10-19) * * * *", lambda f: 10 <= int(f[0]) <= 19),
])
def test_h_stays_in_its_range(schedule, check):
    for i in range(300):
        fields = expand(schedule, "seed", f"job-{i}").split()
        assert check(fields), fields


def test_h_step_is_every_nth_value_from_a_hashed_offset():
    offsets = set()
    for i in range(200):
        minute = expand("H/15 * * * *", "seed", f"job-{i}").split()[0]
        values = sorted(field_values(minute, 0))
        assert len(values) == 4 and all(b - a == 15 for a, b in zip(values, values[1:]))
        offsets.add(values[0])
    assert offsets == set(range(15))
    hours = sorted(field_values(expand("0 H(8-17)/3 * * *", "seed", "j").split()[1], 1))
    assert hours[0] in (8, 9, 10) and all(h <= 17 for h in hours) and len(hours) >= 3


def test_macros_and_plain_schedules_are_not_touched():
    # croniter given a hash id rewrites @daily into a hashed expression: we
    # never give it one; @daily stays midnight.
    assert expand("@daily", "seed", "job") == "@daily"
    assert next_start(expand("@daily", "seed", "job"), datetime(2026, 6, 1, 12, tzinfo=UTC), UTC) == \
        datetime(2026, 6, 2, 0, 0, tzinfo=UTC)
    assert expand("*/5 * * * *", "seed", "job") == "*/5 * * * *"
    assert expand("0 0 * * THU", "seed", "job") == "0 0 * * THU"  # the H of THU is no hash
    assert not has_hash("0 0 * * thu") and has_hash("H * * * *") and has_hash("1,H(0-5) * * * *")


def test_next_start_needs_the_expansion():
    assert next_start("H H * * *", datetime(2026, 6, 1, tzinfo=UTC), UTC) is None
    concrete = expand("H H * * *", "seed", "job")
    assert next_start(concrete, datetime(2026, 6, 1, tzinfo=UTC), UTC) is not None


@pytest.mark.parametrize("schedule", ["H H * * *", "H/15 H(9-17) * * 1-5", "H(0-29),H(30-59) * * * *",
                                      "H H H H H", "H(0-6)/2 * * * *", "1,H * * * mon"])
def test_valid_hashed_schedules(schedule):
    assert check_schedule(schedule) is None
    assert check_schedule(expand(schedule, "any", "job")) is None


@pytest.mark.parametrize("schedule, words", [
    ("H/0 * * * *", "step"), ("H/61 * * * *", "step"), ("H(5-3) * * * *", "backwards"),
    ("H(0-60) * * * *", "out of range"), ("HH * * * *", "H(a-b)"), ("H-5 * * * *", "H(a-b)"),
    ("0 0 H(0-5) * *", "out of range"),
    ("CRON_TZ=Europe/Berlin 0 9 * * *", "timezone: Europe/Berlin"),
    ("TZ=America/New_York 0 9 * * *", "timezone: America/New_York"),
    ("cron_tz=UTC 0 9 * * *", "timezone: UTC"),
])
def test_bad_hashed_fields_and_zone_prefixes_are_refused_with_a_hint(schedule, words):
    problem = check_schedule(schedule)
    assert problem is not None and words in problem, problem


def uniform_max_buckets(jobs: int, buckets: int, trials: int) -> list[int]:
    rng = random.Random(15)
    return sorted(max(Counter(rng.randrange(buckets) for _ in range(jobs)).values())
                  for _ in range(trials))


def test_a_thousand_daily_hashed_jobs_spread_over_the_day_as_a_uniform_hash_does():
    """1,000 jobs `H H * * *`: the largest minute bucket is what 1,000 uniform
    draws into 1,440 minutes give (3 to 6), and so is the number of minutes used."""
    minutes = Counter()
    for i in range(1000):
        (start,) = start_minutes(expand("H H * * *", "process-control-host", f"job-{i:04d}"))
        minutes[start] += 1
    largest = max(minutes.values())
    uniform = uniform_max_buckets(1000, 1440, 200)
    assert uniform[5] <= largest <= uniform[-5], (largest, uniform)
    # distinct minutes: 1440 * (1 - (1 - 1/1440)^1000) ~ 721, sd ~ 12
    assert 660 <= len(minutes) <= 780, len(minutes)
    hours = Counter(m // 60 for m in minutes.elements())
    assert min(hours.values()) >= 20 and max(hours.values()) <= 65, hours  # mean 41.7


class _Job:
    def __init__(self, slug, schedule, disabled=False):
        self.slug, self.schedule, self.disabled, self.service = slug, schedule, disabled, None


def test_validate_notes_every_expansion_and_warns_when_a_minute_is_crowded():
    jobs = [(f"/j/{i}.yaml", _Job(f"j{i}", "H H * * *")) for i in range(20)]
    notes, warnings = hash_report(jobs, "seed")
    assert len(notes) == 20 and notes[0][:3] == ("/j/0.yaml", "schedule", "H H * * *")
    assert not warnings
    crowded = jobs + [(f"/k/{i}.yaml", _Job(f"k{i}", "H(0-1) 3 * * *")) for i in range(4)]
    notes, warnings = hash_report(crowded, "seed")
    assert len(warnings) == 1 and "of 24 jobs with hashed schedules start at 03:0" in warnings[0]
    # two of two is more than a tenth, but one alone is no crowd
    assert hash_report([("/a.yaml", _Job("a", "H(5-5) 1 * * *"))], "seed")[1] == []
