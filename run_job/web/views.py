"""What the pages show, as plain data for the templates (pure).

Every page is built from the rows of ``run-job --status --json``
(``monitor/status.collect_status``, which asks ``jobstate.job_state``) and
from run records; nothing here decides a job's state. The templates get
strings and numbers ready to print, so that a template holds no logic and
Jinja2's autoescape is the only escaping there is.

Job output is shown as text: decoded as UTF-8 with replacement characters,
and every control character but newline and tab written the way
``printable`` writes it (``\\x1b``, ``\\r``), so that an escape sequence is
shown, never interpreted.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, Iterable

from run_job import clock
from run_job.config.durations import format_duration
from run_job.monitor.jobstate import HEALTHS
from run_job.printable import printable_lines

HEALTH_TEXT = {
    "invalid": "invalid job file",
    "failing": "newest run failed",
    "late": "no run since an expected start",
    "paused": "paused",
    "disabled": "disabled in its job file",
    "running": "running",
    "ok": "ok",
    "never_run": "never ran",
}
OUTCOME_PROBLEM = frozenset({"failed", "timed_out", "killed", "lost"})
TAIL_BYTES = 256 * 1024  # output shown on a run page at first; the rest is a link away
CHUNK_BYTES = 256 * 1024  # most bytes one tail request returns


# ---------------------------------------------------------------------------
# Job output


def output_text(data: bytes) -> str:
    """Bytes of ``output.log`` as text to show (pure): UTF-8 with replacement,
    CR LF as a line end, every other control character escaped."""
    return printable_lines(data.decode("utf-8", "replace").replace("\r\n", "\n"))


def complete_utf8(data: bytes) -> int:
    """How many leading bytes of ``data`` end on a UTF-8 character boundary
    (pure): a character cut by the end of what was read waits for the next
    read instead of becoming two replacement characters."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return len(data)
        if byte >= 0xC0:  # a lead byte: complete when its sequence fits
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) if back >= need else len(data) - back
    return len(data)


def skip_continuation(data: bytes) -> int:
    """How many bytes at the start of ``data`` continue a character that
    began before it (pure; at most 3)."""
    count = 0
    while count < min(3, len(data)) and 0x80 <= data[count] < 0xC0:
        count += 1
    return count


# ---------------------------------------------------------------------------
# Times


def ago(seconds: float) -> str:
    """``4 min ago``, ``in 3 h`` (pure)."""
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        text = f"{int(seconds)} s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)} min"
    elif seconds < 172800:
        text = f"{seconds / 3600:.0f} h"
    else:
        text = f"{seconds / 86400:.0f} d"
    return f"in {text}" if future else f"{text} ago"


def when(value: Any, now: datetime, zone: tzinfo) -> dict[str, str] | None:
    """An instant (ISO text or datetime) for display (pure): ``text`` in
    ``zone``, ``ago`` relative to ``now``, ``iso`` for ``<time datetime>``."""
    ts = value if isinstance(value, datetime) else clock.parse_iso(value)
    if ts is None:
        return None
    local = ts.astimezone(zone)
    return {"text": local.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "short": local.strftime("%m-%d %H:%M"),
            "ago": ago((now - ts).total_seconds()),
            "iso": ts.isoformat(timespec="seconds")}


def duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return ""
    return format_duration(float(seconds))


# ---------------------------------------------------------------------------
# The jobs page


def summary(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{health, count, text}] in the order of ``HEALTHS``, only those present (pure)."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.get("health") or "ok"] = counts.get(row.get("health") or "ok", 0) + 1
    return [{"health": h, "count": counts[h], "text": HEALTH_TEXT[h]} for h in HEALTHS if h in counts]


def select_rows(rows: list[dict[str, Any]], *, health: str | None = None,
                tag: str | None = None) -> list[dict[str, Any]]:
    """The rows of one health and/or carrying one tag (pure)."""
    return [row for row in rows
            if (not health or row.get("health") == health)
            and (not tag or tag in (row.get("tags") or ()))]


def run_brief(record: dict[str, Any] | None, now: datetime, zone: tzinfo) -> dict[str, Any] | None:
    """What a table cell says of one run record (pure)."""
    if not record:
        return None
    outcome = str(record.get("outcome") or "")
    code = record.get("exit_code")
    return {
        "run_id": str(record.get("run_id") or ""),
        "outcome": outcome,
        "outcome_label": outcome.replace("_", " "),
        "problem": outcome in OUTCOME_PROBLEM,
        "started": when(record.get("started_at"), now, zone),
        "ended": when(record.get("ended_at"), now, zone),
        "duration": duration(record.get("duration_s")),
        "exit_code": "" if code is None else str(code),
        "signal": "" if record.get("signal") is None else str(record.get("signal")),
        "reason": str(record.get("reason") or ""),
        "linked": _linkable(record),
    }


def _linkable(record: dict[str, Any]) -> bool:
    from run_job.run.records import is_run_id

    return record.get("run_dir") is not None and is_run_id(record.get("run_id"))


def pause_brief(pause: dict[str, Any] | None, now: datetime, zone: tzinfo) -> dict[str, Any] | None:
    if not pause:
        return None
    return {"by": str(pause.get("by") or "?"), "reason": str(pause.get("reason") or ""),
            "since": when(pause.get("since"), now, zone), "until": when(pause.get("until"), now, zone),
            "auto": pause.get("source") == "auto"}


def job_line(row: dict[str, Any], now: datetime, zone: tzinfo) -> dict[str, Any]:
    """One row of the jobs table (pure), from one ``--status --json`` row."""
    health = row.get("health") or "ok"
    schedule = row.get("schedule")
    if row.get("service"):
        schedule_text = "Slurm service"
    elif schedule:
        schedule_text = str(schedule)
    else:
        schedule_text = "not scheduled"
    return {
        "slug": row["job"],
        "name": str(row.get("name") or ""),
        "description": str(row.get("description") or ""),
        "tags": [str(t) for t in row.get("tags") or ()],
        "valid": bool(row.get("valid")),
        "problems": [str(p) for p in row.get("problems") or ()],
        "health": health,
        "health_label": health.replace("_", " "),
        "health_text": HEALTH_TEXT.get(health, health),
        "schedule": schedule_text,
        "disabled": bool(row.get("disabled")),
        "timezone": str(row.get("timezone") or ""),
        "next_run": when(row.get("next_run"), now, zone),
        "running": run_brief(row.get("current"), now, zone),
        "last": run_brief(row.get("last"), now, zone),
        "failures": int(row.get("consecutive_failures") or 0),
        "late": bool(row.get("late")),
        "expected": when(row.get("expected_start"), now, zone),
        "paused": pause_brief(row.get("paused"), now, zone),
        "slurm": str(row.get("slurm") or ""),
        "service_state": str(row.get("service_state") or ""),
        "file": str(row.get("file") or ""),
        "runner": str(row.get("runner") or ""),
    }


def history_lines(entries: Iterable[dict[str, Any]], now: datetime, zone: tzinfo) -> list[dict[str, Any]]:
    """A job's history for its page, newest first (pure)."""
    return [brief for entry in reversed(list(entries))
            if (brief := run_brief(entry, now, zone)) is not None]


# ---------------------------------------------------------------------------
# One run


def run_detail(record: dict[str, Any], now: datetime, zone: tzinfo) -> dict[str, Any]:
    """A run's page (pure): its facts, events and attempts."""
    brief = run_brief(record, now, zone) or {}
    command = record.get("command")
    events = []
    for event in record.get("events") or ():
        if isinstance(event, dict):
            events.append({"time": when(event.get("time"), now, zone),
                           "event": str(event.get("event") or ""),
                           "message": str(event.get("message") or "")})
    attempts = []
    for number, attempt in enumerate(record.get("attempts") or (), 1):
        if isinstance(attempt, dict):
            attempts.append({
                "number": number,
                "started": when(attempt.get("started_at") or attempt.get("start"), now, zone),
                "ended": when(attempt.get("ended_at") or attempt.get("end"), now, zone),
                "exit_code": "" if attempt.get("exit_code") is None else str(attempt.get("exit_code")),
                "signal": "" if attempt.get("signal") is None else str(attempt.get("signal")),
                "outcome": str(attempt.get("outcome") or "")})
    return {
        **brief,
        "job": str(record.get("job") or ""),
        "runner": str(record.get("runner") or ""),
        "host": str(record.get("host") or ""),
        "user": str(record.get("user") or ""),
        "pid": "" if record.get("pid") is None else str(record.get("pid")),
        "slurm_job_id": "" if record.get("slurm_job_id") is None else str(record.get("slurm_job_id")),
        "command": [str(c) for c in command] if isinstance(command, list) else [],
        "events": events,
        "attempts": attempts,
    }


# ---------------------------------------------------------------------------
# Requests


def wants_json(accept: str | None) -> bool:
    """Does an ``Accept`` header ask for JSON rather than HTML (pure)?"""
    if not accept:
        return False
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return "application/json" in kinds and "text/html" not in kinds
