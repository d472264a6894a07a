"""The one time seam: every "now" of the program comes from here (UTC)."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def monotonic() -> float:
    return time.monotonic()


def iso(ts: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z``, to the microsecond; None stays None."""
    if ts is None:
        return None
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: object) -> datetime | None:
    """An ISO 8601 time as written by ``iso`` (naive times are taken as UTC);
    None for None, an empty or damaged value: records may have been edited."""
    if not text or not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
