"""The hand-off of a run's wait to the lean waiter, and the way back.

A run that waits (a local command running on, a Slurm job in flight) needs
very little: its pid or job id, a deadline, its signals. The process that
started it holds much more (the config pipeline, the records, the
controller's modules: about 7 MB of private memory), and 1,000 of them
waiting at once would cost 7 GB. So once a command has run for
``supervise.HANDOFF_AFTER``, the executor calls ``ctx.handoff``, and this
module execs the *same process* (same pid and start time, same children,
the job's flock and the run's end lock kept open across the exec) into
``run/lean.py``: a fresh interpreter (``-I -S``) that imports only what
waiting needs. When something needs deciding (the command ended, the
deadline came, a stop signal, the job's status changed, Slurm must be
asked), the lean waiter execs back into a full interpreter
(``cli.resume_main``), which rebuilds the run from the saved state and goes
on exactly where the executor stopped: the executor's ``resume=`` (local:
``supervise.execute``; Slurm: ``slurm.batch.execute``), the controller's
attempt loop (``controller.resume``).

The saved state travels in a sealed memfd (``marshal`` data: the run's
records encoded as the validation cache encodes them, the attempt loop, the
executor's state, ``sys.path`` and ``sys.argv``). Nothing else can write it:
it exists only in this process. Stop signals (TERM, INT, HUP) and SIGCHLD are
blocked across each exec, so none is lost or acted on by a half-started
interpreter: they stay pending and are taken by the next one's handlers.

A hand-off that cannot be made (no memfd, the exec failed) returns, and the
executor waits as before. A run with events (``jobevents``) or a terminal to
tee to keeps its full supervisor: they need the full process while waiting.
"""

from __future__ import annotations

import os
import sys

import _signal
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

FORMAT = "run-job-handoff-1"
BLOCKED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGCHLD)
# where ``run_job`` is imported from: the lean interpreter has no site-packages
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LEAN_BOOT = ("import sys;sys.path.insert(0,sys.argv[1]);"
              "from run_job.run.lean import main;main(sys.argv[1],int(sys.argv[2]))")
FULL_BOOT = ("import sys;sys.path.insert(0,sys.argv[1]);"
             "from run_job.cli import resume_main;sys.exit(resume_main(int(sys.argv[2])))")


def hand_off(config: Any, job: Any, confinement: Any, saved: dict[str, Any],
             keep: list[int]) -> None:
    """Exec into the lean waiter; returns only when that cannot be done.
    ``keep``: the descriptors the run holds (its locks), kept open."""
    import marshal

    from run_job.config.cache import encode_records
    from run_job.run import supervise

    executable = sys.executable
    if not executable or supervise.stop_requested() is not None:
        return
    executor = saved["loop"]["exec"]
    cleaner = confinement.cleaner_fd if confinement is not None else None
    keep = keep + [fd for fd in (executor.get("err_r"), executor.get("old_cwd"), cleaner)
                   if fd is not None]
    state = {"format": FORMAT, "records": encode_records((config, job, confinement)),
             "saved": saved, "path": list(sys.path), "argv": list(sys.argv),
             "executable": executable, "stop": None, "comm": _comm(), "slug": job.slug}
    try:
        memfd = write_state(marshal.dumps(state))
    except (OSError, ValueError):
        return
    _flush()
    old = _signal.pthread_sigmask(_signal.SIG_BLOCK, BLOCKED)
    if supervise.stop_requested() is not None:  # came in meanwhile: decide here
        _signal.pthread_sigmask(_signal.SIG_SETMASK, old)
        os.close(memfd)
        return
    try:
        for fd in keep + [memfd]:
            os.set_inheritable(fd, True)
        os.execv(executable, boot_argv(state, _LEAN_BOOT, memfd))
    except OSError:
        pass
    for fd in keep:  # the exec failed: as before
        try:
            os.set_inheritable(fd, fd == saved["run"]["lock_fd"])
        except OSError:
            pass
    os.close(memfd)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, old)


def boot_argv(state: dict[str, Any], boot: str, memfd: int) -> list[str]:
    """The argv of an exec of the hand-off; ``ps`` shows which job waits."""
    executable = state["executable"]
    return [executable, "-I", "-S", "-c", boot, PACKAGE_PARENT, str(memfd),
            "run-job", "--job", state["slug"]]


def _comm() -> str:
    try:
        with open("/proc/self/comm", "rb") as f:
            return f.read(64).decode(errors="replace").strip()
    except OSError:
        return ""


def set_comm(state: dict[str, Any]) -> None:
    """The process name before the hand-off (``run-job``, not ``python3``):
    ``pgrep``/``pkill run-job`` and ``top`` still find the run."""
    name = state.get("comm")
    if name:
        try:
            with open("/proc/self/comm", "w") as f:
                f.write(name)
        except OSError:
            pass


def write_state(data: bytes) -> int:
    """A sealed memfd holding ``data`` (close-on-exec until the exec), at offset 0."""
    fd = os.memfd_create("run-job-handoff", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
        import fcntl

        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW
                    | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_state(fd: int) -> dict[str, Any]:
    """The state a hand-off left in ``fd`` (closed here)."""
    import marshal

    chunks = []
    try:
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    state = marshal.loads(b"".join(chunks))
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError("not a run-job hand-off")
    return state


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def unblock() -> None:
    """After the handlers are in place: take the signals that came during the exec."""
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, BLOCKED)
