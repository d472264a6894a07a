"""Attaching to a run from outside: ``run-job --follow`` and ``--wait`` (SPEC §9).

Neither ever opens the job's lock, not even for an instant (``lock.is_locked``
would take it shared, and a run starting in that instant would find it
held): a run that starts while anyone follows or waits is never skipped
because of them. What they read is the run folder, which only its run-job
writes: ``status.json`` (replaced whole), ``output.log`` (appended), and the
run's end lock (``lock.hold_end_lock``).

* ``--follow`` copies ``output.log`` from its first byte, byte for byte
  (``sendfile``, no decoding), and sleeps on inotify (the run folder) with a
  look at least every second: inotify sees nothing that another host writes
  to a shared file system (a Slurm job on another node). A busy log is
  copied at most every ``FOLLOW_BATCH`` seconds, so a hundred followers of a
  fast writer cost little. It ends when ``status.json`` records the end,
  after copying what is left.
* ``--wait`` blocks in a shared flock of the run's end lock, which the run's
  supervisor holds until the end is recorded: the kernel wakes the waiter,
  also when the supervisor dies. No polling for a supervised run on this
  host, local or Slurm (its run-job is here). A run whose supervisor is on
  another host is watched through ``status.json`` (inotify, and a look every
  second); one whose run-job died is settled through ``reconcile`` (``lost``),
  after its Slurm job, if any, is gone (Slurm asked at most every 10 s).
  ``--next`` sleeps on inotify on the job's output folder until ``latest``
  names a new run (and looks every 10 s on its own).
"""

from __future__ import annotations

import os
import select
import time
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

from run_job.errors import EXIT_SKIPPED, ProcessControlError, UsageError
from run_job.run import history, inotify, lock, proctree, reconcile, records
from run_job.run.transitions import exit_status

FOLLOW_CHECK = 1.0  # seconds: a follower looks at the run at least this often
FOLLOW_BATCH = 0.05  # seconds: a busy log is copied at most this often
STATUS_CHECK = 1.0  # seconds: a run watched through status.json is read this often
NEXT_CHECK = 10.0  # seconds: --wait --next looks on its own this often
SLURM_ASK = 10.0  # seconds: Slurm is asked at most this often
CHUNK = 1 << 20
_FOLDER_EVENTS = inotify.IN_MODIFY | inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO | inotify.IN_CREATE


def check_job(config: Any, slug: str) -> None:
    """``slug`` names a job (a file) or one that has runs; UsageError otherwise."""
    from run_job.config.jobs import job_path

    path = job_path(config, slug)  # refuses what is not a slug, before any path is built
    if not os.path.lexists(path) and not os.path.isdir(
            records.job_output_dir(config.output_directory, slug)):
        raise UsageError(f"no job named {slug!r}: no job file {path} and no runs in"
                         f" {config.output_directory}; see run-job --list-jobs")


def latest_run(config: Any, slug: str) -> str | None:
    """The run ``<slug>/latest`` names (the newest started), or None."""
    try:
        run_id = os.readlink(os.path.join(records.job_output_dir(config.output_directory, slug),
                                          "latest"))
    except OSError:
        return None
    return run_id if records.is_run_id(run_id) else None


def resolve(config: Any, slug: str, run_id: str | None = None) -> str:
    """The run to attach to: ``run_id`` (checked before any path is built),
    else the newest (the running one, if any). UsageError when there is none."""
    if run_id is not None:
        if not records.is_run_id(run_id):
            raise UsageError(f"--run {run_id!r} is not a run id (such as"
                             " 20260102T030405.123456Z-4242; see run-job --history NAME)")
        if not os.path.isdir(reconcile.run_dir(config, slug, run_id)):
            raise UsageError(f"job {slug} has no run {run_id} (skipped runs have no folder, old"
                             f" ones are pruned; see run-job --history {slug})")
        return run_id
    found = latest_run(config, slug)
    if found is None:
        raise UsageError(f"job {slug} has not run yet (run-job --wait --next {slug} waits for"
                         " its next run)")
    return found


class Ending:
    """Whether one run has ended, as an outsider can tell without the job's
    lock: its ``status.json``; for a run still ``running`` there, whether its
    supervisor lives (pid and start time, on the host that wrote the record)
    and, for a Slurm run whose supervisor died, whether Slurm still has the
    job. ``supervised``: True when its run-job is alive on this host."""

    def __init__(self, config: Any, slug: str, run_id: str) -> None:
        self.config, self.slug, self.run_id = config, slug, run_id
        self.folder = reconcile.run_dir(config, slug, run_id)
        self.supervised = False
        self.next_ask = 0.0
        self.in_slurm = True

    def current(self) -> dict[str, Any] | None:
        return records.read_status(self.folder)

    def final(self) -> dict[str, Any] | None:
        """The run's final record, or None while it runs."""
        self.supervised = False
        recorded = self.current()
        if recorded is None:
            if not os.path.isdir(self.folder):
                raise ProcessControlError(f"run {self.run_id} of {self.slug} is gone (its folder"
                                          " was removed)")
            return None  # its first status.json is being written
        if recorded.get("outcome") != "running":
            return recorded
        if recorded.get("host") != records.host_name():
            return None  # its run-job is on another host: its record will say
        start = recorded.get("supervisor_start_time")
        if not isinstance(start, int) or proctree.same_process(recorded.get("pid"), start):
            self.supervised = True
            return None
        if recorded.get("runner") == "slurm" and self._still_in_slurm(recorded):
            return None
        entry = next((e for e in history.read(self.config.state_directory, self.slug)
                      if e.get("run_id") == self.run_id), recorded)
        if entry.get("outcome") != "running":
            return entry
        return reconcile.settle(self.config, self.slug, entry,
                                reconcile.lost_reason(entry, processes_left=None))

    def _still_in_slurm(self, recorded: dict[str, Any]) -> bool:
        """A Slurm run whose run-job died: is its job still there? The batch
        script's ``job.status`` first; Slurm at most every ``SLURM_ASK`` s
        (unreachable: assume it is, and keep waiting)."""
        from run_job.errors import SlurmError
        from run_job.slurm import batch
        from run_job.slurm.vocabulary import STATUS_FILE

        status = batch._read_status(_path(os.path.join(self.folder, STATUS_FILE)))
        if status is not None and status.ended:
            return False
        now = time.monotonic()
        if now < self.next_ask:
            return self.in_slurm
        self.next_ask = now + SLURM_ASK
        job_id = batch.job_id_of(recorded)
        if not job_id:
            self.in_slurm = False
            return False
        try:
            from run_job.slurm.client import SlurmClient

            job = SlurmClient(timeout=SLURM_ASK).show_job(job_id)
        except SlurmError:
            return True
        self.in_slurm = job is not None and job.active
        return self.in_slurm


def _path(text: str) -> Any:
    from pathlib import Path

    return Path(text)


def _sleep(watch: inotify.Watch | None, seconds: float) -> set[str]:
    """Sleep on ``watch`` for at most ``seconds``; the names it reported."""
    if seconds > 0:
        if watch is None:
            time.sleep(seconds)
            return set()
        poller = select.poll()
        poller.register(watch.fd, select.POLLIN)
        poller.poll(max(1, int(seconds * 1000)))
    return set(watch.drain()) if watch is not None else set()


def _folder_watch(folder: str) -> inotify.Watch | None:
    watch = inotify.Watch.open()
    if watch is not None and not watch.add(folder, _FOLDER_EVENTS):
        watch.close()
        return None
    return watch


# ---------------------------------------------------------------------------
# --follow


class _LogCopier:
    """``output.log`` to a descriptor from the first byte, byte for byte."""

    def __init__(self, folder: str, out: int) -> None:
        self.path = os.path.join(folder, "output.log")
        self.out = out
        self.fd: int | None = None
        self.offset = 0
        self.use_sendfile = True

    def copy(self) -> int:
        """Copy what the log holds beyond what was copied; the bytes copied."""
        if self.fd is None:
            from run_job.security import open_regular

            try:
                self.fd, _ = open_regular(self.path, nofollow=True)
            except FileNotFoundError:
                return 0  # not written yet (a Slurm job still pending)
        total = 0
        while True:
            done = self._chunk()
            if not done:
                return total
            total += done
            self.offset += done

    def _chunk(self) -> int:
        fd = self.fd
        assert fd is not None  # opened by the caller before any chunk
        if self.use_sendfile:
            try:
                return os.sendfile(self.out, fd, self.offset, CHUNK)
            except BlockingIOError:
                _writable(self.out)
                return self._chunk()
            except OSError as err:
                import errno

                if err.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
                    raise
                self.use_sendfile = False  # a terminal, an O_APPEND file: read and write
        data = os.pread(fd, CHUNK, self.offset)
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.out, view):]
            except BlockingIOError:
                _writable(self.out)
        return len(data)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _writable(fd: int) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    poller.poll()


def follow(config: Any, slug: str, run_id: str | None = None, *, out: int = 1) -> int:
    """``run-job --follow NAME [--run RUN_ID]``: the run's exit status (§4)."""
    import sys

    check_job(config, slug)
    run_id = resolve(config, slug, run_id)
    ending = Ending(config, slug, run_id)
    sys.stdout.flush()
    copier = _LogCopier(ending.folder, out)
    watch = _folder_watch(ending.folder)
    try:
        next_check = 0.0
        names: set[str] = set()
        while True:
            copied = copier.copy()
            now = time.monotonic()
            if watch is None or "status.json" in names or now >= next_check:
                next_check = now + FOLLOW_CHECK
                final = ending.final()
                if final is not None:
                    copier.copy()  # what was written before the end was recorded
                    code = exit_status(final)
                    return 125 if code is None else code
            if copied:
                time.sleep(FOLLOW_BATCH)  # let a busy log gather before the next copy
            names = _sleep(watch, max(0.0, next_check - time.monotonic()) if not copied else 0.0)
    finally:
        copier.close()
        if watch is not None:
            watch.close()


# ---------------------------------------------------------------------------
# --wait


def wait(config: Any, slug: str, *, next_run: bool = False,
         timeout: float | None = None) -> tuple[int, dict[str, Any] | None]:
    """``run-job --wait NAME [--next] [--timeout D]``: (exit status, the run's
    record). 75 with the record as it stands when ``timeout`` passes first."""
    check_job(config, slug)
    deadline = None if timeout is None else time.monotonic() + timeout
    if next_run:
        run_id = _next_run(config, slug, deadline)
        if run_id is None:
            return EXIT_SKIPPED, None
    else:
        run_id = resolve(config, slug)
    ending = Ending(config, slug, run_id)
    watch = None
    try:
        while True:
            final = ending.final()
            if final is not None:
                code = exit_status(final)
                return (125 if code is None else code), final
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return EXIT_SKIPPED, ending.current()
            if ending.supervised and _wait_supervisor(ending, left):
                continue
            # no end lock to block on: status.json, on inotify and every second
            if watch is None:
                watch = _folder_watch(ending.folder)
            period = STATUS_CHECK if left is None else min(STATUS_CHECK, left)
            _sleep(watch, period)
    finally:
        if watch is not None:
            watch.close()


def _wait_supervisor(ending: Ending, left: float | None) -> bool:
    """Block on the run's end lock; True when that told us something (the
    supervisor let go or died, or the time is up), False when the run has
    no end lock (or its supervisor never took it)."""
    fd = lock.open_end_lock(ending.folder)
    if fd is None:
        return False
    try:
        if not lock.wait_end_lock(fd, left):
            return True  # the time is up: the caller looks once more, then says 75
    finally:
        os.close(fd)
    # Let go: the end is recorded, or the supervisor died. Still running
    # under a live supervisor means it never held the lock: watch status.json.
    final = ending.final()
    return final is not None or not ending.supervised


def _next_run(config: Any, slug: str, deadline: float | None) -> str | None:
    """The run that starts after this call (``latest`` changes), or None at
    the deadline. inotify on the job's output folder (or on the output
    directory until the job's folder exists), and a look every NEXT_CHECK s
    (every second while neither exists)."""
    base = latest_run(config, slug)
    job_dir = records.job_output_dir(config.output_directory, slug)
    watch = inotify.Watch.open()
    watching_job_dir = watching = False
    try:
        while True:
            if watch is not None and not watching_job_dir:
                watching_job_dir = watch.add(job_dir, inotify.IN_CREATE | inotify.IN_MOVED_TO)
                watching = watching_job_dir or watch.add(
                    config.output_directory, inotify.IN_CREATE | inotify.IN_MOVED_TO)
            current = latest_run(config, slug)
            if current is not None and current != base:
                return current
            # nothing to watch yet (no output directory): look every second
            period = NEXT_CHECK if watching else STATUS_CHECK
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                period = min(period, left)
            _sleep(watch, period)
    finally:
        if watch is not None:
            watch.close()
