"""The controller of one run of ``run-job --job``: wires identity, lock, records,
executor and alerts together, and returns the exit status of SPEC §4.

Order of a run:

1. ``check_runnable`` refuses services; ``prepare`` (as root: a missing
   ``run_directory`` recreated safely, the Slurm runner loaded, a job's
   ``limits`` made real by ``confine.prepare``) becomes the child subreaper
   and then the service user, before any file is touched; the CLI
   configures logging only after that;
2. a paused job (``pauses.py``, one small file read) is ``skipped`` quietly
   before the lock is even opened, unless ``--force``: a paused job's cron
   run never disturbs a running one and leaves no folder;
3. ``run`` takes the job's flock (``lock.py``). Held by someone else: if that
   run's run-job is alive the run is ``skipped`` (exit 75, 0 under
   ``allow_overtime``). If it is gone, its orphaned processes (found by
   their ``RUN_JOB_RUN_ID`` marker) are stopped — TERM, ``kill_grace``,
   KILL — and its run settled (``reconcile``), then this run goes on;
4. Slurm jobs: ``slurm.runner.precheck`` (a reason = skipped);
5. run folder, its end lock (held until the end is recorded: what
   ``--wait`` blocks on), ``events.jsonl`` when the job declares events,
   ``status.json`` (running), ``latest``; in the same history
   update, every other ``running`` entry and every run folder stuck at
   ``running`` is settled (under the lock they are dead), and this run's
   entry added; lost runs get their alerts; start hooks. Until here nothing
   has started: a failure is exit 125 and the run folder says why;
6. the executor (``supervise.execute`` or ``slurm.batch.execute``), once
   per attempt when the job retries (``retry.py``: the lock stays held, the
   delays are slept on the signal wakeup, every attempt goes into
   ``status.json``'s ``attempts``), with the run's ``EventWatch``
   (``jobevents.py``) when the job declares events; from here on every
   error path still ends in a recorded outcome;
7. final ``status.json`` and history (each written even when the other
   cannot be), end alerts; the end lock let go; retention.

With ``metrics.textfile_directory`` set, the job's Prometheus textfile is
rewritten after the start entry, after the end (and after a skip), from the
history just written (``monitor/textfile.py``); a failure is logged only.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

from run_job import clock, console, logsetup
from run_job.errors import EXIT_CANNOT_RUN, EXIT_SKIPPED, ProcessControlError, RunRecordError
from run_job.model import Config, Job, Record
from run_job.run import history, lock, reconcile, records, supervise, transitions


def job_environment(base: dict[str, str], job: Job, run_id: str, run_dir: str) -> dict[str, str]:
    """Inherited environment + the job's ``environment`` + ``RUN_JOB_*`` (pure)."""
    env = dict(base)
    env.update(job.environment)
    env.update({
        "RUN_JOB_NAME": job.slug,
        "RUN_JOB_RUN_ID": run_id,
        "RUN_JOB_RUN_DIR": run_dir,
        "RUN_JOB_FILE": os.fspath(job.path),
    })
    if job.events:  # for run-job --trigger's "did you mean" (the supervisor checks again)
        env["RUN_JOB_EVENTS"] = ",".join(job.events)
    return env


def check_runnable(job: Job) -> None:
    """Refuse what ``run-job --job`` does not run (services)."""
    if job.is_service:
        raise ProcessControlError(
            f"{job.slug} is a Slurm service, not a batch job; use"
            f" 'sbatch-service start {job.slug}' (or stop/restart/status)")


class Prepared(Record):
    """What ``prepare`` hands to ``run``."""

    identity_env: dict  # HOME/USER/LOGNAME of the service user, for the job
    started: Any  # the run's start (its run id says it)
    run_id: str
    confinement: Any = None  # model.Confinement of a job with limits, else None


def prepare(config: Config, job: Job) -> Prepared:
    """Everything done before the switch to the service user, then the switch.

    A job with ``limits`` gets them here, as root (``confine.prepare``: the
    run's cgroup, its cleaner, the shim); a limit that cannot be enforced
    raises LimitError (exit 125) before anything is made or started."""
    from run_job import privileges

    started = clock.now()
    run_id = records.make_run_id(started, os.getpid())
    if os.geteuid() == 0:
        _ensure_run_directory(config)
    if job.runner == "slurm":
        # loaded while the code is certainly readable
        from run_job.slurm import batch  # noqa: F401 - preloaded before the privilege drop
    confinement = None
    if job.limits is not None:
        from run_job.run import confine

        confinement = confine.prepare(job, run_id)  # before the subreaper: see confine
    supervise.become_subreaper()  # before the switch: prctl needs ctypes
    identity_env = privileges.become(config.user)
    privileges.check_code_readable(config.user)
    return Prepared(identity_env=identity_env, started=started, run_id=run_id,
                    confinement=confinement)


def _ensure_run_directory(config: Config) -> None:
    """As root: recreate a missing ``run_directory`` for the service user.

    /run is a tmpfs: after a reboot the folder is back only once
    systemd-tmpfiles has run, and the service user cannot create it in /run.
    Created only under a parent that root owns and nobody else can write
    (``security.make_dir_for``); anything else is left to the step that needs
    the folder, which reports it.
    """
    path = os.fspath(config.run_directory)
    if os.path.isdir(path):
        return
    import pwd

    from run_job.security import make_dir_for

    try:
        entry = pwd.getpwnam(config.user)
        make_dir_for(path, entry.pw_uid, entry.pw_gid, 0o755)
    except (KeyError, OSError) as err:
        logsetup.info("run_directory %s not created: %s", path, err)


def run(config: Config, job: Job, prepared: Prepared, *, slow_start: bool = False,
        due: Any = None, force: bool = False, on_record: Any = None,
        launch: dict[str, Any] | None = None) -> int:
    """One run of ``job`` (after ``prepare``); returns run-job's exit status.
    Raises ProcessControlError for what stops a run before it starts (125).
    ``due``: with ``--if-due``, the start (UTC) this run is for; when a run
    of the job started since (or starts meanwhile), exit 0 with no record.
    ``force``: run a paused job anyway (its record says so).
    ``launch``: how run-job was started (``config``, ``debug``), for a wait
    handed to the lean waiter (``handoff.py``); None: this process waits."""
    from run_job.privileges import user_name

    supervise.install_signal_handlers()
    commands, command_text = job.commands, job.command_text
    if slow_start and job.slow_start_commands:
        commands, command_text = job.slow_start_commands, job.slow_start_text or command_text
    run_id = prepared.run_id
    my_start = supervise.proctree.proc_start_time(os.getpid())
    run = _Run(config, job, commands, command_text, run_id, prepared.started, my_start,
               prepared.identity_env, user_name(), prepared.confinement, on_record)
    run.launch = launch
    if due is not None and _ran_since(config, job, due):
        return 0
    paused = pause_of(config, job.slug)
    if paused is not None:
        from run_job.run import pauses

        if not force:
            return run.skip(pause=paused)
        run.notes.append(f"run although {pauses.describe(paused)} (--force by {pauses.who()})")
    lock_fd = lock.open_lock(lock.lock_path(config.run_directory, job.slug))
    try:
        held = not lock.try_lock(lock_fd)
        if held and due is not None:
            holder = _due_holder(lock_fd, due)
            if holder == "same start":
                return 0  # another cron entry of this minute runs it
            held = holder != "free"
        if held:
            acquired, why = _take_over_lost_run(config, job, lock_fd)
            if not acquired:
                return run.skip(why)
            run.notes.append(why)
        if due is not None and _ran_since(config, job, due):
            return 0  # it ran while we waited for the lock
        lock.write_holder(lock_fd, lock.format_holder(os.getpid(), my_start, run_id))
        try:
            return run.locked(lock_fd)
        finally:
            run.release_end_lock()
            try:  # an empty holder: nobody mistakes this run for a live one
                os.ftruncate(lock_fd, 0)
            except OSError:
                pass
    finally:
        os.close(lock_fd)


# A wait before a retry at least this long (seconds) is handed to the lean waiter.
DELAY_HANDOFF = 2.0


def resume(config: Config, job: Job, confinement: Any, saved: dict[str, Any], *,
           on_record: Any = None) -> int:
    """Go on with a run whose wait was handed to the lean waiter and is over
    (``handoff.py``): the same process (pid, locks, children), a fresh
    interpreter. Returns run-job's exit status, as ``run`` does."""
    supervise.install_signal_handlers()
    r = saved["run"]
    run = _Run(config, job, tuple(tuple(c) for c in r["commands"]), tuple(r["command_text"]),
               r["run_id"], clock.parse_iso(r["started"]), r["my_start"], r["identity_env"],
               r["user"], confinement, on_record)
    run.launch = saved["launch"]
    run.notes = list(r["notes"])
    run.record = r["record"]
    run.run_dir = r["run_dir"]
    run.end_fd = r["end_fd"]
    for fd in (run.end_fd, confinement.cleaner_fd if confinement is not None else None):
        if fd is not None:  # kept open across the hand-off; not for the job's commands
            os.set_inheritable(fd, False)
    lock_fd = r["lock_fd"]
    slurm: Any = None
    if job.runner == "slurm":
        from run_job.slurm import batch as slurm
    try:
        return run.execute(slurm, lock_fd, resumed=saved["loop"])
    finally:
        run.release_end_lock()
        try:
            os.ftruncate(lock_fd, 0)
        except OSError:
            pass
        os.close(lock_fd)


def _ran_since(config: Config, job: Job, due: Any) -> bool:
    from run_job.run.due import ran_since

    return ran_since(history.read(config.state_directory, job.slug), due)


def _due_holder(lock_fd: int, due: Any) -> str:
    """The lock is held: ``same start`` when by a run for the start ``due``
    (another cron entry of this minute), ``free`` when it came free (ours
    now), else ``other``. A holder that has just taken the lock may not have
    written its id yet: wait for it a moment."""
    import time

    from run_job.run.due import run_started_since

    deadline = time.monotonic() + 1.0
    while True:
        _, _, run_id = lock.read_holder(lock_fd)
        if run_id or time.monotonic() >= deadline:
            return "same start" if run_started_since(run_id, due) else "other"
        if lock.try_lock(lock_fd):
            return "free"
        time.sleep(0.01)


def pause_of(config: Config, slug: str) -> dict[str, Any] | None:
    """The job's pause (SPEC §9), ended first if past its ``until``: one
    open of a small file in ``state_directory`` (as the service user)."""
    from run_job.run import pauses

    try:
        return pauses.read(config.state_directory, slug)
    except RunRecordError as err:  # an expired pause that could not be removed
        logsetup.error("%s: %s", slug, err)
        return None


class _Run:
    """The state of one run while the controller wires it."""

    def __init__(self, config: Config, job: Job, commands: tuple, command_text: tuple,
                 run_id: str, started: Any, my_start: int | None,
                 identity_env: dict[str, str], user: str, confinement: Any = None,
                 on_record: Any = None) -> None:
        self.config, self.job = config, job
        self.on_record = on_record
        self.confinement = confinement
        self.commands, self.command_text = commands, command_text
        self.run_id, self.started, self.my_start = run_id, started, my_start
        self.identity_env, self.user = identity_env, user
        self.notes: list[str] = []  # said in the final reason
        self.record: dict[str, Any] = {}
        self.run_dir = ""
        self.end_fd: int | None = None  # the run's end lock (lock.hold_end_lock)
        self.launch: dict[str, Any] | None = None  # see run(); None: no hand-off

    def recorded(self) -> None:
        """The run's records changed (started, ended, skipped): tell the
        observer the CLI gave (the metrics textfile), which never raises."""
        if self.on_record is not None:
            self.on_record()

    def new_record(self, **fields: Any) -> dict[str, Any]:
        return records.new_record(
            job=self.job.slug, runner=self.job.runner, host=records.host_name(),
            user=self.user, pid=os.getpid(), command=self.command_text,
            job_file_sha256=self.job.sha256, **fields)

    def history(self, change: Any, *, fsync: bool = True) -> list[dict[str, Any]]:
        return history.update(self.config.state_directory, self.job.slug, change, fsync=fsync)

    # -- before the job starts

    def locked(self, lock_fd: int) -> int:
        config, job = self.config, self.job
        slurm: Any = None  # the Slurm executor module, or None: the local one
        if job.runner == "slurm":
            from run_job.slurm import batch as slurm

            reason = slurm.precheck(config, job)  # SlurmUnreachable propagates: exit 125
            if reason:
                return self.skip(reason)
        self.run_dir = records.create_run_dir(config.output_directory, job.slug, self.run_id)
        self._hold_end_lock()
        if job.events:
            try:
                from run_job.run import jobevents

                jobevents.create(self.run_dir)
            except OSError as err:  # --trigger will say the run takes no events
                logsetup.error("%s: events of this run cannot be recorded: %s", job.slug, err)
        self.record = self.new_record(
            run_id=self.run_id, started_at=self.started, run_dir=self.run_dir,
            supervisor_start_time=self.my_start, reason="; ".join(self.notes))
        try:
            records.write_status(self.run_dir, self.record, fsync=False)
            records.point_latest(config.output_directory, job.slug, self.run_id)
            after: list[list[dict[str, Any]]] = []
            self.history(lambda es: self._start_entry(es, after), fsync=False)
        except RunRecordError as err:
            self._abandon(err)
            raise
        if after:
            self._alert_lost_runs(after[-1])
        logsetup.info("%s: run %s started (%s)", job.slug, self.run_id,
                      "; ".join(self.command_text))
        self._warn_setup()
        self.recorded()
        _alerts_start(config, job, self.record)
        return self.execute(slurm, lock_fd)

    def _hold_end_lock(self) -> None:
        """Before status.json says ``running``: a waiter that sees the run
        running finds the lock held. Without it waiters watch status.json."""
        try:
            self.end_fd = lock.hold_end_lock(self.run_dir)
        except OSError as err:
            logsetup.warning("%s: run-job --wait will poll this run: %s", self.job.slug, err)

    def release_end_lock(self) -> None:
        """The end is recorded (or the run never started): wake the waiters."""
        if self.end_fd is not None:
            os.close(self.end_fd)
            self.end_fd = None

    def _start_entry(self, entries: list[dict[str, Any]],
                     after: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """This run's ``running`` entry; every other run left at ``running``
        (in the history or only in its run folder) is dead: settled."""
        config, slug = self.config, self.job.slug
        entries, _ = reconcile.settle_in(config, slug, entries, skip=self.run_id)
        for stuck in reconcile.stuck_runs(config, slug, entries, skip=self.run_id):
            lost = transitions.lost(stuck, reconcile.lost_reason(stuck) + (
                " (before writing its history entry)"), clock.now())
            reconcile.record_status(config, slug, [lost])
            entries = transitions.insert(entries, lost, config.history_length)
        entries = transitions.upsert(entries, self.record, config.history_length)
        after.append(entries)
        return entries

    def _abandon(self, err: Exception) -> None:
        """Nothing was started: say so in the run folder (it would otherwise
        stay at ``running``), then the caller exits 125."""
        done = transitions.finished(self.record, ended_at=clock.now(), outcome="failed",
                                    reason=f"run-job could not start the run: {err}")
        try:
            records.write_status(self.run_dir, done)
        except RunRecordError:
            pass

    def _warn_setup(self) -> None:
        """Problems that will bite later, said at every start (cron mails them)."""
        job, mail = self.job, self.config.mail
        if job.failmail is None or (mail.password_file is None and not mail.username):
            return  # the common case: smtplib and ssl stay unimported
        from run_job.alerts.mail import password_file_problem

        problem = password_file_problem(mail, self.config.user)
        if problem:
            logsetup.warning("%s: failure mail will not be sent: %s", job.slug, problem)

    # -- the job

    def execute(self, slurm: Any, lock_fd: int, resumed: dict[str, Any] | None = None) -> int:
        """Run the job: the executor once per attempt (SPEC §10, ``retry.py``),
        the lock held throughout; then ``finish``. ``resumed``: the state of
        the attempt loop when this run's wait was handed off (``handoff.py``),
        with the executor's own (``exec``) to go on from."""
        from run_job.model import ExecResult, RunContext, replace
        from run_job.run import retry as retries

        config, job = self.config, self.job
        state = {"record": resumed["record"] if resumed is not None else self.record}

        def update_status(**fields: Any) -> None:
            state["record"] = {**state["record"], **fields}
            try:
                records.write_status(self.run_dir, state["record"], fsync=False)
                if "slurm_job_id" in fields:  # --status and --kill-job read the history entry
                    self.history(lambda es: transitions.upsert(es, state["record"],
                                                               config.history_length),
                                 fsync=False)
            except RunRecordError as err:  # a record detail: supervision goes on
                logsetup.error("%s: %s", job.slug, err)

        env = job_environment(dict(os.environ), job, self.run_id, self.run_dir)
        workdir = job.working_directory or _home(self.identity_env)
        events = None
        if job.events:
            from run_job.run.jobevents import EventWatch

            close = (lock_fd,) + ((self.end_fd,) if self.end_fd is not None else ())
            events = EventWatch(config, job, self.run_dir, lambda: state["record"], update_status,
                                close=close, use_inotify=job.runner == "local")
        ctx = RunContext(
            config=config, job=job, run_id=self.run_id, run_dir=_path(self.run_dir),
            output_path=_path(os.path.join(self.run_dir, "output.log")),
            commands=self.commands, command_text=self.command_text, environment=env,
            working_directory=_path(workdir), update_status=update_status,
            stop_requested=supervise.stop_requested, confinement=self.confinement,
            events=events)
        retrying = retries.enabled(job.retry)
        attempts: list[dict[str, Any]] = list(resumed["attempts"]) if resumed is not None else []
        plan = retries.Plan(None)
        number = resumed["number"] if resumed is not None else 1
        pending = resumed["exec"] if resumed is not None else None
        os.set_inheritable(lock_fd, True)  # the job's own tree holds the lock too
        try:
            while True:
                if pending is not None and pending["kind"] == "delay":  # back from waiting to retry
                    previous = ExecResult(**pending["previous"])
                    until, pending = pending["until"], None
                    signum = supervise.stop_requested()
                    if signum is None and until > clock.monotonic():
                        signum = supervise.sleep(until - clock.monotonic())
                    if signum is not None:
                        result = _killed_in_delay(previous, signum, number, self.run_dir)
                        attempts[-1] = {**attempts[-1], "retry_at": None}
                        update_status(attempts=list(attempts))
                        plan = retries.Plan(None)
                        break
                    number += 1
                if retrying and pending is None:
                    begun = clock.now()
                    offset = self._mark_attempt(ctx, number, attempts, begun)
                    attempts.append(retries.attempt_record(number, begun, offset))
                    update_status(attempts=list(attempts))
                handoff = None
                if self.launch is not None and events is None:
                    handoff = self._handoff(lock_fd, number, list(attempts), state)
                result = self._attempt(slurm, replace(ctx, attempt=number, handoff=handoff),
                                       pending)
                pending = None
                if not retrying:
                    break
                ended = clock.now()
                plan = retries.plan(job.retry, attempt=number, outcome=result.outcome,
                                    stopping=supervise.stop_requested() is not None, now=ended,
                                    next_start=self._next_start() if result.outcome in
                                    retries.RETRIED_OUTCOMES else None)
                retry_at = None
                if plan.delay is not None:
                    from datetime import timedelta

                    retry_at = ended + timedelta(seconds=plan.delay)
                attempts[-1] = retries.ended_attempt(attempts[-1], result, ended, retry_at)
                update_status(attempts=list(attempts))
                if plan.delay is None:
                    break
                logsetup.info("%s: attempt %d %s; attempt %d in %gs", job.slug, number,
                              result.outcome, number + 1, plan.delay)
                if self.launch is not None and events is None and plan.delay >= DELAY_HANDOFF:
                    # the wait before the retry goes to the lean waiter too (returns if it cannot)
                    self._handoff(lock_fd, number, list(attempts), state)({
                        "kind": "delay", "until": clock.monotonic() + plan.delay,
                        "previous": {name: getattr(result, name) for name in ExecResult._fields}})
                signum = supervise.sleep(plan.delay)
                if signum is not None:
                    result = _killed_in_delay(result, signum, number, self.run_dir)
                    attempts[-1] = {**attempts[-1], "retry_at": None}
                    update_status(attempts=list(attempts))
                    plan = retries.Plan(None)
                    break
                number += 1
        finally:
            os.set_inheritable(lock_fd, False)
        ended = clock.now()
        if events is not None:  # the last events, and their hooks' end (bounded)
            events.finish()
        told = (retries.summary(attempts, job.retry, result.outcome, plan.why)
                if retrying and job.retry is not None else "")
        reason = "; ".join(r for r in (*self.notes, result.reason, told) if r)
        final = transitions.finished(
            state["record"], ended_at=ended, outcome=result.outcome,
            exit_code=result.exit_code, signal=result.signal, reason=reason,
            slurm_job_id=result.slurm_job_id if result.slurm_job_id is not None
            else state["record"].get("slurm_job_id"))
        self.finish(final, result.exit_status)
        return result.exit_status

    def _handoff(self, lock_fd: int, number: int, attempts: list[dict[str, Any]],
                 state: dict[str, Any]) -> Any:
        """The executor's way to hand its wait to the lean waiter: everything
        this run and its attempt loop need to go on afterwards (``resume``)."""
        def handoff(executor_state: dict[str, Any]) -> None:
            from run_job.run import handoff as handoffs

            saved = {
                "run": {"commands": [list(c) for c in self.commands],
                        "command_text": list(self.command_text), "run_id": self.run_id,
                        "started": clock.iso(self.started), "my_start": self.my_start,
                        "identity_env": dict(self.identity_env), "user": self.user,
                        "notes": list(self.notes), "record": self.record,
                        "run_dir": self.run_dir, "end_fd": self.end_fd, "lock_fd": lock_fd},
                "loop": {"number": number, "attempts": attempts, "record": state["record"],
                         "exec": executor_state},
                "launch": self.launch,
            }
            keep = [lock_fd] + ([self.end_fd] if self.end_fd is not None else [])
            handoffs.hand_off(self.config, self.job, self.confinement, saved, keep)

        return handoff

    def _attempt(self, slurm: Any, ctx: Any, resume: dict[str, Any] | None = None) -> Any:
        """One call of the executor; every error becomes a recorded result.
        ``resume``: the executor's state from a hand-off (``handoff.py``)."""
        from run_job.model import ExecResult

        try:
            if resume is not None:
                return (slurm.execute(ctx, resume=resume) if slurm is not None
                        else supervise.execute(ctx, resume=resume))
            return slurm.execute(ctx) if slurm is not None else supervise.execute(ctx)
        except ProcessControlError as err:
            return ExecResult("failed", err.exit_status, reason=str(err))
        except OSError as err:
            return ExecResult("failed", EXIT_CANNOT_RUN, reason=f"run-job could not run the job: {err}")
        except Exception as err:  # noqa: BLE001 - the executor swept the job; record it
            return ExecResult("failed", EXIT_CANNOT_RUN, reason=(
                f"run-job failed while running the job: {type(err).__name__}: {err}"))

    def _mark_attempt(self, ctx: Any, number: int, attempts: list[dict[str, Any]],
                      begun: Any) -> int | None:
        """Before a retry: a marker line in output.log (after a newline of its
        own if the output did not end with one); the offset where the
        attempt's output begins. The first attempt gets no marker."""
        from run_job.run import retry as retries

        path = os.fspath(ctx.output_path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o640)
        except OSError as err:
            logsetup.error("%s: cannot open %s: %s", self.job.slug, path, err.strerror)
            return None
        try:
            size = os.fstat(fd).st_size
            if number > 1 and attempts and self.job.retry is not None:
                line = retries.marker_line(number, self.job.retry.maximum_retries + 1, begun,
                                           attempts[-1])
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line
                os.write(fd, line)
                size += len(line)
            return size
        except OSError as err:
            logsetup.error("%s: cannot write the attempt marker to %s: %s", self.job.slug, path,
                           err.strerror)
            return None
        finally:
            os.close(fd)

    def _next_start(self) -> Any:
        """The job's next scheduled start after this run began (its zone, its
        hashed fields expanded), or None when it is not scheduled."""
        job = self.job
        if not job.schedule or job.disabled:
            return None
        from run_job.config.schedule import expand, next_start, zone_of

        try:
            return next_start(expand(job.schedule, self.config.hash_seed, job.slug),
                              self.started, zone_of(job.timezone))
        except Exception as err:  # noqa: BLE001 - no bound is better than no run
            logsetup.error("%s: next scheduled start unknown: %s", job.slug, err)
            return None

    # -- after the job

    def finish(self, final: dict[str, Any], status: int) -> None:
        """Record the end: status.json first (durable in the run folder), then
        the history with the alerts' results; each is written even when the
        other cannot be, and a failure is said, never raised."""
        config, job = self.config, self.job
        try:
            records.write_status(self.run_dir, final, fsync=False)  # the history is fsynced
        except RunRecordError as err:
            logsetup.error("%s: run %s %s (exit %s), but %s", job.slug, self.run_id,
                           final["outcome"], status, err)
        _log_end(job, final, status)
        previous = [e for e in history.read(config.state_directory, job.slug)
                    if e.get("run_id") != self.run_id]
        paused = self._auto_pause(final, previous)
        if paused is not None:
            final = {**final, "reason": _paused_reason(final["reason"], job)}
        alerts = _alerts_end(config, job, final, previous, paused)
        if alerts:
            final = {**final, "alerts": alerts}
        try:
            self.history(lambda es: transitions.upsert(es, final, config.history_length))
        except RunRecordError as err:
            logsetup.error("%s: run %s %s (exit %s) is not in the history: %s", job.slug,
                           self.run_id, final["outcome"], status, err)
        if alerts:
            try:
                records.write_status(self.run_dir, final, fsync=False)
            except RunRecordError:
                pass  # said above
        self.release_end_lock()
        self.recorded()
        for problem in records.prune_runs(config.output_directory, job.slug, self.run_id,
                                          config.keep_runs, config.keep_days):
            logsetup.warning("%s: %s", job.slug, problem)

    def skip(self, reason: str = "", *, pause: dict[str, Any] | None = None) -> int:
        """A skipped run: a history entry only (no folder, ``latest`` unchanged).
        ``pause``: the job is paused (SPEC §9): the reason names who paused it,
        since, until and why; exit 0, no mail and no hooks, neutral for the
        failure streak, said on stderr only when that is a terminal (cron
        mails any output)."""
        config, job = self.config, self.job
        if pause is not None:
            from run_job.run import pauses

            reason = f"{pauses.describe(pause)}; run-job --resume {job.slug} ends the pause"
        now = clock.now()
        record = self.new_record(run_id=records.make_run_id(now, os.getpid()), started_at=now,
                                 run_dir=None, supervisor_start_time=None, outcome="skipped",
                                 reason=reason)
        record = transitions.finished(record, ended_at=now, outcome="skipped", reason=reason)
        if pause is not None:
            return self._skip_paused(record)
        status = 0 if job.allow_overtime else EXIT_SKIPPED
        try:
            previous = [e for e in self.history(
                lambda es: transitions.upsert(es, record, config.history_length))
                if e.get("run_id") != record["run_id"]]
        except RunRecordError as err:
            logsetup.error("%s: %s", job.slug, err)
            previous = []
        logsetup.log(logsetup.INFO if job.allow_overtime else logsetup.WARNING,
                     "%s: skipped: %s", job.slug, reason)
        paused = self._auto_pause(record, previous)
        if paused is not None:
            record = {**record, "reason": _paused_reason(record["reason"], job)}
        alerts = _alerts_end(config, job, record, previous, paused)
        if alerts:
            record = {**record, "alerts": alerts}
            try:
                self.history(lambda es: transitions.replace(es, record["run_id"], record,
                                                            only="skipped"))
            except RunRecordError:
                pass
        self.recorded()
        return status

    def _auto_pause(self, record: dict[str, Any], previous: list[dict[str, Any]]
                    ) -> dict[str, Any] | None:
        """``pause_after_failures``: the pause (source ``auto``) this run's end
        puts on the job, or None. A job already paused keeps its pause."""
        job = self.job
        if not job.pause_after_failures:
            return None
        from run_job.alerts import notify
        from run_job.run import pauses

        outcome = record.get("outcome")
        streak = notify.consecutive_failures(outcome, job.allow_overtime, previous)
        reason = pauses.auto_pause_reason(job.pause_after_failures, streak,
                                          notify.is_failure(outcome, job.allow_overtime),
                                          str(outcome), str(record.get("run_id")))
        if reason is None:
            return None
        state = self.config.state_directory
        try:
            if pauses.read(state, job.slug) is not None:
                return None
            paused = pauses.pause(state, job.slug, reason=reason, source="auto", by="run-job")
        except RunRecordError as err:
            logsetup.error("%s: %s failures in a row, but the job could not be paused: %s",
                           job.slug, streak, err)
            return None
        logsetup.warning("%s: paused: %s; run-job --resume %s ends the pause", job.slug,
                         reason, job.slug)
        return paused

    def _skip_paused(self, record: dict[str, Any]) -> int:
        from run_job.alerts import notify

        config, job = self.config, self.job

        def add(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            streak = notify.previous_failures(entries, job.allow_overtime)
            done = {**record, "alerts": {"counts_as": notify.NEUTRAL, "consecutive_failures": streak,
                                         "events": [], "mail": None, "hooks": []}}
            return transitions.upsert(entries, done, config.history_length)

        try:
            self.history(add)
        except RunRecordError as err:
            logsetup.error("%s: %s", job.slug, err)
        logsetup.info("%s: skipped: %s", job.slug, record["reason"])
        self.recorded()
        if logsetup.stderr_is_terminal():
            console.say_error("run-job", [f"{job.slug} not run: {record['reason']};"
                                          " --force runs it once"])
        return 0

    def _alert_lost_runs(self, entries: list[dict[str, Any]]) -> None:
        """Runs marked ``lost`` (by this run, an earlier one or ``--status``)
        never had their end alerts: mail and ``failure`` hooks now, oldest first."""
        from run_job.alerts.notify import unalerted_lost

        config, job = self.config, self.job
        for index, lost in unalerted_lost(entries):
            done = {**lost, "alerts": _alerts_end(config, job, dict(lost), entries[:index])}
            try:
                self.history(lambda es, done=done: transitions.replace(
                    es, done["run_id"], done, only="lost"))
            except RunRecordError as err:
                logsetup.error("%s: %s", job.slug, err)
            folder = reconcile.run_dir(config, job.slug, done["run_id"])
            status = records.read_status(folder)
            if status is not None and status.get("outcome") == "lost":
                try:
                    records.write_status(folder, done, fsync=False)
                except RunRecordError as err:
                    logsetup.error("%s: %s", job.slug, err)


def _killed_in_delay(previous: Any, signum: int, number: int, run_dir: str) -> Any:
    """The run's end when a stop signal (``--kill-job``) arrives while it
    waits to retry: ``killed``, 128+N, saying what the last attempt did."""
    from run_job.model import ExecResult

    return ExecResult("killed", 128 + signum, signal=signum, slurm_job_id=previous.slurm_job_id,
                      reason=(f"{supervise.stopped_by(run_dir, signum)} while waiting to retry:"
                              f" attempt {number + 1} never started (attempt {number}"
                              f" {previous.outcome}{': ' + previous.reason if previous.reason else ''})"))


def _paused_reason(reason: str, job: Job) -> str:
    note = f"the job is now paused; run-job --resume {job.slug} ends the pause"
    return f"{reason}; {note}" if reason else note


def _home(identity_env: dict[str, str]) -> str:
    from run_job.privileges import default_working_directory

    return default_working_directory(identity_env.get("HOME"))


def _path(text: str | os.PathLike[str]) -> Any:
    from pathlib import Path

    return Path(text)


def _log_end(job: Job, record: dict[str, Any], status: int) -> None:
    level = logsetup.INFO if record["outcome"] == "success" else logsetup.WARNING
    logsetup.log(level, "%s: run %s %s (exit %s)%s", job.slug, record["run_id"],
                 record["outcome"], status, f": {record['reason']}" if record["reason"] else "")


def _alerts_start(config: Config, job: Job, record: dict[str, Any]) -> None:
    try:
        from run_job.alerts import notify

        notify.on_start(config, job, dict(record))
    except Exception as err:  # noqa: BLE001 - alerts never stop a run
        logsetup.error("%s: start alerts failed: %s", job.slug, err)


def _alerts_end(config: Config, job: Job, record: dict[str, Any],
                previous: list[dict[str, Any]], paused: dict[str, Any] | None = None) -> dict:
    try:
        from run_job.alerts import notify

        result = notify.on_end(config, job, dict(record), previous, paused)
        return result if isinstance(result, dict) else {}
    except Exception as err:  # noqa: BLE001 - alerts never hide the job's result
        logsetup.error("%s: end alerts failed: %s", job.slug, err)
        return {"error": str(err)}


def _take_over_lost_run(config: Config, job: Job, lock_fd: int) -> tuple[bool, str]:
    """The lock is held. (True, note) if it belonged to a dead run-job whose
    orphans were stopped and the lock is now ours; else (False, skip reason)."""
    import time

    from run_job.run import proctree

    pid, start, run_id = lock.read_holder(lock_fd)
    if pid is None or run_id is None or proctree.process_alive(pid, start):
        who = f" (run-job pid {pid}, run {run_id})" if pid else ""
        return False, f"the previous run is still running{who}"
    count = proctree.sweep(run_id, job.kill_grace, own_tree=False)
    processes = f"{count} orphaned process{'es' if count != 1 else ''}"
    note = (f"run-job of run {run_id} (pid {pid}) was gone; {processes} of it stopped"
            f" (TERM, KILL after {job.kill_grace:g}s) before this run")
    entry = next((e for e in history.read(config.state_directory, job.slug)
                  if e.get("run_id") == run_id), None)
    if entry is None:  # it died before its first history entry: its run folder has it
        entry = records.read_status(reconcile.run_dir(config, job.slug, run_id))
    if entry is not None and entry.get("outcome") == "running":
        reconcile.settle(config, job.slug, entry, (
            f"supervision lost: run-job (pid {pid}) died; {processes} stopped by the next run"))
    logsetup.warning("%s: %s", job.slug, note)
    deadline = time.monotonic() + 2.0
    while True:
        if lock.try_lock(lock_fd):
            return True, note
        if time.monotonic() >= deadline:
            holders = lock.read_holder(lock_fd)
            return False, (f"the lock is still held by processes of run {holders[2] or run_id}"
                           " that carry no run marker; stop them by hand")
        time.sleep(0.02)
