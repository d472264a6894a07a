"""Pauses (SPEC §9, §10): ``<state_directory>/<slug>.pause.json`` and the audit log.

A pause is state, never configuration: ``disabled: true`` in the job file stays
the reviewed switch; a pause is what an operator (``source: manual``) or the
failure policy (``source: auto``, ``pause_after_failures``) did, with who,
when, why and until when. It ends with ``--resume``, or by itself once its
``until`` has passed: lazily, the next time anything reads it (no daemon).

Every pause, resume and expiry is appended to ``<state_directory>/audit.log``
(JSON lines; the web page's operator actions go there too), under a flock so
that concurrent writers never interleave. Records are written atomically;
a damaged or unreadable pause file counts as no pause (and is set aside when
it is replaced).

``describe``, ``expired`` and ``auto_pause_reason`` are pure.
"""

from __future__ import annotations

import fcntl
import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from datetime import datetime
    from typing import Any

from run_job import clock
from run_job.errors import RunRecordError

AUDIT_LOG = "audit.log"
SOURCES = ("manual", "auto")
MAX_REASON = 1024  # characters of a reason kept


def pause_path(state_directory: str | os.PathLike, slug: str) -> str:
    return os.path.join(os.fspath(state_directory), f"{slug}.pause.json")


def audit_path(state_directory: str | os.PathLike) -> str:
    return os.path.join(os.fspath(state_directory), AUDIT_LOG)


def who() -> str:
    """Who acts: ``$SUDO_USER`` (an operator behind sudo), else the login name."""
    sudo = os.environ.get("SUDO_USER")
    if sudo:
        return sudo
    try:
        return os.getlogin()
    except OSError:  # no controlling terminal (cron): the user we run as
        from run_job.privileges import user_name

        return user_name()


def one_line(text: str, limit: int = MAX_REASON) -> str:
    """``text`` as one line of at most ``limit`` characters (pure): a reason
    or a message is shown in terminals, mail subjects and web pages."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _valid(record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    if not isinstance(record.get("reason"), str) or record.get("source") not in SOURCES:
        return False
    if clock.parse_iso(record.get("since")) is None:
        return False
    until = record.get("until")
    return until is None or clock.parse_iso(until) is not None


def expired(record: dict[str, Any], now: datetime) -> bool:
    """Has the pause's ``until`` passed (pure)?"""
    until = clock.parse_iso(record.get("until"))
    return until is not None and until <= now


def describe(record: dict[str, Any]) -> str:
    """One line: who paused it, since when, until when, why (pure)."""
    until = record.get("until")
    text = (f"paused by {record.get('by') or '?'} since {record.get('since')}"
            f"{f' until {until}' if until else ' (until resumed)'}")
    if record.get("source") == "auto":
        text += " (automatically)"
    return f"{text}: {record.get('reason')}"


def auto_pause_reason(threshold: int | None, streak: int, failed: bool, outcome: str,
                      run_id: str) -> str | None:
    """The reason of the pause ``pause_after_failures`` puts on a job whose run
    just ended, or None (pure). ``streak``: the run's consecutive failures as
    the alerts count them (``notify.consecutive_failures``); a run that ends
    a streak of ``threshold`` or more pauses the job (so a job resumed while
    still failing is paused again by its next failure)."""
    if not threshold or not failed or streak < threshold:
        return None
    return (f"{streak} consecutive failures (pause_after_failures: {threshold});"
            f" the last run {run_id} ended {outcome}")


def read(state_directory: str | os.PathLike, slug: str, *, now: datetime | None = None,
         expire: bool = True) -> dict[str, Any] | None:
    """The job's pause, or None. A pause past its ``until`` is ended here
    (file removed, expiry audit-logged) when ``expire`` and the state can be
    written; either way it no longer counts."""
    from run_job.jsoncodec import loads
    from run_job.security import STATE_LIMIT, read_bounded

    path = pause_path(state_directory, slug)
    try:
        record = loads(read_bounded(path, STATE_LIMIT, nofollow=True))
    except (OSError, ValueError):
        return None
    if not _valid(record):
        return None
    now = now or clock.now()
    if expired(record, now):
        if expire:
            try:
                _end(state_directory, slug, record, "expire", by=record.get("by") or "?", now=now)
            except RunRecordError:
                pass  # a reader that cannot write (the check as nagios): the next writer ends it
        return None
    return record


def pause(state_directory: str | os.PathLike, slug: str, *, reason: str,
          until: datetime | None = None, source: str = "manual", by: str | None = None,
          now: datetime | None = None) -> dict[str, Any]:
    """Pause ``slug`` (replacing an earlier pause of it); returns the record."""
    from run_job.atomic import write_atomic
    from run_job.jsoncodec import to_json

    now = now or clock.now()
    record: dict[str, Any] = {"job": slug, "by": by or who(), "since": clock.iso(now),
              "until": clock.iso(until) if until is not None else None,
              "reason": one_line(reason), "source": source}
    path = pause_path(state_directory, slug)
    try:
        os.makedirs(os.fspath(state_directory), mode=0o750, exist_ok=True)
        write_atomic(path, to_json(record), 0o640)
    except OSError as err:
        raise RunRecordError(f"cannot write {path}: {err.strerror}; state_directory must be"
                             " writable by the service user") from err
    audit(state_directory, "pause", slug, by=record["by"], now=now, reason=record["reason"],
          until=record["until"], source=source)
    return record


def resume(state_directory: str | os.PathLike, slug: str, *, by: str | None = None,
           now: datetime | None = None) -> dict[str, Any] | None:
    """End the pause of ``slug``; the pause that was there, or None."""
    now = now or clock.now()
    record = read(state_directory, slug, now=now)
    if record is None:
        return None
    _end(state_directory, slug, record, "resume", by=by or who(), now=now)
    return record


def _end(state_directory: str | os.PathLike, slug: str, record: dict[str, Any], action: str,
         *, by: str, now: datetime) -> None:
    path = pause_path(state_directory, slug)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return  # someone else ended it meanwhile (and logged it)
    except OSError as err:
        raise RunRecordError(f"cannot remove {path}: {err.strerror}") from err
    audit(state_directory, action, slug, by=by, now=now, reason=record.get("reason"),
          since=record.get("since"), until=record.get("until"), source=record.get("source"))


def audit(state_directory: str | os.PathLike, action: str, slug: str, *, by: str,
          now: datetime | None = None, **details: Any) -> None:
    """Append one JSON line to the audit log (best effort is not enough: a
    failure raises RunRecordError, so that an action is never unrecorded)."""
    from run_job.jsoncodec import dumps

    entry = {"time": clock.iso(now or clock.now()), "action": action, "job": slug, "by": by}
    entry.update({k: v for k, v in details.items() if v is not None})
    line = (dumps(entry) + "\n").encode()
    path = audit_path(state_directory)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o640)
    except OSError as err:
        raise RunRecordError(f"cannot write the audit log {path}: {err.strerror}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    except OSError as err:
        raise RunRecordError(f"cannot write the audit log {path}: {err.strerror}") from err
    finally:
        os.close(fd)


def read_audit(state_directory: str | os.PathLike, limit: int = 1000) -> list[dict[str, Any]]:
    """The newest ``limit`` audit entries, oldest first (damaged lines skipped)."""
    from run_job.jsoncodec import loads
    from run_job.security import STATE_LIMIT, read_bounded

    try:
        data = read_bounded(audit_path(state_directory), STATE_LIMIT * 4, nofollow=True)
    except OSError:
        return []
    out = []
    for line in data.splitlines()[-limit:]:
        try:
            entry = loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out
