"""Which host times a job with its own ``timezone`` needs cron entries for (pure).

Debian's cron runs in one zone, the host's, and knows no ``CRON_TZ``. A job
whose schedule means wall-clock time in another zone (SPEC §10) therefore
gets host-zone entries that fire at least at every host wall time at which
one of its starts can fall during the year, each calling ``run-job --job
NAME --if-due``, which runs only when a start of the job (in its own zone,
with Debian cron's clock-change rule there) falls in the current minute
(``run/due.py``). Firing more often than needed costs a run-job start-up
that exits at once; firing less would lose runs, so every choice below errs
on the side of more.

How ``host_schedules`` finds the host times, over two calendar years from
January 1st of ``year`` (deterministic within a year, and a year holds
every kind of clock change):

* the clock changes of both zones in the window (``transitions``);
* a job-local day that runs (its day fields) far from any change maps its
  starts by a constant offset difference: the minutes of the day shift by
  it, maybe into the day before or after (the day fields then shift too);
* a day near a change is computed start by start (``schedule.wall_instants``:
  a skipped local time runs right after the change, a repeated one once for
  fixed-time jobs), each mapped to the host's wall clock; a time found only
  there gets entries restricted to the months it occurs in;
* a start that falls in the second pass of a host wall time repeated by the
  host's own autumn change would be missed by a fixed-time entry (Debian's
  cron runs those once, in the first pass): it gets a wildcard entry (hour
  ``*``) restricted to the days it can fall on.

Then the host times are grouped into as few lines as practical: hours that
share the same minutes go on one line. A zone that keeps the host's offset
all the time (``timezone: UTC`` on a UTC host) needs no translation:
``host_schedules`` returns None and the entry is written as it is.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

from run_job.config.schedule import (field_values, format_values, is_fixed_time, split_fields,
                                     to_five_fields, wall_instants)

UTC = timezone.utc
_DAY = timedelta(days=1)
_MARGIN = timedelta(hours=27)  # a local day plus cron's 3 h reach, either side


def transitions(zone: tzinfo, start: datetime, end: datetime) -> tuple[datetime, ...]:
    """The UTC instants in [start, end) at which ``zone``'s offset changes (pure)."""
    return _transitions(zone, start, end)


@lru_cache(maxsize=64)
def _transitions(zone: tzinfo, start: datetime, end: datetime) -> tuple[datetime, ...]:
    found = []
    step = timedelta(hours=6)  # no zone changes twice within six hours
    low = start
    offset = low.astimezone(zone).utcoffset()
    while low < end:
        high = min(low + step, end)
        new = high.astimezone(zone).utcoffset()
        if new != offset:
            a, b = low, high
            while b - a > timedelta(seconds=1):
                mid = a + (b - a) / 2
                if mid.astimezone(zone).utcoffset() == offset:
                    a = mid
                else:
                    b = mid
            found.append(b.replace(microsecond=0))
            offset = new
        low = high
    return tuple(found)


class _Days:
    """The day fields of a schedule: which dates run, and the fields shifted
    by a day (for starts that land on the host's day before or after)."""

    def __init__(self, dom: str, month: str, dow: str) -> None:
        self.raw = (dom, month, dow)
        self.dom, self.month, self.dow = (field_values(dom, 2), field_values(month, 3),
                                          field_values(dow, 4))
        self.dom_all = len(self.dom) == 31
        self.dow_all = len(self.dow) == 7

    def runs_on(self, day: date) -> bool:
        """Does the job run on ``day``? Errs towards yes: where cron (AND for
        a ``*``-led field) and croniter (OR) might differ, OR."""
        if day.month not in self.month:
            return False
        dom_ok = day.day in self.dom
        dow_ok = (day.weekday() + 1) % 7 in self.dow
        if self.dom_all:
            return dow_ok
        if self.dow_all:
            return dom_ok
        return dom_ok or dow_ok

    def shifted(self, days: int) -> tuple[str, str, str]:
        """The day fields of the host dates ``days`` (-1, 0, 1) after the
        job-local ones: a superset (a ``*``-led field that restricts, such as
        ``*/2``, widens to ``*``)."""
        dom, month, dow = self.raw
        if days == 0:
            return self.raw
        new_dow = "*" if dow.startswith("*") else format_values([(w + days) % 7 for w in self.dow])
        if dom.startswith("*"):
            new_dom, crosses = "*", True
        elif days > 0:
            values = {d + 1 for d in self.dom if d < 31} | ({1} if max(self.dom) >= 28 else set())
            new_dom, crosses = format_values(sorted(values)), max(self.dom) >= 28
        else:
            values = {d - 1 for d in self.dom if d > 1} | ({28, 29, 30, 31} if 1 in self.dom else set())
            new_dom, crosses = format_values(sorted(values)), 1 in self.dom
        if month.startswith("*"):
            new_month = "*"
        elif crosses:
            new_month = format_values(sorted(self.month | {(m - 1 + days) % 12 + 1 for m in self.month}))
        else:
            new_month = month
        return new_dom, new_month, new_dow


def same_clock(job_zone: tzinfo, host_zone: tzinfo, year: int) -> bool:
    """Do both zones show the same wall time all through the window (pure)?"""
    start, end = _window(year)
    return (start.astimezone(job_zone).utcoffset() == start.astimezone(host_zone).utcoffset()
            and transitions(job_zone, start, end) == transitions(host_zone, start, end)
            and all(t.astimezone(job_zone).utcoffset() == t.astimezone(host_zone).utcoffset()
                    for t in transitions(job_zone, start, end)))


def _window(year: int) -> tuple[datetime, datetime]:
    return (datetime(year, 1, 1, tzinfo=UTC) - 3 * _DAY, datetime(year + 2, 1, 1, tzinfo=UTC) + 3 * _DAY)


def host_schedules(schedule: str, job_zone: tzinfo, host_zone: tzinfo, year: int
                   ) -> tuple[str, ...] | None:
    """Host-zone cron schedules (five fields each) that together fire at every
    host wall time at which a start of ``schedule`` (concrete: hashed fields
    expanded) in ``job_zone`` falls during ``year`` and the next (pure); None
    when the zones keep the same wall clock (write ``schedule`` as it is)."""
    if same_clock(job_zone, host_zone, year):
        return None
    return _host_schedules(" ".join(split_fields(to_five_fields(schedule))), job_zone, host_zone, year)


@lru_cache(maxsize=256)
def _host_schedules(schedule: str, job_zone: tzinfo, host_zone: tzinfo, year: int) -> tuple[str, ...]:
    minute_f, hour_f, dom_f, month_f, dow_f = schedule.split()
    minutes = sorted(field_values(minute_f, 0))
    hours = sorted(field_values(hour_f, 1))
    times = [h * 60 + m for h in hours for m in minutes]  # job-local minutes of the day
    days = _Days(dom_f, month_f, dow_f)
    fixed = is_fixed_time(schedule)
    steady_deltas, near_changes = _day_plan(dom_f, month_f, dow_f, job_zone, host_zone, year)
    exact: dict[tuple[int, int], set[int]] = {}  # (host minute of day, day shift) -> host months
    wild: dict[int, set[date]] = {}  # host minute of day -> host dates (second pass of a repeat)
    for day in near_changes:
        _exact_day(day, hours, minutes, job_zone, host_zone, fixed, exact, wild)

    steady: set[tuple[int, int]] = set()
    for delta in steady_deltas:
        for t in times:
            shifted = t + delta
            steady.add((shifted % 1440, shifted // 1440))
    by_days: dict[str, set[int]] = {}  # day fields -> host minutes of the day
    for minute_of_day, shift in steady:
        by_days.setdefault(" ".join(days.shifted(shift)), set()).add(minute_of_day)
    for (minute_of_day, shift), months in exact.items():
        if (minute_of_day, shift) not in steady:  # only near a change: only in its months
            by_days.setdefault(f"* {format_values(sorted(months))} *", set()).add(minute_of_day)
    lines: list[str] = []
    every_day: set[int] = set()  # minutes of the day a wildcard line fires at on every day
    for day_fields in sorted(by_days, key=lambda f: (f != " ".join(days.raw), f)):
        for line, covered, wildcard in _group(by_days[day_fields], day_fields):
            lines.append(line)
            if wildcard and day_fields == "* * *":
                every_day |= covered
    for minute_of_day in sorted(set(wild) - every_day):
        dates = wild[minute_of_day]
        doms = [d.day for d in dates]
        # the dates a yearly rule ("first Sunday of November") can fall on:
        # every 7-day span that holds all the dates seen
        low, high = max(1, max(doms) - 6), min(31, min(doms) + 6)
        month_field = format_values(sorted({d.month for d in dates}))
        lines.append(f"{minute_of_day % 60} * {format_values(list(range(low, high + 1)))} {month_field} *")
    return tuple(lines)


@lru_cache(maxsize=64)
def _day_plan(dom_f: str, month_f: str, dow_f: str, job_zone: tzinfo, host_zone: tzinfo,
              year: int) -> tuple[frozenset[int], tuple[date, ...]]:
    """For the days a schedule runs on in the window: the offset differences
    (host minus job, minutes) of the days far from any clock change, and the
    days near one (computed start by start). Depends on the day fields only:
    shared by every schedule with the same ones."""
    days = _Days(dom_f, month_f, dow_f)
    start, end = _window(year)
    changes = sorted(transitions(job_zone, start, end) + transitions(host_zone, start, end))
    deltas: set[int] = set()
    near: list[date] = []
    day = date(year, 1, 1) - _DAY
    last = date(year + 2, 1, 1)
    while day <= last:
        if days.runs_on(day):
            noon = datetime(day.year, day.month, day.day, 12).replace(tzinfo=job_zone).astimezone(UTC)
            index = bisect_left(changes, noon - _MARGIN)
            if index < len(changes) and changes[index] <= noon + _MARGIN:
                near.append(day)
            else:
                delta = _offset(noon, host_zone) - _offset(noon, job_zone)
                deltas.add(int(delta.total_seconds() // 60))
        day += _DAY
    return frozenset(deltas), tuple(near)


def _exact_day(day: date, hours: list[int], minutes: list[int], job_zone: tzinfo, host_zone: tzinfo,
               fixed: bool, exact: dict, wild: dict) -> None:
    """Every start of a job-local ``day`` near a clock change, on the host's clock."""
    for h in hours:
        for m in minutes:
            for instant in wall_instants(datetime(day.year, day.month, day.day, h, m), job_zone, fixed):
                host = instant.astimezone(host_zone)
                minute_of_day = host.hour * 60 + host.minute
                shift = (host.date() - day).days
                exact.setdefault((minute_of_day, shift), set()).add(host.month)
                if host.fold == 1 and _repeated(host, host_zone):
                    wild.setdefault(minute_of_day, set()).add(host.date())


def _offset(moment: datetime, zone: tzinfo) -> timedelta:
    """``zone``'s UTC offset at ``moment`` (an aware time always has one)."""
    return moment.astimezone(zone).utcoffset() or timedelta(0)


def _repeated(host: datetime, zone: tzinfo) -> bool:
    """Is ``host``'s wall time one that the host's clock shows twice?"""
    naive = host.replace(tzinfo=None)
    return naive.replace(tzinfo=zone, fold=0).utcoffset() != naive.replace(tzinfo=zone, fold=1).utcoffset()


def _group(minutes_of_day: set[int], day_fields: str) -> list[tuple[str, set[int], bool]]:
    """Cron lines for host minutes of the day: hours sharing the same minutes
    on one line; every minute or every hour written as ``*`` (a wildcard
    entry for cron's clock-change rule). Each with the minutes of the day it
    fires at and whether it is a wildcard entry."""
    by_hour: dict[int, set[int]] = {}
    for t in minutes_of_day:
        by_hour.setdefault(t // 60, set()).add(t % 60)
    by_minutes: dict[frozenset[int], list[int]] = {}
    for hour, minutes in by_hour.items():
        by_minutes.setdefault(frozenset(minutes), []).append(hour)
    lines = []
    for mins, hrs in sorted(by_minutes.items(), key=lambda item: (sorted(item[1]), sorted(item[0]))):
        minute_f = "*" if len(mins) == 60 else format_values(sorted(mins))
        hour_f = "*" if len(hrs) == 24 else format_values(sorted(hrs))
        covered = {h * 60 + m for h in hrs for m in mins}
        lines.append((f"{minute_f} {hour_f} {day_fields}", covered, "*" in (minute_f, hour_f)))
    return lines
