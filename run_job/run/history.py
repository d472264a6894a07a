"""Per-job run history: ``<state_directory>/<slug>.history.json``.

A JSON list of run records (oldest first, the field names of ``status.json``),
kept to ``history_length``. A run adds its ``running`` entry at start and
replaces it at the end; a skipped run adds a ``skipped`` entry. Every
read-modify-write holds a flock on ``<state_directory>/.<slug>.history.lock``
(never unlinked) and replaces the file atomically, so concurrent run-jobs of
the same job never lose or corrupt entries. A damaged file is moved aside
(``.damaged-<time>``) and history starts afresh: it never stops a run.

``upsert``, ``consecutive_failures`` and ``last_finished`` are pure.
"""

from __future__ import annotations

import fcntl
import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any, Callable

def _errors():
    """``run_job.errors``, imported only when an error is raised or caught: the
    hot path of ``run-job --job`` does not pay for it."""
    from run_job import errors

    return errors



FAILED_OUTCOMES = ("failed", "timed_out", "killed", "lost")


def history_path(state_directory: str | os.PathLike, slug: str) -> str:
    return os.path.join(os.fspath(state_directory), f"{slug}.history.json")


def _lock_path(state_directory: str | os.PathLike, slug: str) -> str:
    return os.path.join(os.fspath(state_directory), f".{slug}.history.lock")


def parse(data: bytes) -> list[dict[str, Any]] | None:
    """The entries of a history file, or None if it is damaged (pure)."""
    from run_job.run.records import loads

    try:
        entries = loads(data)
    except ValueError:  # UnicodeDecodeError included
        return None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return None
    return entries


def dumps(entries: list[dict[str, Any]]) -> bytes:
    """One entry per line: readable, and encoded by json's C encoder (an
    indented dump goes through the pure-Python one, 10x slower) (pure)."""
    if not entries:
        return b"[]\n"
    from run_job.run.records import dumps as encode

    lines = ",\n".join(encode(e) for e in entries)
    return f"[\n{lines}\n]\n".encode()


def read(state_directory: str | os.PathLike, slug: str) -> list[dict[str, Any]]:
    """The history, oldest first; [] when missing, unreadable or damaged."""
    try:
        with open(history_path(state_directory, slug), "rb") as f:
            data = f.read()
    except OSError:
        return []
    return parse(data) or []


def upsert(entries: list[dict[str, Any]], record: dict[str, Any], length: int) -> list[dict[str, Any]]:
    """Replace the entry with the record's run_id (skipped runs are always
    appended), else append; keep the newest ``length`` (pure)."""
    out = list(entries)
    run_id = record.get("run_id")
    for i in range(len(out) - 1, -1, -1):
        if run_id and out[i].get("run_id") == run_id and record.get("outcome") != "skipped":
            out[i] = record
            break
    else:
        out.append(record)
    if length >= 0 and len(out) > length:
        out = out[len(out) - length:] if length else []
    return out


def consecutive_failures(entries: list[dict[str, Any]]) -> int:
    """Failed runs since the last success, skipped and running ignored (pure)."""
    count = 0
    for entry in reversed(entries):
        outcome = entry.get("outcome")
        if outcome in ("skipped", "running"):
            continue
        if outcome in FAILED_OUTCOMES:
            count += 1
            continue
        break
    return count


def last_finished(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest entry that is neither running nor skipped (pure)."""
    for entry in reversed(entries):
        if entry.get("outcome") not in ("running", "skipped"):
            return entry
    return None


def current_run(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest non-skipped entry if it is ``running`` (skips of a running
    job are appended after its entry) (pure)."""
    for entry in reversed(entries):
        if entry.get("outcome") == "skipped":
            continue
        return entry if entry.get("outcome") == "running" else None
    return None


def update(state_directory: str | os.PathLike, slug: str,
           change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
           *, fsync: bool = True) -> list[dict[str, Any]]:
    """Apply ``change`` to the history under its lock; returns the entries before.

    Raises RunRecordError when the state directory or file cannot be written.
    """
    from run_job.atomic import write_atomic

    state = os.fspath(state_directory)
    path = history_path(state, slug)
    try:
        os.makedirs(state, mode=0o750, exist_ok=True)
        lock_fd = os.open(_lock_path(state, slug), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as err:
        raise _errors().RunRecordError(
            f"cannot write history in state_directory {state}: {err.strerror};"
            " it must be writable by the service user") from err
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b"[]"
        except OSError as err:
            raise _errors().RunRecordError(f"cannot read {path}: {err.strerror}") from err
        before = parse(data)
        if before is None:
            _set_aside(path)
            before = []
        after = change(before)
        try:
            write_atomic(path, dumps(after), 0o640, fsync=fsync)
        except OSError as err:
            raise _errors().RunRecordError(f"cannot write {path}: {err.strerror}") from err
        return before
    finally:
        os.close(lock_fd)


def _set_aside(path: str) -> None:
    from run_job import clock

    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    try:
        os.replace(path, f"{path}.damaged-{stamp}")
    except OSError:
        pass
    try:
        import logging

        logging.getLogger("process-control").warning(
            "history file %s was damaged; moved aside, starting a new history", path)
    except Exception:  # logging must never stop a run
        pass
