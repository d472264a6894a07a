"""Durations and sizes as written in config and job files (pure).

``timeout`` keeps the reference's meaning: a bare number is minutes;
``mail.timeout`` is seconds, as smtplib has it. Every other duration key
(``kill_grace``, ``unreachable_timeout``) needs a unit: ``s``, ``m``, ``h`` or
``d``, and a bare number there is refused with what to write instead.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_duration(value: str) -> float:
    """``'90s'`` -> 90.0, ``'1.5m'`` -> 90.0; raises ValueError without a unit."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = f"{value:g}" if isinstance(value, float) else str(value)
        raise ValueError(f"{number} is not a duration: write '{number}s' or '{number}m': a bare number is "
                         "ambiguous here")
    if not isinstance(value, str):
        raise ValueError("a duration is a string with a unit, such as '10s', '15m', '2h' or '1d'")
    match = _DURATION.match(value)
    if not match:
        raise ValueError(
            f"'{value}' is not a duration: write a number with a unit s, m, h or d, such as '10s' or '1.5m'"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


MAX_TIMEOUT = 366 * 86400.0  # seconds: a year (and a leap day) is the longest timeout


def parse_timeout(value: object) -> float | None:
    """A job ``timeout``: a number of minutes (reference) or a duration string.

    0 or absent means no limit (None). Anything else must be a finite time up
    to ``MAX_TIMEOUT``: every accepted value is one run-job can enforce.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("timeout is a number of minutes or a duration such as '90s', not a boolean")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"timeout {value} is not a time: write minutes (30) or a duration"
                             " such as '90s', '15m', '2h', '30d'")
        if value < 0:
            raise ValueError("timeout cannot be negative")
        seconds = float(value) * 60.0
    else:
        seconds = parse_duration(value)  # type: ignore[arg-type]
    if seconds > MAX_TIMEOUT:
        raise ValueError(f"timeout {value!r} is longer than {MAX_TIMEOUT / 86400:g} days, the"
                         " longest run-job enforces; use a shorter one, or 0 for no limit")
    return seconds or None


def parse_size(value: object) -> int:
    """``'1G'`` -> 1073741824 bytes (binary units; a bare number is bytes)."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string such as '500M' or '1G'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError("a size is a number of bytes or a string such as '500M' or '1G'")
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"'{value}' is not a size: write bytes or a number with K, M, G or T, such as '1G'")
    return int(float(match.group(1)) * _SIZE_FACTOR[match.group(2).upper()])


def format_duration(seconds: float) -> str:
    """A short human form: ``'1h02m'``, ``'3m05s'``, ``'4.2s'``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
