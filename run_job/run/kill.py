"""``run-job --kill-job``: stop the running run of a job and its whole process tree.

The live supervisor is asked first (SIGTERM to run-job, which forwards it,
sweeps the tree and records ``killed``); a Slurm run's job is cancelled in
Slurm. A process named by a record is signalled only when its identity is
proved (pid and start time, ``proctree.same_process``): a reused pid is never
hit. When no supervisor is left, the run's orphans (found by their run
marker) are swept here and the end is recorded through ``reconcile``.
"""

from __future__ import annotations

import os
import signal
import time
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

from run_job import clock
from run_job.errors import ProcessControlError
from run_job.model import Job
from run_job.run import history, lock, proctree, reconcile, transitions

SUPERVISOR_WAIT = 30.0  # seconds beyond kill_grace for run-job to record the end


def kill_job(config: Any, job: Job, *, wait: float | None = None) -> tuple[int, str]:
    """Stop the running run of ``job``: (exit status, message). 0 when this
    call stopped a run, 1 when none was running."""
    slug = job.slug
    current = history.current_run(history.read(config.state_directory, slug))
    lock_file = lock.lock_path(config.run_directory, slug)
    held = lock.is_locked(lock_file)
    pid, start, run_id = lock.read_holder(lock_file) if held else (None, None, None)
    if current is None and not held:
        return 1, f"{slug}: no run is running"
    if current is not None and (run_id is None or run_id == current.get("run_id")):
        run_id = current.get("run_id")
        if pid is None or start is None:
            pid, start = current.get("pid"), current.get("supervisor_start_time")
    stopped = False
    if current is not None and current.get("runner") == "slurm":
        from run_job.slurm import batch as slurm_runner

        stopped = slurm_runner.kill(config, job, current)
    if pid is not None and start is not None and proctree.same_process(pid, start):
        if _stop_supervisor(config, slug, job, run_id, pid, start, wait):
            return 0, f"{slug}: run {run_id} killed"
        stopped = True  # it had to be killed: its tree is swept below
    # No live supervisor: stop the orphans here and record the end.
    count = proctree.sweep(run_id, job.kill_grace, own_tree=False) if run_id else 0
    if current is None:
        if count:
            return 0, f"{slug}: run {run_id} killed ({_processes(count)} stopped)"
        return 1, f"{slug}: no run is running"
    if count == 0 and not stopped:
        # nothing of the run was alive: it had ended (or died) on its own
        final = reconcile.settle(config, slug, current, reconcile.lost_reason(current))
        return 1, f"{slug}: no run is running (run {run_id} had ended: {final['outcome']})"
    final = reconcile.settle(config, slug, current, "", decide=lambda entry, rec: _killed(
        entry, rec, count, stopped))
    what = f"{_processes(count)} stopped" if count else "its Slurm job cancelled"
    return 0, f"{slug}: run {final.get('run_id')} killed ({what})"


def _killed(entry: dict[str, Any], recorded: dict[str, Any] | None, count: int,
            stopped: bool) -> dict[str, Any]:
    if stopped and recorded is not None and recorded.get("outcome") == "killed":
        return recorded  # its own run-job recorded the kill we asked for
    return transitions.killed(entry, count, int(signal.SIGTERM), clock.now())


def _stop_supervisor(config: Any, slug: str, job: Job, run_id: str | None, pid: int,
                     start: int, wait: float | None) -> bool:
    """SIGTERM to the run's own run-job, which records ``killed``; True when
    it ended within the wait, False when it had to be SIGKILLed."""
    if run_id:
        _write_kill_request(reconcile.run_dir(config, slug, run_id))
    try:
        if not proctree.signal_verified(pid, start, signal.SIGTERM):
            return True
    except PermissionError as err:
        raise ProcessControlError(
            f"{slug}: cannot signal run-job pid {pid}: {err.strerror}; run --kill-job as the"
            " service user or root") from err
    deadline = time.monotonic() + (wait if wait is not None else job.kill_grace + SUPERVISOR_WAIT)
    while proctree.same_process(pid, start) and time.monotonic() < deadline:
        time.sleep(0.02)
    if not proctree.same_process(pid, start):
        return True
    try:
        proctree.signal_verified(pid, start, signal.SIGKILL)  # it will not stop: the caller sweeps
    except OSError:
        pass
    return False


def _write_kill_request(folder: str) -> None:
    """Leave a note for the supervisor so that its reason names --kill-job."""
    try:
        from run_job.atomic import write_atomic

        write_atomic(os.path.join(folder, ".kill-request"), f"{os.getpid()}\n".encode(), 0o640,
                     fsync=False)
    except OSError:
        pass


def _processes(count: int) -> str:
    return f"{count} process{'es' if count != 1 else ''}"
