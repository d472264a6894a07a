"""The process tree of a run: reading /proc, recognising processes, sweeping them.

A run's processes are found three ways: as descendants of run-job (it is
their child subreaper), as members of the process groups of its commands, and
by the ``RUN_JOB_RUN_ID=<run id>`` marker in ``/proc/<pid>/environ`` (how the
next run, or ``--kill-job``, finds the orphans of a run whose run-job died);
a run with ``limits.memory`` or ``limits.tasks`` adds a fourth, exact one:
the members of its cgroup (``confine.members``).
A process named by a record is signalled only once its identity is proved
by its start time (``same_process``). ``sweep`` stops a set: the first
signal, a grace period, then SIGKILL until nothing is left.
"""

from __future__ import annotations

import os
import time

# The C module: ``signal`` itself builds its IntEnums on import (start-up cost).
import _signal as signal
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Callable, Iterable


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


def same_process(pid: object, start_time: object) -> bool:
    """Is ``pid`` provably the process that started at ``start_time``?

    The test before signalling a process named by a record: without a start
    time to compare, a reused pid cannot be told from the original, so the
    answer is no.
    """
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 1:
        return False
    if isinstance(start_time, bool) or not isinstance(start_time, int):
        return False
    return process_alive(pid, start_time)


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


def reap() -> list[tuple[int, int]]:
    """Reap every exited child; [(pid, wait status)]."""
    reaped: list[tuple[int, int]] = []
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


def _targets(run_id: str | None, pgids: Iterable[int], own_tree: bool,
             members: Callable[[], set[int]] | None = None,
             spare: Iterable[int] = ()) -> set[int]:
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
    if members is not None:
        found |= members()
    found.discard(os.getpid())
    for pid in spare:  # run-job's own helpers (event hooks) and what they started
        if pid in table:
            found -= {pid} | descendants(pid, table)
    return found


def _send(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def sweep(run_id: str | None, grace: float, *, first_signal: int = signal.SIGTERM,
          pgids: Iterable[int] = (), own_tree: bool = True,
          on_reap: Callable[[int, int], None] | None = None,
          wait: Callable[[float], object] = time.sleep,
          members: Callable[[], set[int]] | None = None, spare: Iterable[int] = ()) -> int:
    """Stop a run's processes: ``first_signal``, up to ``grace`` seconds, SIGKILL.

    Targets: run-job's descendants (``own_tree``), members of ``pgids``,
    processes with the run's marker and, for a run with a cgroup, every
    process in it (``members``: what left the session, the process groups
    and the marker behind is still there); never the processes of ``spare``
    nor their descendants (run-job's hook runners, not the job's).
    ``wait(seconds)`` sleeps between two looks (the supervisor passes its
    signal-aware wait, which SIGCHLD ends early). Returns how many processes
    were found.
    """
    pgids, spare = tuple(pgids), tuple(spare)
    targets = _targets(run_id, pgids, own_tree, members, spare)
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
        for pid, status in reap():
            if on_reap:
                on_reap(pid, status)
        targets = _targets(run_id, pgids, own_tree, members, spare)
        seen |= targets
        if not targets:
            return len(seen)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        # Children wake us with SIGCHLD; others (orphans of a lost run) are polled.
        wait(min(left, 0.05 if not own_tree else 0.25))
    # SIGKILL until nothing is left (a forking process may need a few rounds).
    for _ in range(100):
        _send(targets, signal.SIGKILL)
        for pid, status in reap():
            if on_reap:
                on_reap(pid, status)
        targets = _targets(run_id, pgids, own_tree, members, spare)
        seen |= targets
        if not targets:
            break
        time.sleep(0.01)
    for pid, status in reap():
        if on_reap:
            on_reap(pid, status)
    return len(seen)


def signal_verified(pid: object, start_time: object, signum: int) -> bool:
    """Send ``signum`` to ``pid`` only if it is the process that started at
    ``start_time``: through a pidfd taken before the check, so that the pid
    cannot be reused between the check and the signal. False when it is not
    that process (or is gone); PermissionError passes."""
    import signal as signal_module

    if not same_process(pid, start_time):
        return False
    try:
        fd = os.pidfd_open(pid)  # type: ignore[arg-type]
    except ProcessLookupError:
        return False
    try:
        if not same_process(pid, start_time):  # reused before the pidfd was taken
            return False
        try:
            signal_module.pidfd_send_signal(fd, signum)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(fd)
