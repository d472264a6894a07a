"""Every change of a run record, each with one owner (pure).

A run record is the dict of ``status.json``; a history is a list of them,
oldest first. The controller of a run, ``--status``, ``--kill-job`` and the
next run all change records through these functions, so that a rule (what a
run whose run-job died becomes, which entry a trim may drop) is written once.

* ``entry_problem``: why a record read from disk cannot be used (damaged
  state is handled field by field: a damaged entry is set aside, never fatal).
* ``upsert``, ``replace``, ``trim``: history edits.
* ``settled``, ``lost``, ``killed``, ``finished``: end transitions.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from datetime import datetime
    from typing import Any

from run_job import clock

from run_job.model import FAILED_OUTCOMES, FINAL_OUTCOMES, OUTCOMES  # noqa: F401 - the vocabulary

# field -> the types it may hold (None always allowed); what the code relies on
_INT = (int,)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "job": (str,), "runner": (str,), "host": (str,), "user": (str,), "pid": _INT,
    "slurm_job_id": (str, int), "command": (list,), "duration_s": (int, float),
    "exit_code": _INT, "signal": _INT, "reason": (str,), "job_file_sha256": (str,),
    "run_dir": (str,), "pgid": _INT, "supervisor_start_time": _INT, "alerts": (dict,),
    "events": (list,), "attempts": (list,),
}


def entry_problem(entry: Any) -> str | None:
    """Why ``entry`` is not a usable run record, or None (pure).

    Checked: it is a mapping with a string ``run_id``, an ``outcome`` among
    OUTCOMES, parseable times, and fields of the types the code reads.
    """
    if not isinstance(entry, dict):
        return f"an entry is a {type(entry).__name__}, not a mapping"
    run_id = entry.get("run_id")
    if not isinstance(run_id, str) or not run_id or "/" in run_id or run_id in (".", ".."):
        return f"run_id {run_id!r} is not a run id"
    if entry.get("outcome") not in OUTCOMES:
        return f"run {run_id}: outcome {entry.get('outcome')!r} is not one of {', '.join(OUTCOMES)}"
    for key in ("started_at", "ended_at"):
        value = entry.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or clock.parse_iso(value) is None:
            return f"run {run_id}: {key} {value!r} is not an ISO 8601 time"
    for key, types in _FIELD_TYPES.items():
        value = entry.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            return f"run {run_id}: {key} has the wrong type ({type(value).__name__})"
    return None


def upsert(entries: list[dict[str, Any]], record: dict[str, Any], length: int) -> list[dict[str, Any]]:
    """Replace the entry with the record's run_id (a skipped run is always
    appended), else append; then ``trim`` to ``length``."""
    out = list(entries)
    run_id = record.get("run_id")
    for i in range(len(out) - 1, -1, -1):
        if run_id and out[i].get("run_id") == run_id and record.get("outcome") != "skipped":
            out[i] = record
            break
    else:
        out.append(record)
    return trim(out, length)


def insert(entries: list[dict[str, Any]], record: dict[str, Any], length: int) -> list[dict[str, Any]]:
    """Add a record that was never in the history (a run whose run-job died
    before writing it) in run-id order (run ids sort by start time)."""
    out = [e for e in entries if e.get("run_id") != record.get("run_id")]
    index = len(out)
    while index > 0 and str(out[index - 1].get("run_id")) > str(record.get("run_id")):
        index -= 1
    out.insert(index, record)
    return trim(out, length)


def trim(entries: list[dict[str, Any]], length: int) -> list[dict[str, Any]]:
    """Keep the newest ``length`` entries, but never drop a ``running`` one:
    a run that is still going stays visible however many skips follow it."""
    if length < 0 or len(entries) <= length:
        return list(entries)
    excess = len(entries) - length
    out = []
    for entry in entries:
        if excess and entry.get("outcome") != "running":
            excess -= 1
            continue
        out.append(entry)
    return out


def replace(entries: list[dict[str, Any]], run_id: str | None, new: dict[str, Any], *,
            only: str | None = None) -> list[dict[str, Any]]:
    """The history with the (newest) entry of ``run_id`` replaced by ``new``;
    with ``only``, only when that entry's outcome is ``only``."""
    out = list(entries)
    for i in range(len(out) - 1, -1, -1):
        if out[i].get("run_id") == run_id:
            if only is None or out[i].get("outcome") == only:
                out[i] = new
            break
    return out


def finished(record: dict[str, Any], *, ended_at: datetime, outcome: str,
             exit_code: int | None = None, signal: int | None = None,
             reason: str = "", **extra: Any) -> dict[str, Any]:
    """The record at the end of a run (a new dict)."""
    done = dict(record)
    started = clock.parse_iso(record.get("started_at"))
    done.update(extra)
    done.update({
        "ended_at": clock.iso(ended_at),
        "duration_s": round((ended_at - started).total_seconds(), 6) if started else None,
        "outcome": outcome,
        "exit_code": exit_code,
        "signal": signal,
        "reason": reason,
    })
    return done


def lost(record: dict[str, Any], reason: str, noticed_at: datetime) -> dict[str, Any]:
    """A ``running`` record whose supervisor is gone, as ``lost``; its end is
    unknown, so ``ended_at`` is when the loss was noticed."""
    return finished(record, ended_at=noticed_at, outcome="lost", reason=reason)


def settled(entry: dict[str, Any], recorded: dict[str, Any] | None, reason: str,
            noticed_at: datetime) -> dict[str, Any]:
    """What a ``running`` run whose run-job is gone becomes: the end its
    ``status.json`` recorded (run-job died after writing it), else ``lost``."""
    if (recorded is not None and recorded.get("run_id") == entry.get("run_id")
            and recorded.get("outcome") in FINAL_OUTCOMES and entry_problem(recorded) is None):
        return recorded
    return lost(entry, reason, noticed_at)


def killed(entry: dict[str, Any], count: int, signal: int, noticed_at: datetime) -> dict[str, Any]:
    """A run stopped by ``--kill-job`` after its run-job was gone."""
    reason = (f"stopped by run-job --kill-job ({count} process{'es' if count != 1 else ''});"
              " its run-job was gone")
    return finished(entry, ended_at=noticed_at, outcome="killed", signal=signal, reason=reason)


def exit_status(record: dict[str, Any]) -> int | None:
    """The exit status of SPEC §4 that an ended run stands for (pure); None
    while it runs. What ``--wait`` and ``--follow`` exit with: the command's
    own status, 124 timed out, 128+N killed by signal N, 125 lost or not run
    (run-job could not run it), 75 skipped."""
    outcome = record.get("outcome")
    code, signum = record.get("exit_code"), record.get("signal")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    signum = signum if isinstance(signum, int) and not isinstance(signum, bool) else None
    if outcome == "success":
        return 0
    if outcome == "timed_out":
        return 124
    if outcome == "killed":
        return 128 + (signum or 15)
    if outcome == "failed":
        if code:
            return code
        return 128 + signum if signum else 125
    if outcome == "skipped":
        return 75
    if outcome == "lost":
        return 125
    return None
