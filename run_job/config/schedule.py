"""Cron schedules: strict vixie-cron syntax, checked with croniter (pure).

A schedule ends up verbatim in /etc/cron.d, so it must be exactly what
Debian's cron understands and nothing more: five fields of digits, names,
``*``, ``,``, ``-`` and ``/``, or one of the ``@`` macros below. ``@reboot``
is refused. Results are cached per distinct string: a job directory repeats a
handful of schedules thousands of times.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_FIELDS = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
# cron (vixie's Skip_Blanks) separates fields with spaces and tabs only; any
# other blank, control or non-ASCII character is refused here, and the
# crontab renderer asks this module before writing a schedule.
_BLANKS = " \t"
_ODD = re.compile(r"[^\x21-\x7e \t]")
_SPLIT = re.compile(r"[ \t]+")
_NAMES = {"\x0b": "a vertical tab (\\x0b)", "\x0c": "a form feed (\\x0c)", "\xa0": "a no-break space (U+00A0)",
          "\x7f": "the control character DEL (\\x7f)", "\u2028": "a line separator (U+2028)",
          "\u3000": "an ideographic space (U+3000)", "\ufeff": "a byte order mark (U+FEFF)"}


def _name(char: str) -> str:
    if char in _NAMES:
        return _NAMES[char]
    code = f"U+{ord(char):04X}"
    if char.isspace():
        return f"the Unicode space {code}"
    if ord(char) < 0x20 or 0x7f <= ord(char) < 0xa0:
        return f"the control character {code}"
    return f"the non-ASCII character {char!r} ({code})"


def split_fields(text: str) -> list[str]:
    """The fields of a stripped schedule, split as cron splits them (spaces and tabs)."""
    return _SPLIT.split(text) if text else []


_ITEM = re.compile(r"^(\*|[0-9]+(?:-[0-9]+)?)(?:/([0-9]+))?$")
_ZONE_PREFIX = re.compile(r"^\s*(CRON_TZ|TZ)\s*=\s*([A-Za-z0-9_+/-]*)", re.IGNORECASE)


def _check_field(text: str, label: str, low: int, high: int, names: tuple[str, ...] | None) -> str | None:
    if names and text.lower() in names:
        return None
    for item in text.split(","):
        match = _ITEM.match(item)
        if not match:
            if names and any(n in item.lower() for n in names):
                return (f"{label} field '{text}': a name ({names[0]}, {names[1]}, …) must stand alone; "
                        f"use numbers ({low}-{high}) for ranges and lists")
            return f"{label} field '{text}' is not valid: use numbers {low}-{high}, '*', ranges a-b, lists a,b and steps */n"
        base, step = match.group(1), match.group(2)
        if base != "*":
            parts = [int(p) for p in base.split("-")]
            for value in parts:
                if not low <= value <= high:
                    return f"{label} field '{text}': {value} is out of range {low}-{high}"
            if len(parts) == 2 and parts[0] > parts[1]:
                return f"{label} field '{text}': range {base} runs backwards"
        if step is not None and int(step) == 0:
            return f"{label} field '{text}': a step of 0 is not allowed"
    return None


@lru_cache(maxsize=1024)
def check_schedule(schedule: str) -> str | None:
    """Return None when ``schedule`` is valid, else what is wrong and how to fix it.

    Hashed fields (``H``, ``H(a-b)``, ``H/n``, ``H(a-b)/n``) are valid; every
    consumer expands them (``expand``) before cron or croniter sees them."""
    if not isinstance(schedule, str):
        return "a schedule is a string: quote it, e.g. \"*/5 * * * *\""
    zone_prefix = _ZONE_PREFIX.match(schedule)
    if zone_prefix:
        return (f"a schedule cannot start with {zone_prefix.group(1)}= (Debian's cron has no time zone"
                f" per entry); write the zone as the job key 'timezone: {zone_prefix.group(2) or 'Europe/Berlin'}'"
                " and the schedule without it")
    for bad, what in (("\n", "a newline"), ("\r", "a carriage return"), ("\0", "a NUL byte"),
                      ("%", "'%' (cron turns it into a newline)"), ("=", "'=' (cron would read an environment line)")):
        if bad in schedule:
            return f"the schedule contains {what}; write five cron fields such as \"*/5 * * * *\""
    odd = _ODD.search(schedule)
    if odd:
        return (f"the schedule contains {_name(odd.group())}; cron reads only spaces and tabs between fields "
                "and plain ASCII in them: write five cron fields such as \"*/5 * * * *\"")
    text = schedule.strip(_BLANKS)
    if not text:
        return "the schedule is empty; write five cron fields such as \"*/5 * * * *\", or leave the key out"
    if text.startswith("@"):
        if text == "@reboot":
            return ("@reboot is not supported: it runs once at boot, outside process-control's schedule; "
                    "use a service with keep_alive or a systemd unit")
        if text not in MACROS:
            return f"unknown schedule macro '{text}': use one of {', '.join(MACROS)} or five cron fields"
        return None
    fields = split_fields(text)
    if len(fields) != 5:
        return (f"a schedule has 5 fields (minute hour day-of-month month day-of-week), this one has {len(fields)}; "
                "for example \"*/5 * * * *\"")
    for index, (value, (label, low, high, names)) in enumerate(zip(fields, _FIELDS, strict=True)):
        hashed = any(item.startswith("H") for item in value.split(","))
        problem = (_check_hashed(value, index) if hashed
                   else _check_field(value, label, low, high, names))
        if problem:
            return problem
    from croniter import croniter

    concrete = expand(text, "", "check")
    if not croniter.is_valid(concrete):
        return f"croniter cannot read the schedule '{text}'"
    return None


def to_five_fields(schedule: str) -> str:
    text = schedule.strip(_BLANKS)
    return MACROS.get(text, text)


def field_values(field: str, index: int) -> frozenset[int]:
    """The values a concrete cron field (no ``H``) matches (pure); day of
    week 7 counts as 0. ValueError when the field is not valid."""
    label, low, high, names = _FIELDS[index]
    if _check_field(field, label, low, high, names) is not None:
        raise ValueError(field)
    if names and field.lower() in names:
        value = names.index(field.lower()) + low
        return frozenset({0 if index == 4 and value == 7 else value})
    values: set[int] = set()
    for item in field.split(","):
        match = _ITEM.match(item)
        if match is None:  # (the field passed _check_field)
            raise ValueError(field)
        base, step = match.group(1), int(match.group(2) or 1)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (int(p) for p in base.split("-"))
        else:
            first = int(base)
            last = high if match.group(2) else first  # "5/10" is 5-59/10, as cron reads it
        values.update(range(first, last + 1, step))
    if index == 4 and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def start_minutes(schedule: str) -> frozenset[int]:
    """Minutes of the day (0-1439) at which a concrete schedule starts on a
    day it runs (pure); ValueError for a schedule with ``H`` or bad fields."""
    fields = split_fields(to_five_fields(schedule))
    if len(fields) != 5:
        raise ValueError(schedule)
    minutes, hours = field_values(fields[0], 0), field_values(fields[1], 1)
    return frozenset(h * 60 + m for h in hours for m in minutes)


# ---------------------------------------------------------------------------
# When a schedule starts a job, as Debian's cron does it (pure but for the
# host's time zone, which ``host_zone`` reads)

_MAX_SHIFT = timedelta(hours=3)  # cron's clock-change rule covers changes under 3 h


def host_zone() -> tzinfo:
    """The host's time zone as cron sees it: ``$TZ`` when it names a zone,
    else ``/etc/localtime``, else UTC."""
    from zoneinfo import ZoneInfo

    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ValueError, OSError, KeyError):  # not a zone name: as cron, fall back
            pass
    try:
        st = os.stat("/etc/localtime")
        stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        if _LOCALTIME and _LOCALTIME[0] == stamp:  # --status asks once per job
            return _LOCALTIME[1]
        with open("/etc/localtime", "rb") as handle:
            zone = ZoneInfo.from_file(handle, key="localtime")
        _LOCALTIME[:] = [stamp, zone]
        return zone
    except (OSError, ValueError):
        return timezone.utc


_LOCALTIME: list = []  # [stat of /etc/localtime, its zone]: read again when it changes


# ---------------------------------------------------------------------------
# Hashed fields (Jenkins' H), made concrete per job (pure)

_HASHED = re.compile(r"^H(?:\(([0-9]+)-([0-9]+)\))?(?:/([0-9]+))?$")
# The range of a bare H per field: day of month stops at 28 (every month has
# it), day of week at 6 (0 and 7 are both Sunday), as Jenkins does.
_HASH_RANGE = ((0, 59), (0, 23), (1, 28), (1, 12), (0, 6))


_HASH_ITEM = re.compile(r"(?:^|[\s,])H(?:$|[\s,(/])")  # an item starting with H (no name does)


def has_hash(schedule: str | None) -> bool:
    """Does ``schedule`` have a hashed field (pure)? Macros never do."""
    return schedule is not None and _HASH_ITEM.search(schedule) is not None \
        and not schedule.strip(_BLANKS).startswith("@")


def _check_hashed(text: str, index: int) -> str | None:
    """What is wrong with a field that holds ``H`` items, or None (pure)."""
    label, low, high, _ = _FIELDS[index]
    for item in text.split(","):
        if not item.startswith("H"):
            problem = _check_field(item, label, low, high, None)
            if problem:
                return problem
            continue
        match = _HASHED.match(item)
        if not match:
            return (f"{label} field '{text}': '{item}' is not a hashed field; write H, H(a-b), H/n"
                    f" or H(a-b)/n (Jenkins' syntax)")
        first, last = _hash_bounds(match, index)
        if not (low <= first <= high and low <= last <= high):
            return f"{label} field '{text}': H({first}-{last}) is out of range {low}-{high}"
        if first > last:
            return f"{label} field '{text}': range H({first}-{last}) runs backwards"
        step = match.group(3)
        if step is not None and not 0 < int(step) <= last - first + 1:
            return (f"{label} field '{text}': the step of '{item}' must be 1 to {last - first + 1}"
                    f" (the size of the range)")
    return None


def _hash_bounds(match: re.Match, index: int) -> tuple[int, int]:
    if match.group(1) is not None:
        return int(match.group(1)), int(match.group(2))
    return _HASH_RANGE[index]


def _hash_number(seed: str, slug: str, index: int, item: int, span: int) -> int:
    """A number in 0..span-1 from SHA-256 of seed, slug and position: the same
    on every host, Python version and run (``hash()`` is salted per process)."""
    import hashlib

    digest = hashlib.sha256(f"{seed}\0{slug}\0{index}\0{item}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % span


def _expand_item(item: str, seed: str, slug: str, index: int, position: int) -> list[int]:
    match = _HASHED.match(item)
    if not match:  # _check_hashed refuses it; here it stays as written
        raise ValueError(item)
    first, last = _hash_bounds(match, index)
    step = match.group(3)
    if step is None:
        return [first + _hash_number(seed, slug, index, position, last - first + 1)]
    step_n = int(step)
    offset = _hash_number(seed, slug, index, position, step_n)
    return list(range(first + offset, last + 1, step_n))


def format_values(values: list[int]) -> str:
    """Sorted numbers as a cron field: runs of three or more as ``a-b`` (pure)."""
    values = sorted(set(values))
    parts: list[str] = []
    start = prev = values[0]
    for value in values[1:] + [None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        if prev - start >= 2:
            parts.append(f"{start}-{prev}")
        else:
            parts.extend(str(v) for v in range(start, prev + 1))
        if value is not None:
            start = prev = value
    return ",".join(parts)


def default_seed() -> str:
    """The seed when the config sets no ``hash_seed``: the host name."""
    import socket

    return socket.gethostname()


def expand(schedule: str, seed: str | None, slug: str) -> str:
    """The schedule with hashed fields (Jenkins' ``H``) made concrete for
    ``slug`` (pure but for the default seed, the host name). Schedules without
    ``H`` (macros included) are returned as they are: ``@daily`` stays
    midnight. ``H`` picks a value of the field's range (day of month 1-28,
    day of week 0-6), ``H(a-b)`` one of a..b, ``H/n`` and ``H(a-b)/n`` every
    n-th value from a hashed offset below n."""
    if not has_hash(schedule):
        return schedule
    if seed is None:
        seed = default_seed()
    return _expand(schedule.strip(_BLANKS), seed, slug)


@lru_cache(maxsize=8192)
def _expand(text: str, seed: str, slug: str) -> str:
    fields = split_fields(text)
    if len(fields) != 5 or any(c in text for c in "\n\r\0%=") or _ODD.search(text):
        return text  # not a schedule: left for the checks to refuse
    out = []
    for index, field in enumerate(fields):
        if not has_hash(field):
            out.append(field)
            continue
        plain: list[str] = []
        values: list[int] = []
        for position, item in enumerate(field.split(",")):
            if item.isdigit():
                values.append(int(item))
                continue
            if not has_hash(item):
                plain.append(item)
                continue
            try:
                values.extend(_expand_item(item, seed, slug, index, position))
            except ValueError:
                return text
        out.append(",".join(([format_values(values)] if values else []) + plain))
    return " ".join(out)


def zone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone this host knows, or None."""
    from zoneinfo import ZoneInfo

    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        return f"{name!r} is not a time zone name: use an IANA name such as Europe/Berlin"
    try:
        ZoneInfo(name)
    except (ValueError, OSError, KeyError):
        import difflib
        import zoneinfo

        close = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else " (see /usr/share/zoneinfo)"
        return f"unknown time zone '{name}'{hint}"
    return None


def zone_of(name: str | None) -> tzinfo:
    """The zone a job's schedule means (its ``timezone``, else the host's)."""
    if not name:
        return host_zone()
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def is_fixed_time(schedule: str) -> bool:
    """Does cron's clock-change rule apply (pure)? Only to jobs at a fixed
    time: neither an ``@hourly`` nor a ``*`` in the minute or hour field."""
    fields = split_fields(to_five_fields(schedule))
    return len(fields) == 5 and not fields[0].startswith("*") and not fields[1].startswith("*")


def wall_instants(wall: datetime, zone: tzinfo, fixed: bool) -> list[datetime]:
    """The UTC instants at which cron starts a job due at local ``wall``
    (naive): once normally; a wall time skipped by a clock change runs right
    after the change (fixed-time jobs) or not at all (others); a repeated
    wall time runs once (fixed-time jobs, at its first occurrence) or twice."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    if first == second:
        return [first]
    if first < second:  # repeated
        return [first] if fixed else [first, second]
    # skipped: first is after the change, second before it
    if not fixed:
        return []
    return [_change_between(second, first, zone)]


def _change_between(before: datetime, after: datetime, zone: tzinfo) -> datetime:
    """The instant the offset of ``zone`` changes, between two UTC instants."""
    low, high = before, after
    offset = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(zone).utcoffset() == offset:
            low = mid
        else:
            high = mid
    return high.replace(microsecond=0) if high.microsecond == 0 else high


def steady(zone: tzinfo, around: datetime) -> bool:
    """No clock change within cron's rule's reach (3 h) of ``around``."""
    return (around - _MAX_SHIFT).astimezone(zone).utcoffset() == \
        (around + _MAX_SHIFT).astimezone(zone).utcoffset()


def previous_start(schedule: str, before: datetime, zone: tzinfo | None = None) -> datetime | None:
    """The latest instant (UTC) at or before ``before`` at which cron started
    (or would have started) the job, in ``zone`` (default: the host's); None
    when the schedule never matches."""
    return _nearest(schedule, before, zone, forward=False)


def next_start(schedule: str, after: datetime, zone: tzinfo | None = None) -> datetime | None:
    """The first instant (UTC) after ``after`` at which cron starts the job."""
    return _nearest(schedule, after, zone, forward=True)


_WALLS: dict = {}  # five fields -> a croniter, set to each new start (its fields expanded once)


def _walls(fields: str, start: datetime):
    """croniter(fields, start): made once per distinct schedule (``--status``
    asks for the next and previous start of every job; constructing a croniter
    is most of that cost)."""
    walls = _WALLS.get(fields)
    if walls is None:
        from croniter import croniter

        if len(_WALLS) >= 64:  # a few: the same schedule is asked twice in a row (memory)
            _WALLS.clear()
        walls = _WALLS[fields] = croniter(fields, start)
    else:
        walls.set_current(start, force=True)
    return walls


def _nearest(schedule: str, bound: datetime, zone: tzinfo | None, *, forward: bool) -> datetime | None:
    if check_schedule(schedule) is not None or has_hash(schedule):
        return None  # hashed fields: the caller expands them first (``expand``)
    zone = zone or host_zone()
    fixed = is_fixed_time(schedule)
    bound = bound.astimezone(timezone.utc)
    calm = steady(zone, bound)
    # Walk wall times away from the bound; near a clock change start on the
    # far side of it, since wall order and instant order differ there.
    start = bound.astimezone(zone).replace(tzinfo=None)
    shift = timedelta(0) if calm else _MAX_SHIFT
    start = start - shift if forward else start + shift + timedelta(seconds=1)
    if not forward and calm:
        start += timedelta(seconds=1)
    try:
        walls = _walls(to_five_fields(schedule), start)
        best: datetime | None = None
        for _ in range(100_000 if not calm else 1000):
            wall = walls.get_next(datetime) if forward else walls.get_prev(datetime)
            for instant in wall_instants(wall, zone, fixed):
                if forward and instant > bound and (best is None or instant < best):
                    best = instant
                if not forward and instant <= bound and (best is None or instant > best):
                    best = instant
            if best is not None and (calm or abs(wall - start) > 2 * _MAX_SHIFT):
                return best
    except (ValueError, KeyError, OverflowError):  # impossible dates such as 31 February
        return None
    return best


def next_run(schedule: str, after: datetime | None = None, zone: tzinfo | None = None
             ) -> datetime | None:
    """The next time cron would start the job, in ``zone`` (default: the host's)."""
    zone = zone or host_zone()
    start = next_start(schedule, after or datetime.now(timezone.utc), zone)
    return start.astimezone(zone) if start is not None else None
