"""Slurm service jobs (SPEC §7): the lifecycle behind ``sbatch-service``.

A service is a job file with ``runner: slurm`` and a ``service`` section. It
lives as exactly one Slurm job named ``<slug>-service`` of the service user,
found by name AND user (``squeue -n NAME -u USER``).

The top half of this module is pure (names, paths, the batch script, the sbatch
argv, the squeue format and its parser, the stage output readers, the exit
status of ``status``); the bottom half, ``ServiceManager``, does the effects
through ``SlurmClient.run``/``submit``/``cancel`` and is the only place that
does.

Design of the signals (see ``docs/services.md``): the batch script runs the
job's commands in order and ``exec``s the last one, so the service's main
process IS the batch script's process. ``scancel --batch --signal=SIG`` reaches
exactly that process (plain ``scancel --signal`` does not reach the batch
script at all on Slurm 22.05, and ``--full`` would also hit the service's own
children). Stop: stop signal to the main process, wait ``kill_grace``, then
``scancel --full --signal=KILL`` and a plain ``scancel``, then wait until
squeue no longer shows the job.

Safety: every verb asks Slurm first; ``SlurmUnreachable`` is never read as "no
job", so nothing is submitted or cancelled when Slurm cannot be asked. Commands
on one service are serialized by a filelock in ``run_directory``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal as signals
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from run_job.atomic import write_atomic
from run_job.clock import iso, now
from run_job.errors import ProcessControlError, SecurityError, SlurmError, SlurmUnreachable
from run_job.model import Config, Job
from run_job.security import STATE_LIMIT, open_regular, read_bounded

SERVICE_SUFFIX = "-service"
LOCK_TIMEOUT = 60.0  # seconds one command waits for another on the same service
START_WAIT = 30.0  # seconds for a submitted job to show up pending or running
START_SETTLE = 3.0  # seconds a pending job gets to start before "PENDING" is reported
START_CONFIRM = 1.0  # seconds a running job is watched: a command not found ends at once
STOP_WAIT = 60.0  # seconds, after the KILL, for the job to leave squeue
STAGE_TIMEOUT = 120.0  # seconds for a stage call other than init
POLL = 0.2

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_UNREACHABLE = 4
UNREACHABLE_STATE = "unknown: Slurm unreachable"
NOT_RUNNING = "not running"

# squeue's default listing (no -t): the states in which a job is "present".
PRESENT_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED",
                            "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING",
                            "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT",
                            "POWER_UP_NODE"})
# The states in which the main process exists and can take a signal.
SIGNALABLE_STATES = frozenset({"RUNNING", "SUSPENDED", "STOPPED"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ServiceError(ProcessControlError):
    """A service verb failed (exit 1)."""

    exit_status = EXIT_FAILED


# ---------------------------------------------------------------- pure part


def service_job_name(slug: str) -> str:
    """The Slurm job name of service ``slug`` (a slug holds no dot, so a batch
    run ``<slug>.run-job`` can never be taken for a service)."""
    return slug + SERVICE_SUFFIX


def service_partition(config: Config, job: Job) -> str:
    return job.slurm.partition or config.slurm.service_partition


def service_dir(config: Config) -> Path:
    return Path(config.state_directory) / "services"


def state_path(config: Config, slug: str) -> Path:
    return service_dir(config) / f"{slug}.json"


def script_path(config: Config, slug: str) -> Path:
    return service_dir(config) / f"{slug}.sbatch"


def log_path(config: Config, slug: str) -> Path:
    return Path(config.output_directory) / slug / "service.log"


def lock_path(config: Config, slug: str) -> Path:
    return Path(config.run_directory) / f"{slug}.service.lock"


def working_directory(job: Job, home: str | None) -> str:
    """``working_directory``, else the service user's home if it exists, else /."""
    if job.working_directory:
        return str(job.working_directory)
    if home and os.path.isdir(home):
        return home
    return "/"


def output_option(path: str) -> str:
    """``path`` for ``--output``: ``%`` protected; a backslash cannot be named
    (the script appends to the log itself, Slurm's own lines go to /dev/null)."""
    if "\\" in path:
        return "/dev/null"
    return path.replace("%", "\\%")


def service_environment(job: Job) -> dict[str, str]:
    """The job's ``environment`` plus the service's own variables."""
    env = dict(job.environment)
    env["SBATCH_SERVICE_NAME"] = job.slug
    env["SBATCH_SERVICE_JOB_NAME"] = service_job_name(job.slug)
    return env


SUBMIT_PATH = "/usr/local/bin:/usr/bin:/bin"
# Variables of the caller that sbatch and the job keep; everything else of the
# caller's environment is left out (see submit_environment).
_SUBMIT_KEEP = ("SLURM_CONF", "LANG", "LANGUAGE", "TZ")


def submit_environment(environ: Mapping[str, str], *, user: str, home: str) -> dict[str, str]:
    """The environment sbatch runs in, and so (``--export=ALL``) the base of
    the service's: the same whether an operator's shell or cron's keep-alive
    entry started it. Only ``SLURM_CONF``, the locale and ``TZ`` come from the
    caller; PATH is the system's (set PATH in the job's ``environment`` for
    more); HOME, USER, LOGNAME, SHELL are the service user's."""
    env = {name: environ[name] for name in _SUBMIT_KEEP if name in environ}
    env.update({name: value for name, value in environ.items() if name.startswith("LC_")})
    env.update(PATH=SUBMIT_PATH, HOME=home, USER=user, LOGNAME=user, SHELL="/bin/sh")
    return env


def build_service_script(*, slug: str, commands: Sequence[Sequence[str]],
                         environment: Mapping[str, str], workdir: str, log: str) -> str:
    """The batch script of a service (bash; pure, golden-file tested).

    Every command but the last runs in order and stops the script at the first
    failure; the last is ``exec``ed, so the service's main process is the batch
    script's own process, which ``scancel --batch --signal`` reaches.
    """
    if not commands:
        raise ServiceError(f"service {slug} has no command")
    for name in environment:
        if not _ENV_NAME.fullmatch(name):
            raise ServiceError(
                f"service {slug}: environment variable {name!r} cannot be passed to a Slurm job: "
                "a name must be letters, digits and underscores, not starting with a digit")
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        f"# Service {slug} (Slurm job {service_job_name(slug)}); written by sbatch-service.",
        "# Every option is on sbatch's command line: no #SBATCH lines here.",
        "# The last command is exec'd: it is this script's own process, the one",
        "# `scancel --batch --signal=SIG` reaches (stop and reload signals).",
        f"exec >>{q(log)} 2>&1 </dev/null",
        f"printf '%s\\n' \"sbatch-service: {slug} starts as Slurm job ${{SLURM_JOB_ID:-?}}"
        " on ${HOSTNAME:-?} at $(date -u +%Y-%m-%dT%H:%M:%SZ)\"",
        f"cd -- {q(workdir)} || {{ echo {q('sbatch-service: cannot change to ' + workdir)}; exit 125; }}",
    ]
    for name in sorted(environment):
        lines.append(f"export {name}={q(environment[name])}")
    for argv in commands[:-1]:
        words = " ".join(q(word) for word in argv)
        lines.append(f"{words} || exit $?")
    lines.append("exec " + " ".join(q(word) for word in commands[-1]))
    return "\n".join(lines) + "\n"


def build_service_sbatch_argv(*, script: str, name: str, log: str, partition: str,
                              time_limit: str | None, workdir: str,
                              options: Sequence[str] = ()) -> list[str]:
    """``sbatch --parsable`` for a service; allowlisted options (job file, then
    stage) after sbatch-service's own, the script path last."""
    out = output_option(log)
    argv = ["sbatch", "--parsable", f"--job-name={name}", f"--output={out}", f"--error={out}",
            "--open-mode=append", "--input=/dev/null", "--export=ALL", f"--chdir={workdir}",
            f"--partition={partition}"]
    if time_limit:
        argv.append(f"--time={time_limit}")
    argv.extend(options)
    argv.append(script)
    return argv


def parse_stage_start(stdout: str) -> tuple[list[str], list[str]]:
    """The sbatch options of a stage's ``start`` output, and the problems.

    Every non-empty line must be ``#SBATCH`` followed by options (shell-quoted
    words, each checked against the allowlist). Any other line is a problem.
    """
    from run_job.slurm.options import check_option

    options: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(stdout.splitlines(), 1):
        if not line.strip():
            continue
        head, _, rest = line.partition(" ")
        if head != "#SBATCH" and not line.startswith("#SBATCH\t"):
            problems.append(f"line {number} {line[:120]!r}: every line must start with '#SBATCH '")
            continue
        rest = line[len("#SBATCH"):]
        try:
            words = shlex.split(rest, comments=False)
        except ValueError as err:
            problems.append(f"line {number} {line[:120]!r}: {err}")
            continue
        if not words:
            problems.append(f"line {number}: '#SBATCH' without an option")
        for word in words:
            why = check_option(word)
            if why is not None:
                problems.append(f"line {number} {word!r}: {why}")
            else:
                options.append(word)
    return options, problems


def signal_number(text: str) -> int:
    """``TERM``, ``SIGTERM``, ``term`` or ``15`` -> 15; ValueError otherwise."""
    word = text.strip()
    if word.isdigit():
        number = int(word)
        try:
            return int(signals.Signals(number))
        except ValueError:
            raise ValueError(f"{word} is not a signal number on this system") from None
    name = word.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signals.Signals[name])
    except KeyError:
        raise ValueError(f"unknown signal {word!r}") from None


def parse_stage_signal(stdout: str) -> int | None:
    """The signal a ``stop``/``reload`` stage names (one word on one line), or
    None when it prints nothing; ValueError for anything else."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    if len(lines) > 1 or len(lines[0].split()) > 1:
        raise ValueError(f"expected one signal name or number, got {stdout.strip()[:120]!r}")
    return signal_number(lines[0])


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name[3:]
    except ValueError:
        return str(number)


SERVICE_SQUEUE_FORMAT = "%i|%T|%u|%P|%N|%S|%V|%r|%j"


class ServiceEntry:
    """One line of ``squeue -h -o SERVICE_SQUEUE_FORMAT``."""

    __slots__ = ("job_id", "state", "user", "partition", "nodes", "start_time",
                 "submit_time", "reason", "name")

    def __init__(self, *values: str) -> None:
        for slot, value in zip(self.__slots__, values):
            setattr(self, slot, value)

    @property
    def since(self) -> str:
        """Start time when it runs, submit time while it waits."""
        if self.state == "PENDING" or self.start_time in ("", "N/A", "Unknown", "None"):
            return self.submit_time
        return self.start_time

    def describe(self) -> str:
        """``RUNNING on node1`` / ``PENDING (Resources)``."""
        if self.state == "PENDING":
            return f"PENDING ({self.reason})" if self.reason and self.reason != "None" else "PENDING"
        if self.nodes and self.nodes not in ("", "(null)"):
            return f"{self.state} on {self.nodes}"
        return self.state

    def __repr__(self) -> str:
        return "ServiceEntry(" + ", ".join(repr(getattr(self, s)) for s in self.__slots__) + ")"


def build_squeue_argv(*, names: Sequence[str] = (), user: str | None = None,
                      job_ids: Sequence[str] = (), all_states: bool = False) -> list[str]:
    argv = ["squeue", "-h", "-o", SERVICE_SQUEUE_FORMAT]
    if names:
        argv += ["-n", ",".join(names)]
    if user:
        argv += ["-u", user]
    if job_ids:
        argv += ["-j", ",".join(job_ids)]
    if all_states:
        argv += ["-t", "all"]
    return argv


def parse_service_squeue(text: str) -> list[ServiceEntry]:
    """Lines of ``squeue -h -o SERVICE_SQUEUE_FORMAT`` (the name last: it may hold ``|``)."""
    entries = []
    fields = len(ServiceEntry.__slots__)
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|", fields - 1)
        if len(parts) != fields or not parts[0].strip():
            raise SlurmError(f"unexpected squeue line: {line[:200]!r}")
        entries.append(ServiceEntry(*[p.strip() for p in parts[:-1]], parts[-1]))
    return entries


def entries_of(entries: Iterable[ServiceEntry], slug: str, user: str) -> list[ServiceEntry]:
    """The present jobs of service ``slug``: exact name and user, oldest first."""
    name = service_job_name(slug)
    found = [e for e in entries if e.name == name and e.user == user and e.state in PRESENT_STATES]
    return sorted(found, key=lambda e: int(e.job_id) if e.job_id.isdigit() else 0)


def combine_exit(statuses: Iterable[int]) -> int:
    """One exit status for several services: unreachable (4) beats usage (2)
    beats failure (1) beats not running (3) beats success."""
    order = [EXIT_UNREACHABLE, EXIT_USAGE, EXIT_FAILED, EXIT_NOT_RUNNING]
    seen = set(statuses)
    for status in order:
        if status in seen:
            return status
    return EXIT_OK


def render_status_table(rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns SERVICE JOB STATE NODE SINCE (pure)."""
    header = ("SERVICE", "JOB", "STATE", "NODE", "SINCE")
    table = [header] + [tuple(r) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    out = []
    for row in table:
        out.append("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(out) + "\n"


def tail_lines(path: Path, count: int = 5) -> str:
    """The last non-blank lines of a service's log, joined ("" when unreadable;
    a FIFO or device in its place is never opened for reading)."""
    try:
        fd, st = open_regular(path)
    except OSError:
        return ""
    try:
        data = os.pread(fd, 4096, max(0, st.st_size - 4096)).decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)
    lines = [line for line in data.splitlines() if line.strip()][-count:]
    return " | ".join(lines)


# ---------------------------------------------------------------- effects


def preload() -> None:
    """Import now what later steps import lazily (before dropping privileges)."""
    import filelock  # noqa: F401
    import pwd  # noqa: F401

    import run_job.slurm.client  # noqa: F401
    import run_job.slurm.options  # noqa: F401


def become_service_user(user: str) -> None:
    """Run as the service user from now on: drop from root, stay as the user,
    refuse anyone else. Everything after (locks, state, logs, sbatch, scancel,
    init commands) then belongs to that user, and so does the Slurm job."""
    from run_job.privileges import become

    become(user, program="sbatch-service", what="services")


def _home(user: str) -> str | None:
    import pwd

    try:
        return pwd.getpwnam(user).pw_dir
    except KeyError:
        return None


class ServiceManager:
    """Every effect of sbatch-service: Slurm calls, the lock, state, logs, stages.

    ``say`` gets the progress lines for the user (stdout of the CLI).
    """

    def __init__(self, config: Config, client=None, *, say: Callable[[str], None] = print,
                 lock_timeout: float = LOCK_TIMEOUT, quiet_noop: bool = False) -> None:
        if client is None:
            from run_job.slurm.client import SlurmClient
            client = SlurmClient()
        self.config = config
        self.client = client
        self.user = config.user
        self.say = say
        self.lock_timeout = lock_timeout
        # A keep-alive entry runs "start" every period: cron mails any output,
        # so the no-op of a present service may be silent (the CLI: off a terminal).
        self.quiet_noop = quiet_noop

    # -- asking Slurm

    def query(self, slugs: Sequence[str]) -> list[ServiceEntry]:
        """The present jobs named like these services, of the service user.
        Raises SlurmUnreachable: never read that as "no job"."""
        if not slugs:
            return []
        names = sorted({service_job_name(s) for s in slugs})
        argv = build_squeue_argv(names=names, user=self.user)
        proc = self.client.run(argv, check=False)
        if proc.returncode != 0:
            raise self.client.error_for(argv, proc.returncode, proc.stderr)
        return parse_service_squeue(proc.stdout)

    def present(self, slug: str) -> list[ServiceEntry]:
        return entries_of(self.query([slug]), slug, self.user)

    def job_entry(self, job_id: str) -> ServiceEntry | None:
        """The job ``job_id`` in any state squeue still knows; None when gone."""
        argv = build_squeue_argv(job_ids=[job_id], all_states=True)
        proc = self.client.run(argv, check=False)
        if proc.returncode != 0:
            from run_job.slurm.client import is_unknown_job, is_unreachable
            if is_unknown_job(proc.stderr) and not is_unreachable(proc.stderr):
                return None
            raise self.client.error_for(argv, proc.returncode, proc.stderr)
        entries = parse_service_squeue(proc.stdout)
        return entries[0] if entries else None

    # -- the lock

    @contextmanager
    def locked(self, slug: str) -> Iterator[None]:
        """Serialize commands on one service (the kernel frees the lock if we die)."""
        from filelock import FileLock, Timeout

        path = lock_path(self.config, slug)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ServiceError(f"cannot create the run directory {path.parent}: {err.strerror}") from err
        lock = FileLock(str(path), timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:
            raise ServiceError(
                f"{slug}: another sbatch-service command has held the lock {path} for more than "
                f"{self.lock_timeout:g} s; try again when it is done") from None
        except OSError as err:
            raise ServiceError(f"{slug}: cannot take the lock {path}: {err.strerror}") from err
        try:
            yield
        finally:
            lock.release()

    # -- state

    def read_state(self, slug: str) -> dict:
        try:
            data = json.loads(read_bounded(state_path(self.config, slug), STATE_LIMIT))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_state(self, slug: str, **changes: object) -> None:
        state = self.read_state(slug)
        state.update(changes)
        state["service"] = slug
        state["job_name"] = service_job_name(slug)
        state["user"] = self.user
        path = state_path(self.config, slug)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())
        except OSError as err:
            raise ServiceError(f"{slug}: cannot write the state file {path}: {err.strerror}") from err

    # -- stages and init commands

    def _local_env(self, job: Job, stage: str, job_id: str | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(service_environment(job))
        env["SBATCH_SERVICE_STAGE"] = stage
        env["SBATCH_SERVICE_LOG"] = str(log_path(self.config, job.slug))
        env["SBATCH_SERVICE_PARTITION"] = service_partition(self.config, job)
        if job_id:
            env["SBATCH_SERVICE_JOB_ID"] = job_id
        return env

    def _workdir(self, job: Job) -> str:
        return working_directory(job, _home(self.user))

    def run_stage(self, job: Job, stage: str, job_id: str | None = None) -> str:
        """Call the stages executable with ``stage``; its stdout (init: passed through)."""
        path = job.service.stages
        if not os.access(path, os.X_OK) or not os.path.isfile(path):
            raise ServiceError(f"{job.path}: service.stages: {path} is not an executable file")
        argv = [str(path), stage]
        kwargs = dict(env=self._local_env(job, stage, job_id), cwd=self._workdir(job),
                      stdin=subprocess.DEVNULL)
        try:
            if stage == "init":
                proc = subprocess.run(argv, **kwargs)
                out = ""
            else:
                proc = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                                      timeout=STAGE_TIMEOUT, **kwargs)
                out = proc.stdout
        except subprocess.TimeoutExpired:
            raise ServiceError(f"{job.slug}: stage {stage}: {path} did not finish within "
                               f"{STAGE_TIMEOUT:g} s") from None
        except OSError as err:
            raise ServiceError(f"{job.slug}: stage {stage}: cannot run {path}: {err.strerror}") from err
        if proc.returncode != 0:
            detail = " ".join((proc.stderr or "").split())[-300:] if stage != "init" else ""
            raise ServiceError(f"{job.slug}: stage {stage}: {path} exited {proc.returncode}"
                               + (f": {detail}" if detail else ""))
        return out

    def run_init_commands(self, job: Job) -> None:
        for index, argv in enumerate(job.service.init_command, 1):
            try:
                proc = subprocess.run(list(argv), env=self._local_env(job, "init"),
                                      cwd=self._workdir(job), stdin=subprocess.DEVNULL)
            except OSError as err:
                raise ServiceError(f"{job.slug}: init_command {index} ({argv[0]}): {err.strerror}") from err
            if proc.returncode != 0:
                raise ServiceError(f"{job.slug}: init_command {index} ({shlex.join(argv)}) "
                                   f"exited {proc.returncode}")

    # -- verbs (callers hold the lock)

    def start(self, job: Job) -> ServiceEntry:
        """Submit unless a job is present; return the job, pending or running."""
        slug = job.slug
        found = self.present(slug)
        if found:
            entry = found[0]
            extra = f" (and {len(found) - 1} more: run restart)" if len(found) > 1 else ""
            if not self.quiet_noop or extra:
                self.say(f"{slug}: already present, Slurm job {entry.job_id} {entry.describe()}{extra}")
            return entry
        options = list(job.slurm.options)
        if job.service.stages:
            out = self.run_stage(job, "start")
            stage_options, problems = parse_stage_start(out)
            if problems:
                raise ServiceError(f"{slug}: stage start of {job.service.stages}: "
                                   + "; ".join(problems) + "; nothing submitted")
            options += stage_options
        log = log_path(self.config, slug)
        workdir = self._workdir(job)
        script = build_service_script(slug=slug, commands=job.commands,
                                      environment=service_environment(job),
                                      workdir=workdir, log=str(log))
        spath = script_path(self.config, slug)
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            spath.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(spath, script.encode(), 0o755)
        except OSError as err:
            raise ServiceError(f"{slug}: cannot prepare {err.filename}: {err.strerror}") from err
        argv = build_service_sbatch_argv(
            script=str(spath), name=service_job_name(slug), log=str(log),
            partition=service_partition(self.config, job), time_limit=job.slurm.time,
            workdir=workdir, options=options)
        from run_job.slurm.client import SUBMIT_TIMEOUT, client_environment
        from run_job.slurm.batch import parse_sbatch_parsable

        env = submit_environment(client_environment(self.client.env), user=self.user,
                                 home=_home(self.user) or "/")
        try:
            job_id = parse_sbatch_parsable(self.client.run(argv, timeout=SUBMIT_TIMEOUT, env=env).stdout)
        except SlurmUnreachable:
            raise
        except SlurmError as err:
            raise ServiceError(f"{slug}: Slurm refused the job: {err}") from err
        try:
            self.write_state(slug, job_id=job_id, submitted_at=iso(now()), last_action="start",
                             partition=service_partition(self.config, job), log=str(log))
        except ServiceError as err:  # the job is submitted: the state file is a record only
            self.say(f"{slug}: warning: {err}")
        entry = self._wait_started(slug, job_id)
        self.say(f"{slug}: started, Slurm job {job_id} {entry.describe()}")
        return entry

    def _wait_started(self, slug: str, job_id: str) -> ServiceEntry:
        began = time.monotonic()
        running_since = None
        last = None
        while True:
            entry = self.job_entry(job_id)
            clock = time.monotonic()
            waited = clock - began
            if entry is not None:
                last = entry
                if entry.state not in PRESENT_STATES:
                    break
                if entry.state == "RUNNING":
                    running_since = clock if running_since is None else running_since
                    if clock - running_since >= START_CONFIRM:
                        return entry
                elif running_since is None and waited >= START_SETTLE:
                    return entry  # still pending (or configuring): say so
            if waited >= START_WAIT:
                if last is not None and last.state in PRESENT_STATES:
                    return last
                break
            time.sleep(POLL)
        log = log_path(self.config, slug)
        state = last.state if last else "gone"
        tail = tail_lines(log)
        raise ServiceError(f"{slug}: Slurm job {job_id} is not pending or running ({state}); "
                           f"see {log}" + (f": {tail}" if tail else ""))

    def stop(self, job: Job) -> bool:
        """Stop every present job of the service; True when one was stopped."""
        slug = job.slug
        found = self.present(slug)
        if not found:
            self.say(f"{slug}: not running")
            return False
        sig = job.service.stop_signal
        if job.service.stages:
            try:
                named = parse_stage_signal(self.run_stage(job, "stop", found[0].job_id))
                if named is not None:
                    sig = named
            except (ServiceError, ValueError) as err:
                # Stopping must always work: a broken stop stage costs its signal only.
                self.say(f"{slug}: warning: stage stop: {err}; using SIG{signal_name(sig)}")
        self.stop_jobs(slug, found, sig, job.kill_grace)
        return True

    def stop_jobs(self, slug: str, found: Sequence[ServiceEntry], sig: int, grace: float) -> None:
        for entry in found:
            self._stop_one(slug, entry, sig, grace)
        self.write_state(slug, last_action="stop", stopped_at=iso(now()))

    def _stop_one(self, slug: str, entry: ServiceEntry, sig: int, grace: float) -> None:
        job_id = entry.job_id
        began = time.monotonic()
        if entry.state == "COMPLETING":  # its processes are ending already: wait
            if self._wait_gone(job_id, STOP_WAIT):
                self.say(f"{slug}: Slurm job {job_id} was completing; gone now")
                return
        elif entry.state in SIGNALABLE_STATES:
            self._cancel(job_id, signal=sig, batch=True)
            how = f"SIG{signal_name(sig)} to the main process"
            if self._wait_gone(job_id, grace):
                self.say(f"{slug}: stopped Slurm job {job_id} ({how}, {time.monotonic() - began:.1f} s)")
                return
            self.say(f"{slug}: Slurm job {job_id} still there after {grace:g} s: sending KILL")
            self._cancel(job_id, signal=int(signals.SIGKILL), full=True)
        self._cancel(job_id)
        if not self._wait_gone(job_id, STOP_WAIT):
            current = self.job_entry(job_id)
            raise ServiceError(f"{slug}: Slurm job {job_id} is still {current.state if current else '?'} "
                               f"after scancel; try again or ask the Slurm administrator")
        self.say(f"{slug}: stopped Slurm job {job_id} ({time.monotonic() - began:.1f} s)")

    def _cancel(self, job_id: str, **kwargs) -> None:
        try:
            self.client.cancel(job_id, **kwargs)
        except SlurmUnreachable:
            raise
        except SlurmError as err:
            # The job may have ended between the question and the signal.
            current = self.job_entry(job_id)
            if current is None or current.state not in PRESENT_STATES or current.state == "COMPLETING":
                return
            raise ServiceError(str(err)) from err

    def _wait_gone(self, job_id: str, limit: float) -> bool:
        deadline = time.monotonic() + limit
        while True:
            entry = self.job_entry(job_id)
            if entry is None or entry.state not in PRESENT_STATES:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    def reload(self, job: Job) -> str:
        slug = job.slug
        found = self.present(slug)
        if not found:
            raise ServiceError(f"{slug}: not running: nothing to reload (start it first)")
        entry = found[0]
        if entry.state not in SIGNALABLE_STATES:
            raise ServiceError(f"{slug}: Slurm job {entry.job_id} is {entry.describe()}: "
                               "its main process has not started, nothing to reload")
        sig = job.service.reload_signal
        if job.service.stages:
            try:
                named = parse_stage_signal(self.run_stage(job, "reload", entry.job_id))
            except ValueError as err:
                raise ServiceError(f"{slug}: stage reload of {job.service.stages}: {err}; "
                                   "nothing sent") from err
            if named is not None:
                sig = named
        self._cancel(entry.job_id, signal=sig, batch=True)
        self.write_state(slug, last_action="reload", reloaded_at=iso(now()))
        self.say(f"{slug}: sent SIG{signal_name(sig)} to the main process of Slurm job {entry.job_id}")
        return entry.job_id

    def init(self, job: Job) -> None:
        self.stop(job)
        if job.service.stages:
            self.run_stage(job, "init")
        self.run_init_commands(job)
        self.write_state(job.slug, last_action="init", initialized_at=iso(now()))
        self.say(f"{job.slug}: init done")

    def purge_files(self, slug: str) -> None:
        """Remove the state, script and logs of ``slug`` (never the lock file)."""
        removed = []
        for path in (state_path(self.config, slug), script_path(self.config, slug)):
            if path.exists():
                path.unlink()
                removed.append(path)
        folder = log_path(self.config, slug).parent
        if folder.is_dir():
            for path in folder.glob("service.log*"):
                path.unlink()
                removed.append(path)
            try:
                folder.rmdir()
            except OSError:
                pass  # run folders or other files of the operator stay
        self.say(f"{slug}: purged ({len(removed)} file{'s' if len(removed) != 1 else ''} removed)")

    def orphans(self, known: Iterable[str]) -> list[str]:
        """Slugs with a state file but no service job file any more."""
        folder = service_dir(self.config)
        known = set(known)
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.json") if p.stem not in known)

    def status_rows(self, jobs: Sequence[Job], entries: Sequence[ServiceEntry]
                    ) -> tuple[list[tuple[str, ...]], int]:
        rows = []
        status = EXIT_OK
        for job in jobs:
            found = entries_of(entries, job.slug, self.user)
            for e in found:  # more than one only when someone submitted by hand
                nodes = e.nodes if e.nodes not in ("", "(null)") else "-"
                state = e.state if e.state != "PENDING" else e.describe()
                rows.append((job.slug, e.job_id, state, nodes, e.since))
            if found:
                if found[0].state != "RUNNING":
                    status = EXIT_NOT_RUNNING
            else:
                stopped = self.read_state(job.slug).get("stopped_at") or "-"
                rows.append((job.slug, "-", NOT_RUNNING, "-", stopped))
                status = EXIT_NOT_RUNNING
        return rows, status


def service_states(config: Config, jobs: Iterable[Job], client=None) -> dict[str, str]:
    """Slurm state per service for ``run-job --status``: ``RUNNING``,
    ``PENDING``..., ``not running``, or ``unknown: Slurm unreachable``.
    Jobs that are not services are left out. One squeue call."""
    services = [job for job in jobs if job is not None and getattr(job, "is_service", False)]
    if not services:
        return {}
    manager = ServiceManager(config, client, say=lambda _line: None)
    try:
        entries = manager.query([job.slug for job in services])
    except SlurmUnreachable:
        return {job.slug: UNREACHABLE_STATE for job in services}
    except SlurmError as err:
        return {job.slug: f"unknown: {err}" for job in services}
    states = {}
    for job in services:
        found = entries_of(entries, job.slug, config.user)
        states[job.slug] = found[0].state if found else NOT_RUNNING
    return states
