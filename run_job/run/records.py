"""Run records (SPEC §5): run ids, run folders, ``latest``, ``status.json``, retention.

Builders and decisions (``make_run_id``, ``new_record``, ``runs_to_prune``)
are pure; the rest reads and writes files. ``status.json`` is only ever
replaced atomically, so readers see a whole record. How a record changes is
``transitions.py``'s business.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any, Iterable

from run_job import clock
from run_job.errors import RunRecordError
from run_job.jsoncodec import loads, to_json

FIELDS = ("job", "run_id", "runner", "host", "user", "pid", "slurm_job_id", "command",
          "started_at", "ended_at", "duration_s", "exit_code", "signal", "outcome",
          "reason", "job_file_sha256", "run_dir", "pgid", "supervisor_start_time", "alerts")
RUN_DIR_MODE = 0o750
FILE_MODE = 0o640
_RUN_ID_TIME = "%Y%m%dT%H%M%S"

def make_run_id(ts: datetime, pid: int) -> str:
    """``20260102T030405.123456Z-4242``: sorts by start time, unique per host (pure)."""
    ts = ts.astimezone(timezone.utc)
    return f"{ts.strftime(_RUN_ID_TIME)}.{ts.microsecond:06d}Z-{pid}"


def run_id_time(run_id: str) -> datetime | None:
    """The start time encoded in a run id, or None if it is not one (pure)."""
    # By hand: strptime would import _strptime, locale and calendar on every run.
    if (len(run_id) < 23 or run_id[8] != "T" or run_id[15] != "." or run_id[22] != "Z"
            or not (run_id[:8] + run_id[9:15] + run_id[16:22]).isdigit()):
        return None
    try:
        return datetime(int(run_id[0:4]), int(run_id[4:6]), int(run_id[6:8]), int(run_id[9:11]),
                        int(run_id[11:13]), int(run_id[13:15]), int(run_id[16:22]),
                        tzinfo=timezone.utc)
    except ValueError:
        return None


def is_run_id(text: object) -> bool:
    """Is ``text`` a run id as ``make_run_id`` writes it (pure)? Checked
    before a run id from a command line or a link becomes part of a path."""
    return (isinstance(text, str) and text.isascii() and len(text) > 24 and text[23] == "-"
            and text[24:].isdigit() and run_id_time(text) is not None)


def new_record(*, job: str, run_id: str, runner: str, host: str, user: str, pid: int,
               command: Iterable[str], started_at: datetime, job_file_sha256: str,
               run_dir: str | None, supervisor_start_time: int | None,
               outcome: str = "running", reason: str = "") -> dict[str, Any]:
    """A record with every field of SPEC §5, as at the start of a run (pure)."""
    return {
        "job": job,
        "run_id": run_id,
        "runner": runner,
        "host": host,
        "user": user,
        "pid": pid,
        "slurm_job_id": None,
        "command": list(command),
        "started_at": clock.iso(started_at),
        "ended_at": None,
        "duration_s": None,
        "exit_code": None,
        "signal": None,
        "outcome": outcome,
        "reason": reason,
        "job_file_sha256": job_file_sha256,
        "run_dir": run_dir,
        "pgid": None,
        "supervisor_start_time": supervisor_start_time,
        "alerts": {},
    }


def job_output_dir(output_directory: str | os.PathLike, slug: str) -> str:
    return os.path.join(os.fspath(output_directory), slug)


def create_run_dir(output_directory: str | os.PathLike, slug: str, run_id: str) -> str:
    """Make ``<output_directory>/<slug>/<run_id>/`` (mode 0750)."""
    parent = job_output_dir(output_directory, slug)
    path = os.path.join(parent, run_id)
    try:
        os.makedirs(parent, mode=RUN_DIR_MODE, exist_ok=True)
        os.mkdir(path, RUN_DIR_MODE)
    except OSError as err:
        raise RunRecordError(
            f"cannot create the run folder {path}: {err.strerror}; output_directory must be"
            " writable by the service user") from err
    return path


def point_latest(output_directory: str | os.PathLike, slug: str, run_id: str) -> None:
    """Atomically point ``<slug>/latest`` at ``run_id`` (a relative symlink)."""
    parent = job_output_dir(output_directory, slug)
    tmp = os.path.join(parent, f".latest.tmp{os.getpid()}")
    latest = os.path.join(parent, "latest")
    try:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(run_id, tmp)
        if os.path.isdir(latest) and not os.path.islink(latest):
            set_aside(latest)  # a real folder where the link belongs: keep it, aside
        os.replace(tmp, latest)
    except OSError as err:
        raise RunRecordError(f"cannot update {parent}/latest: {err.strerror}") from err


def write_status(run_dir: str, record: dict[str, Any], *, fsync: bool = True) -> None:
    from run_job.atomic import write_atomic

    path = os.path.join(run_dir, "status.json")
    try:
        write_atomic(path, to_json(record), FILE_MODE, fsync=fsync)
    except OSError as err:
        raise RunRecordError(f"cannot write {path}: {err.strerror}") from err


def read_status(run_dir: str) -> dict[str, Any] | None:
    """A run's status.json, or None if missing, not a regular file, too large
    or damaged (any field unusable, see ``transitions.entry_problem``)."""
    from run_job.run.transitions import entry_problem
    from run_job.security import STATE_LIMIT, read_bounded

    try:
        data = loads(read_bounded(os.path.join(run_dir, "status.json"), STATE_LIMIT, nofollow=True))
    except (OSError, ValueError):
        return None
    return data if entry_problem(data) is None else None


def set_aside(path: str, *, as_name: str | None = None) -> str | None:
    """Move a damaged file or folder out of the way as ``<path>.damaged-<time>``
    (``as_name`` instead of ``path`` for the new name; ``-2``, ``-3``... when
    that name exists: an earlier copy is never replaced); the new name, or
    None when nothing could be moved."""
    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1, 1000):
        target = f"{as_name or path}.damaged-{stamp}" + (f"-{attempt}" if attempt > 1 else "")
        if os.path.lexists(target):
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rename(path, target)  # callers hold the lock that serialises this
            else:
                os.link(path, target, follow_symlinks=False)  # never replaces target
                os.unlink(path)
        except FileExistsError:
            continue
        except OSError:
            return None
        return target
    return None


def runs_to_prune(run_ids: Iterable[str], keep: str, now: datetime, keep_runs: int,
                  keep_days: float | None) -> list[str]:
    """Run folders to delete: beyond the newest ``keep_runs``, or older than
    ``keep_days``; never ``keep`` (the current run) nor names that are not run
    ids (pure)."""
    runs = sorted((r for r in run_ids if run_id_time(r) is not None), reverse=True)
    doomed = []
    kept = 0
    for run_id in runs:
        if run_id == keep:
            kept += 1
            continue
        too_many = kept >= keep_runs
        started = run_id_time(run_id)
        too_old = (keep_days is not None and started is not None
                   and (now - started).total_seconds() > keep_days * 86400)
        if too_many or too_old:
            doomed.append(run_id)
        else:
            kept += 1
    return doomed


def prune_runs(output_directory: str | os.PathLike, slug: str, keep: str, keep_runs: int,
               keep_days: float | None) -> list[str]:
    """Apply retention; problems are returned as messages, never raised."""
    parent = job_output_dir(output_directory, slug)
    try:
        names = os.listdir(parent)
    except OSError as err:
        return [f"cannot list {parent}: {err.strerror}"]
    doomed = runs_to_prune(names, keep, clock.now(), keep_runs, keep_days)
    if not doomed:
        return []
    problems = []
    for run_id in doomed:
        path = os.path.join(parent, run_id)
        if os.path.islink(path):
            continue
        try:
            _remove_tree(path)
        except OSError as err:
            problems.append(f"cannot remove old run folder {path}: {err.strerror}")
    return problems


def _remove_tree(path: str) -> None:
    """``shutil.rmtree`` without importing shutil (every steady-state run prunes
    one folder); symlinks are removed, never followed."""
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                _remove_tree(entry.path)
            else:
                os.unlink(entry.path)
    os.rmdir(path)


def host_name() -> str:
    return os.uname().nodename
