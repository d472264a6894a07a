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
    from typing import Callable, Iterable

from run_job.model import replace
from run_job.run.runtypes import ExecResult, RunContext

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_CHILD_SUBREAPER = 36
_CHUNK = 1 << 16
_PIPE_SIZE = 1 << 20

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


def stop_requested() -> int | None:
    """The first stop signal (TERM, INT, HUP) run-job received, or None."""
    for signum in _received:
        if signum in STOP_SIGNALS:
            return signum
    return None


def _drain_wakeup() -> None:
    if _wakeup_r is None:
        return
    try:
        while os.read(_wakeup_r, 512):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _wait_events(timeout: float | None, extra_fd: int | None = None) -> list[int]:
    """Sleep until a signal arrives, ``extra_fd`` is readable, or ``timeout``."""
    poller = select.poll()
    if _wakeup_r is not None:
        poller.register(_wakeup_r, select.POLLIN)
    if extra_fd is not None:
        poller.register(extra_fd, select.POLLIN)
    ms = None if timeout is None else max(0, int(timeout * 1000) + 1)
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
# /proc


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields 3.. of ``/proc/PID/stat`` (after the command name), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].split()


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (None: no such process)."""
    fields = _stat_fields(pid)
    # fields[0] is field 3 (state); starttime is field 22.
    return int(fields[19]) if fields is not None else None


def process_alive(pid: int | None, start_time: int | None) -> bool:
    """Is the process ``pid`` that started at ``start_time`` still there?

    Comparing the start time makes a reused pid read as "gone". Zombies count
    as gone.
    """
    if not pid:
        return False
    fields = _stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return False
    return start_time is None or int(fields[19]) == int(start_time)


def parse_proc_stat(data: bytes) -> tuple[str, int, int]:
    """(state, ppid, pgid) from the text of ``/proc/<pid>/stat`` (pure)."""
    rest = data[data.rindex(b")") + 2:].split()
    return rest[0].decode("ascii", "replace"), int(rest[1]), int(rest[2])


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def process_table() -> dict[int, tuple[str, int, int]]:
    """Every live process: pid -> (state, ppid, pgid)."""
    table: dict[int, tuple[str, int, int]] = {}
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                table[pid] = parse_proc_stat(f.read())
        except (OSError, ValueError):
            continue
    return table


def descendants(root: int, table: dict[int, tuple[str, int, int]]) -> set[int]:
    """Pids below ``root`` in the parent tree of ``table`` (pure), zombies excluded."""
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {pid for pid in found if table[pid][0] not in ("Z", "X")}


def marked_processes(run_id: str, table: dict[int, tuple[str, int, int]] | None = None) -> set[int]:
    """Processes whose environment carries ``RUN_JOB_RUN_ID=<run_id>``.

    Only processes we may read are seen (the service user's own), which is
    exactly the set a run can leave behind.
    """
    needle = b"\0RUN_JOB_RUN_ID=" + run_id.encode() + b"\0"
    me = os.getpid()
    found: set[int] = set()
    for pid in (table if table is not None else _pids()):
        if pid == me:
            continue
        if table is not None and table[pid][0] in ("Z", "X"):
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = b"\0" + f.read()
        except OSError:
            continue
        if needle in env or env.endswith(needle[:-1]):
            found.add(pid)
    return found


# ---------------------------------------------------------------------------
# Killing


def _reap() -> list[tuple[int, int]]:
    """Reap every exited child; [(pid, wait status)]."""
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, status))


def has_children() -> bool:
    """Is any child (hence, under the subreaper, any descendant) still alive?"""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _targets(run_id: str | None, pgids: Iterable[int], own_tree: bool) -> set[int]:
    table = process_table()
    found: set[int] = set()
    if own_tree:
        found |= descendants(os.getpid(), table)
    pgids = set(pgids)
    if pgids:
        found |= {pid for pid, (state, _, pgid) in table.items()
                  if pgid in pgids and state not in ("Z", "X")}
    if run_id:
        found |= marked_processes(run_id, table)
    found.discard(os.getpid())
    return found


def _send(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def sweep(run_id: str | None, grace: float, *, first_signal: int = signal.SIGTERM,
          pgids: Iterable[int] = (), own_tree: bool = True,
          on_reap: Callable[[int, int], None] | None = None) -> int:
    """Stop a run's processes: ``first_signal``, up to ``grace`` seconds, SIGKILL.

    Targets: run-job's descendants (``own_tree``), members of ``pgids`` and
    processes with the run's marker. Returns how many processes were found.
    """
    pgids = tuple(pgids)
    targets = _targets(run_id, pgids, own_tree)
    if not targets:
        return 0
    seen = set(targets)
    _send(targets, first_signal)
    for pgid in pgids:
        try:
            os.killpg(pgid, first_signal)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace
    while True:
        for pid, status in _reap():
            if on_reap:
                on_reap(pid, status)
        targets = _targets(run_id, pgids, own_tree)
        seen |= targets
        if not targets:
            return len(seen)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        # Children wake us with SIGCHLD; others (orphans of a lost run) are polled.
        _wait_events(min(left, 0.05 if not own_tree else 0.25))
    # SIGKILL until nothing is left (a forking process may need a few rounds).
    for _ in range(100):
        _send(targets, signal.SIGKILL)
        for pid, status in _reap():
            if on_reap:
                on_reap(pid, status)
        targets = _targets(run_id, pgids, own_tree)
        seen |= targets
        if not targets:
            break
        time.sleep(0.01)
    for pid, status in _reap():
        if on_reap:
            on_reap(pid, status)
    return len(seen)


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


def signal_name(signum: int) -> str:
    import signal as signal_module

    try:
        return signal_module.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _Copier:
    """Copy loop for the pipe mode: tee to a terminal and/or cap the log."""

    def __init__(self, read_fd: int, log_fd: int, tee_fd: int | None, cap: int | None) -> None:
        self.read_fd = read_fd
        self.log_fd = log_fd
        self.tee_fd = tee_fd
        self.cap = cap
        self.written = 0
        self.dropped = 0

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
        if keep:
            _write_all(self.log_fd, keep)
            self.written += len(keep)
        if self.tee_fd is not None:
            try:
                _write_all(self.tee_fd, data)
            except OSError:  # the terminal went away; the log is what matters
                self.tee_fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# ---------------------------------------------------------------------------
# The run


def execute(ctx: RunContext) -> ExecResult:
    """Run ``ctx.commands`` in order under supervision; see the module docstring."""
    install_signal_handlers()
    become_subreaper()  # idempotent; the controller already did it before dropping root
    job = ctx.job
    config = ctx.config
    grace = job.kill_grace
    deadline = None if not job.timeout else time.monotonic() + job.timeout
    tee = os.isatty(1)
    cap = config.max_output
    log_fd = os.open(ctx.output_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
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
    out_fd = pipe_w if pipe_w is not None else log_fd
    env = ctx.environment
    result: ExecResult | None = None
    current_pgid: int | None = None
    pgids: list[int] = []
    old_cwd = None
    try:
        old_cwd = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        pass
    try:
        try:
            os.chdir(ctx.working_directory)
        except OSError as err:
            return ExecResult("failed", 125, reason=(
                f"cannot enter working_directory {str(ctx.working_directory)!r}: {err.strerror}"))
        for index, argv in enumerate(ctx.commands):
            label = ctx.command_text[index] if index < len(ctx.command_text) else " ".join(argv)
            where = f"command {index + 1} ({label})" if len(ctx.commands) > 1 else f"command ({label})"
            if stop_requested():
                break
            path, status, why = resolve_command(argv[0], env)
            if path is None:
                result = ExecResult("failed", status, exit_code=status, reason=f"{where}: {why}")
                break
            try:
                pid = spawn(path, argv, env, out_fd)
            except OSError as err:
                import errno

                code = 127 if err.errno == errno.ENOENT else 126
                what = ("not found (or its interpreter is missing)" if code == 127
                        else f"cannot be executed: {err.strerror}")
                result = ExecResult("failed", code, exit_code=code, reason=f"{where}: {path} {what}")
                break
            current_pgid = pid
            pgids.append(pid)
            wait_status = _wait_main(pid, deadline, copier)
            if wait_status is None:  # timeout or stop signal: stop everything now
                signum = stop_requested()
                if signum is not None:
                    sweep(ctx.run_id, grace, first_signal=signum, pgids=[current_pgid])
                    who = ("run-job --kill-job" if os.path.exists(
                        os.path.join(ctx.run_dir, ".kill-request")) else "run-job received")
                    result = ExecResult("killed", 128 + signum, signal=signum, reason=(
                        f"{who} {signal_name(signum)}; {where} and its process"
                        " tree were stopped"))
                else:
                    sweep(ctx.run_id, grace, pgids=[current_pgid])
                    result = ExecResult("timed_out", 124, reason=(
                        f"timed out after {_fmt_duration(job.timeout)} in {where};"
                        " the whole process tree was stopped"))
                break
            code = os.waitstatus_to_exitcode(wait_status)
            if code < 0:
                result = ExecResult("failed", 128 - code, signal=-code, reason=(
                    f"{where} was killed by {signal_name(-code)}"))
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
        # Leftovers: anything still below us (or carrying the marker) is swept.
        if has_children():
            count = sweep(ctx.run_id, grace, pgids=pgids)
            if count:
                note = (f"{count} leftover process{'es' if count != 1 else ''} stopped"
                        f" after the last command (TERM, {_fmt_duration(grace)} grace, KILL)")
                result = replace(result, reason=f"{result.reason}; {note}" if result.reason else note)
        if copier is not None:
            os.close(pipe_w)
            pipe_w = None
            try:
                copier.pump(drain=True)
            except OSError:
                pass
            if copier.dropped:
                note = (f"output.log capped at {copier.cap} bytes (max_output);"
                        f" {copier.dropped} bytes dropped")
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


def _wait_main(pid: int, deadline: float | None, copier: _Copier | None) -> int | None:
    """Wait for ``pid``; its wait status, or None on timeout or stop signal."""
    while True:
        for child, status in _reap():
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
        ready = _wait_events(timeout, copier.read_fd if copier else None)
        if copier is not None and copier.read_fd in ready:
            copier.pump()


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "no limit"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:g}s"
