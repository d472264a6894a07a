"""Slurm service jobs (SPEC §7): the lifecycle behind ``sbatch-service``.

A service is a job file with ``runner: slurm`` and a ``service`` section. It
lives as exactly one Slurm job named ``<slug>-service`` of the service user,
found by name AND user (``squeue -n NAME -u USER``).

The builders and parsers (the service's batch script and sbatch argv, squeue
entries, stage output) are the Slurm vocabulary's (``vocabulary.py``); this
module holds the service's file layout, the exit status of ``status`` and
``ServiceManager``, which does the effects: Slurm through the client alone
(``SlurmClient.queue``/``submit``/``cancel``), the lock, state, logs, stages.

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
import shlex
import signal as signals
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from run_job.atomic import write_atomic
from run_job.clock import iso, now
from run_job.errors import (EXIT_FAILED, EXIT_NOT_RUNNING, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE,
                            ProcessControlError, SlurmError, SlurmUnreachable)
from run_job.model import Config, Job, Service
from run_job.security import STATE_LIMIT, open_regular, read_bounded
from run_job.slurm.vocabulary import (ACTIVE_STATES, SERVICE_FIELDS, SIGNALABLE_STATES, QueueEntry,
                                      build_service_sbatch_argv, build_service_script, entries_of,
                                      parse_stage_signal, parse_stage_start, service_environment,
                                      service_job_name, signal_name, submit_environment)

SERVICE_SUFFIX = "-service"
LOCK_TIMEOUT = 60.0  # seconds one command waits for another on the same service
START_WAIT = 30.0  # seconds for a submitted job to show up pending or running
START_SETTLE = 3.0  # seconds a pending job gets to start before "PENDING" is reported
START_CONFIRM = 1.0  # seconds a running job is watched: a command not found ends at once
STOP_WAIT = 60.0  # seconds, after the KILL, for the job to leave squeue
STAGE_TIMEOUT = 120.0  # seconds for a stage call other than init
POLL = 0.2

UNREACHABLE_STATE = "unknown: Slurm unreachable"
NOT_RUNNING = "not running"



class ServiceError(ProcessControlError):
    """A service verb failed (exit 1)."""

    exit_status = EXIT_FAILED


def _spec(job: Job) -> Service:
    """The ``service`` section of a service job (the command refuses other jobs)."""
    if job.service is None:
        raise ServiceError(f"{job.slug} is a job, not a service")
    return job.service


# ---------------------------------------------------------------- pure part


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


def combine_exit(statuses: Iterable[int]) -> int:
    """One exit status for several services: unreachable (4) beats usage (2)
    beats failure (1) beats not running (3) beats success."""
    order = [EXIT_UNREACHABLE, EXIT_USAGE, EXIT_FAILED, EXIT_NOT_RUNNING]
    seen = set(statuses)
    for status in order:
        if status in seen:
            return status
    return EXIT_OK


def render_status_table(rows: Sequence[Sequence[str | None]]) -> str:
    """Aligned columns SERVICE JOB STATE NODE SINCE (pure)."""
    header = ("SERVICE", "JOB", "STATE", "NODE", "SINCE")
    table = [header] + [tuple(r) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    out = []
    for row in table:
        out.append("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(out) + "\n"


def read_state(config: Config, slug: str) -> dict:
    """The service's state file ({} when missing, unreadable or damaged)."""
    try:
        data = json.loads(read_bounded(state_path(config, slug), STATE_LIMIT, nofollow=True))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ``last_action`` values after which the service should be up: start (also the
# last step of restart and deploy) and reload (which needs it running). stop,
# init (stops first) and purge (removes the file) leave it down on purpose.
STARTED_ACTIONS = frozenset({"start", "reload"})


def started(state: dict) -> bool:
    """Did sbatch-service last leave this service started (pure)?"""
    action = state.get("last_action")
    return isinstance(action, str) and action in STARTED_ACTIONS  # a damaged file: not started


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
    import filelock  # noqa: F401 - preloaded before the privilege drop
    import pwd  # noqa: F401 - preloaded before the privilege drop

    import run_job.slurm.client  # noqa: F401 - preloaded before the privilege drop
    import run_job.slurm.options  # noqa: F401 - preloaded before the privilege drop


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

    def query(self, slugs: Sequence[str]) -> list[QueueEntry]:
        """The present jobs named like these services, of the service user.
        Raises SlurmUnreachable: never read that as "no job"."""
        return query_services(self.client, slugs, self.user)

    def present(self, slug: str) -> list[QueueEntry]:
        return entries_of(self.query([slug]), slug, self.user)

    def job_entry(self, job_id: str) -> QueueEntry | None:
        """The job ``job_id`` in any state squeue still knows; None when gone."""
        entries = self.client.queue(job_ids=[job_id], states="all", fields=SERVICE_FIELDS)
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
        return read_state(self.config, slug)

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
        path = _spec(job).stages
        if path is None or not os.access(path, os.X_OK) or not os.path.isfile(path):
            raise ServiceError(f"{job.path}: service.stages: {path} is not an executable file")
        argv = [str(path), stage]
        kwargs: dict[str, Any] = dict(env=self._local_env(job, stage, job_id), cwd=self._workdir(job),
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
        for index, argv in enumerate(_spec(job).init_command, 1):
            try:
                proc = subprocess.run(list(argv), env=self._local_env(job, "init"),
                                      cwd=self._workdir(job), stdin=subprocess.DEVNULL)
            except OSError as err:
                raise ServiceError(f"{job.slug}: init_command {index} ({argv[0]}): {err.strerror}") from err
            if proc.returncode != 0:
                raise ServiceError(f"{job.slug}: init_command {index} ({shlex.join(argv)}) "
                                   f"exited {proc.returncode}")

    # -- verbs (callers hold the lock)

    def start(self, job: Job) -> QueueEntry:
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
        if _spec(job).stages:
            out = self.run_stage(job, "start")
            stage_options, problems = parse_stage_start(out)
            if problems:
                raise ServiceError(f"{slug}: stage start of {_spec(job).stages}: "
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
        env = submit_environment(self.client.env, user=self.user,
                                 home=_home(self.user) or "/")
        try:
            job_id = self.client.submit(argv, env=env)
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

    def _wait_started(self, slug: str, job_id: str) -> QueueEntry:
        began = time.monotonic()
        running_since = None
        last = None
        while True:
            entry = self.job_entry(job_id)
            clock = time.monotonic()
            waited = clock - began
            if entry is not None:
                last = entry
                if entry.state not in ACTIVE_STATES:
                    break
                if entry.state == "RUNNING":
                    running_since = clock if running_since is None else running_since
                    if clock - running_since >= START_CONFIRM:
                        return entry
                elif running_since is None and waited >= START_SETTLE:
                    return entry  # still pending (or configuring): say so
            if waited >= START_WAIT:
                if last is not None and last.state in ACTIVE_STATES:
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
        sig = _spec(job).stop_signal
        if _spec(job).stages:
            try:
                named = parse_stage_signal(self.run_stage(job, "stop", found[0].job_id))
                if named is not None:
                    sig = named
            except (ServiceError, ValueError) as err:
                # Stopping must always work: a broken stop stage costs its signal only.
                self.say(f"{slug}: warning: stage stop: {err}; using SIG{signal_name(sig)}")
        self.stop_jobs(slug, found, sig, job.kill_grace)
        return True

    def stop_jobs(self, slug: str, found: Sequence[QueueEntry], sig: int, grace: float) -> None:
        for entry in found:
            self._stop_one(slug, entry, sig, grace)
        self.write_state(slug, last_action="stop", stopped_at=iso(now()))

    def _stop_one(self, slug: str, entry: QueueEntry, sig: int, grace: float) -> None:
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
            if current is None or current.state not in ACTIVE_STATES or current.state == "COMPLETING":
                return
            raise ServiceError(str(err)) from err

    def _wait_gone(self, job_id: str, limit: float) -> bool:
        deadline = time.monotonic() + limit
        while True:
            entry = self.job_entry(job_id)
            if entry is None or entry.state not in ACTIVE_STATES:
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
        sig = _spec(job).reload_signal
        if _spec(job).stages:
            try:
                named = parse_stage_signal(self.run_stage(job, "reload", entry.job_id))
            except ValueError as err:
                raise ServiceError(f"{slug}: stage reload of {_spec(job).stages}: {err}; "
                                   "nothing sent") from err
            if named is not None:
                sig = named
        self._cancel(entry.job_id, signal=sig, batch=True)
        self.write_state(slug, last_action="reload", reloaded_at=iso(now()))
        self.say(f"{slug}: sent SIG{signal_name(sig)} to the main process of Slurm job {entry.job_id}")
        return entry.job_id

    def init(self, job: Job) -> None:
        self.stop(job)
        if _spec(job).stages:
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

    def status_rows(self, jobs: Sequence[Job], entries: Sequence[QueueEntry]
                    ) -> tuple[list[tuple[str | None, ...]], int]:
        rows: list[tuple[str | None, ...]] = []
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


def query_services(client, slugs: Sequence[str], user: str) -> list[QueueEntry]:
    """The jobs named like the services ``slugs``, of ``user``, not yet ended
    (one squeue). Raises SlurmUnreachable: never read that as "no job"."""
    if not slugs:
        return []
    names = sorted({service_job_name(s) for s in slugs})
    return client.queue(names=names, user=user, fields=SERVICE_FIELDS)


def service_states(config: Config, jobs: Iterable[Job], client=None) -> dict[str, str]:
    """Slurm state per service for ``run-job --status``: ``RUNNING``,
    ``PENDING``..., ``not running``, or ``unknown: Slurm unreachable``.
    Jobs that are not services are left out. One squeue call."""
    services = [job for job in jobs if job is not None and getattr(job, "is_service", False)]
    if not services:
        return {}
    if client is None:
        from run_job.slurm.client import SlurmClient

        client = SlurmClient()
    try:
        entries = query_services(client, [job.slug for job in services], config.user)
    except SlurmUnreachable:
        return {job.slug: UNREACHABLE_STATE for job in services}
    except SlurmError as err:
        return {job.slug: f"unknown: {err}" for job in services}
    states = {}
    for job in services:
        found = entries_of(entries, job.slug, config.user)
        states[job.slug] = str(found[0].state) if found else NOT_RUNNING  # (an active state)
    return states


def watch_started(config: Config, jobs: Iterable[Job], client=None
                  ) -> dict[str, tuple[str, str]]:
    """For each service that sbatch-service last started (its state file):
    slug -> (``up`` | ``down`` | ``unknown``, detail). ``down``: Slurm no
    longer has its job; ``unknown``: Slurm could not be asked (the detail says
    why). One squeue for all of them, none when no service is started."""
    wanted = {}
    for job in jobs:
        if job is not None and getattr(job, "is_service", False):
            state = read_state(config, job.slug)
            if started(state):
                wanted[job.slug] = state
    if not wanted:
        return {}
    if client is None:
        from run_job.slurm.client import SlurmClient

        client = SlurmClient()
    try:
        entries = query_services(client, sorted(wanted), config.user)
    except SlurmError as err:  # unreachable, or an answer we cannot use: not "gone"
        return {slug: ("unknown", str(err)) for slug in wanted}
    out = {}
    for slug, state in wanted.items():
        found = entries_of(entries, slug, config.user)
        if found:
            out[slug] = ("up", f"Slurm job {found[0].job_id} {found[0].describe()}")
        else:
            job_id = state.get("job_id")
            when = state.get("submitted_at")
            out[slug] = ("down", "sbatch-service started it"
                         + (f" (Slurm job {job_id}" if job_id else "")
                         + (f", submitted {when}" if when and job_id else "")
                         + (")" if job_id else "") + "; Slurm no longer has it")
    return out
