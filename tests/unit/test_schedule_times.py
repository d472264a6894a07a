"""When cron starts a job (config/schedule.py): Debian cron's clock-change rule, in any zone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from run_job.config.schedule import is_fixed_time, next_start, previous_start, zone_problem

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def starts(expr, zone, begin, count):
    out, t = [], begin
    for _ in range(count):
        t = next_start(expr, t, zone)
        out.append(t.astimezone(zone).strftime("%m-%d %H:%M%z"))
    return out


@pytest.mark.parametrize("expr,fixed", [("30 2 * * *", True), ("0-59 2 * * *", True),
                                         ("*/30 * * * *", False), ("30 * * * *", False),
                                         ("@hourly", False), ("@daily", True)])
def test_fixed_time(expr, fixed):
    assert is_fixed_time(expr) is fixed


def test_autumn_repeated_hour_runs_a_fixed_time_job_once():
    begin = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)  # Berlin: 25 Oct 03:00 CEST -> 02:00 CET
    assert starts("30 2 * * *", BERLIN, begin, 2) == ["10-25 02:30+0200", "10-26 02:30+0100"]


def test_autumn_repeated_hour_runs_a_wildcard_job_on_both_passes():
    begin = datetime(2026, 10, 25, 0, 10, tzinfo=UTC)
    assert starts("*/30 * * * *", BERLIN, begin, 4) == [
        "10-25 02:30+0200", "10-25 02:00+0100", "10-25 02:30+0100", "10-25 03:00+0100"]


def test_spring_skipped_hour_runs_a_fixed_time_job_right_after_the_change():
    begin = datetime(2026, 3, 28, 23, 50, tzinfo=UTC)  # Berlin: 29 Mar 02:00 CET -> 03:00 CEST
    assert starts("30 2 * * *", BERLIN, begin, 2) == ["03-29 03:00+0200", "03-30 02:30+0200"]
    assert starts("*/30 * * * *", BERLIN, begin, 3) == [
        "03-29 01:00+0100", "03-29 01:30+0100", "03-29 03:00+0200"]


def test_previous_start_sees_the_first_pass_of_a_repeated_hour():
    after_second_pass = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 CET, second 02:xx
    assert previous_start("30 2 * * *", after_second_pass, BERLIN) == \
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert previous_start("30 2 * * *", datetime(2026, 3, 29, 1, 10, tzinfo=UTC), BERLIN) == \
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_a_berlin_job_on_a_new_york_clock_every_day_of_the_year():
    """09:00 Berlin time once a day, whatever the host's zone; both zones
    change clocks on different dates."""
    t = datetime(2026, 1, 1, tzinfo=UTC)
    seen = []
    for _ in range(365):
        t = next_start("0 9 * * *", t, BERLIN)
        local = t.astimezone(BERLIN)
        assert (local.hour, local.minute) == (9, 0)
        seen.append(local.date())
    assert len(set(seen)) == 365
    assert all(b - a == timedelta(days=1) for a, b in zip(seen, seen[1:]))


def test_exact_bounds_and_impossible_schedules():
    at = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert previous_start("0 10 * * *", at, UTC) == at
    assert next_start("0 10 * * *", at, UTC) == at + timedelta(days=1)
    assert previous_start("0 0 31 2 *", at, UTC) is None
    assert next_start("not a schedule", at, UTC) is None


def test_zone_problem():
    assert zone_problem("Europe/Berlin") is None
    assert "did you mean 'Europe/Berlin'" in zone_problem("Europe/Berln")
    assert zone_problem("../../etc/passwd") is not None
    assert zone_problem("") is not None
