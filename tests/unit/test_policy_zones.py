"""Time zones (SPEC §10): the host entries cron-generate writes for a job with
its own timezone (config/zones.py) and run-job --if-due's decision
(run/due.py), proven together against Debian cron's rules over whole years.

``simulate_cron`` plays Debian's cron on the host's clock, minute by minute,
with its clock-change rule (a forward jump runs the fixed-time entries of the
skipped minutes at once; in a repeated hour only wildcard entries run again);
every entry that fires calls the pure --if-due decision, with the history so
far. The runs must be exactly the job's starts in its own zone
(``schedule.next_start``): none lost, none twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from run_job.config.schedule import field_values, next_start
from run_job.config.zones import host_schedules, same_clock
from run_job.run.due import due_instant, ran_since

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
MINUTE = timedelta(minutes=1)


class Entry:
    def __init__(self, schedule: str) -> None:
        f = schedule.split()
        self.minute, self.hour = field_values(f[0], 0), field_values(f[1], 1)
        self.dom, self.month, self.dow = field_values(f[2], 2), field_values(f[3], 3), field_values(f[4], 4)
        self.day_and = f[2].startswith("*") or f[4].startswith("*")  # Debian's DOM_STAR/DOW_STAR
        self.wild = f[0].startswith("*") or f[1].startswith("*")

    def matches(self, wall: datetime) -> bool:
        if wall.minute not in self.minute or wall.hour not in self.hour or wall.month not in self.month:
            return False
        dom_ok, dow_ok = wall.day in self.dom, (wall.weekday() + 1) % 7 in self.dow
        return (dom_ok and dow_ok) if self.day_and else (dom_ok or dow_ok)


def simulate_cron(entries: list[str], host: ZoneInfo, start: datetime, end: datetime):
    """UTC instants at which Debian's cron would start an entry (one per entry that fires)."""
    parsed = [Entry(e) for e in entries]
    t = start
    previous = (t - MINUTE).astimezone(host).replace(tzinfo=None)
    high_water = previous
    while t < end:
        wall = t.astimezone(host).replace(tzinfo=None)
        step = wall - previous
        if step == MINUTE and wall > high_water:
            for e in parsed:
                if e.matches(wall):
                    yield t
        elif step > MINUTE:  # forward jump: fixed-time entries of the skipped minutes now
            skipped = previous + MINUTE
            while skipped < wall:
                for e in parsed:
                    if not e.wild and e.matches(skipped):
                        yield t
                skipped += MINUTE
            for e in parsed:
                if e.matches(wall):
                    yield t
        else:  # a repeated wall minute: only wildcard entries run again
            for e in parsed:
                if e.wild and e.matches(wall):
                    yield t
        high_water = max(high_water, wall)
        previous = wall
        t += MINUTE


def expected_starts(schedule, zone, start, end):
    out, t = [], start - timedelta(seconds=1)
    while True:
        t = next_start(schedule, t, zone)
        if t is None or t >= end:
            return out
        out.append(t)


def runs_through_cron(schedule, zone, host, start, end, year=2026):
    entries = host_schedules(schedule, zone, host, year)
    assert entries is not None
    history: list[dict] = []
    for fired in simulate_cron(list(entries), host, start, end):
        now = fired + timedelta(seconds=2)  # cron's fork and run-job's start-up
        due = due_instant(schedule, zone, now)
        if due is not None and not ran_since(history, due):
            history.append({"started_at": now.isoformat(), "due": due})
    return entries, [h["due"] for h in history]


YEAR = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_a_berlin_0900_job_on_a_new_york_host_runs_once_a_day_at_0900_berlin_every_day_of_the_year():
    """Done when: New York changes clocks on 8 March and 1 November 2026,
    Berlin on 29 March and 25 October; 09:00 Berlin every day, all 365."""
    entries, runs = runs_through_cron("0 9 * * *", BERLIN, NEW_YORK, *YEAR)
    assert entries == ("0 3,4 * * *",)
    local = [r.astimezone(BERLIN) for r in runs]
    assert all((t.hour, t.minute) == (9, 0) for t in local)
    days = [t.date() for t in local]
    assert len(days) == 365 and len(set(days)) == 365
    assert runs == expected_starts("0 9 * * *", BERLIN, *YEAR)
    for change_day in ("2026-03-08", "2026-03-29", "2026-10-25", "2026-11-01"):
        assert any(str(d) == change_day for d in days)


@pytest.mark.parametrize("schedule, zone, host", [
    ("30 2 * * *", "Europe/Berlin", "America/New_York"),     # Berlin's skipped and repeated 02:30
    ("30 6 * * *", "UTC", "America/New_York"),               # falls in New York's repeated hour
    ("0 9 * * *", "Asia/Kolkata", "America/New_York"),       # a half-hour offset
    ("0 1 * * 1-5", "Asia/Tokyo", "America/New_York"),       # weekdays, the day before on the host
    ("15 0 1 * *", "Asia/Tokyo", "America/New_York"),        # first of the month, the month before
    ("0 9 * * *", "America/New_York", "Europe/Berlin"),      # the other way round
    ("45 1 * * *", "Australia/Sydney", "Europe/London"),     # southern and northern summers
    ("0 12 * * *", "Europe/Berlin", "UTC"),
])
def test_every_start_runs_exactly_once_through_cron_and_if_due(schedule, zone, host):
    zone, host = ZoneInfo(zone), ZoneInfo(host)
    _, runs = runs_through_cron(schedule, zone, host, *YEAR)
    assert runs == expected_starts(schedule, zone, *YEAR)


@pytest.mark.parametrize("schedule", ["*/15 * * * *", "*/20 9-17 * * *"])
def test_wildcard_jobs_across_both_zones_changes(schedule):
    """Around each change (the job's zone runs a wildcard job twice in its
    repeated hour and not in its skipped one)."""
    for start in (datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 10, 23, tzinfo=UTC)):
        window = (start, start + timedelta(days=11))
        _, runs = runs_through_cron(schedule, BERLIN, NEW_YORK, *window)
        assert runs == expected_starts(schedule, BERLIN, *window)


def test_zones_that_keep_the_hosts_clock_need_no_translation():
    assert same_clock(ZoneInfo("Europe/Paris"), BERLIN, 2026)
    assert host_schedules("0 9 * * *", ZoneInfo("Europe/Paris"), BERLIN, 2026) is None
    assert host_schedules("0 9 * * *", ZoneInfo("Etc/UTC"), ZoneInfo("UTC"), 2026) is None
    assert not same_clock(ZoneInfo("Europe/London"), ZoneInfo("UTC"), 2026)


def test_the_entries_do_not_depend_on_the_day_they_are_made():
    assert host_schedules("0 9 * * *", BERLIN, NEW_YORK, 2026) == \
        host_schedules("0 9 * * *", BERLIN, NEW_YORK, 2027)


def test_due_instant_at_fixed_clocks():
    at = datetime(2026, 3, 29, 1, 0, 3, tzinfo=UTC)  # Berlin jumps 02:00 -> 03:00 CEST
    assert due_instant("30 2 * * *", BERLIN, at) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert due_instant("30 2 * * *", BERLIN, at + MINUTE) is None
    assert due_instant("0 9 * * *", BERLIN, datetime(2026, 6, 1, 7, 0, 59, tzinfo=UTC)) is not None
    assert due_instant("0 9 * * *", BERLIN, datetime(2026, 6, 1, 7, 1, 0, tzinfo=UTC)) is None
    assert due_instant("0 9 * * *", BERLIN, datetime(2026, 6, 1, 8, 0, 0, tzinfo=UTC)) is None
    assert due_instant(None, BERLIN, at) is None
    history = [{"started_at": "2026-06-01T07:00:00.400000Z"}]
    assert ran_since(history, datetime(2026, 6, 1, 7, 0, tzinfo=UTC))
    assert not ran_since(history, datetime(2026, 6, 2, 7, 0, tzinfo=UTC))
