"""The limits of one local run, for real (SPEC §13); the decisions are ``limits.py``'s.

``prepare`` runs in ``controller.prepare``, as root, before the switch to the
service user, and only for a job with ``limits``:

1. every refusal first, nothing made yet: a hard rlimit run-job cannot give,
   ``memory``/``tasks`` without root, a controller the host lacks, a cgroup
   folder on the way that someone but root could write (``LimitError``,
   exit 125, one line);
2. for ``memory``/``tasks``: in each hierarchy, ``process-control/<slug>.<run_id>``
   is made through descriptors opened from ``/`` without following links
   (``security.open_trusted_dir``; the mount is checked to be the cgroup
   mount ``/proc/self/mountinfo`` names), and the limits are written into it.
   Nothing read from the service user's files names a path here: the slug
   and run id are validated, the rest comes from the kernel;
3. a cleaner is started: a root process outside the cgroup (double-forked
   before run-job becomes a subreaper, so that it is nobody's child in the
   run) that waits for run-job's end (the one pipe it shares with run-job
   closes, however run-job ends, SIGKILL included), then kills whatever is
   left in the cgroup and removes it. The service user cannot signal it;
4. run-job moves itself into the cgroup: from then on every process of the
   run is born inside, whatever it does with sessions and process groups,
   and nothing needs write access to cgroupfs after the switch. The
   service user can neither raise the limits (root's files) nor leave (a
   move needs write access to a cgroup outside, which it has not);
5. with ``memory``, just before the move, run-job's OOM score becomes -1000
   (the kernel never chooses the supervisor when the tree reaches the limit)
   and the shim puts the old score back in each command. That needs
   CAP_SYS_RESOURCE; without it (some sandboxes) nothing changes and
   run-job competes on size with the job's processes.

run-job's own memory allocated after the move (a few MB) is charged to the
run; its single task is not counted (``pids.max`` is ``tasks`` + 1).

After the switch the executor only reads: ``members`` (the sweep) and
``counter`` (the OOM kills and refused forks for the reason).
"""

from __future__ import annotations

import os
import stat
import sys
import time

from run_job.errors import LimitError
from run_job.model import Job
from run_job.run import limits
from run_job.model import Confinement

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
_READ_LIMIT = 1 << 20  # bytes of a /proc or cgroupfs file
CLEANER_PATIENCE = 600.0  # seconds the cleaner keeps killing and removing
OOM_PROTECTED = -1000  # run-job's OOM score under a memory limit

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "limitshim.py")


def _read(path: str, dir_fd: int | None = None) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        chunks, total = [], 0
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            total += len(data)
            if total > _READ_LIMIT:
                raise OSError(27, "file too large", path)  # EFBIG
            chunks.append(data)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def _write(name: str, value: str, dir_fd: int | None) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# Before the run (as root)


def prepare(job: Job, run_id: str) -> Confinement | None:
    """Make the run's limits real (see the module docstring); None when the
    job has none. Raises LimitError (exit 125) before anything is made."""
    lim = job.limits
    settings = limits.rlimit_settings(lim)
    controllers = limits.needed_controllers(lim)
    if lim is None or (not settings and not controllers):
        return None
    _check_rlimits(settings)
    python = sys.executable
    if not python or not os.access(python, os.X_OK):
        raise LimitError(f"limits cannot be set: run-job cannot find its own Python"
                         f" ({python!r}) to run the limits shim with; run run-job as installed")
    if not controllers:
        return Confinement(limits=lim, shim=(python, SHIM, limits.shim_settings(settings, None)))
    if os.geteuid() != 0:
        from run_job.privileges import user_name

        raise LimitError(limits.not_root_message(controllers, user_name()))
    places = find_places(controllers)
    cgroup = _RunCgroup(places, limits.run_cgroup_name(job.slug, run_id), lim)
    cgroup.create()  # LimitError; nothing is left behind when it fails
    cgroup.start_cleaner()
    old_score = _protect_from_oom() if lim.memory else None  # before run-job can be chosen
    cgroup.join()
    shim = (python, SHIM, limits.shim_settings(settings, old_score))
    return Confinement(limits=lim, shim=shim if (settings or old_score is not None) else (),
                       procs=cgroup.file(places[0], "cgroup.procs"),
                       oom_counter=cgroup.counter("memory"), fork_counter=cgroup.counter("pids"),
                       cleaner_fd=cgroup.pipe_w)


def _check_rlimits(settings: tuple) -> None:
    if not settings:
        return
    import resource

    hard = {name: resource.getrlimit(getattr(resource, f"RLIMIT_{name.upper()}"))[1]
            for name, _, _ in settings}
    problem = limits.rlimit_problem(settings, hard, resource.RLIM_INFINITY)
    if problem:
        raise LimitError(problem)


def find_places(controllers: tuple[str, ...]) -> list[limits.Place]:
    """Where the run's cgroup goes on this host; LimitError when it cannot."""
    try:
        mounts = limits.parse_mountinfo(_read("/proc/self/mountinfo"))
        own = limits.parse_proc_cgroup(_read("/proc/self/cgroup"))
    except OSError as err:
        raise LimitError(f"{limits.limit_keys(controllers)} cannot be enforced: cannot read"
                         f" {err.filename}: {err.strerror}; mount /proc") from err
    on_v1 = set().union(*(m.controllers for m in mounts if m.version == 1))
    v2: dict[str, str] = {}
    if set(controllers) - on_v1:
        for mount in mounts:
            if mount.version == 2:
                try:
                    v2[mount.mount_point] = _read(os.path.join(mount.mount_point, "cgroup.controllers"))
                except OSError:
                    pass
    try:
        return limits.place_cgroups(controllers, mounts, own, v2)
    except limits.LimitRefused as err:
        raise LimitError(str(err)) from None


def host_problem(controllers: tuple[str, ...]) -> str | None:
    """Why this host could not give a run these cgroup controllers (for
    ``--validate``: the host alone, whoever runs it), or None."""
    if not controllers:
        return None
    try:
        find_places(controllers)
    except LimitError as err:
        return str(err)
    return None


def _protect_from_oom() -> int | None:
    """run-job's OOM score becomes -1000; returns the old one (for the shim),
    or None when it cannot be read or set (then nothing is changed)."""
    try:
        old = int(_read("/proc/self/oom_score_adj").strip())
        _write("/proc/self/oom_score_adj", str(OOM_PROTECTED), None)
    except (OSError, ValueError):
        return None
    return old


class _RunCgroup:
    """The run's cgroup in each of its hierarchies, while root makes it."""

    def __init__(self, places: list[limits.Place], name: str, lim) -> None:
        self.places, self.name, self.limits = places, name, lim
        self.parents: list[int] = []  # descriptor of the parent of each place's CGROUP_FOLDER
        self.made: list[int] = []  # indexes of places whose run cgroup exists

    def file(self, place: limits.Place, name: str) -> str:
        return "/".join((place.folder(), self.name, name))

    def counter(self, controller: str) -> tuple[str, str] | None:
        for place in self.places:
            if controller in place.controllers:
                file, key = limits.COUNTERS[(place.version, controller)]
                return self.file(place, file), key
        return None

    def _refuse(self, text: str) -> LimitError:
        """The error to raise; what was made so far is removed first."""
        self._undo()
        return LimitError(f"{limits.limit_keys(self.limits_controllers())} cannot be enforced: {text}")

    def limits_controllers(self) -> tuple[str, ...]:
        return tuple(sorted({c for p in self.places for c in p.controllers}))

    def create(self) -> None:
        from run_job.security import UntrustedPath, open_trusted_dir

        for place in self.places:  # every folder on every way is checked before anything is made
            parent = "/".join((place.mount_point.rstrip("/"), *place.parent)) or "/"
            try:
                fd = open_trusted_dir(parent, parent_of_new=True)
            except UntrustedPath as err:
                raise self._refuse(f"{err.strerror}; a cgroup folder root writes limits into must be"
                                   " root's alone") from None
            except OSError as err:
                raise self._refuse(f"cannot open {parent}: {err.strerror}") from None
            self.parents.append(fd)
            st = os.fstat(fd)
            if f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}" != place.dev:
                raise self._refuse(f"{parent} is not on the cgroup mount {place.mount_point}"
                                   f" ({place.dev}) that /proc/self/mountinfo names")
        for index, place in enumerate(self.places):
            for attempt in range(3):
                folder = self._folder(index)
                try:
                    os.mkdir(self.name, 0o755, dir_fd=folder)
                    break
                except FileNotFoundError:
                    # the cleaner of another run removed the folder, empty, meanwhile
                    if attempt == 2:
                        raise self._refuse(f"{place.folder()} keeps disappearing") from None
                except OSError as err:
                    raise self._refuse(f"cannot make the run's cgroup {self.file(place, '')}:"
                                       f" {err.strerror}") from None
                finally:
                    os.close(folder)
            self.made.append(index)
            leaf = os.open(self.relative(), _DIR_FLAGS, dir_fd=self.parents[index])
            try:
                for controller in place.controllers:
                    for file, value, required in limits.limit_writes(place.version, controller,
                                                                     self.limits):
                        try:
                            _write(file, value, leaf)
                        except FileNotFoundError:
                            if required:
                                raise self._refuse(f"{self.file(place, file)} does not exist") from None
                        except OSError as err:
                            raise self._refuse(f"cannot write {value} to {self.file(place, file)}:"
                                               f" {err.strerror}") from None
            finally:
                os.close(leaf)

    def relative(self) -> str:
        """The run's cgroup, relative to a place's parent descriptor."""
        return f"{limits.CGROUP_FOLDER}/{self.name}"

    def _folder(self, index: int) -> int:
        """CGROUP_FOLDER of place ``index`` (made when missing), checked to be
        root's alone, its controllers enabled (v2), stale run cgroups of this
        job removed: its descriptor."""
        from run_job.security import ownership_reason

        place, parent = self.places[index], self.parents[index]
        try:
            if place.version == 2:
                self._enable(parent, place.folder().rsplit("/", 1)[0], place.controllers)
            try:
                os.mkdir(limits.CGROUP_FOLDER, 0o755, dir_fd=parent)
            except FileExistsError:
                pass
            folder = os.open(limits.CGROUP_FOLDER, _DIR_FLAGS, dir_fd=parent)
        except OSError as err:
            raise self._refuse(f"cannot make {place.folder()}: {err.strerror}") from None
        why = ownership_reason(os.fstat(folder), {0}, "root")
        if why:
            os.close(folder)
            raise self._refuse(f"{place.folder()} is {why}; a cgroup folder root writes"
                               " limits into must be root's alone")
        try:
            if place.version == 2:
                self._enable(folder, place.folder(), place.controllers)
            self._remove_stale(folder)
        except LimitError:
            os.close(folder)
            raise
        return folder

    def _enable(self, fd: int, where: str, controllers: tuple[str, ...]) -> None:
        """cgroup v2: the controllers handed down to the children of ``fd``."""
        try:
            enabled = _read("cgroup.subtree_control", fd).split()
            missing = [c for c in controllers if c not in enabled]
            if missing:
                _write("cgroup.subtree_control", " ".join(f"+{c}" for c in missing), fd)
        except OSError as err:
            raise self._refuse(f"cannot enable {', '.join(controllers)} in"
                               f" {where}/cgroup.subtree_control: {err.strerror}") from None

    def _remove_stale(self, folder: int) -> None:
        """Empty run cgroups of this job left by a run whose cleaner died too
        (older than ``STALE_AFTER``: a run being set up now is younger)."""
        slug = self.name.split(".", 1)[0]
        try:
            names = os.listdir(folder)
        except OSError:
            return
        now = time.time()
        for name in limits.stale_names(names, slug, self.name):
            try:
                st = os.stat(name, dir_fd=folder, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode) and now - st.st_mtime > limits.STALE_AFTER:
                    os.rmdir(name, dir_fd=folder)
            except OSError:
                pass  # not empty (its processes are still there) or gone

    def _undo(self) -> None:
        for index in self.made:
            try:
                os.rmdir(self.relative(), dir_fd=self.parents[index])
            except OSError:
                pass
        for parent in self.parents:
            try:
                os.rmdir(limits.CGROUP_FOLDER, dir_fd=parent)
            except OSError:
                pass  # missing, or in use by other runs
        self.made = []
        for fd in self.parents:
            os.close(fd)
        self.parents = []

    def start_cleaner(self) -> None:
        """The root process that removes the cgroup once run-job is gone."""
        read_fd, self.pipe_w = os.pipe2(os.O_CLOEXEC)
        leaves = [(self.parents[i], self.places[i].version,
                   f"{self.places[i].cgroup_path}/{self.name}") for i in range(len(self.places))]
        try:
            pid = os.fork()
        except OSError as err:
            os.close(read_fd)
            os.close(self.pipe_w)
            raise self._refuse(f"cannot start the cleaner of the run's cgroup: {err.strerror}") from None
        if pid == 0:  # pragma: no cover - in the child
            try:
                os.close(self.pipe_w)  # else the cleaner would wait for itself
                os.setsid()
                if os.fork() == 0:
                    _cleaner(read_fd, self.name, leaves)
            finally:
                os._exit(0)
        os.close(read_fd)
        os.waitpid(pid, 0)
        # self.pipe_w stays open in run-job (close-on-exec) until it ends.

    def join(self) -> None:
        """run-job moves itself into the run's cgroup in every hierarchy."""
        for index, place in enumerate(self.places):
            try:
                leaf = os.open(self.relative(), _DIR_FLAGS, dir_fd=self.parents[index])
                try:
                    _write("cgroup.procs", str(os.getpid()), leaf)
                finally:
                    os.close(leaf)
            except OSError as err:
                # The pipe stays open: the cleaner removes what was made when
                # run-job has exited (it kills what is in the cgroup then).
                raise LimitError(f"{limits.limit_keys(self.limits_controllers())} cannot be"
                                 f" enforced: cannot enter {self.file(place, '')}:"
                                 f" {err.strerror}") from None
        for fd in self.parents:
            os.close(fd)
        self.parents = []


# ---------------------------------------------------------------------------
# The cleaner (root, outside the cgroup, after run-job)


def _cleaner(pipe: int, name: str, leaves: list[tuple[int, int, str]]) -> None:  # pragma: no cover
    """Wait until run-job is gone, then empty and remove the run's cgroups."""
    import _signal as signal

    try:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_IGN)
        keep = {pipe, *(fd for fd, _, _ in leaves)}
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        for fd in _open_fds():
            if fd > 2 and fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        os.chdir("/")
        while True:
            try:
                if not os.read(pipe, 64):
                    break
            except InterruptedError:
                continue
        empty_and_remove(name, leaves, CLEANER_PATIENCE)
    finally:
        os._exit(0)


def _open_fds() -> list[int]:
    try:
        return [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))


def empty_and_remove(name: str, leaves: list[tuple[int, int, str]], patience: float) -> bool:
    """Kill every member of the run cgroup ``CGROUP_FOLDER/name`` under each
    parent descriptor and remove it (and CGROUP_FOLDER when no other run uses
    it: nothing of process-control stays in a cgroup someone else manages),
    until done or ``patience`` seconds passed; True when done. ``leaves``:
    (parent descriptor, cgroup version, the cgroup's path as
    ``/proc/<pid>/cgroup`` shows it)."""
    relative = f"{limits.CGROUP_FOLDER}/{name}"
    deadline = time.monotonic() + patience
    delay = 0.005
    while True:
        left = []
        for parent, version, cgroup_path in leaves:
            try:
                leaf = os.open(relative, _DIR_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                continue
            except OSError:
                left.append((parent, version, cgroup_path))
                continue
            try:
                members = _pids(leaf)
                if members:
                    _kill_all(leaf, version, members, cgroup_path)
            except OSError:
                members = [0]
            finally:
                os.close(leaf)
            if not members:
                try:
                    os.rmdir(relative, dir_fd=parent)
                except FileNotFoundError:
                    continue
                except OSError:
                    left.append((parent, version, cgroup_path))  # EBUSY: a member on its way out
                    continue
                try:
                    os.rmdir(limits.CGROUP_FOLDER, dir_fd=parent)
                except OSError:
                    pass  # other runs' cgroups are in it
                continue
            left.append((parent, version, cgroup_path))
        leaves = left
        if not leaves:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _pids(leaf: int) -> list[int]:
    return [int(word) for word in _read("cgroup.procs", leaf).split()]


def _kill_all(leaf: int, version: int, members: list[int], cgroup_path: str) -> None:
    """SIGKILL every member: v2's ``cgroup.kill`` when there is one, else one by
    one through a pidfd, each checked to be in the cgroup after the pidfd was
    taken (a pid reused meanwhile is never hit)."""
    import signal

    kill_file = limits.KILL_FILE.get(version)
    if kill_file:
        try:
            _write(kill_file, "1", leaf)
            return
        except OSError:
            pass
    for pid in members:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            if in_cgroup(pid, cgroup_path):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(pidfd)


def in_cgroup(pid: int, cgroup_path: str) -> bool:
    """Is ``pid`` in the cgroup ``cgroup_path`` of some hierarchy now?"""
    try:
        text = _read(f"/proc/{pid}/cgroup")
    except OSError:
        return False
    return any(line.split(":", 2)[-1] == cgroup_path for line in text.splitlines())


# ---------------------------------------------------------------------------
# During and after the run (as the service user: reads only)


def members(confinement: Confinement | None) -> set[int]:
    """Every process of the run (run-job excluded), from its cgroup."""
    if confinement is None or confinement.procs is None:
        return set()
    try:
        pids = {int(word) for word in _read(confinement.procs).split()}
    except (OSError, ValueError):
        return set()
    pids.discard(os.getpid())
    return pids


def counter(file_key: tuple[str, str] | None) -> int:
    """A counter of the run's cgroup (0 when there is none or it cannot be read)."""
    if file_key is None:
        return 0
    try:
        return limits.parse_counter(_read(file_key[0]), file_key[1]) or 0
    except OSError:
        return 0


def limit_notes(jobs: list) -> list[str]:
    """``--validate``'s note for each job whose ``memory``/``tasks`` this host
    could not enforce (run-job would refuse to run it here, exit 125)."""
    from run_job.run.limits import needed_controllers

    notes = []
    found: dict[tuple, str | None] = {}
    for job in jobs:
        limits = getattr(job, "limits", None)
        if limits is None or not (limits.memory or limits.tasks):
            continue
        controllers = needed_controllers(limits)
        if controllers not in found:
            found[controllers] = host_problem(controllers)
        if found[controllers]:
            notes.append(f"{job.path}: note: on this host, {found[controllers]}")
    return notes
