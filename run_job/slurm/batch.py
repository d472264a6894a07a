"""Slurm batch runs: one run of a ``runner: slurm`` job, submitted and watched (the executor).

The controller (``controller.py``) holds the job's lock, creates the run folder
and ``status.json``, and calls, in this order:

* ``precheck(config, job) -> str | None``: before the run folder. A reason to
  skip when a Slurm job of an earlier run is still alive (found by its name
  ``<slug>.run-job`` and the user, so a crashed run-job's job counts too);
  raises ``SlurmUnreachable`` (exit 125) when Slurm cannot be asked.
* ``execute(ctx) -> ExecResult``: writes ``job.sbatch`` into the run folder,
  submits it, reports ``slurm_job_id`` through ``ctx.update_status`` as soon
  as sbatch answers, waits, and decides the outcome. Raises ``SlurmError`` /
  ``SlurmUnreachable`` only when nothing was submitted; once a job exists it
  always returns a result (``lost`` when Slurm stayed unreachable for
  ``config.slurm.unreachable_timeout``).

``kill(config, job, record) -> bool`` is ``--kill-job`` for a Slurm run, and
``describe(record) -> str | None`` the Slurm part of ``--status``; both take a
``status.json`` record or a history entry (the job id is then read from the
run folder's ``status.json``).

Waiting rates: job.status (written by the job itself) is read every
``slurm.STATUS_POLL`` (0.1 s); Slurm (``scontrol show job``) is asked every
second during the first minute, then every twelfth of the time waited, at most
every 30 s (``slurm.slurm_poll_interval``); a little faster (0.2 s) right after
run-job cancelled the job or the job wrote its end, to see Slurm release it.
The deadline (``job.timeout``) counts from the moment the job starts running;
the time spent pending is recorded as ``slurm_pending_s``. At the deadline
run-job cancels the job (TERM to the script and its processes), and after
``kill_grace`` sends KILL to all of them.
"""

from __future__ import annotations

import time
from pathlib import Path

from run_job import clock
from run_job.atomic import write_atomic
from run_job.errors import SlurmError, SlurmUnreachable
from run_job.model import Config, ExecResult, Job, RunContext, replace
from run_job.privileges import user_name
from run_job.security import STATE_LIMIT, read_bounded
from run_job.slurm.vocabulary import (SCRIPT_FILE, STATUS_FILE, STATUS_POLL, JobStatus, SlurmJob,
                           build_batch_script, build_sbatch_argv, decide_outcome, job_name,
                           parse_job_status, script_exports, slurm_poll_interval,
                           time_limit)
from run_job.slurm.client import SlurmClient
from run_job.slurm.options import check_options

# After job.status says the script ended, how long to wait for Slurm to see
# the job end too (normally a few hundredths of a second).
RELEASE_WAIT = 10.0
# After run-job cancelled the job (stop or deadline) and sent KILL, how long
# to wait for Slurm to report it gone before recording the outcome anyway.
CANCEL_WAIT = 30.0
FAST_POLL = 0.2


def precheck(config: Config, job: Job, *, client: SlurmClient | None = None) -> str | None:
    """A reason to skip this run (an earlier run's Slurm job is alive), or None."""
    client = client or SlurmClient()
    alive = client.queue(names=[job_name(job.slug)], user=user_name())
    if not alive:
        return None
    first = alive[0]
    more = f" (and {len(alive) - 1} more)" if len(alive) > 1 else ""
    return (f"Slurm job {first.job_id} ({first.name}) of an earlier run is still "
            f"{first.state}{more}")


# job.status is a few lines; the job itself could replace it with anything.
JOB_STATUS_LIMIT = 64 * 1024


def _read_status(path: Path) -> JobStatus | None:
    """The batch script's job.status; None while it is missing, or when it is
    not a regular file of at most ``JOB_STATUS_LIMIT`` bytes (never blocks)."""
    try:
        text = read_bounded(path, JOB_STATUS_LIMIT).decode(errors="replace")
    except OSError:
        return None
    return parse_job_status(text)


def execute(ctx: RunContext, *, client: SlurmClient | None = None) -> ExecResult:
    """Submit the run as a Slurm batch job and wait for its end."""
    client = client or SlurmClient()
    job, config = ctx.job, ctx.config
    refused = check_options(job.slurm.options)
    if refused:
        raise SlurmError(f"{job.path}: slurm.options: " + "; ".join(refused))
    run_dir = Path(ctx.run_dir)
    status_path = run_dir / STATUS_FILE
    script_path = run_dir / SCRIPT_FILE
    if ctx.attempt > 1:  # a retry: the earlier attempt's end must not be read as this one's
        _set_aside(status_path, ctx.attempt - 1)
    always = [name for name, _ in job.environment]
    always += [name for name in ctx.environment if name.startswith("RUN_JOB_")]
    script = build_batch_script(
        slug=job.slug, run_id=ctx.run_id, commands=ctx.commands,
        exports=script_exports(ctx.environment, client.env, always),
        working_directory=str(ctx.working_directory), run_dir=str(run_dir),
        output_path=str(ctx.output_path))
    # 0600: the script holds the job's environment values
    write_atomic(script_path, script.encode(), 0o600)
    argv = build_sbatch_argv(
        script_path=str(script_path), name=job_name(job.slug),
        output_path=str(ctx.output_path), run_dir=str(run_dir),
        partition=job.slurm.partition or config.slurm.partition,
        time=time_limit(job.slurm.time, job.timeout), options=job.slurm.options)
    sig = ctx.stop_requested()
    if sig is not None:
        return ExecResult(outcome="killed", exit_status=128 + sig, signal=sig,
                          reason=f"run-job received signal {sig} before submitting")
    job_id = client.submit(argv)
    try:
        ctx.update_status(slurm_job_id=job_id)
    except BaseException:
        # no record of the job: do not leave it running unsupervised
        try:
            client.cancel(job_id)
        except SlurmError:
            pass
        raise
    return _Watch(ctx, client, job_id, status_path).run()


def _set_aside(status_path: Path, attempt: int) -> None:
    """Keep an earlier attempt's job.status as job.status.<attempt>."""
    import os

    try:
        os.replace(status_path, status_path.with_name(f"{status_path.name}.{attempt}"))
    except FileNotFoundError:
        pass
    except OSError as err:
        raise SlurmError(f"cannot set aside {status_path} of attempt {attempt}: {err.strerror}") from err


class _Watch:
    """The wait of one submitted run (state of the loop in ``run``)."""

    def __init__(self, ctx: RunContext, client: SlurmClient, job_id: str,
                 status_path: Path) -> None:
        self.ctx, self.client, self.job_id, self.status_path = ctx, client, job_id, status_path
        self.submitted = clock.monotonic()
        self.started: float | None = None
        self.slurm_job: SlurmJob | None = None
        self.unreachable_since: float | None = None
        self.unreachable_error = ""
        self.timed_out = False
        self.stop_signal: int | None = None
        self.cancelled_at: float | None = None
        self.killed = False
        self.next_ask = self.submitted + 1.0

    # -- Slurm questions and orders, never raising
    def ask(self) -> bool:
        """Refresh ``slurm_job``; False when Slurm could not be asked."""
        try:
            job = self.client.show_job(self.job_id)
        except SlurmError as err:  # unreachable, or an unexpected answer
            if self.unreachable_since is None:
                self.unreachable_since = clock.monotonic()
            self.unreachable_error = str(err)
            return False
        self.unreachable_since = None
        self.slurm_job = job
        return True

    def cancel(self, *, kill: bool = False) -> None:
        try:
            if kill:
                self.client.cancel(self.job_id, signal="KILL", full=True)
            else:
                self.client.cancel(self.job_id)
        except SlurmError as err:
            if self.unreachable_since is None:
                self.unreachable_since = clock.monotonic()
            self.unreachable_error = str(err)
            return
        if not kill:
            self.cancelled_at = clock.monotonic()
        else:
            self.killed = True

    def note_started(self, now: float, status: JobStatus | None) -> None:
        if self.started is not None:
            return
        self.started = now
        pending = round(now - self.submitted, 3)
        fields: dict[str, object] = {"slurm_pending_s": pending}
        if status is not None and status.started_at:
            fields["slurm_started_at"] = status.started_at
        try:
            self.ctx.update_status(**fields)
        except Exception:  # noqa: BLE001 - a record detail; the run goes on
            pass

    def result(self, status: JobStatus | None, lost_reason: str = "") -> ExecResult:
        timeout = self.ctx.job.timeout
        text = f" after {timeout:g} s of run time" if timeout else ""
        out = decide_outcome(status, self.slurm_job, timed_out=self.timed_out,
                             stop_signal=self.stop_signal, timeout_text=text,
                             lost_reason=lost_reason)
        reason = out.reason
        if self.started is not None and self.started - self.submitted >= 1.0:
            pending = f"pending {self.started - self.submitted:.1f} s in Slurm"
            reason = f"{reason}; {pending}" if reason else pending
        return replace(out, reason=reason, slurm_job_id=self.job_id)

    def wait_release(self) -> None:
        """job.status has the end: wait briefly until Slurm lets the job go."""
        limit = clock.monotonic() + RELEASE_WAIT
        while True:
            if not self.ask():
                return  # the outcome is in job.status; Slurm's view is a detail
            if self.slurm_job is None or not self.slurm_job.active:
                return
            if clock.monotonic() >= limit:
                return
            time.sleep(0.05)

    def run(self) -> ExecResult:
        ctx, job = self.ctx, self.ctx.job
        unreachable_timeout = ctx.config.slurm.unreachable_timeout
        while True:
            now = clock.monotonic()
            sig = ctx.stop_requested()
            if sig is not None and self.stop_signal is None and not self.timed_out:
                self.stop_signal = sig
                self.cancel()
                self.next_ask = now + FAST_POLL
            status = _read_status(self.status_path)
            if status is not None and status.started_at:
                self.note_started(now, status)
            if status is not None and status.ended:
                self.wait_release()
                return self.result(status)
            if (job.timeout and self.started is not None and not self.timed_out
                    and self.stop_signal is None and now >= self.started + job.timeout):
                self.timed_out = True
                self.cancel()
                self.next_ask = now + FAST_POLL
            ordered = self.timed_out or self.stop_signal is not None
            if (ordered and self.cancelled_at is not None and not self.killed
                    and now >= self.cancelled_at + job.kill_grace):
                self.cancel(kill=True)
            if ordered and self.cancelled_at is not None and \
                    now >= self.cancelled_at + job.kill_grace + CANCEL_WAIT:
                return self.result(_read_status(self.status_path))
            if ordered and self.stop_signal is not None and self.cancelled_at is None and \
                    self.unreachable_since is not None and \
                    now >= self.unreachable_since + job.kill_grace + CANCEL_WAIT:
                res = self.result(status)
                return ExecResult(outcome=res.outcome, exit_status=res.exit_status,
                                  signal=res.signal, slurm_job_id=self.job_id,
                                  reason=res.reason + "; the cancel did not reach Slurm: "
                                  + self.unreachable_error)
            if now >= self.next_ask:
                if ordered and self.cancelled_at is None:
                    self.cancel()  # the first order did not reach Slurm: again
                if self.ask():
                    sj = self.slurm_job
                    if sj is None or not sj.active:
                        # ended (or forgotten) in Slurm: job.status may lag on a
                        # shared filesystem, so give it a moment (unless the
                        # job never started: cancelled while pending)
                        if sj is None or sj.started or self.started is not None:
                            status = self._status_settle()
                        if sj is None and (status is None or not status.ended):
                            self.slurm_job = self._from_accounting()
                            return self.result(status, lost_reason=(
                                f"Slurm no longer knows job {self.job_id} and the job "
                                "wrote no end to job.status"))
                        return self.result(status)
                    if sj.started:
                        self.note_started(now, status)
                elif self.unreachable_since is not None and now - self.unreachable_since >= unreachable_timeout:
                    return ExecResult(
                        outcome="lost", exit_status=125, slurm_job_id=self.job_id,
                        reason=(f"Slurm unreachable for {unreachable_timeout:g} s "
                                f"(slurm.unreachable_timeout) while waiting for job "
                                f"{self.job_id}: {self.unreachable_error}"))
                waited = now - self.submitted
                self.next_ask = now + (FAST_POLL if ordered else slurm_poll_interval(waited))
            if ctx.events is not None:  # events from inside the job: looked at every second
                ctx.events.poll()
            time.sleep(STATUS_POLL)

    def _from_accounting(self) -> SlurmJob | None:
        """scontrol forgot the job (MinJobAge passed): ask sacct, where it exists."""
        try:
            found = self.client.accounting_job(self.job_id)
        except SlurmError:
            return None
        return found if found is not None and not found.active else None

    def _status_settle(self) -> JobStatus | None:
        limit = clock.monotonic() + 2.0
        while True:
            status = _read_status(self.status_path)
            if (status is not None and status.ended) or clock.monotonic() >= limit:
                return status
            time.sleep(STATUS_POLL)


def job_id_of(record: dict) -> str | None:
    """The Slurm job id of a run: the record's ``slurm_job_id``, else the one
    in its run folder's ``status.json`` (a history entry written at the start
    of the run does not have it yet)."""
    job_id = record.get("slurm_job_id")
    if job_id:
        return str(job_id)
    run_dir = record.get("run_dir")
    if not run_dir:
        return None
    import json

    try:
        found = json.loads(read_bounded(Path(run_dir) / "status.json", STATE_LIMIT)).get("slurm_job_id")
    except (OSError, ValueError, AttributeError):
        return None
    return str(found) if found else None


def kill(config: Config, job: Job, record: dict, *, client: SlurmClient | None = None) -> bool:
    """``--kill-job`` for a Slurm run: cancel the record's Slurm job.

    True when a live job was cancelled (TERM to the script and its processes;
    KILL to all of them after ``job.kill_grace`` if it is still there). The
    run-job that watches the run records the outcome (``killed``). Raises
    ``SlurmUnreachable`` when Slurm cannot be asked.
    """
    job_id = job_id_of(record)
    if not job_id:
        return False
    client = client or SlurmClient()
    found = client.show_job(str(job_id))
    if found is None or not found.active:
        return False
    client.cancel(str(job_id))
    limit = clock.monotonic() + job.kill_grace
    killed = False
    while True:
        time.sleep(0.2)
        found = client.show_job(str(job_id))
        if found is None or not found.active:
            return True
        now = clock.monotonic()
        if now >= limit and not killed:
            client.cancel(str(job_id), signal="KILL", full=True)
            killed = True
        if now >= limit + CANCEL_WAIT:
            return True


def describe_job(job_id: str, found: SlurmJob | None, unreachable: str = "") -> str:
    """The Slurm part of a ``--status`` line (pure)."""
    if unreachable:
        return f"slurm job {job_id}: state unknown (Slurm unreachable)"
    if found is None:
        return f"slurm job {job_id}: no longer known to Slurm"
    text = f"slurm job {job_id}: {found.state}"
    if found.reason and found.reason != "None":
        text += f" ({found.reason})"
    if found.partition:
        text += f" on {found.partition}"
    return text


def describe(record: dict, *, client: SlurmClient | None = None) -> str | None:
    """``slurm job ID: STATE`` for a record with a ``slurm_job_id``; None otherwise.
    Never raises for Slurm trouble."""
    job_id = job_id_of(record)
    if not job_id:
        return None
    client = client or SlurmClient()
    try:
        found = client.show_job(str(job_id))
    except SlurmUnreachable as err:
        return describe_job(str(job_id), None, unreachable=str(err))
    except SlurmError as err:
        return f"slurm job {job_id}: state unknown ({err})"
    return describe_job(str(job_id), found)
