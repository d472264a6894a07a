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

How a run waits (issue 18: many runs waiting must cost the controller and
the host next to nothing):

* ``job.status``, written by the job itself, is the first source of truth.
  The wait sleeps on inotify on the run folder (and the signal wakeup pipe
  of run-job's handlers), and reads the file when inotify names it; on its
  own, where inotify sees every write (a local file system,
  ``inotify.sees_all_writes``), only along with each look at the view (every
  30 s; no wake-up of its own), else every second (NFS: a job on another
  node). No 0.1 s polling.
* Slurm is asked through the shared view (``view.py``): one ``squeue`` of
  the user's jobs per 10 s for all runs waiting on this host, refreshed by
  whichever waiter finds it stale. Each run looks at it every 30 s
  (``LOOK_EVERY``; every 10 s while it says Slurm is unreachable), its first
  look at once and its second spread over 10 s by pid: 500 waiting runs wake
  apart, not together, each once in 30 s (measured: a wake-up of a waiting
  run costs the host far more than the look itself). A run learns from it that its job
  started (for the deadline), that Slurm cannot be reached (counted against
  ``slurm.unreachable_timeout``; never "gone"), and that its job ended or was
  forgotten without an end in ``job.status``: only then, and at its end, a
  run asks about its own job (``scontrol show job``, then ``sacct``). A view
  asked before the run's submission says nothing about it. Without a usable
  view folder a run asks about its own job every 10 s.
* After run-job cancelled the job (stop or deadline) it asks about its own
  job every 0.2 s, doubling to every 2 s, to see Slurm release it; after
  job.status says the job ended, at once and then 0.05 s doubling to 1 s
  (at most ``RELEASE_WAIT`` s).

The deadline (``job.timeout``) counts from the moment the job starts running
(job.status' ``started_at``, or the view); the time spent pending is
recorded as ``slurm_pending_s``. At the deadline run-job cancels the job
(TERM to the script and its processes), and after ``kill_grace`` sends KILL
to all of them.
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

from run_job import clock, logsetup
from run_job.atomic import write_atomic
from run_job.errors import SlurmError, SlurmUnreachable
from run_job.model import Config, ExecResult, Job, RunContext, replace
from run_job.privileges import user_name
from run_job.security import STATE_LIMIT, read_bounded
from run_job.run import inotify, supervise
from run_job.slurm import view
from run_job.slurm.vocabulary import (SCRIPT_FILE, STATUS_FILE, JobStatus, SlurmJob,
                           build_batch_script, build_sbatch_argv, decide_outcome, job_name,
                           parse_job_status, script_exports, time_limit)
from run_job.slurm.client import SlurmClient
from run_job.slurm.options import check_options

# After job.status says the script ended, how long to wait for Slurm to see
# the job end too (normally a few hundredths of a second).
RELEASE_WAIT = 10.0
# After run-job cancelled the job (stop or deadline) and sent KILL, how long
# to wait for Slurm to report it gone before recording the outcome anyway.
CANCEL_WAIT = 30.0
# After a cancel: the run's own questions, from every FAST_POLL s doubling to ORDER_POLL_MAX.
FAST_POLL = 0.2
ORDER_POLL_MAX = 2.0
# job.status read on our own this often where inotify does not see the job's writes.
STATUS_CHECK = 1.0
# Where inotify sees every write: job.status read with each look at the view
# (every LOOK_EVERY s), and on its own timer at least this often.
TRUSTED_STATUS_CHECK = 60.0
# How often one waiting run looks at the shared view (which is refreshed when
# a look finds it older than view.PERIOD, 10 s): 500 waiting runs look about
# 17 times a second together, each once in 30 s, and one squeue serves them all.
LOOK_EVERY = view.LOOK_EVERY
# The view's refresh lock was busy: look again after this long.
VIEW_RETRY = view.RETRY
# A stop_requested that no signal wakeup pipe backs (an embedding caller): looked at this often.
STOP_CHECK = 1.0
_STATUS_EVENTS = inotify.IN_MOVED_TO | inotify.IN_CLOSE_WRITE  # the script writes job.status by mv


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


def execute(ctx: RunContext, *, client: SlurmClient | None = None,
            resume: dict | None = None) -> ExecResult:
    """Submit the run as a Slurm batch job and wait for its end. ``resume``:
    the wait was handed to the lean waiter (``waiting.py``) and comes back:
    go on watching the job submitted already."""
    client = client or SlurmClient()
    if resume is not None:
        watch = _Watch(ctx, client, resume["job_id"], Path(resume["status_path"]))
        watch.restore(resume)
        return watch.run()
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
    try:
        os.replace(status_path, status_path.with_name(f"{status_path.name}.{attempt}"))
    except FileNotFoundError:
        pass
    except OSError as err:
        raise SlurmError(f"cannot set aside {status_path} of attempt {attempt}: {err.strerror}") from err


class _Watch:
    """The wait of one submitted run (state of the loop in ``run``); see the
    module docstring for what it reads and asks, and how often."""

    def __init__(self, ctx: RunContext, client: SlurmClient, job_id: str,
                 status_path: Path) -> None:
        self.ctx, self.client, self.job_id, self.status_path = ctx, client, job_id, status_path
        self.submitted = clock.monotonic()  # after sbatch answered: a view asked later lists the job
        self.started: float | None = None
        self.slurm_job: SlurmJob | None = None
        self.unreachable_since: float | None = None
        self.unreachable_error = ""
        self.timed_out = False
        self.stop_signal: int | None = None
        self.cancelled_at: float | None = None
        self.killed = False
        self.next_ask = 0.0  # after an order: the run's own questions about its job
        self.ask_every = FAST_POLL
        self.next_view = 0.0  # the shared view: at once, then when the view is due
        self.seen_view: float | None = None  # "answered" of the last view acted on
        # runs started in the same second look at the view at different moments
        self.jitter = (os.getpid() % 997) / 997.0 * view.PERIOD
        self.status: JobStatus | None = None
        self.next_status = 0.0
        self.status_every = STATUS_CHECK
        self.watch: inotify.Watch | None = None
        self.view = view.View(ctx.config.run_directory, user_name(), client.env.get("SLURM_CONF", ""))
        self.use_view = self.view.open()
        if not self.use_view:
            logsetup.warning("%s: no shared Slurm view (%s): this run asks about its own job every "
                             "%g s", ctx.job.slug, self.view.problem, view.PERIOD)
        # run-job's own signal handlers write to a wakeup pipe that ends a sleep;
        # any other stop_requested (an embedding caller) is looked at every second
        self.signal_wakes = ctx.stop_requested is supervise.stop_requested
        self.can_hand_off = ctx.handoff is not None and ctx.events is None and self.use_view
        self.held_lock: int | None = None  # the view's refresh lock, taken by the lean waiter

    # -- the hand-off of the wait (``run/handoff.py``, ``waiting.py``)
    def saved(self, now: float) -> dict | None:
        """What the lean waiter needs, and this watch to go on afterwards;
        None when job.status says more than this watch has acted on."""
        try:
            raw = read_bounded(self.status_path, JOB_STATUS_LIMIT)
        except (OSError, ValueError):
            raw = None
        if raw is not None:
            status = parse_job_status(raw.decode(errors="replace"))
            if status is not None and (status.ended or (status.started_at and self.started is None)):
                return None  # changed since the last look: act on it first
        timeout = self.ctx.job.timeout
        return {"kind": "slurm", "lean": "run_job.slurm.waiting", "job_id": self.job_id,
                "status_path": str(self.status_path), "status_bytes": raw,
                "submitted": self.submitted, "started": self.started,
                "deadline": self.started + timeout if timeout and self.started is not None else None,
                "unreachable_since": self.unreachable_since,
                "unreachable_error": self.unreachable_error,
                "unreachable_timeout": self.ctx.config.slurm.unreachable_timeout,
                "next_view": self.next_view, "seen_view": self.seen_view, "jitter": self.jitter,
                "view_folder": self.view.folder, "view_name": self.view.name,
                "status_every": self.status_every, "view_lock": None}

    def restore(self, saved: dict) -> None:
        """Back from the lean waiter: this watch as it was, plus what the
        lean waiter learnt (the view's times, unreachable time, the lock)."""
        self.submitted, self.started = saved["submitted"], saved["started"]
        self.unreachable_since = saved["unreachable_since"]
        self.unreachable_error = saved["unreachable_error"]
        self.next_view, self.seen_view = saved["next_view"], saved["seen_view"]
        self.held_lock = saved.get("view_lock")
        if self.held_lock is not None:
            os.set_inheritable(self.held_lock, False)

    # -- Slurm questions and orders, never raising
    def ask(self) -> bool:
        """Refresh ``slurm_job``; False when Slurm could not be asked."""
        try:
            job = self.client.show_job(self.job_id)
        except SlurmError as err:  # unreachable, or an unexpected answer
            self._unreachable(clock.monotonic(), str(err))
            return False
        self.unreachable_since = None
        self.slurm_job = job
        return True

    def _unreachable(self, since: float, error: str) -> None:
        if self.unreachable_since is None:
            self.unreachable_since = max(since, self.submitted)
        self.unreachable_error = error

    def cancel(self, *, kill: bool = False) -> None:
        try:
            if kill:
                self.client.cancel(self.job_id, signal="KILL", full=True)
            else:
                self.client.cancel(self.job_id)
        except SlurmError as err:
            self._unreachable(clock.monotonic(), str(err))
            return
        if not kill:
            self.cancelled_at = clock.monotonic()
        else:
            self.killed = True

    def order(self, now: float) -> None:
        """After a stop or the deadline: cancel, and ask about the job soon
        (every 0.2 s, doubling to every 2 s) to see Slurm release it."""
        self.cancel()
        self.ask_every = FAST_POLL
        self.next_ask = now + FAST_POLL

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

    def lost_unreachable(self) -> ExecResult:
        timeout = self.ctx.config.slurm.unreachable_timeout
        return ExecResult(
            outcome="lost", exit_status=125, slurm_job_id=self.job_id,
            reason=(f"Slurm unreachable for {timeout:g} s (slurm.unreachable_timeout) while "
                    f"waiting for job {self.job_id}: {self.unreachable_error}"))

    def wait_release(self) -> None:
        """job.status has the end: wait briefly until Slurm lets the job go
        (asked at once, then after 0.05 s, doubling to 1 s; at most
        ``RELEASE_WAIT`` s)."""
        limit = clock.monotonic() + RELEASE_WAIT
        pause = 0.05
        while True:
            if not self.ask():
                return  # the outcome is in job.status; Slurm's view is a detail
            if self.slurm_job is None or not self.slurm_job.active:
                return
            if clock.monotonic() >= limit:
                return
            time.sleep(pause)
            pause = min(1.0, pause * 2)

    # -- the wait
    def run(self) -> ExecResult:
        self.watch = inotify.Watch.open()
        folder = str(self.status_path.parent)
        if self.watch is not None:
            watched = self.watch.add(folder, _STATUS_EVENTS)
            if watched and inotify.sees_all_writes(folder):
                # every write of job.status wakes us: a look of our own with
                # each view, and on its own timer only as a backstop
                self.status_every = TRUSTED_STATUS_CHECK
        try:
            return self._loop()
        finally:
            if self.watch is not None:
                self.watch.close()
            if self.held_lock is not None:
                os.close(self.held_lock)
                self.held_lock = None
            self.view.close()

    def _loop(self) -> ExecResult:
        ctx, job = self.ctx, self.ctx.job
        names: set[str] = set()
        while True:
            now = clock.monotonic()
            sig = ctx.stop_requested()
            if sig is not None and self.stop_signal is None and not self.timed_out:
                self.stop_signal = sig
                self.order(now)
            view_due = not (self.timed_out or self.stop_signal is not None) and (
                now >= self.next_view)
            status = self._look(now, names, view_due)
            if status is not None and status.started_at:
                self.note_started(now, status)
            if status is not None and status.ended:
                self.wait_release()
                return self.result(status)
            if (job.timeout and self.started is not None and not self.timed_out
                    and self.stop_signal is None and now >= self.started + job.timeout):
                self.timed_out = True
                self.order(now)
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
            if ordered:
                if now >= self.next_ask:
                    if self.cancelled_at is None:
                        self.cancel()  # the first order did not reach Slurm: again
                    done = self._ask_own(now, status)
                    if done is not None:
                        return done
                    self.next_ask = now + self.ask_every
                    self.ask_every = min(ORDER_POLL_MAX, self.ask_every * 2)
            elif view_due:
                done = self._consult(now, status)
                if done is not None:
                    return done
            if ctx.events is not None:  # events from inside the job: looked at every second
                ctx.events.poll()
            if self.can_hand_off and not ordered and now - self.submitted >= supervise.HANDOFF_AFTER:
                saved = self.saved(now)
                if saved is not None:
                    ctx.handoff(saved)  # returns only when it could not: wait here then
                    self.can_hand_off = False
            wake = self._wake_at(now)
            if self.can_hand_off and not ordered:  # the hand-off is due then
                wake = min(wake, max(now, self.submitted + supervise.HANDOFF_AFTER))
            names = self._sleep(wake - now)

    def _look(self, now: float, names: set[str], view_due: bool = False) -> JobStatus | None:
        """job.status, read when inotify says it changed, on our own every
        ``status_every`` s (opened each time: on NFS an open revalidates what
        a stat may take from the attribute cache) and, where inotify sees
        every write, also whenever the view wakes us (no wake of its own)."""
        if STATUS_FILE in names or now >= self.next_status or (
                view_due and self.status_every > STATUS_CHECK):
            self.status = _read_status(self.status_path)
            self.next_status = now + self.status_every
        return self.status

    def _consult(self, now: float, status: JobStatus | None) -> ExecResult | None:
        """The shared view (refreshed by us when it is stale and nobody else
        is at it); without one, our own question every ``view.PERIOD`` s."""
        if not self.use_view:
            self.next_view = now + view.PERIOD
            return self._ask_own(now, status)
        first = self.seen_view is None
        snap = self.view.read()
        held, self.held_lock = self.held_lock, None
        if snap is None or not snap.fresh(now):
            snap = self.view.refresh(self.client, now, held=held)
        elif held is not None:
            os.close(held)
        if snap is None:  # another waiter is asking: we look again soon
            self.next_view = now + VIEW_RETRY
            return None
        # every LOOK_EVERY s (the first time, plus a share of PERIOD by pid, so
        # that runs started together look apart); every PERIOD s while Slurm
        # is unreachable, to count its time
        self.next_view = now + (view.PERIOD if snap.error else LOOK_EVERY) + (
            self.jitter if first else 0.0)
        if snap.answered == self.seen_view:
            return None  # acted on already
        self.seen_view = snap.answered
        said, found = snap.about(self.job_id, self.submitted)
        if said == "nothing":
            return None
        if said == "unreachable":
            self._unreachable(snap.since if snap.since is not None else snap.asked, snap.error)
            if now - (self.unreachable_since or now) >= self.ctx.config.slurm.unreachable_timeout:
                return self.lost_unreachable()
            return None
        self.unreachable_since = None
        if found is not None and found.active:
            if found.started:
                self.note_started(now, status)
            return None
        # absent from a view asked after the submission, or listed as ended:
        # what the run needs at its end, asked about its own job
        return self._ask_own(now, status)

    def _ask_own(self, now: float, status: JobStatus | None) -> ExecResult | None:
        """``scontrol show job`` of our job; the result when it ended."""
        if not self.ask():
            if self.unreachable_since is not None and \
                    now - self.unreachable_since >= self.ctx.config.slurm.unreachable_timeout:
                return self.lost_unreachable()
            return None
        sj = self.slurm_job
        if sj is None or not sj.active:
            # ended (or forgotten) in Slurm: job.status may lag on a shared
            # filesystem, so give it a moment (unless the job never started:
            # cancelled while pending)
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
        return None

    def _wake_at(self, now: float) -> float:
        """When something is due: our own look at job.status, the view (or
        our own question after an order), the deadline, the KILL, giving up."""
        job = self.ctx.job
        ordered = self.timed_out or self.stop_signal is not None
        times = [self.next_status, self.next_ask if ordered else self.next_view]
        if job.timeout and self.started is not None and not ordered:
            times.append(self.started + job.timeout)
        if ordered and self.cancelled_at is not None:
            if not self.killed:
                times.append(self.cancelled_at + job.kill_grace)
            times.append(self.cancelled_at + job.kill_grace + CANCEL_WAIT)
        if ordered and self.unreachable_since is not None:
            times.append(self.unreachable_since + job.kill_grace + CANCEL_WAIT)
        if not self.signal_wakes:
            times.append(now + STOP_CHECK)
        events = self.ctx.events
        if events is not None and events.timeout is not None:
            times.append(now + events.timeout)
        return min(times)

    def _sleep(self, seconds: float) -> set[str]:
        """Sleep on inotify (job.status) and the signal wakeup pipe
        for at most ``seconds``; the names inotify reported."""
        fds = [self.watch.fd] if self.watch is not None else []
        seconds = max(0.0, seconds)
        if self.signal_wakes:
            ready = supervise._wait_events(seconds, *fds)  # noqa: SLF001 - the wakeup pipe's one reader
        elif fds:
            poller = select.poll()
            poller.register(fds[0], select.POLLIN)
            ready = [fd for fd, _ in poller.poll(int(seconds * 1000) + 1)]
        else:
            time.sleep(seconds)
            ready = []
        if self.watch is not None and self.watch.fd in ready:
            return set(self.watch.drain())
        return set()

    def _from_accounting(self) -> SlurmJob | None:
        """scontrol forgot the job (MinJobAge passed): ask sacct, where it exists."""
        try:
            found = self.client.accounting_job(self.job_id)
        except SlurmError:
            return None
        return found if found is not None and not found.active else None

    def _status_settle(self) -> JobStatus | None:
        """job.status once Slurm says the job ended: read it, on inotify and
        every 0.2 s, for at most 2 s."""
        limit = clock.monotonic() + 2.0
        names: set[str] = set()
        while True:
            now = clock.monotonic()
            if STATUS_FILE in names or now >= self.next_status or now >= limit:
                self.status = _read_status(self.status_path)
                self.next_status = now + 0.2
            status = self.status
            if (status is not None and status.ended) or now >= limit:
                return status
            names = self._sleep(min(self.next_status, limit) - now)


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
    if found is None or not found.active or not client.cancel(str(job_id)):
        return False
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
