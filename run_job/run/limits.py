"""Resource limits of a local run (SPEC §13): every decision, no effects (pure).

Two mechanisms, decided here and carried out by ``confine.py`` (the cgroup,
as root, before the switch to the service user) and ``limitshim.py`` (the
per-process limits, in each command's process just before its exec):

- ``cpu_time``, ``open_files``, ``file_size`` are rlimits of each process
  (``rlimit_settings``); the shim sets them, so nothing runs between fork and
  exec in run-job (no ``preexec_fn``).
- ``memory`` and ``tasks`` bind the whole tree through a cgroup made for the
  run. Where it goes and which files say what is this module's table
  (``LIMIT_FILES``, ``COUNTERS``): the only place cgroup v1 and v2 differ.

Also here: finding the hierarchies (``parse_mountinfo``, ``parse_proc_cgroup``,
``place_cgroups``), the refusals when a limit cannot be enforced (one line:
the limit, why, what to do), and the words a run's reason gets when a limit
bit.
"""

from __future__ import annotations

from run_job.model import Limits, Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Iterable

CGROUP_FOLDER = "process-control"  # the folder of every run's cgroup, per hierarchy
CONTROLLER_OF = {"memory": "memory", "tasks": "pids"}  # limit key -> cgroup controller
STALE_AFTER = 60.0  # seconds: an empty run cgroup older than this belongs to no starting run
RLIMIT_NAMES = {"nofile": "open_files", "cpu": "cpu_time", "fsize": "file_size"}


class LimitRefused(Exception):
    """Internal: a limit cannot be enforced; ``str()`` is the whole user message."""


# ---------------------------------------------------------------------------
# Per-process limits (rlimits), set by the exec shim


def rlimit_settings(limits: Limits | None) -> tuple[tuple[str, int, int], ...]:
    """(rlimit name, soft, hard) for the shim, in a fixed order.

    ``cpu_time`` is whole seconds, rounded up; its hard limit is one second
    above the soft one, because at the hard limit Linux sends SIGKILL
    without the SIGXCPU that says why (soft = hard would read "killed by
    SIGKILL"). The others are soft = hard: the job cannot raise them.
    """
    if limits is None:
        return ()
    out = []
    if limits.open_files:
        out.append(("nofile", limits.open_files, limits.open_files))
    if limits.cpu_time:
        seconds = max(1, int(-(-limits.cpu_time // 1)))
        out.append(("cpu", seconds, seconds + 1))
    if limits.file_size:
        out.append(("fsize", limits.file_size, limits.file_size))
    return tuple(out)


def rlimit_problem(settings: Iterable[tuple[str, int, int]], hard_now: dict[str, int],
                   infinity: int) -> str | None:
    """The refusal when a wanted hard limit is above the one run-job has now
    (the service user could not set it), or None."""
    for name, _soft, hard in settings:
        current = hard_now.get(name, infinity)
        if current != infinity and hard > current:
            key = RLIMIT_NAMES[name]
            return (f"limits.{key} cannot be set: it needs a hard limit of {hard}, above the"
                    f" {current} that run-job itself got (RLIMIT_{name.upper()}, from cron,"
                    f" PAM or the service manager); lower limits.{key} or raise that limit")
    return None


def shim_settings(settings: Iterable[tuple[str, int, int]], oom_score_adj: int | None) -> str:
    """The settings word of the shim's argv: ``nofile=16:16,cpu=1:2,oom=0``."""
    parts = [f"{name}={soft}:{hard}" for name, soft, hard in settings]
    if oom_score_adj is not None:
        parts.append(f"oom={oom_score_adj}")
    return ",".join(parts) or "-"


def shim_argv(python: str, shim: str, settings: str, err_fd: int, path: str,
              argv: Iterable[str]) -> list[str]:
    """The argv that runs ``argv`` (found at ``path``) through the shim.

    ``-I -S``: the job's PYTHON* variables, user site and current folder
    never reach the shim's own Python."""
    return [python, "-I", "-S", shim, settings, str(err_fd), path, *argv]


def parse_shim_report(data: bytes) -> tuple[str, str, int] | None:
    """What the shim wrote on its error pipe before dying: (``exec`` or
    ``rlimit``, what, errno), or None (it exec'd, or wrote nothing sane)."""
    try:
        kind, what, number = data.decode("ascii").split(":")
        return kind, what, int(number)
    except (UnicodeDecodeError, ValueError):
        return None


# ---------------------------------------------------------------------------
# The cgroup: the v1/v2 table


class Mount(Record):
    """One cgroup hierarchy mounted in this mount namespace (``/proc/self/mountinfo``)."""

    version: int  # 1 or 2
    mount_point: str  # absolute, as seen from this process's root
    root: str  # the folder of the hierarchy mounted there ("/" mostly)
    dev: str  # "major:minor" of the mount (checked against the opened folder)
    controllers: frozenset = frozenset()  # v1: from the mount options; v2: see place_cgroups


class Place(Record):
    """Where one run's cgroup goes in one hierarchy."""

    version: int
    controllers: tuple[str, ...]  # the controllers of our limits it carries, sorted
    mount_point: str
    dev: str
    parent: tuple[str, ...]  # folders from the mount point down to CGROUP_FOLDER's parent
    cgroup_path: str  # CGROUP_FOLDER's path as /proc/<pid>/cgroup shows it

    def folder(self) -> str:
        """The absolute path of CGROUP_FOLDER in this hierarchy."""
        return "/".join((self.mount_point.rstrip("/"), *self.parent, CGROUP_FOLDER))


def limit_writes(version: int, controller: str, limits: Limits) -> tuple[tuple[str, str, bool], ...]:
    """(file, value, required) written into the run's cgroup, in this order.

    memory: v2 ``memory.max`` and ``memory.swap.max`` 0; v1
    ``memory.limit_in_bytes`` then ``memory.memsw.limit_in_bytes`` (memory +
    swap, so swap cannot take what memory may not); the swap file is
    optional (absent when the kernel does not account swap). pids:
    ``pids.max`` is ``tasks`` + 1, because run-job itself (one task: it has
    no threads) sits in the cgroup too.
    """
    if controller == "memory" and limits.memory:
        value = str(limits.memory)
        if version == 2:
            return (("memory.max", value, True), ("memory.swap.max", "0", False))
        return (("memory.limit_in_bytes", value, True), ("memory.memsw.limit_in_bytes", value, False))
    if controller == "pids" and limits.tasks:
        return (("pids.max", str(limits.tasks + 1), True),)
    return ()


# (file, key) of the counters read at the end of a run, per version and controller.
COUNTERS = {
    (2, "memory"): ("memory.events", "oom_kill"),
    (1, "memory"): ("memory.oom_control", "oom_kill"),
    (2, "pids"): ("pids.events", "max"),
    (1, "pids"): ("pids.events", "max"),
}
KILL_FILE = {2: "cgroup.kill", 1: None}  # kills every member at once (v2, Linux 5.14+)


def needed_controllers(limits: Limits | None) -> tuple[str, ...]:
    """The cgroup controllers ``limits`` needs (sorted), () for none."""
    if limits is None:
        return ()
    return tuple(sorted(CONTROLLER_OF[key] for key in ("memory", "tasks") if getattr(limits, key)))


def limit_keys(controllers: Iterable[str]) -> str:
    """``limits.memory and limits.tasks`` for the controllers named."""
    keys = [f"limits.{key}" for key, ctrl in CONTROLLER_OF.items() if ctrl in set(controllers)]
    return " and ".join(keys)


def parse_counter(text: str, key: str) -> int | None:
    """The value of ``key`` in a flat-keyed cgroup file (``oom_kill 2``)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            try:
                return int(parts[1])
            except ValueError:
                return None
    return None


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo``."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup (v1) and cgroup2 mounts of a ``/proc/self/mountinfo`` text."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        if tail[0] == "cgroup2":
            mounts.append(Mount(version=2, mount_point=_unescape(fields[4]),
                                root=_unescape(fields[3]), dev=fields[2]))
        else:
            options = frozenset(o for o in tail[2].split(",") if "=" not in o)
            mounts.append(Mount(version=1, mount_point=_unescape(fields[4]),
                                root=_unescape(fields[3]), dev=fields[2],
                                controllers=options & frozenset(CONTROLLER_OF.values())))
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup``: controller -> path, ``""`` for the v2 hierarchy."""
    own = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            own[controller] = parts[2]
    return own


def _below(path: str, root: str) -> tuple[str, ...] | None:
    """The folders of ``path`` below ``root`` (both cgroup paths), or None."""
    parts = [p for p in path.split("/") if p]
    base = [p for p in root.split("/") if p]
    if parts[:len(base)] != base:
        return None
    return tuple(parts[len(base):])


def place_cgroups(controllers: Iterable[str], mounts: Iterable[Mount], own: dict[str, str],
                  v2_available: dict[str, str]) -> list[Place]:
    """Where the run's cgroup goes for each controller; raises LimitRefused.

    A controller mounted as cgroup v1 is used there (the kernel then offers
    it to no v2 hierarchy), below run-job's own cgroup in that hierarchy, so
    whatever limit the host put above (a container's, a slice's) still
    binds the job. Otherwise a cgroup2 mount whose root offers it
    (``v2_available``: mount point -> text of its ``cgroup.controllers``):
    the run's cgroup goes under that root, because a v2 cgroup that holds
    processes (run-job's own, with cron in it) cannot hand controllers to
    children.
    """
    mounts = list(mounts)
    places: dict[str, Place] = {}
    missing = []
    for controller in sorted(set(controllers)):
        v1 = next((m for m in mounts if m.version == 1 and controller in m.controllers), None)
        if v1 is not None:
            below = _below(own.get(controller, ""), v1.root) if controller in own else None
            if below is None:
                raise LimitRefused(
                    f"{limit_keys([controller])} cannot be enforced: run-job's own {controller}"
                    f" cgroup ({own.get(controller, 'none')}) is not inside the hierarchy mounted"
                    f" at {v1.mount_point}; run run-job from a process of that hierarchy")
            key = v1.mount_point
            old = places.get(key)
            places[key] = Place(version=1, controllers=tuple(sorted({controller, *(
                old.controllers if old else ())})), mount_point=v1.mount_point, dev=v1.dev,
                parent=below, cgroup_path="/" + "/".join((*[p for p in own[controller].split("/") if p],
                                                         CGROUP_FOLDER)))
            continue
        v2 = next((m for m in mounts if m.version == 2
                   and controller in v2_available.get(m.mount_point, "").split()), None)
        if v2 is None:
            missing.append(controller)
            continue
        key = v2.mount_point
        old = places.get(key)
        places[key] = Place(version=2, controllers=tuple(sorted({controller, *(
            old.controllers if old else ())})), mount_point=v2.mount_point, dev=v2.dev, parent=(),
            cgroup_path="/" + "/".join((*[p for p in v2.root.split("/") if p], CGROUP_FOLDER)))
    if missing:
        raise LimitRefused(missing_controller_message(missing, mounts))
    return [places[key] for key in sorted(places)]


def missing_controller_message(missing: Iterable[str], mounts: Iterable[Mount]) -> str:
    """One line: which limit, which controller, where it was looked for, what to do."""
    missing = list(missing)
    names = " and ".join(missing)
    v2 = [m.mount_point for m in mounts if m.version == 2]
    looked = ["cgroup v1 hierarchies in /proc/self/mountinfo"]
    looked += [f"{point}/cgroup.controllers (cgroup v2)" for point in v2]
    plural = "s" if len(missing) > 1 else ""
    disable = ",".join(missing)
    return (f"{limit_keys(missing)} cannot be enforced: no cgroup {names} controller{plural} on"
            f" this host (looked at {', '.join(looked)}); boot without cgroup_disable={disable}"
            f" (cgroup v2) or mount the cgroup v1 hierarchy, or remove {limit_keys(missing)}"
            " from the job")


def not_root_message(controllers: Iterable[str], user: str) -> str:
    keys = limit_keys(controllers)
    return (f"{keys} cannot be enforced: the run's cgroup must be made by root, and run-job runs as"
            f" {user!r}; start run-job as root (as /etc/cron.d does) with the service user in"
            f" config key 'user', or remove {keys} from the job")


def run_cgroup_name(slug: str, run_id: str) -> str:
    """The run's cgroup folder: ``<slug>.<run_id>`` (both validated: no ``/``,
    no ``..``, no leading dot)."""
    return f"{slug}.{run_id}"


def stale_names(names: Iterable[str], slug: str, own: str) -> list[str]:
    """Run cgroups of ``slug`` other than ``own`` (candidates for removal, pure):
    ``<slug>.<run id>``; a slug holds no dot, so no other job's match."""
    from run_job.run.records import run_id_time

    prefix = f"{slug}."
    return sorted(n for n in names if n.startswith(prefix) and n != own
                  and run_id_time(n[len(prefix):]) is not None)


# ---------------------------------------------------------------------------
# What the reason of a run says when a limit bit


def format_size(n: int) -> str:
    """``67108864`` -> ``64M`` (exact binary units), else bytes."""
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n} bytes"


def _seconds(value: float) -> str:
    return f"{int(value)}s" if value == int(value) else f"{value:g}s"


def signal_note(signum: int | None, limits: Limits | None) -> str:
    """Words after "killed by SIGX" naming the rlimit that sent it, or ""
    (a SIGKILL of the memory limit is said by ``counter_notes``)."""
    import _signal as signal

    if limits is None or signum is None:
        return ""
    if signum == signal.SIGXCPU and limits.cpu_time:
        return f" (limits.cpu_time: {_seconds(limits.cpu_time)} of CPU)"
    if signum == signal.SIGXFSZ and limits.file_size:
        return f" (limits.file_size: {format_size(limits.file_size)})"
    return ""


def counter_notes(limits: Limits | None, oom_kills: int, forks_refused: int) -> list[str]:
    """What the end counters of the run's cgroup say, for its reason."""
    notes = []
    if limits is not None and limits.memory and oom_kills:
        notes.append(f"limits.memory ({format_size(limits.memory)}) reached: the kernel killed"
                     f" {oom_kills} process{'es' if oom_kills != 1 else ''} of the run")
    if limits is not None and limits.tasks and forks_refused:
        notes.append(f"limits.tasks ({limits.tasks}) reached: {forks_refused} fork"
                     f"{'s' if forks_refused != 1 else ''} refused")
    return notes
