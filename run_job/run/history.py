"""Per-job run history: ``<state_directory>/<slug>.history.json``.

A JSON list of run records (oldest first, the field names of ``status.json``),
kept to ``history_length`` (``transitions.trim``: a running entry is never
dropped). A run adds its ``running`` entry at start and replaces it at the
end; a skipped run adds a ``skipped`` entry. Every read-modify-write holds a
flock on ``<state_directory>/.<slug>.history.lock`` (never unlinked) and
replaces the file atomically, so concurrent run-jobs of the same job never
lose or corrupt entries.

Damaged state never stops a run and never hides the rest: a file that is not
JSON (or not a regular file, or too large) is moved aside whole
(``.damaged-<time>``) and the history starts afresh; an entry that is JSON but
unusable (a wrong type, an unparsable time: ``transitions.entry_problem``) is
dropped from the history and kept in a ``.damaged-<time>`` file beside it.
Readers (``read``) skip such entries without writing anything.

``consecutive_failures``, ``last_finished`` and ``current_run`` are pure.
"""

from __future__ import annotations

import fcntl
import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any, Callable

from run_job.errors import RunRecordError
from run_job.model import FAILED_OUTCOMES
from run_job.run.transitions import entry_problem



def history_path(state_directory: str | os.PathLike, slug: str) -> str:
    return os.path.join(os.fspath(state_directory), f"{slug}.history.json")


def _lock_path(state_directory: str | os.PathLike, slug: str) -> str:
    return os.path.join(os.fspath(state_directory), f".{slug}.history.lock")


def parse(data: bytes) -> tuple[list[dict[str, Any]], list[Any]] | None:
    """(usable entries, damaged entries) of a history file, or None when the
    file is not a JSON list at all (pure)."""
    from run_job.jsoncodec import loads

    try:
        entries = loads(data)
    except ValueError:  # UnicodeDecodeError included
        return None
    if not isinstance(entries, list):
        return None
    good: list[dict[str, Any]] = []
    bad: list[Any] = []
    for entry in entries:
        (bad if entry_problem(entry) else good).append(entry)
    return good, bad


def dumps(entries: list[Any]) -> bytes:
    """One entry per line: readable, and encoded by json's C encoder (an
    indented dump goes through the pure-Python one, 10x slower) (pure)."""
    if not entries:
        return b"[]\n"
    from run_job.jsoncodec import dumps as encode

    lines = ",\n".join(encode(e) for e in entries)
    return f"[\n{lines}\n]\n".encode()


def _read_bytes(path: str) -> bytes | None:
    """The file's bytes; None when it is missing; raises OSError when it is
    there but unusable (not a regular file, too large, unreadable)."""
    from run_job.security import STATE_LIMIT, read_bounded

    try:
        return read_bounded(path, STATE_LIMIT, nofollow=True)
    except FileNotFoundError:
        return None


def read(state_directory: str | os.PathLike, slug: str, *, strict: bool = False
         ) -> list[dict[str, Any]]:
    """The usable entries, oldest first; [] when missing, unreadable or damaged.
    ``strict``: a history that is there but cannot be read (permissions, not a
    regular file, too large) raises RunRecordError instead (the check must not
    call a job it cannot see ok)."""
    path = history_path(state_directory, slug)
    try:
        data = _read_bytes(path)
    except OSError as err:
        if strict:
            from run_job.errors import RunRecordError
            from run_job.security import reason

            raise RunRecordError(f"cannot read the history {path}: {reason(err)}") from err
        return []
    parsed = parse(data) if data is not None else None
    return parsed[0] if parsed is not None else []


def exists(state_directory: str | os.PathLike, slug: str) -> bool:
    return os.path.lexists(history_path(state_directory, slug))


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
        lock_fd = os.open(_lock_path(state, slug),
                          os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
    except OSError as err:
        raise RunRecordError(
            f"cannot write history in state_directory {state}: {err.strerror};"
            " it must be writable by the service user") from err
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            data = _read_bytes(path)
        except PermissionError as err:
            raise RunRecordError(f"cannot read {path}: {err.strerror}; it must be readable"
                                 " and writable by the service user") from err
        except OSError as err:  # a FIFO, a folder, a link, a huge file: not ours to read
            _damaged(path, f"{err.strerror}")
            data = None
        parsed = parse(data) if data is not None else ([], [])
        if parsed is None:
            _damaged(path, "not a JSON list")
            before: list[dict[str, Any]] = []
        else:
            before, bad = parsed
            if bad:
                _keep_damaged_entries(path, bad, fsync)
        after = change(before)
        try:
            write_atomic(path, dumps(after), 0o640, fsync=fsync)
        except OSError as err:
            raise RunRecordError(f"cannot write {path}: {err.strerror}") from err
        return before
    finally:
        os.close(lock_fd)


def _damaged(path: str, why: str) -> None:
    from run_job import logsetup
    from run_job.run.records import set_aside

    moved = set_aside(path)
    logsetup.warning("history file %s is damaged (%s); %s, starting a new history", path, why,
                     f"kept as {moved}" if moved else "could not move it aside")


def _keep_damaged_entries(path: str, bad: list[Any], fsync: bool) -> None:
    """Damaged entries leave the history for a ``.damaged-<time>`` file of their own."""
    from run_job import logsetup
    from run_job.atomic import write_atomic
    from run_job.run.records import set_aside

    tmp = f"{path}.entries.tmp{os.getpid()}"
    try:
        write_atomic(tmp, dumps(bad), 0o640, fsync=fsync)
        moved = set_aside(tmp, as_name=path)
    except OSError:
        moved = None
    if moved is None:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    logsetup.warning("history file %s had %d damaged entr%s (%s); %s", path, len(bad),
                     "y" if len(bad) == 1 else "ies", entry_problem(bad[0]),
                     f"kept in {moved}" if moved else "dropped")
