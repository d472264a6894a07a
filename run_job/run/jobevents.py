"""Events signalled from inside a run (SPEC §9): ``<run_dir>/events.jsonl``.

``run-job --trigger EVENT [--message TEXT]`` runs inside a run, as the job's
user, and appends one JSON line (``time``, ``event``, ``message``) to its
run folder's ``events.jsonl`` under a flock, then exits at once: it reads no
config and waits for no hook. It trusts its environment only as far as the
job's own user may: it writes nothing but that one line, into a file the
supervisor created (never creating one itself, never following a link).

The supervisor of the run (``EventWatch``, local or Slurm) reads the new
lines, checks each event against the job file's ``events`` again (the
environment's list is only for the "did you mean"), cuts the message again,
records the events in ``status.json`` (``events``) and starts their hooks in
a child process (``alerts.notify.start_event_hooks``): supervision never
waits for a hook. A local supervisor wakes on inotify (or looks every
second); a Slurm run's watcher looks at every poll, and the end of any run
takes the last lines and waits for the hooks still running before its end
is recorded (bounded by the hooks' own time limit).
"""

from __future__ import annotations

import fcntl
import os
import stat
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any, Callable

from run_job import clock, logsetup
from run_job.alerts.events import ENV_EVENTS, cut_message, declared_from_env, undeclared_message
from run_job.errors import UsageError

EVENTS_FILE = "events.jsonl"
LINE_LIMIT = 4096  # bytes of one line: a longer one was not written by --trigger
READ_LIMIT = 1 << 18  # bytes read per look
MAX_EVENTS = 1000  # events of one run that are recorded and fire hooks
HOOK_WAIT = 600.0  # seconds the end of a run waits for event hooks at most


def events_path(run_dir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(run_dir), EVENTS_FILE)


def create(run_dir: str | os.PathLike) -> None:
    """The supervisor makes the (empty) file at the start of a run whose job
    declares events: ``--trigger`` only appends to it."""
    fd = os.open(events_path(run_dir),
                 os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    os.close(fd)


# ---------------------------------------------------------------------------
# run-job --trigger


def trigger(environ: dict[str, str], event: str, message: str) -> dict[str, str | None]:
    """Record ``event`` in the run named by ``environ``; the line written.
    Raises UsageError (exit 2) outside a run and for an undeclared event."""
    from run_job.run.records import run_id_time

    slug = environ.get("RUN_JOB_NAME") or ""
    run_id = environ.get("RUN_JOB_RUN_ID") or ""
    run_dir = environ.get("RUN_JOB_RUN_DIR") or ""
    if not (slug and run_id and run_dir):
        raise UsageError("--trigger works only inside a run of a job (RUN_JOB_NAME,"
                         " RUN_JOB_RUN_ID and RUN_JOB_RUN_DIR are not all set)")
    if (run_id_time(run_id) is None or "/" in run_id or not os.path.isabs(run_dir)
            or os.path.basename(os.path.normpath(run_dir)) != run_id):
        raise UsageError(f"--trigger: RUN_JOB_RUN_DIR {run_dir!r} is not the folder of run"
                         f" {run_id!r}")
    declared = declared_from_env(environ.get(ENV_EVENTS))
    if event not in declared:
        raise UsageError(undeclared_message(event, slug, declared))
    line = {"time": clock.iso(clock.now()), "event": event, "message": cut_message(message)}
    _append(events_path(run_dir), line)
    return line


def _append(path: str, line: dict[str, str | None]) -> None:
    from run_job.jsoncodec import dumps

    data = (dumps(line) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as err:
        raise UsageError(f"--trigger: this run takes no events ({path} is missing; the job"
                         " declared none when the run started)") from err
    except OSError as err:
        raise UsageError(f"--trigger: cannot write {path}: {err.strerror}") from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"--trigger: {path} is not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as err:
        raise UsageError(f"--trigger: cannot write {path}: {err.strerror}") from err
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# The supervisor's side


def parse_lines(data: bytes, declared: tuple[str, ...]) -> tuple[list[dict[str, str]], list[str]]:
    """Events of complete ``events.jsonl`` lines (pure): the usable ones
    (message cut again), and why others were dropped."""
    from run_job.jsoncodec import loads

    events, dropped = [], []
    for raw in data.splitlines():
        if not raw.strip():
            continue
        if len(raw) > LINE_LIMIT:
            dropped.append(f"a line of {len(raw)} bytes")
            continue
        try:
            item = loads(raw)
        except ValueError:
            dropped.append("a line that is not JSON")
            continue
        if not isinstance(item, dict) or not isinstance(item.get("event"), str):
            dropped.append("a line without an event")
            continue
        event = item["event"]
        if event not in declared:
            dropped.append(f"undeclared event {cut_message(event)[:64]!r}")
            continue
        when = item.get("time")
        message = item.get("message")
        events.append({"time": when if isinstance(when, str) and clock.parse_iso(when)
                       else clock.iso(clock.now()),
                       "event": event,
                       "message": cut_message(message) if isinstance(message, str) else ""})
    return events, dropped


class EventWatch:
    """A run's events as its supervisor sees them (see the module docstring).

    ``fd`` (an inotify descriptor, or None) and ``timeout`` (how long the
    caller may sleep without looking, or None) go into the caller's wait;
    ``check()`` after every wake-up; ``spare()``: the hook runners, which a
    sweep of the job's processes must leave alone; ``finish()`` at the end.
    """

    def __init__(self, config: Any, job: Any, run_dir: str, record: Callable[[], dict],
                 update_status: Callable[..., None], close: tuple[int, ...] = (),
                 use_inotify: bool = True) -> None:
        """``use_inotify``: False for a Slurm run, whose job writes from a node
        where inotify on this host sees nothing (it is looked at every second)."""
        from run_job.run import inotify

        self.config, self.job, self.record, self.update_status = config, job, record, update_status
        self.path = events_path(run_dir)
        self.close = close
        self.offset = 0
        self.next_look = 0.0
        self.events: list[dict[str, Any]] = []
        self.running: list[tuple[Any, list[int]]] = []  # (EventHooks, indexes into events)
        self.watch = inotify.Watch.open() if use_inotify else None
        if self.watch is not None and not self.watch.add(self.path, inotify.IN_MODIFY):
            self.watch.close()
            self.watch = None

    @property
    def fd(self) -> int | None:
        return self.watch.fd if self.watch is not None else None

    @property
    def timeout(self) -> float | None:
        return None if self.watch is not None else 1.0

    def spare(self) -> set[int]:
        return {hooks.pid for hooks, _ in self.running}

    def poll(self, ready: list[int] | tuple[int, ...] = ()) -> None:
        """After a wake-up of the caller's wait (``ready``: the descriptors
        that woke it): look when the file changed, when hooks are running, or
        (without inotify) once a second; cheap otherwise."""
        import time

        now = time.monotonic()
        if ((self.watch is not None and self.watch.fd in ready) or self.running
                or (self.watch is None and now >= self.next_look)):
            self.next_look = now + 1.0
            self.check()

    def check(self) -> None:
        """Take the new lines, record them, start their hooks; collect the
        results of hooks that ended. Never raises."""
        try:
            if self.watch is not None:
                self.watch.drain()
            changed = self._read() | self._collect()
            if changed:
                self.update_status(events=[dict(e) for e in self.events])
        except Exception as err:  # noqa: BLE001 - events never stop supervision
            logsetup.error("%s: events: %s: %s", self.job.slug, type(err).__name__, err)

    def _read(self) -> bool:
        from run_job.security import open_regular

        try:
            fd, _ = open_regular(self.path, nofollow=True)
        except OSError:
            return False
        try:
            data = os.pread(fd, READ_LIMIT, self.offset)
        finally:
            os.close(fd)
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) > LINE_LIMIT:  # no line end in sight: skip the rubbish
                self.offset += len(data)
            return False
        self.offset += end + 1
        events, dropped = parse_lines(data[:end + 1], self.job.events)
        for why in dropped:
            logsetup.warning("%s: run-job --trigger: ignored %s", self.job.slug, why)
        if not events:
            return False
        for event in events:
            if len(self.events) >= MAX_EVENTS:
                logsetup.warning("%s: more than %d events in one run: the rest are ignored",
                                 self.job.slug, MAX_EVENTS)
                break
            self.events.append(event)
            logsetup.info("%s: event %s: %s", self.job.slug, event["event"], event["message"])
            self._start(len(self.events) - 1)
        return True

    def _start(self, index: int) -> None:
        from run_job.alerts import notify

        event = self.events[index]
        try:
            hooks = notify.start_event_hooks(self.config, self.job, self.record(), event["event"],
                                             event["message"], close=self.close)
        except OSError as err:
            logsetup.error("%s: the hooks of event %s could not start: %s", self.job.slug,
                           event["event"], err)
            event["hooks"] = [{"event": event["event"], "hook": "", "error": str(err)}]
            return
        if hooks is not None:
            self.running.append((hooks, [index]))

    def _collect(self) -> bool:
        changed = False
        for item in list(self.running):
            hooks, indexes = item
            if hooks.done():
                self.running.remove(item)
                for index in indexes:
                    self.events[index]["hooks"] = hooks.results
                changed = True
        return changed

    def finish(self) -> list[dict[str, Any]]:
        """At the end of the run: the last lines, then every hook still
        running waited for (on SIGCHLD, bounded); the run's events."""
        import select
        import time

        self.check()
        deadline = time.monotonic() + HOOK_WAIT
        while self.running and time.monotonic() < deadline:
            poller = select.poll()
            for hooks, _ in self.running:
                poller.register(hooks.fd, select.POLLIN)
            poller.poll(1000)
            self.check()
        for _hooks, indexes in self.running:
            logsetup.warning("%s: the hooks of event %s still run after %g s; not waited for",
                             self.job.slug, self.events[indexes[0]]["event"], HOOK_WAIT)
        if self.watch is not None:
            self.watch.close()
            self.watch = None
        return [dict(e) for e in self.events]
