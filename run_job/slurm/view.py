"""The shared view of one user's Slurm jobs on this host: one ``squeue`` per 10 s for every waiting run.

A Slurm run waits for its job's own ``job.status`` first (``batch._Watch``);
Slurm is asked only for what ``job.status`` cannot tell: a job that ended
without writing it (cancelled while pending, node failure, out of memory),
when the job started (for the ``timeout``), and whether the controller can
be reached at all. Every run of a user waiting on this host reads that from
one file, the *view*: the answer of ``squeue -u USER -t all -h -o '%i|%T'``
(one RPC for all the user's jobs, finished ones included for MinJobAge) and
when it was asked. Whichever waiter finds the view older than ``PERIOD``
refreshes it, under an exclusive ``flock`` taken without waiting (the others
read the old view meanwhile, and look again a second later): the controller
sees at most one such question per ``PERIOD`` per host, user and cluster,
however many runs wait. Each waiter looks every 30 s, at its own moment
(``batch.LOOK_EVERY``), so that waiters never wake together.

Where: ``<run_directory>/slurm-view.d/`` (a slug holds no dot, so the name
never meets a job's ``<slug>.lock``), a folder made by the waiting run (the
service user after the switch), mode 0700, refused unless this user owns it;
every file is opened relative to that folder's descriptor. In it, per host,
user and cluster (``SLURM_CONF``): ``<host>.<user>.<crc32 of SLURM_CONF>.view``
and ``.lock``. A view is read bounded (``security.read_bounded``: never a
symlink, a FIFO or a device, at most ``LIMIT`` bytes, owned by this user and
writable by it alone) and written atomically (``atomic.write_atomic``).
Anything else there (garbage, a link, a FIFO, another owner, a huge file, a
view of another boot) reads as no view: the next refresh replaces it.

The file: a first line ``MAGIC``, a second line of JSON (``boot``: the
kernel's boot id; ``asked``/``answered``: ``time.monotonic()`` when squeue
was started and when it answered, one clock for every process of a boot;
``error``: why squeue failed, empty when it answered; ``since``: when the
failures began), then one line per job: ``ID STATE FLAGS`` (``a``: active,
``s``: started, ``-``: neither; the refresher classifies with the
vocabulary's state sets, so a reader needs none of it).

What a waiter may conclude (``Snapshot.about``):

* a view asked before the run's job was submitted says nothing about it
  (the job may be newer than the answer): keep waiting;
* ``error``: Slurm could not be asked; the waiter counts unreachable time
  from ``since`` (never before its own submission) against
  ``slurm.unreachable_timeout``. Unreachable is never "gone";
* the job listed: active or not, started or not;
* the job absent from a view asked after its submission: ended or
  forgotten. The run then asks about its own job once (``scontrol show
  job``, ``sacct``): what a run needs at its end.

Start-up cost: a waiting run imports this module; it imports only ``os``,
``time``, ``errno``, ``fcntl``, ``stat``, ``zlib`` and cheap run_job modules
(``security``, ``atomic``, ``jsoncodec``). A waiter that finds the view fresh
runs no subprocess; the refresher imports the client (and through it the
vocabulary) when it refreshes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
import zlib
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

from run_job import jsoncodec
from run_job.atomic import write_atomic
from run_job.security import read_bounded

PERIOD = 10.0  # seconds: a view younger than this is fresh; older, one waiter refreshes it
# How often one waiting run looks at the view (batch._Watch and, handed off,
# waiting.py); after a busy refresh lock, how soon it looks again.
LOOK_EVERY = 10.0
RETRY = 1.0
FOLDER = "slurm-view.d"
LIMIT = 16 * 1024 * 1024  # bytes of a view (~30 bytes a job)
MAGIC = b"process-control slurm view 1\n"
FIELDS = ("job_id", "state")  # what squeue is asked for (vocabulary.SQUEUE_CODES)
_FUTURE = 1.0  # seconds: a view "answered" later than now (+ this) is not ours: stale

_boot: list[str] = []


def boot_id() -> str:
    """The kernel's boot id (monotonic times compare only within one boot)."""
    if not _boot:
        try:
            with open("/proc/sys/kernel/random/boot_id", "rb") as f:
                _boot.append(f.read(64).decode("ascii", "replace").strip())
        except OSError:
            _boot.append("")
    return _boot[0]


def view_name(host: str, user: str, slurm_conf: str) -> str:
    """The file name of the view of ``user`` on ``host`` for the cluster
    ``slurm_conf`` names (pure; no separator or leading dot survives)."""
    def clean(text: str) -> str:
        return text.replace("/", "_").replace("\0", "_").lstrip(".") or "_"

    crc = zlib.crc32(os.fsencode(slurm_conf))
    return f"{clean(host)}.{clean(user)}.{crc:08x}.view"


class Found:
    """One job's line of a view."""

    __slots__ = ("state", "active", "started")

    def __init__(self, state: str, active: bool, started: bool) -> None:
        self.state, self.active, self.started = state, active, started

    def __repr__(self) -> str:
        return f"Found({self.state!r}, active={self.active}, started={self.started})"


class Snapshot:
    """A view as read: its times, its error and the job lines (bytes)."""

    __slots__ = ("asked", "answered", "error", "since", "body")

    def __init__(self, asked: float, answered: float, error: str, since: float | None,
                 body: bytes) -> None:
        self.asked, self.answered, self.error, self.since, self.body = asked, answered, error, since, body

    def fresh(self, now: float) -> bool:
        return self.answered <= now + _FUTURE and now < self.answered + PERIOD

    def find(self, job_id: str) -> Found | None:
        """The job's line, or None when the view does not list it."""
        key = b"\n" + job_id.encode("ascii", "replace") + b" "
        start = self.body.find(key)
        if start < 0:
            return None
        end = self.body.find(b"\n", start + 1)
        words = self.body[start + 1:end if end >= 0 else len(self.body)].split(b" ")
        if len(words) != 3:
            return None
        return Found(words[1].decode("ascii", "replace"), b"a" in words[2], b"s" in words[2])

    def about(self, job_id: str, submitted: float) -> tuple[str, Found | None]:
        """What this view says of job ``job_id`` submitted at ``submitted``
        (monotonic, taken after sbatch answered): ``("nothing", None)``
        (asked before the submission), ``("unreachable", None)``,
        ``("absent", None)`` or ``("listed", Found)``."""
        if self.asked < submitted:
            return "nothing", None
        if self.error:
            return "unreachable", None
        found = self.find(job_id)
        return ("absent", None) if found is None else ("listed", found)


def render(*, asked: float, answered: float, error: str, since: float | None,
           jobs: list[tuple[str, str, bool, bool]], boot: str | None = None) -> bytes:
    """A view's bytes (pure): ``jobs`` as (id, state, active, started)."""
    head = {"boot": boot_id() if boot is None else boot, "asked": asked, "answered": answered,
            "error": error, "since": since, "jobs": len(jobs)}
    lines = [MAGIC, jsoncodec.dumps(head).encode(), b"\n"]
    for job_id, state, active, started in jobs:
        if " " in job_id or "\n" in job_id or not job_id:
            continue
        flags = ("a" if active else "") + ("s" if started else "")
        lines.append(f"{job_id} {state.replace(' ', '_') or '?'} {flags or '-'}\n".encode(
            "ascii", "replace"))
    return b"".join(lines)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse(data: bytes, boot: str | None = None) -> Snapshot | None:
    """A view's bytes -> Snapshot; None for anything else (pure)."""
    if not data.startswith(MAGIC):
        return None
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        return None
    try:
        head = jsoncodec.loads(data[len(MAGIC):end])
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(head, dict):
        return None
    asked, answered, error, since = (head.get("asked"), head.get("answered"), head.get("error"),
                                     head.get("since"))
    if head.get("boot") != (boot_id() if boot is None else boot):
        return None
    if not (_number(asked) and _number(answered) and isinstance(error, str)
            and (since is None or _number(since))):
        return None
    assert isinstance(asked, (int, float)) and isinstance(answered, (int, float))
    return Snapshot(float(asked), float(answered), error,
                    None if since is None else float(since),
                    data[end:])


class View:
    """The view of one user's jobs on this host (see the module docstring).

    ``open()`` first (False: no safe folder; ``problem`` says why); then
    ``read()`` (never runs a command) and, when the view is stale,
    ``refresh(client)`` (runs squeue unless another waiter does it now)."""

    def __init__(self, run_directory: str | os.PathLike, user: str, slurm_conf: str,
                 host: str | None = None) -> None:
        self.folder = os.path.join(os.fspath(run_directory), FOLDER)
        self.user = user
        self.name = view_name(host or os.uname().nodename, user, slurm_conf)
        self.lock_name = self.name[:-len(".view")] + ".lock"
        self.dfd: int | None = None
        self.problem = ""
        self.uid = os.geteuid()

    @property
    def path(self) -> str:
        return os.path.join(self.folder, self.name)

    @classmethod
    def at(cls, folder: str, name: str) -> View:
        """The view of a hand-off (``waiting.py``): its folder and file name as
        the waiting run's ``View`` had them; ``open()`` it first."""
        vw = cls.__new__(cls)
        vw.folder, vw.name = folder, name
        vw.lock_name = name[:-len(".view")] + ".lock"
        vw.user, vw.dfd, vw.problem, vw.uid = "", None, "", os.geteuid()
        return vw

    def open(self) -> bool:
        """Make (0700) or open the folder; False when it is not this user's alone."""
        if self.dfd is not None:
            return True
        try:
            os.mkdir(self.folder, 0o700)
        except FileExistsError:
            pass
        except OSError as err:
            self.problem = f"cannot create {self.folder}: {err.strerror}"
            return False
        try:
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as err:
            self.problem = f"cannot open {self.folder}: {err.strerror or err}"
            return False
        st = os.fstat(fd)
        if st.st_uid != self.uid:
            os.close(fd)
            self.problem = f"{self.folder} is owned by uid {st.st_uid}, not by uid {self.uid}"
            return False
        if st.st_mode & 0o077:
            try:
                os.fchmod(fd, 0o700)  # ours: made with a lax umask, or changed
            except OSError as err:
                os.close(fd)
                self.problem = f"{self.folder} has mode {st.st_mode & 0o7777:04o}: {err.strerror}"
                return False
        self.dfd = fd
        return True

    def close(self) -> None:
        if self.dfd is not None:
            os.close(self.dfd)
            self.dfd = None

    def read(self) -> Snapshot | None:
        """The view as it stands; None when there is none (or not a usable one)."""
        if self.dfd is None:
            return None
        try:
            data = read_bounded(self.name, LIMIT, nofollow=True, dir_fd=self.dfd, owner=self.uid)
        except (OSError, ValueError):
            return None
        return parse(data)

    def refresh(self, client: Any, now: float | None = None,
                held: int | None = None) -> Snapshot | None:
        """Ask squeue through ``client`` and write the view, unless another
        waiter holds the refresh lock (None: read its view when it lands) or
        the view under the lock is fresh already (returned). A failed squeue
        is recorded in the view (``error``, ``since``): never "no jobs".
        ``held``: the lock, taken already (by the lean waiter, ``take_lock``);
        closed here."""
        if self.dfd is None:
            if held is not None:
                os.close(held)
            return None
        lock_fd = held if held is not None else self._lock()
        if lock_fd is None:
            return None
        try:
            current = self.read()
            if current is not None and current.fresh(time.monotonic() if now is None else now):
                return current
            return self._ask(client, current)
        finally:
            os.close(lock_fd)  # releases the flock

    def take_lock(self) -> int | None:
        """The refresh lock, taken without waiting (a descriptor for
        ``refresh(held=)``), or None when another waiter is refreshing."""
        return self._lock()

    def _lock(self) -> int | None:
        """The refresh lock taken (a descriptor), or None when it is busy or unusable."""
        fd = self._open_lock()
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                self.problem = f"cannot lock {self.folder}/{self.lock_name}: {err.strerror}"
            return None
        return fd

    def _open_lock(self) -> int | None:
        """The lock file, opened without following a link: a regular file of
        this user. A link, a FIFO or another owner's file in its place is
        removed (the folder is ours) and the lock made anew, once."""
        assert self.dfd is not None
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        for attempt in (1, 2):
            try:
                fd = os.open(self.lock_name, flags, 0o600, dir_fd=self.dfd)
            except OSError as err:
                if err.errno != errno.ELOOP or attempt == 2:
                    self.problem = f"cannot open {self.folder}/{self.lock_name}: {err.strerror}"
                    return None
            else:
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode) and st.st_uid == self.uid:
                    return fd
                os.close(fd)
                if attempt == 2:
                    return None
            try:
                os.unlink(self.lock_name, dir_fd=self.dfd)
            except OSError:
                return None
        return None

    def _ask(self, client: Any, previous: Snapshot | None) -> Snapshot:
        from run_job.errors import SlurmError
        from run_job.slurm.vocabulary import ACTIVE_STATES, STARTED_STATES

        asked = time.monotonic()
        error, jobs = "", []
        try:
            entries = client.queue(user=self.user, states="all", fields=FIELDS)
        except SlurmError as err:
            error = str(err) or type(err).__name__
        else:
            for entry in entries:
                state = entry.state or ""
                jobs.append((entry.job_id, state, state in ACTIVE_STATES, state in STARTED_STATES))
        answered = time.monotonic()
        since = None
        if error:
            since = previous.since if previous is not None and previous.error and \
                previous.since is not None else asked
        data = render(asked=asked, answered=answered, error=error, since=since, jobs=jobs)
        try:
            write_atomic(self.name, data, 0o600, fsync=False, dir_fd=self.dfd)
        except OSError as err:
            self.problem = f"cannot write {self.path}: {err.strerror}"
        return Snapshot(asked, answered, error, since, data[data.find(b"\n", len(MAGIC)):])
