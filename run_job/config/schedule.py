"""Cron schedules: strict vixie-cron syntax, checked with croniter (pure).

A schedule ends up verbatim in /etc/cron.d, so it must be exactly what
Debian's cron understands and nothing more: five fields of digits, names,
``*``, ``,``, ``-`` and ``/``, or one of the ``@`` macros below. ``@reboot``
is refused. Results are cached per distinct string: a job directory repeats a
handful of schedules thousands of times.
"""

from __future__ import annotations

import re
from datetime import datetime
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
    """Return None when ``schedule`` is valid, else what is wrong and how to fix it."""
    if not isinstance(schedule, str):
        return "a schedule is a string: quote it, e.g. \"*/5 * * * *\""
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
    for value, (label, low, high, names) in zip(fields, _FIELDS):
        problem = _check_field(value, label, low, high, names)
        if problem:
            return problem
    try:
        from croniter import croniter
    except ImportError:  # pragma: no cover - croniter is a dependency
        return None
    if not croniter.is_valid(text):
        return f"croniter cannot read the schedule '{text}'"
    return None


def to_five_fields(schedule: str) -> str:
    text = schedule.strip(_BLANKS)
    return MACROS.get(text, text)


def next_run(schedule: str, after: datetime | None = None) -> datetime | None:
    """The next time cron would start the job, in the host's time zone."""
    if check_schedule(schedule) is not None:
        return None
    from croniter import croniter

    base = (after or datetime.now()).astimezone()
    try:
        return croniter(to_five_fields(schedule), base).get_next(datetime)
    except (ValueError, KeyError):  # impossible dates such as 31 February
        return None
