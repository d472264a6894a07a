"""Runs nobody supervises any more: noticing them and recording their end.

A run's records are written by its own run-job. When that run-job dies
(SIGKILL, a crash, the host going down) its ``status.json`` and history entry
stay at ``running``. Whoever notices first settles them, through this module
alone: the next run of the job (under the job's lock, where every other
``running`` record is certainly dead), ``--status`` (when the supervisor's
process is gone) and ``--kill-job``. The decision is ``transitions.settled``
(the end that ``status.json`` recorded, else ``lost``); this module reads
and writes the files.

A run can also die before its first history entry was written: its run
folder then holds the only record (``stuck_runs`` finds such folders).
"""

from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any, Callable

from run_job import clock, logsetup
from run_job.errors import RunRecordError
from run_job.run import history, records, transitions


def run_dir(config: Any, slug: str, run_id: str) -> str:
    """The run folder of ``run_id``, built from the config, never taken from a record."""
    return os.path.join(records.job_output_dir(config.output_directory, slug), run_id)


def supervisor_alive(config: Any, slug: str, entry: dict[str, Any]) -> bool:
    """Does the run-job of a ``running`` entry still live? Its pid and start
    time prove it; without a start time, whether the job's lock is held."""
    from run_job.run import lock, proctree

    start = entry.get("supervisor_start_time")
    if isinstance(start, int) and not isinstance(start, bool):
        return proctree.same_process(entry.get("pid"), start)
    return bool(lock.is_locked(lock.lock_path(config.run_directory, slug)))


def lost_reason(entry: dict[str, Any], processes_left: bool | None = False) -> str:
    """``processes_left``: None when the caller does not know (it must not
    touch the job's lock to find out: ``--wait`` and ``--follow``)."""
    pid = entry.get("pid")
    if processes_left is None:
        return f"supervision lost: run-job (pid {pid}) died before recording the run's end"
    if processes_left:
        return (f"supervision lost: run-job (pid {pid}) is gone; processes of the run still"
                " hold the job's lock and will be stopped by the next run")
    return (f"supervision lost: run-job (pid {pid}) died and no process of the run was"
            " left")


def settle_in(config: Any, slug: str, entries: list[dict[str, Any]], *,
              skip: str | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every ``running`` entry of ``entries`` (but ``skip``) settled: the new
    list and the settled records. For callers that hold the job's lock (the
    runs are certainly dead) and are inside a history update, which writes
    the history after this returns: each ``status.json`` is written here,
    first, so that a caller killed in between leaves a record the next one
    settles the same way (``transitions.settled`` keeps a recorded end)."""
    now = clock.now()
    out = list(entries)
    settled = []
    for i, entry in enumerate(out):
        if entry.get("outcome") != "running" or entry.get("run_id") == skip:
            continue
        recorded = records.read_status(run_dir(config, slug, entry["run_id"]))
        out[i] = transitions.settled(entry, recorded, lost_reason(entry), now)
        settled.append(out[i])
    record_status(config, slug, settled)
    return out, settled


def stuck_runs(config: Any, slug: str, entries: list[dict[str, Any]],
               *, skip: str | None = None) -> list[dict[str, Any]]:
    """``status.json`` records at ``running`` of run folders the history does
    not know, newer than its newest entry (their run-job died before writing
    one). Read under the job's lock: they are dead. A run folder whose run-job
    died before even its first ``status.json`` gets a record made from its
    run id (start time, pid)."""
    folder = records.job_output_dir(config.output_directory, slug)
    newest = max((str(e.get("run_id")) for e in entries), default="")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in sorted(names):
        if name <= newest or name == skip or records.run_id_time(name) is None:
            continue
        path = os.path.join(folder, name)
        recorded = records.read_status(path)
        if recorded is not None and recorded.get("run_id") == name \
                and recorded.get("outcome") == "running":
            found.append(recorded)
        elif recorded is None and not os.path.lexists(os.path.join(path, "status.json")) \
                and os.path.isdir(path) and not os.path.islink(path):
            found.append(_bare_record(slug, name, path))
    return found


def _bare_record(slug: str, run_id: str, path: str) -> dict[str, Any]:
    """A ``running`` record for a run folder that has none (pure but for the name)."""
    pid = run_id.rpartition("-")[2]
    return {"job": slug, "run_id": run_id, "outcome": "running",
            "started_at": clock.iso(records.run_id_time(run_id)), "ended_at": None,
            "pid": int(pid) if pid.isdigit() else None, "run_dir": path,
            "reason": "", "exit_code": None, "signal": None, "duration_s": None}


def record_status(config: Any, slug: str, settled: list[dict[str, Any]]) -> None:
    """Write each settled record into its run folder's ``status.json`` while
    that still says ``running`` (or is damaged: set aside first)."""
    for record in settled:
        folder = run_dir(config, slug, record["run_id"])
        path = os.path.join(folder, "status.json")
        current = records.read_status(folder)
        if current is not None and current.get("outcome") != "running":
            continue
        if current is None:
            if not os.path.isdir(folder) or os.path.islink(folder):
                continue  # no run folder (a skipped run, or pruned): nothing to correct
            if os.path.lexists(path):
                records.set_aside(path)  # damaged: kept aside, then replaced
        try:
            records.write_status(folder, record)
        except RunRecordError as err:
            logsetup.error("%s: %s", slug, err)


def settle(config: Any, slug: str, entry: dict[str, Any], reason: str, *,
           decide: Callable[[dict[str, Any], dict[str, Any] | None], dict[str, Any]] | None = None
           ) -> dict[str, Any]:
    """Record the end of one unsupervised run in its history entry (replacing
    the ``running`` one, or adding it when the history never had it) and its
    ``status.json``; ``decide(entry, recorded)`` replaces the default
    decision (``transitions.settled``). Best effort: a state folder the
    caller cannot write is logged. Returns the final record."""
    recorded = records.read_status(run_dir(config, slug, entry["run_id"]))
    final = (decide(entry, recorded) if decide is not None
             else transitions.settled(entry, recorded, reason, clock.now()))
    # the run folder first: killed between the two writes, the next reader
    # finds the end in status.json and settles the history entry alike
    record_status(config, slug, [final])

    def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for old in entries:
            if old.get("run_id") == final["run_id"]:
                return transitions.replace(entries, final["run_id"], final, only="running")
        return transitions.insert(entries, final, config.history_length)

    try:
        history.update(config.state_directory, slug, change)
    except RunRecordError as err:
        logsetup.error("%s: %s", slug, err)
    return final


def refresh(config: Any, slug: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history as ``--status`` shows it: a ``running`` entry whose run-job
    is gone settled (and recorded, when the state can be written), and a run
    that died before its first history entry (found through ``latest``)."""
    from run_job.run import lock

    current = history.current_run(entries)
    if current is not None and not supervisor_alive(config, slug, current):
        held = bool(lock.is_locked(lock.lock_path(config.run_directory, slug)))
        final = settle(config, slug, current, lost_reason(current, processes_left=held))
        entries = transitions.replace(entries, current["run_id"], final)
    stuck = _stuck_latest(config, slug, entries)
    if stuck is not None:
        final = settle(config, slug, stuck, lost_reason(stuck))
        entries = transitions.insert(entries, final, config.history_length)
    return entries


def _stuck_latest(config: Any, slug: str, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The run ``latest`` points at, when the history does not know it, its
    ``status.json`` says ``running`` and nothing of it is alive."""
    from run_job.run import lock

    try:
        run_id = os.readlink(os.path.join(records.job_output_dir(config.output_directory, slug),
                                          "latest"))
    except OSError:
        return None
    if records.run_id_time(run_id) is None or any(e.get("run_id") == run_id for e in entries):
        return None
    recorded = records.read_status(run_dir(config, slug, run_id))
    if recorded is None or recorded.get("run_id") != run_id or recorded.get("outcome") != "running":
        return None
    if supervisor_alive(config, slug, recorded) or lock.is_locked(
            lock.lock_path(config.run_directory, slug)):
        return None
    return recorded
