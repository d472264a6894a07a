"""The lean waiter: the small interpreter a run's wait is handed to (``handoff.py``).

Imports only ``os``, ``time``, ``select``, ``marshal``, ``_signal`` and
``handoff``'s few lines: the whole process stays at about 3 MB of private
memory. It decides nothing about the run: it sleeps until something must be
decided, then execs back into the full run-job (``cli.resume_main``), which
goes on where the executor stopped. Something to decide is:

- local run: the command ended (seen with ``waitid(WNOWAIT)``: the full
  side reaps it and reads its status), the deadline (``timeout``) came, or a
  stop signal (TERM, INT, HUP) arrived;
- Slurm run: see ``slurm/waiting.py`` (named by the executor's state).

A stop signal is passed on in the state (``stop``), and the full side
records it as its own handler would have. Other children that end (a
command's leftovers, reparented to the run's subreaper) are reaped here, as
the full supervisor would reap them.
"""

from __future__ import annotations

import os
import select
import time

import _signal

from run_job.run import handoff

STOPS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)
_MAX_SLEEP = 3600.0
_received: list[int] = []
_wakeup: list[int] = []


def _on_signal(signum: int, frame: object) -> None:  # pragma: no cover - trivial
    _received.append(signum)


def stop() -> int | None:
    for signum in _received:
        if signum in STOPS:
            return signum
    return None


def sleep(timeout: float | None, *fds: int) -> list[int]:
    """Until a signal, one of ``fds`` readable, or ``timeout`` (seconds)."""
    poller = select.poll()
    poller.register(_wakeup[0], select.POLLIN)
    for fd in fds:
        poller.register(fd, select.POLLIN)
    ms = None if timeout is None else max(0, int(min(timeout, _MAX_SLEEP) * 1000) + 1)
    ready = [fd for fd, _ in poller.poll(ms)]
    if _wakeup[0] in ready:
        try:
            while os.read(_wakeup[0], 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass
    return ready


def main(package: str, fd: int) -> None:
    state = handoff.read_state(fd)
    handoff.set_comm(state)
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    _wakeup.append(r)
    _signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    for signum in STOPS + (_signal.SIGCHLD,):
        _signal.signal(signum, _on_signal)
    handoff.unblock()
    executor = state["saved"]["loop"]["exec"]
    if executor["kind"] == "local":
        wait_local(executor)
    elif executor.get("lean"):  # an executor's own wait (slurm/waiting.py)
        module = __import__(executor["lean"], fromlist=["wait"])
        module.wait(executor, stop, sleep)
    elif executor["kind"] == "delay":  # before a retry: until its time, or a stop
        while stop() is None and time.monotonic() < executor["until"]:
            sleep(executor["until"] - time.monotonic())
            reap_leftovers()
    state["stop"] = stop()
    back(state, package)


def wait_local(executor: dict) -> None:
    """Until the command ended (not reaped), its deadline, or a stop signal."""
    pid, deadline = executor["pid"], executor["deadline"]
    while stop() is None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                break
            if info.si_pid == pid:
                return
            try:  # a leftover of the command: reaped, as the supervisor does
                os.waitpid(info.si_pid, 0)
            except ChildProcessError:
                pass
        timeout = None
        if deadline is not None:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                return
        sleep(timeout)


def reap_leftovers() -> None:
    """Children that ended (a command's leftovers, reparented to the run):
    no zombie kept, as the full run-job's own sleep does."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def back(state: dict, package: str) -> None:
    """Exec the full run-job to go on; retried (a run is never left alone)."""
    import marshal
    import sys

    data = marshal.dumps(state)
    delay = 0.1
    while True:
        _signal.pthread_sigmask(_signal.SIG_BLOCK, handoff.BLOCKED)
        memfd = None
        try:
            memfd = handoff.write_state(data)
            os.set_inheritable(memfd, True)
            os.execv(state["executable"], handoff.boot_argv(state, handoff.FULL_BOOT, memfd))
        except OSError as err:
            if memfd is not None:
                os.close(memfd)
            try:
                sys.stderr.write(f"run-job: cannot go back from waiting ({err}); retrying\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, handoff.BLOCKED)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
