"""Local supervision of one run: spawn, wait, time out, forward signals, sweep.

Each command runs in its own session (so its own process group) with
stdin from /dev/null and stdout/stderr on the run's ``output.log``. run-job
makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``): every
descendant that double-forks or calls ``setsid`` is re-parented to run-job
instead of init, so the process tree can always be found and swept. Leftovers
are also found by the ``RUN_JOB_RUN_ID`` marker in ``/proc/<pid>/environ``
(that is how the next run finds the orphans of a run whose run-job died).

There are no timer threads: one ``poll`` loop waits on the signal wakeup pipe
(SIGCHLD, SIGTERM, SIGINT, SIGHUP) and, when output is copied, on the output
pipe, with the deadline as its timeout.

A job with ``limits`` (``ctx.confinement``) runs each command through the
exec shim (``limitshim.py``: rlimits set, then the command exec'd in the same
process) and, with ``memory``/``tasks``, inside the run's cgroup, whose
members every sweep adds to its targets; the cgroup's counters (OOM kills,
refused forks) end up in the reason. A job without limits pays none of it.

Output: when run-job's stdout is not a terminal and no ``max_output`` is set,
the job gets the ``output.log`` descriptor itself as stdout and stderr, so
capture costs nothing. Otherwise a pipe and a copy loop tee the output to the
terminal and/or enforce the cap.
"""

from __future__ import annotations

import os
import select
import time

# The C module: ``signal`` itself builds its IntEnums on import (start-up cost).
import _signal as signal
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

from run_job.model import replace
from run_job.run import proctree
from run_job.model import ExecResult, RunContext

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_CHILD_SUBREAPER = 36
_CHUNK = 1 << 16
_PIPE_SIZE = 1 << 20
_MAX_WAIT = 3600.0  # seconds one poll may sleep
# A command still running this long after its start has its wait handed to
# the lean waiter (``handoff.py``): short commands never pay for the exec.
HANDOFF_AFTER = 1.0
_NOT_YET = object()

# Signals received since install_signal_handlers(), in order.
_received: list[int] = []
_wakeup_r: int | None = None


# ---------------------------------------------------------------------------
# Signals


def _on_signal(signum: int, frame: object) -> None:  # pragma: no cover - trivial
    _received.append(signum)


def install_signal_handlers() -> None:
    """Catch SIGTERM/SIGINT/SIGHUP (to forward them) and SIGCHLD (to wake up).

    Idempotent. The handlers only record the signal; the wakeup pipe makes the
    poll loop return at once.
    """
    global _wakeup_r
    if _wakeup_r is not None:
        return
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    _wakeup_r = r
    for signum in STOP_SIGNALS + (signal.SIGCHLD,):
        signal.signal(signum, _on_signal)


def note_signal(signum: int) -> None:
    """A signal the lean waiter received for this run (``handoff.py``)."""
    _received.append(signum)


def stop_requested() -> int | None:
    """The first stop signal (TERM, INT, HUP) run-job received, or None."""
    for signum in _received:
        if signum in STOP_SIGNALS:
            return signum
    return None


def stopped_by(run_dir: str | os.PathLike[str], signum: int) -> str:
    """Who stopped the run, in words: ``run-job --kill-job SIGTERM`` when
    ``--kill-job`` left its request in the run folder, else ``run-job
    received SIGTERM``."""
    who = ("run-job --kill-job" if os.path.exists(os.path.join(os.fspath(run_dir), ".kill-request"))
           else "run-job received")
    return f"{who} {signal_name(signum)}"


def sleep(seconds: float) -> int | None:
    """Sleep ``seconds`` by the monotonic clock on the signal wakeup pipe (no
    busy waiting); the stop signal (TERM, INT, HUP) that ended the sleep
    early, or None when it ran its course."""
    install_signal_handlers()
    deadline = time.monotonic() + seconds
    while True:
        signum = stop_requested()
        if signum is not None:
            return signum
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        _wait_events(left)
        proctree.reap()  # a SIGCHLD of a leftover: nothing to wait for, no zombie kept


def _drain_wakeup() -> None:
    if _wakeup_r is None:
        return
    try:
        while os.read(_wakeup_r, 512):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _wait_events(timeout: float | None, *extra_fds: int) -> list[int]:
    """Sleep until a signal arrives, one of ``extra_fds`` is readable, or ``timeout``."""
    poller = select.poll()
    if _wakeup_r is not None:
        poller.register(_wakeup_r, select.POLLIN)
    for fd in extra_fds:
        poller.register(fd, select.POLLIN)
    # poll takes an int of milliseconds: a long deadline is waited for in
    # slices (the callers loop), never passed whole (it would overflow)
    ms = None if timeout is None else max(0, int(min(timeout, _MAX_WAIT) * 1000) + 1)
    try:
        events = poller.poll(ms)
    except InterruptedError:  # pragma: no cover - PEP 475 retries
        events = []
    ready = [fd for fd, _ in events]
    if _wakeup_r in ready:
        _drain_wakeup()
    return ready


_subreaper: list[bool] = []


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux)."""
    if _subreaper:
        return _subreaper[0]
    _subreaper.append(_prctl_subreaper())
    return _subreaper[0]


def _prctl_subreaper() -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):  # pragma: no cover - non-Linux
        return False


# ---------------------------------------------------------------------------
# Spawning


def resolve_command(name: str, env: dict[str, str]) -> tuple[str | None, int, str]:
    """Find the executable for ``name``: (path, 0, "") or (None, 126|127, why).

    A bare name is looked up in the job's own PATH, as a shell would.
    """
    if "/" in name:
        candidates = [name]
    else:
        candidates = [os.path.join(d or ".", name) for d in os.get_exec_path(env)]
    denied = ""
    for path in candidates:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if not (st.st_mode & 0o170000 == 0o100000):
            denied = denied or f"{path} is not a regular file"
            continue
        if not os.access(path, os.X_OK):
            denied = denied or f"{path} is not executable"
            continue
        return path, 0, ""
    if denied:
        return None, 126, f"cannot execute {name!r}: {denied}"
    return None, 127, f"command not found: {name!r}"


def spawn(path: str, argv: tuple[str, ...] | list[str], env: dict[str, str], out_fd: int) -> int:
    """Start ``argv`` in a new session, stdin /dev/null, stdout+stderr ``out_fd``."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, out_fd, 1),
        (os.POSIX_SPAWN_DUP2, out_fd, 2),
    ]
    # Python ignores SIGPIPE and SIGXFSZ; the job gets the defaults back, as
    # subprocess' restore_signals does. Handled signals reset at exec anyway.
    return os.posix_spawn(path, list(argv), env, file_actions=actions, setsid=True,
                          setsigmask=(), setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))


def _start(ctx: RunContext, path: str, argv: tuple[str, ...], out_fd: int) -> tuple[int, int | None]:
    """Spawn one command, through the limits shim when the run has one:
    (pid, read end of the shim's error pipe or None)."""
    conf = ctx.confinement
    if conf is None or not conf.shim:
        return spawn(path, argv, ctx.environment, out_fd), None
    from run_job.run.limits import shim_argv

    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        os.set_inheritable(err_w, True)  # for the shim alone: run-job has no threads
        python, shim, settings = conf.shim
        pid = spawn(python, shim_argv(python, shim, settings, err_w, path, argv),
                    ctx.environment, out_fd)
    except BaseException:
        os.close(err_r)
        raise
    finally:
        os.close(err_w)
    return pid, err_r


def _shim_report(err_r: int | None) -> tuple[str, str, int] | None:
    """What the shim said before it died (nothing once it exec'd the command)."""
    if err_r is None:
        return None
    from run_job.run.limits import parse_shim_report

    try:
        os.set_blocking(err_r, False)
        data = os.read(err_r, 256)
    except OSError:
        data = b""
    finally:
        os.close(err_r)
    return parse_shim_report(data) if data else None


def _exec_failure(where: str, path: str, number: int) -> ExecResult:
    """The result of a command that could not be exec'd (by posix_spawn or the shim)."""
    import errno

    code = 127 if number == errno.ENOENT else 126
    what = ("not found (or its interpreter is missing)" if code == 127
            else f"cannot be executed: {os.strerror(number)}")
    return ExecResult("failed", code, exit_code=code, reason=f"{where}: {path} {what}")


def _members(ctx: RunContext):
    """The cgroup members of a confined run, as a sweep's ``members``, or None."""
    if ctx.confinement is None or ctx.confinement.procs is None:
        return None
    from run_job.run import confine

    return lambda: confine.members(ctx.confinement)


def _limit_notes(ctx: RunContext) -> list[str]:
    """What the run's cgroup counted (OOM kills, refused forks), for the reason."""
    conf = ctx.confinement
    if conf is None or conf.procs is None:
        return []
    from run_job.run import confine, limits

    return limits.counter_notes(conf.limits, confine.counter(conf.oom_counter),
                                confine.counter(conf.fork_counter))


def signal_name(signum: int) -> str:
    import signal as signal_module

    try:
        return signal_module.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _Copier:
    """Copy loop for the pipe mode: tee to a terminal and/or cap the log.

    A write to the log that fails (disk full, file too large, I/O error)
    never ends supervision: what cannot be written is dropped and counted,
    the pipe keeps being drained (the job never blocks on it), and the
    reason of the run says so.
    """

    def __init__(self, read_fd: int, log_fd: int, tee_fd: int | None, cap: int | None) -> None:
        self.read_fd = read_fd
        self.log_fd = log_fd
        self.tee_fd = tee_fd
        self.cap = cap
        self.written = 0
        self.dropped = 0  # beyond the cap
        self.lost = 0  # could not be written
        self.write_error: OSError | None = None

    def pump(self, drain: bool = False) -> bool:
        """Copy what is readable now (a bounded amount unless draining); False at EOF."""
        rounds = 0
        while drain or rounds < 64:
            rounds += 1
            try:
                data = os.read(self.read_fd, _CHUNK)
            except BlockingIOError:
                return True
            if not data:
                return False
            self._write(data)
        return True

    def _write(self, data: bytes) -> None:
        keep = data
        if self.cap is not None:
            room = max(0, self.cap - self.written)
            if len(data) > room:
                keep = data[:room]
                self.dropped += len(data) - room
        if keep and self.write_error is None:
            try:
                _write_all(self.log_fd, keep)
                self.written += len(keep)
            except OSError as err:
                self.write_error = err
                self.lost += len(keep)
        elif keep:
            self.lost += len(keep)
        if self.tee_fd is not None:
            try:
                _write_all(self.tee_fd, data)
            except OSError:  # the terminal went away; the log is what matters
                self.tee_fd = None

    def notes(self, output_path: object) -> list[str]:
        """What the run's reason must say about its output."""
        notes = []
        if self.dropped:
            notes.append(f"output.log capped at {self.cap} bytes (max_output);"
                         f" {self.dropped} bytes dropped")
        if self.write_error is not None:
            notes.append(write_error_note(output_path, self.write_error, self.lost))
        return notes


def write_error_note(output_path: object, err: OSError, lost: int | None) -> str:
    """The reason's words for output that could not be written, with what to do."""
    what = f"{lost} bytes of output" if lost is not None else "output"
    return (f"{what} could not be written to {output_path} ({err.strerror or err});"
            " free space (or fix the file system) under output_directory")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# ---------------------------------------------------------------------------
# The run


def execute(ctx: RunContext, resume: dict | None = None) -> ExecResult:
    """Run ``ctx.commands`` in order under supervision; see the module docstring.

    Whatever goes wrong once a command has started (an error of run-job
    itself included), the run's processes are swept before this returns or
    raises: nothing of the job runs on unsupervised.

    ``resume``: the wait of a command this process handed to the lean waiter
    (``handoff.py``) is over; go on from that command (its pid, deadline,
    the process groups so far and the caller's working directory).
    """
    install_signal_handlers()
    become_subreaper()  # idempotent; the controller already did it before dropping root
    tee = os.isatty(1)
    cap = ctx.config.max_output
    log_fd = os.open(ctx.output_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    if cap is not None:  # the cap is the run's: earlier attempts used part of it
        try:
            cap = max(0, cap - os.fstat(log_fd).st_size)
        except OSError:
            pass
    copier: _Copier | None = None
    pipe_w: int | None = None
    if tee or cap is not None:
        pipe_r, pipe_w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(pipe_r, False)
        try:
            import fcntl

            fcntl.fcntl(pipe_r, 1031, _PIPE_SIZE)  # F_SETPIPE_SZ
        except OSError:
            pass
        copier = _Copier(pipe_r, log_fd, 1 if tee else None, cap)
    old_cwd = None
    if resume is not None:  # the working directory is the job's already
        old_cwd = resume["old_cwd"]
        for fd in (old_cwd, resume["err_r"]):  # kept open across the hand-off only
            if fd is not None:
                os.set_inheritable(fd, False)
    else:
        try:
            old_cwd = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            pass
    pgids: list[int] = list(resume["pgids"]) if resume is not None else []
    try:
        try:
            if resume is None:
                os.chdir(ctx.working_directory)
        except OSError as err:
            return ExecResult("failed", 125, reason=(
                f"cannot enter working_directory {str(ctx.working_directory)!r}: {err.strerror}"))
        try:
            result = _run_commands(ctx, pipe_w if pipe_w is not None else log_fd, copier, pgids,
                                   resume=resume, old_cwd=old_cwd)
        except BaseException as err:
            # run-job itself failed while the job ran: stop the job, then say why
            proctree.sweep(ctx.run_id, ctx.job.kill_grace, pgids=pgids, wait=_wait_events,
                           members=_members(ctx), spare=_spare(ctx))
            if not isinstance(err, Exception):
                raise
            result = ExecResult("failed", 125, reason=(
                f"run-job failed while supervising the job ({type(err).__name__}: {err});"
                " the job's processes were stopped"))
        if copier is not None:
            if pipe_w is not None:
                os.close(pipe_w)
            pipe_w = None
            try:
                copier.pump(drain=True)
            except OSError:
                pass
            for note in copier.notes(ctx.output_path):
                result = replace(result, reason=f"{result.reason}; {note}" if result.reason else note)
        return result
    finally:
        if old_cwd is not None:
            try:
                os.fchdir(old_cwd)
            except OSError:
                pass
            os.close(old_cwd)
        if copier is not None:
            if pipe_w is not None:
                os.close(pipe_w)
            os.close(copier.read_fd)
        os.close(log_fd)


def _run_commands(ctx: RunContext, out_fd: int, copier: _Copier | None,
                  pgids: list[int], *, resume: dict | None = None,
                  old_cwd: int | None = None) -> ExecResult:
    """The commands in order, then the sweep of leftovers; ``pgids`` collects
    the process group of every command started (for the caller's sweep).
    ``resume``: see ``execute``."""
    job = ctx.job
    grace = job.kill_grace
    if resume is not None:
        deadline = resume["deadline"]
    else:
        deadline = None if not job.timeout else time.monotonic() + job.timeout
    env = ctx.environment
    members = _members(ctx)
    rlimits = ctx.confinement.limits if ctx.confinement is not None else None
    result: ExecResult | None = None
    first = resume["index"] if resume is not None else 0
    for index, argv in enumerate(ctx.commands):
        if index < first:
            continue
        label = ctx.command_text[index] if index < len(ctx.command_text) else " ".join(argv)
        where = f"command {index + 1} ({label})" if len(ctx.commands) > 1 else f"command ({label})"
        resumed = resume is not None and index == first
        if resumed:
            assert resume is not None
            pid, err_r, path = resume["pid"], resume["err_r"], resume["path"]
        else:
            if stop_requested():
                break
            path, status, why = resolve_command(argv[0], env)
            if path is None:
                result = ExecResult("failed", status, exit_code=status, reason=f"{where}: {why}")
                break
            try:
                pid, err_r = _start(ctx, path, argv, out_fd)
            except OSError as err:
                result = _exec_failure(where, path, err.errno or 0)
                break
            pgids.append(pid)
        wait_status: Any = _NOT_YET
        if not resumed and ctx.handoff is not None and copier is None and ctx.events is None:
            # a command that runs on: its wait goes to the lean waiter
            wait_status = _wait_main(pid, deadline, None, None,
                                     until=time.monotonic() + HANDOFF_AFTER)
            if wait_status is _NOT_YET:
                ctx.handoff({"kind": "local", "index": index, "pid": pid, "err_r": err_r,
                             "path": path, "pgids": list(pgids), "deadline": deadline,
                             "old_cwd": old_cwd})  # returns only when it could not
        if wait_status is _NOT_YET:
            wait_status = _wait_main(pid, deadline, copier, ctx.events)
        report = _shim_report(err_r)
        if wait_status is None:  # timeout or stop signal: stop everything now
            signum = stop_requested()
            if signum is not None:
                proctree.sweep(ctx.run_id, grace, first_signal=signum, pgids=[pid],
                               wait=_wait_events, members=members, spare=_spare(ctx))
                result = ExecResult("killed", 128 + signum, signal=signum, reason=(
                    f"{stopped_by(ctx.run_dir, signum)}; {where} and its process"
                    " tree were stopped"))
            else:
                proctree.sweep(ctx.run_id, grace, pgids=[pid], wait=_wait_events,
                               members=members, spare=_spare(ctx))
                result = ExecResult("timed_out", 124, reason=(
                    f"timed out after {_fmt_duration(job.timeout)} in {where};"
                    " the whole process tree was stopped"))
            break
        if report is not None:  # the shim could not set a limit or exec the command
            kind, what, number = report
            if kind == "exec":
                result = _exec_failure(where, path, number)
            else:
                from run_job.run.limits import RLIMIT_NAMES

                name = f"limits.{RLIMIT_NAMES[what]}" if what in RLIMIT_NAMES else "its environment"
                result = ExecResult("failed", 125, reason=(
                    f"{where} did not start: run-job could not set {name}"
                    f" ({os.strerror(number)})"))
            break
        code = os.waitstatus_to_exitcode(wait_status)
        if code < 0:
            note = ""
            if rlimits is not None:
                from run_job.run.limits import signal_note

                note = signal_note(-code, rlimits)
            result = ExecResult("failed", 128 - code, signal=-code, reason=(
                f"{where} was killed by {signal_name(-code)}{note}"))
            break
        if code != 0:
            result = ExecResult("failed", code, exit_code=code,
                                reason=f"{where} exited with status {code}")
            break
    if result is None:
        signum = stop_requested()
        if signum is not None:
            result = ExecResult("killed", 128 + signum, signal=signum,
                                reason=f"run-job received {signal_name(signum)}")
        else:
            result = ExecResult("success", 0, exit_code=0)
    # Leftovers: anything still below us (or carrying the marker, or in the
    # run's cgroup) is swept; run-job's own hook runners are spared.
    if proctree.has_children() or (members is not None and members()):
        count = proctree.sweep(ctx.run_id, grace, pgids=pgids, wait=_wait_events,
                               members=members, spare=_spare(ctx))
        if count:
            note = (f"{count} leftover process{'es' if count != 1 else ''} stopped"
                    f" after the last command (TERM, {_fmt_duration(grace)} grace, KILL)")
            result = replace(result, reason=f"{result.reason}; {note}" if result.reason else note)
    for note in _limit_notes(ctx):
        result = replace(result, reason=f"{result.reason}; {note}" if result.reason else note)
    return result


def _spare(ctx: RunContext) -> set[int]:
    """run-job's own hook runners: a sweep of the job leaves them alone."""
    return ctx.events.spare() if ctx.events is not None else set()


def _wait_main(pid: int, deadline: float | None, copier: _Copier | None,
               events: Any = None, until: float | None = None) -> Any:
    """Wait for ``pid``; its wait status, or None on timeout or stop signal
    (``_NOT_YET`` when ``until`` came first: the command runs on).
    ``events`` (the run's ``EventWatch``) is looked at as it asks: its
    inotify descriptor is waited on with the rest, or every second."""
    while True:
        for child, status in proctree.reap():
            if child == pid:
                if copier is not None:
                    copier.pump()
                return status
        if stop_requested() is not None:
            return None
        timeout = None
        if deadline is not None:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                return None
        if until is not None:
            left = until - time.monotonic()
            if left <= 0:
                return _NOT_YET
            timeout = left if timeout is None else min(timeout, left)
        fds = [copier.read_fd] if copier is not None else []
        if events is not None:
            if events.timeout is not None:
                timeout = events.timeout if timeout is None else min(timeout, events.timeout)
            if events.fd is not None:
                fds.append(events.fd)
        ready = _wait_events(timeout, *fds)
        if copier is not None and copier.read_fd in ready:
            copier.pump()
        if events is not None:
            events.poll(ready)


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "no limit"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:g}s"
