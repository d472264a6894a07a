"""The per-job run lock: ``fcntl.flock`` on ``<run_directory>/<slug>.lock``.

The kernel releases a flock when the last descriptor of the open file goes
away, so a crashed run-job cannot leave a stale lock. The descriptor is
handed down to the job's processes (it is inheritable), so while any process
of the run lives the lock stays held: a run-job killed with SIGKILL cannot be
followed by a second copy beside its orphans.

The file's text (``pid starttime run_id``) is for display and for finding the
holder; it never decides anything on its own. Lock files are never unlinked
(unlinking a flocked file lets two processes "hold" two different inodes).
The reference's pid lock files at the same path are plain files: they do not
block a flock, so the cut-over needs no clean-up.
"""

from __future__ import annotations

import fcntl
import os
import stat

from run_job.errors import RunRecordError


def lock_path(run_directory: str | os.PathLike, slug: str) -> str:
    return os.path.join(os.fspath(run_directory), f"{slug}.lock")


def open_lock(path: str) -> int:
    """Open (creating) the lock file; raises RunRecordError with what to do."""
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o750, exist_ok=True)
    except OSError as err:
        raise RunRecordError(
            f"cannot create run_directory {folder}: {err.strerror};"
            " create it, writable by the service user") from err
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK,
                     0o640)
    except OSError as err:
        raise RunRecordError(
            f"cannot open lock file {path}: {err.strerror}; it must be writable by the"
            " service user (a root-owned file left by an earlier version can be removed"
            " while no run is active)") from err
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        from run_job.security import kind_of

        kind = kind_of(os.fstat(fd).st_mode)
        os.close(fd)
        raise RunRecordError(f"the lock file {path} is {kind}, not a regular file; remove it"
                             " while no run is active")
    return fd


def try_lock(fd: int) -> bool:
    """Take the lock without waiting; False when another run holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def is_locked(path: str) -> bool | None:
    """Is the lock held by someone? None when the file cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False
    finally:
        os.close(fd)


def format_holder(pid: int, start_time: int | None, run_id: str) -> bytes:
    """The lock file's text (pure)."""
    return f"{pid} {start_time if start_time is not None else '-'} {run_id}\n".encode()


def parse_holder(text: bytes) -> tuple[int | None, int | None, str | None]:
    """(pid, start_time, run_id) from the lock file's text (pure, never raises).

    A reference pid file (just a pid) gives (pid, None, None).
    """
    parts = text.decode("utf-8", "replace").split()
    pid = int(parts[0]) if parts and parts[0].isdigit() else None
    start = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    run_id = parts[2] if len(parts) > 2 else None
    return pid, start, run_id


def write_holder(fd: int, text: bytes) -> None:
    """Record the holder in the (locked) file, for display and lost-run detection."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
    except OSError as err:
        raise RunRecordError(f"cannot write the lock file: {err.strerror}") from err


def read_holder(fd_or_path: int | str) -> tuple[int | None, int | None, str | None]:
    try:
        if isinstance(fd_or_path, int):
            return parse_holder(os.pread(fd_or_path, 4096, 0))
        from run_job.security import read_bounded

        return parse_holder(read_bounded(fd_or_path, 4096, nofollow=True))
    except OSError:
        return None, None, None


# ---------------------------------------------------------------------------
# The end lock of one run: what ``run-job --wait`` blocks on.
#
# The run's supervisor (the run-job that runs it, locally or watching its
# Slurm job) holds an exclusive flock on ``<run_dir>/.supervisor.lock`` from
# before its ``status.json`` says ``running`` until its end is recorded
# (``status.json`` and the history). A waiter blocks in a shared flock of the
# same file: the kernel wakes it when the supervisor lets go, or dies. The
# descriptor is close-on-exec and never inheritable, so the job's processes
# never hold it: a waiter is never kept waiting by orphans, and never by a
# run-job that died (the run is then ``lost``). Waiters open the file read
# only and never touch the job's own lock.

END_LOCK = ".supervisor.lock"


def end_lock_path(run_dir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(run_dir), END_LOCK)


def hold_end_lock(run_dir: str | os.PathLike) -> int:
    """Create the run's end lock and hold it (the supervisor); the descriptor.
    Raises OSError when it cannot be made (waiters then fall back to watching
    ``status.json``)."""
    fd = os.open(end_lock_path(run_dir),
                 os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def open_end_lock(run_dir: str | os.PathLike) -> int | None:
    """Open a run's end lock to wait on it (read only, never following a
    link, never blocking on a FIFO); None when the run has none."""
    try:
        fd = os.open(end_lock_path(run_dir),
                     os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


class _Timeout(Exception):
    pass


def wait_end_lock(fd: int, timeout: float | None) -> bool:
    """Block until the run's supervisor lets its end lock go (shared flock:
    no polling, the kernel wakes us); False when ``timeout`` seconds passed
    first. A timer signal (SIGALRM) interrupts the blocked call: Python does
    not retry a system call whose signal handler raised."""
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_SH)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        if timeout <= 0:
            return False
    import signal

    armed = [True]

    def on_alarm(signum: int, frame: object) -> None:
        if armed[0]:  # raises at most once
            armed[0] = False
            raise _Timeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            fcntl.flock(fd, fcntl.LOCK_SH)
            armed[0] = False
            got = True
        except _Timeout:
            got = False
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if got:
        fcntl.flock(fd, fcntl.LOCK_UN)
    return got
