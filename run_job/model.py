"""Frozen records: the validated global config and job files.

The config pipeline (``config.py``, ``jobs.py``) is the only producer of these;
everything else consumes them and never reads raw YAML dicts.
Durations are seconds (float); absent optional values are ``None``.

The records behave as frozen dataclasses (keyword construction, defaults,
equality, ``replace``, assignment refused) but are built on ``Record`` below
instead of ``dataclasses``: ``run-job --job`` loads them from its validation
cache on every cron run, and importing ``dataclasses`` (it pulls in
``inspect``) costs as much as importing PyYAML on Debian's python3, more than
the whole budget of the hot path.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any, Callable


class _Factory:
    """A default made fresh for each record (``field(default_factory=...)``)."""

    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


def field(*, default_factory):
    return _Factory(default_factory)


class Record:
    """Base of the frozen records: fields are the annotated class attributes."""

    _fields: tuple = ()
    _defaults: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = list(cls.__dict__.get("__annotations__", {}))
        cls._fields = tuple(own)
        cls._defaults = {name: cls.__dict__[name] for name in own if name in cls.__dict__}

    def __init__(self, *args, **kwargs):
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes {len(fields)} fields, got {len(args)}")
        values = dict(zip(fields, args, strict=False))  # the first fields, by position
        for name, value in kwargs.items():
            if name not in fields:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            if name in values:
                raise TypeError(f"{type(self).__name__}: field {name!r} given twice")
            values[name] = value
        setter = object.__setattr__
        for name in fields:
            if name in values:
                value = values[name]
            elif name in self._defaults:
                value = self._defaults[name]
                if isinstance(value, _Factory):
                    value = value.make()
            else:
                raise TypeError(f"{type(self).__name__}: missing field {name!r}")
            setter(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is frozen: cannot assign {name!r}")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self):
        # equal records hash equal: mappings and lists are hashed by content
        return hash((type(self).__name__,) + tuple(_hashable(v) for v in self._values()))

    def __repr__(self):
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({inner})"

    def __reduce__(self):
        return (_rebuild, (type(self), self._values()))


def _hashable(value):
    """``value`` with its mappings and lists turned into tuples, recursively (pure)."""
    if isinstance(value, (dict, MappingProxyType)):
        return ("{}",) + tuple(sorted(((repr(k), _hashable(v)) for k, v in value.items()),
                                      key=lambda item: item[0]))
    if isinstance(value, (list, tuple)):
        return ("[]",) + tuple(_hashable(v) for v in value)
    return value


def _rebuild(cls, values):
    return cls(*values)


def replace(record, **changes):
    """A copy of ``record`` with ``changes`` (as ``dataclasses.replace``)."""
    values = {name: getattr(record, name) for name in record._fields}
    values.update(changes)
    return type(record)(**values)


def as_dict(record) -> dict:
    """Fields as a plain dict, nested records too (as ``dataclasses.asdict``)."""
    out = {}
    for name in record._fields:
        value = getattr(record, name)
        out[name] = as_dict(value) if isinstance(value, Record) else value
    return out

# The outcomes of a run (SPEC §5): all of them, the ends, and the failures.
OUTCOMES = ("running", "success", "failed", "timed_out", "killed", "skipped", "lost")
FINAL_OUTCOMES = frozenset(OUTCOMES) - {"running"}
FAILED_OUTCOMES = frozenset({"failed", "timed_out", "killed", "lost"})

DEFAULT_CRON_TEMPLATE = "# Generated from {source}\n{schedule} {user} {command}\n"


class SlurmConfig(Record):
    """Global ``slurm`` section."""

    partition: str | None = None
    service_partition: str = "service-pool"
    unreachable_timeout: float = 600.0


class MailConfig(Record):
    """Global ``mail`` section (SMTP settings)."""

    smtp_host: str = "localhost"
    smtp_port: int = 25
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_file: Path | None = None
    timeout: float = 30.0


class WebConfig(Record):
    """Global ``web`` section (the status page, SPEC §12)."""

    listen: str = "127.0.0.1:8950"
    operators: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    show_output: bool = True
    allow_remote: bool = False


class Config(Record):
    """The global config, defaults merged, paths absolute."""

    source: Path | None  # the file it came from; None = embedded defaults only
    job_directory: Path
    output_directory: Path
    state_directory: Path
    run_directory: Path
    output_crontab: str  # an absolute path, or "console" for stdout
    user: str
    runner_path: str
    service_runner_path: str
    cron_template: str = DEFAULT_CRON_TEMPLATE
    # Raw defaults for job keys; merged into each job before its validation.
    default_job_config: dict = field(default_factory=dict)
    logging: dict | None = None
    keep_runs: int = 100
    keep_days: float | None = None
    history_length: int = 100
    max_output: int | None = None  # bytes
    mail: MailConfig = field(default_factory=MailConfig)
    hooks_directory: Path | None = None
    cron_environment: tuple[tuple[str, str], ...] = ()
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    sha256: str = ""  # of the config file's bytes ("" without a file)
    hash_seed: str | None = None  # of H fields in schedules; None: the host name
    metrics_directory: Path | None = None  # metrics.textfile_directory
    web: WebConfig = field(default_factory=WebConfig)


class FailMail(Record):
    from_address: str
    to_addresses: tuple[str, ...]


class JobSlurm(Record):
    """A job's ``slurm`` section."""

    partition: str | None = None
    time: str | None = None  # Slurm's own time syntax, passed to --time
    options: tuple[str, ...] = ()  # allowlisted sbatch options, one argv word each


class Service(Record):
    """A job's ``service`` section: the job is a persistent Slurm service."""

    stop_signal: int = 15
    reload_signal: int = 1
    init_command: tuple[tuple[str, ...], ...] = ()  # argv lists, run in order
    keep_alive: str | None = None  # cron schedule of the watchdog entry
    stages: Path | None = None  # sbatch-service style stage executable


class Retry(Record):
    """A job's ``retry`` section (SPEC §10); delays in seconds."""

    maximum_retries: int = 0
    initial_delay: float = 10.0
    maximum_delay: float = 300.0
    backoff_multiplier: float = 2.0


class Limits(Record):
    """A job's ``limits`` section (SPEC §13); None = not limited."""

    memory: int | None = None  # bytes, whole tree (cgroup)
    tasks: int | None = None  # processes and threads, whole tree (cgroup)
    cpu_time: float | None = None  # seconds per process (RLIMIT_CPU)
    open_files: int | None = None  # per process (RLIMIT_NOFILE)
    file_size: int | None = None  # bytes per file (RLIMIT_FSIZE)


class Job(Record):
    """One validated job file."""

    slug: str
    path: Path
    sha256: str
    commands: tuple[tuple[str, ...], ...]  # argv of each command, in order
    command_text: tuple[str, ...]  # each command as written (for records)
    name: str | None = None
    description: str | None = None
    slow_start_commands: tuple[tuple[str, ...], ...] | None = None
    slow_start_text: tuple[str, ...] | None = None
    schedule: str | None = None
    disabled: bool = False
    timeout: float | None = None  # seconds; None = no limit
    environment: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()
    allow_overtime: bool = False
    failure_threshold_for_mail: int = 1
    failmail: FailMail | None = None
    runner: str = "local"  # "local" or "slurm"
    slurm: JobSlurm = field(default_factory=JobSlurm)
    service: Service | None = None
    kill_grace: float = 10.0
    working_directory: Path | None = None
    timezone: str | None = None  # IANA name; None: the host's zone
    monitor_grace: float = 600.0  # monitor.grace, seconds
    events: tuple[str, ...] = ()  # user-defined events (run-job --trigger)
    retry: Retry | None = None
    pause_after_failures: int | None = None
    limits: Limits | None = None

    @property
    def is_service(self) -> bool:
        return self.service is not None

    @property
    def display_name(self) -> str:
        return self.name or self.slug


# ---------------------------------------------------------------------------
# What the controller of one run hands to an executor (local supervision,
# ``run/supervise.py``, or Slurm batch, ``slurm/batch.py``) and what it gets
# back. The controller owns the lock, the run folder, status.json, history
# and alerts; executors only run commands.

class Confinement(Record):
    """What the executor needs of a run's limits (made by ``run/confine.prepare``)."""

    limits: Limits
    # (python, shim file, settings) of limits.shim_argv, or () for no shim.
    shim: tuple[str, ...] = ()
    # The run's cgroup (None without memory/tasks): its cgroup.procs (every
    # process of the run, run-job included) and the counters read at the end,
    # (absolute file, key) for the OOM kills and the refused forks.
    procs: str | None = None
    oom_counter: tuple[str, str] | None = None
    fork_counter: tuple[str, str] | None = None
    # run-job's end of the pipe its cgroup's cleaner waits on (kept open
    # across a hand-off of the wait: its closing means "run-job is gone").
    cleaner_fd: int | None = None


class RunContext(Record):
    config: Config
    job: Job
    run_id: str
    run_dir: Path
    output_path: Path  # <run_dir>/output.log
    commands: tuple[tuple[str, ...], ...]  # argv lists (slow start already chosen)
    command_text: tuple[str, ...]
    environment: dict[str, str]  # the job's whole environment, RUN_JOB_* included
    working_directory: Path
    # Merge fields into status.json and rewrite it atomically (e.g. slurm_job_id).
    update_status: Callable[..., None]
    # The signal number run-job received (TERM, INT, HUP), or None.
    stop_requested: Callable[[], int | None]
    confinement: Confinement | None = None  # the run's limits; None: no limits
    # Which attempt of the run this is (1 unless the job retries, SPEC §10):
    # the controller calls the executor once per attempt, in the same run
    # folder; executors append to output.log.
    attempt: int = 1
    # The run's events from inside (``run/jobevents.EventWatch``), or None
    # when the job declares none: executors call ``poll``/``check`` while
    # they wait and spare its hook runners when they sweep.
    events: Any = None  # run/jobevents.EventWatch of a job with events, else None
    # Hand the rest of this attempt's wait to the lean waiter (``run/handoff.py``):
    # called with the executor's state, it execs and never returns, or returns
    # when it cannot (the executor then waits itself). None: wait here.
    handoff: Any = None


class ExecResult(Record):
    outcome: str  # success, failed, timed_out, killed, lost
    exit_status: int  # what run-job exits with (SPEC §4)
    exit_code: int | None = None  # the failing command's own status
    signal: int | None = None  # the signal that ended the job, if any
    reason: str = ""
    slurm_job_id: str | None = None
