"""Job files: which files are jobs, where they may come from, and -> ``Job``.

Only ``<slug>.yaml`` directly in ``job_directory`` is a job (SPEC §3). Names
starting with a dot and names not ending in ``.yaml`` are ignored (and listed);
any other ``.yaml`` name is an error. A job is run only by slug, from
``job_directory``; as root, files and folders writable by others or owned by
anyone but root and the service user are refused. Validation collects every
problem of every file before anyone acts on the result.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from run_job.security import check_file_security
from run_job.errors import ConfigError, Problem, SecurityError
from run_job.model import Config, FailMail, Job, JobSlurm, Limits, Record, Retry, Service

SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
# A job's files (<slug>.yaml, <slug>.history.json, .<slug>.history.lock, the
# temporary files of their atomic writes, <slug>.service.lock) must fit the
# 255-byte limit of a file name: 200 leaves room for every suffix.
SLUG_MAX = 200
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,%d}" % (SLUG_MAX - 1))  # SLUG_PATTERN, fullmatch
_SERVICE_FORBIDDEN = ("timeout", "schedule", "timezone")
MIN_MEMORY = 16 * 1024 * 1024  # limits.memory: room for run-job's own allocations in the cgroup


class ScanResult(Record):
    """Everything found in the job directory."""

    jobs: list  # valid Job objects, sorted by slug
    problems: list  # every Problem of every file
    ignored: list  # Paths that are not jobs
    invalid: list  # Paths of job files that failed
    checked: list  # Paths of every job file checked, in order


def classify(name: str) -> str:
    """``job``, ``ignored`` (dot files, not .yaml) or ``bad-name``."""
    if name.startswith(".") or not name.endswith(".yaml"):
        return "ignored"
    return "job" if _SLUG.fullmatch(name[:-5]) else "bad-name"


def is_slug(text: str) -> bool:
    return bool(_SLUG.fullmatch(text))


def slug_rule(text: str) -> str:
    """Why ``text`` is not a job name, in words (pure; call it when ``is_slug`` is False)."""
    if _SLUG.fullmatch(text[:SLUG_MAX]) and len(text) > SLUG_MAX:
        return (f"it has {len(text)} characters, more than the {SLUG_MAX} a job name may have (its history "
                "and lock files must fit the file system's 255-byte limit of a name)")
    return f"it must match {SLUG_PATTERN} (no '/', '..' or '.yaml')"


def _short_name(text: str) -> str:
    """A name for a message: quoted, cut when long (a 300-character name in full helps no one)."""
    return repr(text) if len(text) <= 60 else repr(text[:40]) + f"… ({len(text)} characters)"


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def job_path(config: Config, slug: str) -> Path:
    """The file of job ``slug``; refuses anything that is not a plain slug."""
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        rule = slug_rule(slug) if isinstance(slug, str) else f"it must match {SLUG_PATTERN}"
        raise ConfigError(f"{_short_name(str(slug))} is not a job name: a job is named by its file's slug; "
                          f"{rule}")
    return config.job_directory / f"{slug}.yaml"


def load_job(config: Config, slug: str) -> Job:
    """Load and validate job ``slug`` from the job directory (for running it)."""
    path = job_path(config, slug)
    if not path.exists() and not path.is_symlink():
        if not os.path.isdir(config.job_directory):
            raise ConfigError(missing_job_directory(config))
        raise ConfigError(f"{path}: no such job '{slug}' in {config.job_directory} "
                          "(run-job --list-jobs shows the jobs)")
    check_job_location(config, path)
    job, problems = check_job_file(config, path)
    if problems or job is None:
        raise ConfigError(f"{path}: invalid job file", tuple(problems))
    return job


def missing_job_directory(config: Config, what: str | None = None) -> str:
    """What to do when the job directory does not exist (a fresh machine, a
    typo). ``what``: how the message starts (default: ``no job directory DIR``)."""
    what = what or f"no job directory {config.job_directory}"
    if config.source is None:
        return (f"{what}: create it and put job files there, or name a config with --config or "
                "$PROCESS_CONTROL_CONFIG")
    return (f"{what} (job_directory of {config.source}): create it and put job files there, or set "
            f"job_directory in {config.source}")


def check_job_location(config: Config, path: Path) -> None:
    """Refuse a job file that leaves the job directory or that others could write."""
    directory = config.job_directory
    # A plain file named <job_directory>/<slug>.yaml is inside; only a link can lead out.
    if (path.parent != directory or os.path.islink(path)) and not _inside(path, directory):
        raise SecurityError(f"{path} resolves to {path.resolve()}, outside the job directory {directory}; "
                            "job files must live in the job directory")
    key = (str(directory), config.user)
    if key not in _CHECKED_DIRECTORIES:  # once per process (--status loads every job)
        _CHECKED_DIRECTORIES[key] = check_file_security(directory, "job directory", config.user)
    reason = _CHECKED_DIRECTORIES[key] or check_file_security(path, "job file", config.user)
    if reason:
        raise SecurityError(reason)


_CHECKED_DIRECTORIES: dict = {}


def load_job_file(config: Config, path: str | os.PathLike, check_location: bool = False) -> Job:
    path = Path(path)
    if check_location:
        check_job_location(config, path)
    job, problems = check_job_file(config, path)
    if problems or job is None:
        raise ConfigError(f"{path}: invalid job file", tuple(problems))
    return job


def scan_job_directory(config: Config, directory: Path | None = None) -> ScanResult:
    """Validate every job file of the job directory; nothing is cached."""
    result = ScanResult(jobs=[], problems=[], ignored=[], invalid=[], checked=[])
    for path, kind, job, problems in iter_job_directory(config, directory):
        if kind == "folder":
            result.problems.extend(problems)
        elif kind == "ignored":
            result.ignored.append(path)
        else:
            result.checked.append(path)
            if problems or job is None:
                result.invalid.append(path)
                result.problems.extend(problems)
            else:
                result.jobs.append(job)
    return result


def iter_job_directory(config: Config, directory: Path | None = None, *, by_slug: bool = False):
    """Every file of the job directory, validated one at a time (nothing is
    cached, nothing kept): ``(path, kind, job, problems)`` with ``kind``
    ``ignored``, ``bad-name`` or ``job`` (``job`` is the Job or None), sorted
    by name (``by_slug``: ``.yaml`` files by slug, among the rest). A folder that is
    missing, unreadable or untrusted is one ``(directory, "folder", None,
    problems)`` and nothing else."""
    directory = directory or config.job_directory
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        message = (missing_job_directory(config, "no such folder") if directory == config.job_directory
                   else "no such folder")
        yield directory, "folder", None, [Problem(str(directory), message)]
        return
    except OSError as err:
        yield directory, "folder", None, [Problem(str(directory), f"cannot read the job directory: {err.strerror}")]
        return
    dir_reason = check_file_security(directory, "job directory", config.user)
    if dir_reason:
        yield directory, "folder", None, [Problem(str(directory), dir_reason)]
        return
    if by_slug:  # each <slug>.yaml as <slug>\0, in place (no second list of 100,000 names)
        for index, name in enumerate(names):
            if name.endswith(".yaml"):
                names[index] = name[:-5] + "\0"
    names.sort()
    reader = _JobReader(config, directory)
    for entry in names:
        name = entry[:-1] + ".yaml" if entry.endswith("\0") else entry
        path = directory / name
        kind = classify(name)
        if kind == "ignored":
            yield path, kind, None, []
        elif kind == "bad-name":
            yield path, kind, None, [Problem(_display(path), bad_name_message(name))]
        else:
            job, problems = reader.check(path)
            yield path, kind, job, problems


class _JobReader:
    """Reads and validates the files of one job directory, each with as few
    system calls as the checks allow: one ``lstat`` (a plain file: its owner
    and mode are what ``check_file_security`` would see), then an open that
    follows no link and never blocks, ``fstat`` (the same file, still regular,
    same owner and mode) and the read. Anything else (a link, a FIFO, a file
    too large, a race) takes the general path, whose messages are the rule."""

    def __init__(self, config: Config, directory: Path) -> None:
        self.config, self.directory = config, directory
        self.root = os.geteuid() == 0
        if self.root:
            from run_job.security import uid_of

            uid = uid_of(config.user)
            self.allowed = {0} if uid is None else {0, uid}
            self.owners = f"root or the service user {config.user!r}"

    def check(self, path: Path) -> tuple[Job | None, list[Problem]]:
        """``scan_job_directory``'s verdict on one file."""
        raw, _ = self.read(path)
        if raw is None:
            return self._general(path)
        if isinstance(raw, str):
            return None, [Problem(_display(path), raw)]
        return check_job_file(self.config, path, raw=raw)

    def _general(self, path: Path) -> tuple[Job | None, list[Problem]]:
        directory = self.directory
        if os.path.islink(path) and not _inside(path, directory):
            return None, [Problem(_display(path), f"resolves to {path.resolve()}, outside the job directory; "
                                                 "job files must live in the job directory")]
        reason = check_file_security(path, "job file", self.config.user) if self.root else None
        if reason:
            return None, [Problem(_display(path), reason)]
        return check_job_file(self.config, path)

    def directory_reason(self) -> str | None:
        """Why the job directory is not trusted (``check_job_location``'s check, once)."""
        key = (str(self.directory), self.config.user)
        if key not in _CHECKED_DIRECTORIES:
            _CHECKED_DIRECTORIES[key] = check_file_security(self.directory, "job directory", self.config.user)
        return _CHECKED_DIRECTORIES[key]

    def read(self, path: str | Path) -> tuple[bytes | str | None, os.stat_result | None]:
        """(the bytes of a plain regular file, or the ownership problem (a str),
        or None: take the general path; its stat)."""
        import stat

        from run_job.config.yamlfile import MAX_BYTES
        from run_job.security import ownership_problem, read_fd

        try:
            st = os.lstat(path)
        except OSError:
            return None, None
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            return None, st
        if self.root:
            problem = ownership_problem(st, path, "job file", self.allowed, self.owners)
            if problem:
                return problem, st
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return None, st
        try:
            fst = os.fstat(fd)
            if (fst.st_dev, fst.st_ino, fst.st_mode, fst.st_uid, fst.st_gid) != \
                    (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid):
                return None, st
            return read_fd(fd, fst, MAX_BYTES, path), fst
        except OSError:
            return None, st
        finally:
            os.close(fd)


def _display(path: Path) -> str:
    return str(path)


def bad_name_message(name: str) -> str:
    """Why the job directory's ``<name>`` (ending in .yaml) is not a job file."""
    return (f"{_short_name(name)} is not a valid job file name: {slug_rule(name[:-5])}; rename it, or "
            "prefix it with a dot to keep it out")


def check_job_file(config: Config, path: Path, raw: bytes | None = None) -> tuple[Job | None, list[Problem]]:
    """Read and validate one job file: the Job, or every problem with it."""
    from run_job.config import yamlfile

    name = _display(path)
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.stem
    if not _SLUG.fullmatch(stem):
        return None, [Problem(name, f"{_short_name(path.name)} is not a valid job file name: {slug_rule(stem)}")]
    if raw is None:
        raw, problem = yamlfile.read_input(path, "job file")
        if problem is not None:
            return None, [problem]
    loaded = yamlfile.load_bytes(raw, name, "job file")
    if loaded.problems:
        return None, loaded.problems
    data = loaded.data
    if data is None:
        return None, [Problem(name, "the file is empty: a job file is a YAML mapping with at least a 'command' key")]
    if not isinstance(data, dict):
        kind = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
            type(data), type(data).__name__)
        return None, [Problem(name, f"a job file is a YAML mapping of keys (command: ..., schedule: ...), "
                                    f"not a {kind}", 1)]
    import hashlib

    return _validate_job(config, path, stem, data, loaded, name, hashlib.sha256(raw).hexdigest())


def _merged(config: Config, data: dict) -> dict:
    defaults = config.default_job_config
    if not defaults:
        return data
    merged = dict(defaults)
    is_service = "service" in data or "service" in defaults
    if is_service:
        for key in _SERVICE_FORBIDDEN:
            merged.pop(key, None)  # default timeout/schedule never apply to services
    if data.get("runner", defaults.get("runner")) == "slurm":
        merged.pop("limits", None)  # default limits are for local runs (Slurm has its own)
    merged.update(data)
    return merged


def _validate_job(config: Config, path: Path, slug: str, data: dict, loaded, name: str,
                  sha256: str) -> tuple[Job | None, list[Problem]]:
    from run_job.config.schema import problems_from_schema

    merged = _merged(config, data)
    problems = problems_from_schema("job", merged, loaded, name)
    if problems:
        return None, problems
    builder = _JobBuilder(config, path, slug, merged, loaded, name, sha256, own=data)
    job = builder.build()
    if builder.problems:
        return None, builder.problems
    return job, []


def check_partial_job(values: dict, loaded, name: str, base_path: tuple) -> list[Problem]:
    """Validate job keys given as defaults (``default_job_config``): types and values, no required keys."""
    from run_job.config.schema import load_schema, word_error

    properties = load_schema("job")["properties"]
    problems = []
    for key, value in values.items():
        if key not in properties:
            continue  # the config schema's propertyNames already reported it
        for error in _property_validator(key).iter_errors(value):
            problems.extend(word_error(error, base_path + (key,) + tuple(error.absolute_path), loaded, name))
    return problems


_PROPERTY_VALIDATORS: dict = {}


def _property_validator(key: str):
    if key not in _PROPERTY_VALIDATORS:
        from jsonschema import Draft7Validator

        from run_job.config.schema import load_schema

        _PROPERTY_VALIDATORS[key] = Draft7Validator(load_schema("job")["properties"][key])
    return _PROPERTY_VALIDATORS[key]


class _JobBuilder:
    """Semantic checks beyond the schema, then the Job record."""

    def __init__(self, config: Config, path: Path, slug: str, data: dict, loaded, name: str, sha256: str,
                 own: dict) -> None:
        self.config, self.path, self.slug, self.data = config, path, slug, data
        self.loaded, self.name, self.sha256, self.own = loaded, name, sha256, own
        self.problems: list[Problem] = []

    def fail(self, key: tuple, message: str) -> None:
        from run_job.config.yamlfile import key_path

        line, column = self.loaded.position(key) if key and key[0] in self.own else (None, None)
        self.problems.append(Problem(self.name, message, line, column, key_path(key)))

    def commands(self, key: tuple, value) -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]:
        texts = (value,) if isinstance(value, str) else tuple(value)
        argvs = []
        for index, text in enumerate(texts):
            where = key if isinstance(value, str) else key + (index,)
            if "\0" in text:
                self.fail(where, "a command cannot contain a NUL byte")
                continue
            try:
                argv = tuple(split_command(text))
            except ValueError as err:
                self.fail(where, f"cannot split the command line ({err}); check the quotes")
                continue
            if not argv:
                self.fail(where, "the command is empty")
                continue
            argvs.append(argv)
        return tuple(argvs), texts

    def duration(self, key: str, default: float) -> float:
        from run_job.config.durations import parse_duration

        if key not in self.data:
            return default
        try:
            return parse_duration(self.data[key])
        except ValueError as err:
            self.fail((key,), str(err))
            return default

    def signal(self, key: tuple, value, default: int) -> int:
        import signal as signals

        if value is None:
            return default
        if isinstance(value, int):
            try:
                return int(signals.Signals(value))
            except ValueError:
                self.fail(key, f"{value} is not a signal number on this system")
                return default
        text = value if value.startswith("SIG") else f"SIG{value}"
        try:
            return int(signals.Signals[text])
        except KeyError:
            self.fail(key, f"unknown signal '{value}': use a name such as TERM, INT, HUP, USR1 or a number")
            return default

    def build(self) -> Job | None:
        from run_job.config.durations import parse_timeout
        from run_job.config.schedule import check_schedule

        d = self.data
        commands, command_text = self.commands(("command",), d["command"])
        slow = slow_text = None
        if "slow_start_command" in d:
            slow, slow_text = self.commands(("slow_start_command",), d["slow_start_command"])
        schedule = d.get("schedule")
        if schedule is not None:
            problem = check_schedule(schedule)
            if problem:
                self.fail(("schedule",), problem)
        timeout = None
        if "timeout" in d:
            try:
                timeout = parse_timeout(d["timeout"])
            except ValueError as err:
                self.fail(("timeout",), str(err))
        environment = []
        for key, value in (d.get("environment") or {}).items():
            text = str(value)  # as the reference: true -> "True", 123 -> "123"
            if "\0" in text or _multi_line(key) or any(ord(c) < 32 for c in key):
                self.fail(("environment", key), "an environment name cannot hold control characters, "
                                                "and a value cannot hold a NUL byte")
                continue
            environment.append((key, text))
        tags = d.get("tag")
        tags = () if tags is None else ((tags,) if isinstance(tags, str) else tuple(tags))
        failmail = None
        if d.get("failmail"):
            fm = d["failmail"]
            to = fm["to_address"]
            to = (to,) if isinstance(to, str) else tuple(to)
            for address in to:
                if "@" not in address or any(c in address for c in "\r\n\0 "):
                    self.fail(("failmail", "to_address"), f"'{address}' is not a mail address")
            sender = fm.get("from_address") or f"process-control@{_hostname()}"
            if "@" not in sender or any(c in sender for c in "\r\n\0 "):
                self.fail(("failmail", "from_address"), f"'{sender}' is not a mail address")
            failmail = FailMail(from_address=sender, to_addresses=to)
        runner = d.get("runner", "local")
        slurm_raw = d.get("slurm") or {}
        options = tuple(slurm_raw.get("options") or ())
        if options:
            for message in _check_slurm_options(options):
                self.fail(("slurm", "options"), message)
        if slurm_raw and runner != "slurm":
            self.fail(("slurm",), "a slurm section needs runner: slurm")
        for key in ("partition", "time"):
            if _multi_line(slurm_raw.get(key)):
                self.fail(("slurm", key), f"slurm.{key} must be one line")
        slurm = JobSlurm(partition=slurm_raw.get("partition"), time=slurm_raw.get("time"), options=options)
        service = None
        if "service" in d:
            service = self.service(d["service"] or {}, runner)
        kill_grace = self.duration("kill_grace", 10.0)
        working_directory = d.get("working_directory")
        if working_directory is not None and _multi_line(working_directory):
            self.fail(("working_directory",), "working_directory must be one line")
        elif working_directory is not None and not working_directory.startswith("/"):
            self.fail(("working_directory",), "working_directory must be an absolute path")
        timezone = self.timezone(d.get("timezone"))
        monitor_grace = self.duration_in(("monitor", "grace"), (d.get("monitor") or {}).get("grace"), 600.0)
        events = self.events(d.get("events") or ())
        retry = self.retry(d.get("retry"))
        limits = self.limits(d.get("limits"), runner)
        if self.problems:
            return None
        return Job(
            slug=self.slug, path=self.path, sha256=self.sha256, commands=commands, command_text=command_text,
            name=d.get("name"), description=d.get("description"),
            slow_start_commands=slow, slow_start_text=slow_text, schedule=schedule,
            disabled=bool(d.get("disabled", False)), timeout=timeout, environment=tuple(environment),
            tags=tags, allow_overtime=bool(d.get("allow_overtime", False)),
            failure_threshold_for_mail=int(d.get("failure_threshold_for_mail", 1)), failmail=failmail,
            runner=runner, slurm=slurm, service=service, kill_grace=kill_grace,
            working_directory=Path(working_directory) if working_directory else None,
            timezone=timezone, monitor_grace=monitor_grace, events=events, retry=retry,
            pause_after_failures=d.get("pause_after_failures"), limits=limits,
        )

    def duration_in(self, key: tuple, value, default: float) -> float:
        from run_job.config.durations import parse_duration

        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError as err:
            self.fail(key, str(err))
            return default

    def timezone(self, name) -> str | None:
        if name is None:
            return None
        from run_job.config.schedule import zone_problem

        problem = zone_problem(name)
        if problem:
            self.fail(("timezone",), problem)
            return None
        return name

    def events(self, names) -> tuple[str, ...]:
        from run_job.alerts.events import BUILTIN_EVENTS

        for index, name in enumerate(names):
            if name in BUILTIN_EVENTS:
                self.fail(("events", index), f"'{name}' is a built-in event (its hooks run by"
                                             " themselves); choose another name")
        return tuple(names)

    def retry(self, raw) -> Retry | None:
        if raw is None:
            return None
        retry = Retry(
            maximum_retries=int(raw.get("maximum_retries", 0)),
            initial_delay=self.duration_in(("retry", "initial_delay"), raw.get("initial_delay"), 10.0),
            maximum_delay=self.duration_in(("retry", "maximum_delay"), raw.get("maximum_delay"), 300.0),
            backoff_multiplier=float(raw.get("backoff_multiplier", 2.0)))
        if retry.maximum_delay < retry.initial_delay:
            self.fail(("retry", "maximum_delay"), "maximum_delay is shorter than initial_delay;"
                                                  " make it at least as long")
        return retry

    def limits(self, raw, runner: str) -> Limits | None:
        if raw is None:
            return None
        from run_job.config.durations import parse_size

        if runner == "slurm":
            self.fail(("limits",), "limits are for local runs; a Slurm job is limited by Slurm:"
                                   " use slurm.options, e.g. --mem=2G or --cpus-per-task=2")
            return None
        sizes = {}
        for key in ("memory", "file_size"):
            if raw.get(key) is not None:
                try:
                    sizes[key] = parse_size(raw[key])
                except ValueError as err:
                    self.fail(("limits", key), str(err))
        if sizes.get("memory") is not None and sizes["memory"] < MIN_MEMORY:
            self.fail(("limits", "memory"), f"{raw['memory']} is too little: run-job itself sits in"
                                            " the run's cgroup and what it allocates there counts"
                                            " too; give at least 16M")
        cpu = self.duration_in(("limits", "cpu_time"), raw.get("cpu_time"), 0.0) or None
        return Limits(memory=sizes.get("memory"), tasks=raw.get("tasks"), cpu_time=cpu,
                      open_files=raw.get("open_files"), file_size=sizes.get("file_size"))

    def service(self, raw: dict, runner: str) -> Service | None:
        from run_job.config.schedule import check_schedule

        if runner != "slurm":
            self.fail(("service",), "a service runs on Slurm: add runner: slurm")
        for key in _SERVICE_FORBIDDEN:
            if key in self.own:
                hint = {"timeout": "set its limit with slurm.time",
                        "schedule": "use service.keep_alive for the watchdog schedule",
                        "timezone": "service.keep_alive runs on the host's clock"}[key]
                self.fail((key,), f"'{key}' is not allowed in a service: {hint}")
        keep_alive = raw.get("keep_alive")
        if keep_alive is not None:
            problem = check_schedule(keep_alive)
            if problem:
                self.fail(("service", "keep_alive"), problem)
        init: tuple = ()
        if raw.get("init_command") is not None:
            init, _ = self.commands(("service", "init_command"), raw["init_command"])
        stages = raw.get("stages")
        stages_path = None
        if stages:
            stages_path = Path(stages) if stages.startswith("/") else self.path.parent / stages
        return Service(
            stop_signal=self.signal(("service", "stop_signal"), raw.get("stop_signal"), 15),
            reload_signal=self.signal(("service", "reload_signal"), raw.get("reload_signal"), 1),
            init_command=init, keep_alive=keep_alive, stages=stages_path,
        )


def _multi_line(value: object) -> bool:
    """A string that holds CR, LF or NUL (values that must stay one line)."""
    return isinstance(value, str) and any(c in value for c in "\r\n\0")


_PLAIN_SPLIT_UNSAFE = frozenset("'\"\\\x0b\x0c\x1c\x1d\x1e\x1f")


def split_command(text: str) -> list[str]:
    """Split a command line with shell quoting rules (``shlex.split``).

    A line with no quotes, backslashes or exotic whitespace splits the same
    way with ``str.split``, which is twenty times faster on a big job directory.
    """
    if text.isascii() and _PLAIN_SPLIT_UNSAFE.isdisjoint(text):
        return text.split()
    import shlex

    return shlex.split(text)


def _check_slurm_options(options: tuple[str, ...]) -> list[str]:
    try:
        from run_job.slurm.options import check_options
    except ImportError:  # the Slurm option allowlist module is not there: refuse nothing more
        return []
    return list(check_options(options))


_HOST: list[str] = []


def _hostname() -> str:
    if not _HOST:
        import socket

        _HOST.append(socket.gethostname())
    return _HOST[0]
