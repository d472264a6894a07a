"""Alerts after a run: which events fire, whether to mail, and doing both.

The decisions are pure functions of the run record and the job's history
(``classify``, ``consecutive_failures``, ``should_mail``, ``mail_kind``,
``is_recovery``, ``events_for``); ``on_start`` and ``on_end`` are the two
entry points the controller calls, and they never raise: a broken mailer or
hook is logged (``logsetup``: the ``process-control`` logger when the config
has a ``logging`` section, else stderr) and recorded in the dict that
becomes ``status.json``'s ``alerts``, and never changes the run's outcome.

Streak rules (docs/alerts.md): ``failed``, ``timed_out``, ``killed``,
``lost``, and ``skipped`` without ``allow_overtime`` are failures;
``success`` ends a streak; ``skipped`` under ``allow_overtime`` and
``running`` are neutral, as in the reference: they neither add to a streak
nor break it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost of run-job --job)
    from typing import Any, Iterable, Mapping

    from run_job.model import FailMail

from run_job import logsetup as log
from run_job.model import FAILED_OUTCOMES, Config, Job

# ``mail`` (smtplib, ssl, email) and ``hooks`` (subprocess) are imported only
# when a mail is due or an event folder exists: most runs need neither, and
# every cron run of ``run-job --job`` pays for what is imported here.


FAILURE_OUTCOMES = FAILED_OUTCOMES

# The one final hook event of each outcome (``recovery`` may follow ``success``).
FINAL_EVENT = {
    "success": "success",
    "failed": "failure",
    "killed": "failure",
    "lost": "failure",
    "timed_out": "timeout",
    "skipped": "skipped",
}

FAILURE, SUCCESS, NEUTRAL = "failure", "success", "neutral"


# --------------------------------------------------------------------------
# Pure decisions
# --------------------------------------------------------------------------

def is_failure(outcome: str | None, allow_overtime: bool) -> bool:
    """Does a run with this outcome count as failed (for mail and streaks)?"""
    if outcome in FAILURE_OUTCOMES:
        return True
    return outcome == "skipped" and not allow_overtime


def classify(entry: Mapping[str, Any], allow_overtime: bool) -> str:
    """``failure``, ``success`` or ``neutral`` for one history entry.

    A skipped entry keeps the class it was given when it happened (stored in
    its ``alerts.counts_as``), so changing ``allow_overtime`` later does not
    rewrite the past; entries without it are judged by ``allow_overtime``.
    """
    outcome = entry.get("outcome")
    if outcome == "success":
        return SUCCESS
    if outcome == "skipped":
        alerts = entry.get("alerts")
        if isinstance(alerts, dict) and alerts.get("counts_as") in (FAILURE, NEUTRAL):
            return alerts["counts_as"]
    return FAILURE if is_failure(outcome, allow_overtime) else NEUTRAL


def previous_failures(previous: Iterable[Mapping[str, Any]], allow_overtime: bool) -> int:
    """Failures since the last success in ``previous`` (oldest first)."""
    count = 0
    for entry in reversed(list(previous)):
        kind = classify(entry, allow_overtime)
        if kind == SUCCESS:
            break
        if kind == FAILURE:
            count += 1
    return count


def consecutive_failures(outcome: str | None, allow_overtime: bool,
                         previous: Iterable[Mapping[str, Any]]) -> int:
    """This run's streak: 0 after a success, else this run plus earlier failures."""
    if outcome == "success":
        return 0
    before = previous_failures(previous, allow_overtime)
    return before + 1 if is_failure(outcome, allow_overtime) else before


def should_mail(outcome: str | None, allow_overtime: bool, consecutive: int,
                threshold: int) -> bool:
    """Mail a failing run once ``consecutive`` failures reach ``threshold``.

    As in the reference: every failing run at or past the threshold is
    mailed, not only the one that reaches it.
    """
    return is_failure(outcome, allow_overtime) and consecutive >= max(1, threshold)


def failure_mail_pending(previous: Iterable[Mapping[str, Any]], allow_overtime: bool) -> bool:
    """Was a failure mail sent since the last success? (Then a recovery mail is due.)"""
    for entry in reversed(list(previous)):
        if classify(entry, allow_overtime) == SUCCESS:
            return False
        alerts = entry.get("alerts")
        sent = alerts.get("mail") if isinstance(alerts, dict) else None
        if isinstance(sent, dict) and sent.get("kind") == "failure" and sent.get("sent"):
            return True
    return False


def is_recovery(previous: Iterable[Mapping[str, Any]], allow_overtime: bool = False) -> bool:
    """Was the last run that counted (neutral runs skipped) a failure?"""
    for entry in reversed(list(previous)):
        kind = classify(entry, allow_overtime)
        if kind != NEUTRAL:
            return kind == FAILURE
    return False


def events_for(record: Mapping[str, Any], previous: Iterable[Mapping[str, Any]],
               allow_overtime: bool = False) -> list[str]:
    """Hook events at the end of a run: its final event, then ``recovery`` if due."""
    outcome = record.get("outcome")
    event = FINAL_EVENT.get(str(outcome))
    if event is None:
        return []  # ``running`` or unknown: nothing has ended
    events = [event]
    if outcome == "success" and is_recovery(previous, allow_overtime):
        events.append("recovery")
    return events


def unalerted_lost(entries: Iterable[Mapping[str, Any]]) -> list[tuple[int, Mapping[str, Any]]]:
    """``(index, entry)`` of ``lost`` entries that never had their alerts.

    A run whose run-job died is marked ``lost`` later, by the next run or by
    ``--status``; neither had called ``on_end`` for it. The controller of the
    next run calls ``on_end(config, job, entry, entries[:index])`` for each,
    oldest first, and stores the result as that entry's ``alerts``, so a lost
    run is mailed and fires ``failure`` like any other failure.
    """
    return [(i, e) for i, e in enumerate(entries)
            if e.get("outcome") == "lost"
            and not (isinstance(e.get("alerts"), dict) and e["alerts"].get("counts_as"))]


def mail_kind(record: Mapping[str, Any], previous: Iterable[Mapping[str, Any]],
              job: Job, consecutive: int, paused: bool = False) -> str | None:
    """``failure``, ``recovery`` or None: which mail this run gets. A run that
    paused its job (``pause_after_failures``) is mailed whatever the
    threshold: nobody would learn of the pause otherwise."""
    if job.failmail is None or not job.failmail.to_addresses:
        return None
    outcome = record.get("outcome")
    if should_mail(outcome, job.allow_overtime, consecutive, job.failure_threshold_for_mail):
        return "failure"
    if paused and is_failure(outcome, job.allow_overtime):
        return "failure"
    if outcome == "success" and failure_mail_pending(previous, job.allow_overtime):
        return "recovery"
    return None


# --------------------------------------------------------------------------
# Effects
# --------------------------------------------------------------------------

def _output_path(record: Mapping[str, Any]) -> Path | None:
    run_dir = record.get("run_dir")
    return Path(run_dir) / "output.log" if run_dir else None


def _send_mail(config: Config, job: Job, failmail: FailMail, record: Mapping[str, Any], kind: str,
               consecutive: int, paused: Mapping[str, Any] | None = None) -> dict:
    result: dict[str, Any] = {
        "kind": kind,
        "sent": False,
        "to": list(failmail.to_addresses),
        "subject": None,
        "error": None,
        "duration_s": 0.0,
    }
    started = time.monotonic()
    try:
        from run_job.alerts import mail as mail_module

        output = _output_path(record)
        tail: str | None = None
        cut = False
        if output is not None:
            try:
                tail, cut = mail_module.read_tail(output)
            except FileNotFoundError:
                tail, cut = "", False
            except OSError as err:
                log.warning("mail: cannot read %s: %s", output, err.strerror)
        msg = mail_module.compose(failmail, job, record, kind=kind, tail=tail, tail_cut=cut,
                                  consecutive_failures=consecutive,
                                  output_path=str(output) if output else None, paused=paused)
        result["subject"] = str(msg["Subject"])
        refused = mail_module.send(config.mail, msg, failmail.from_address,
                                   failmail.to_addresses)
        result["sent"] = True
        if refused:
            result["refused"] = refused
            log.warning("mail: %s mail for %s: server refused %s", kind, job.slug,
                        ", ".join(refused))
        log.info("mail: %s mail for %s sent to %s", kind, job.slug,
                 ", ".join(failmail.to_addresses))
    except Exception as err:  # noqa: BLE001 - a mail must never break a run
        from run_job.errors import ProcessControlError

        if isinstance(err, ProcessControlError):  # MailError: an expected failure
            result["error"] = str(err)
            log.error("mail: %s mail for job %s not sent: %s", kind, job.slug, err)
        else:
            result["error"] = f"{type(err).__name__}: {err}"
            log.error("mail: %s mail for job %s not sent: %s", kind, job.slug, result["error"])
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result


def _hook_record(job: Job | None, record: Mapping[str, Any]) -> dict:
    merged = dict(record)
    if job is not None:
        merged.setdefault("job", job.slug)
    return merged


def has_hooks(config: Config, event: str) -> bool:
    """Is there anything in ``<hooks_directory>/<event>`` (cheap: one lstat)?"""
    if config.hooks_directory is None:
        return False
    # (anything there, even a file, is judged by find_hooks)
    return os.path.lexists(os.path.join(config.hooks_directory, event))


def _run_hooks(config: Config, job: Job | None, event: str, record: Mapping[str, Any],
               extra: Mapping[str, str] | None = None) -> list[dict]:
    """Results of the ``event`` hooks (none, cheaply, when its folder is absent);
    ``extra``: more ``RUN_JOB_*`` variables for them."""
    if not has_hooks(config, event):
        return []
    from run_job.alerts import hooks as hooks_module

    results = hooks_module.run_hooks(config.hooks_directory, event, _hook_record(job, record),
                                     user=config.user, extra=extra)
    return [r.as_dict() for r in results]


def pause_environment(action: str, pause: Mapping[str, Any], by: str) -> dict[str, str]:
    """The variables of a ``pause`` or ``resume`` hook beyond ``RUN_JOB_NAME``
    (pure): who paused, since, until, why, manual or auto; who resumed."""
    def text(value: object) -> str:
        return "" if value is None else str(value)

    env = {"RUN_JOB_PAUSED_BY": text(pause.get("by")),
           "RUN_JOB_PAUSE_SINCE": text(pause.get("since")),
           "RUN_JOB_PAUSE_UNTIL": text(pause.get("until")),
           "RUN_JOB_PAUSE_REASON": text(pause.get("reason")),
           "RUN_JOB_PAUSE_SOURCE": text(pause.get("source"))}
    if action == "resume":
        env["RUN_JOB_RESUMED_BY"] = by
    return env


def on_pause_change(config: Config, slug: str, action: str, pause: Mapping[str, Any],
                    by: str) -> list[dict]:
    """Fire the ``pause`` or ``resume`` hooks of job ``slug`` (``action``) for
    the pause record ``pause``; the results. Never raises."""
    try:
        return _run_hooks(config, None, action, {"job": slug},
                          extra=pause_environment(action, pause, by))
    except Exception as err:  # noqa: BLE001 - a hook never undoes a pause
        log.error("alerts: %s hooks of %s failed: %s: %s", action, slug, type(err).__name__, err)
        return [{"event": action, "hook": "", "error": f"{type(err).__name__}: {err}"}]


class EventHooks:
    """The hooks of one event signalled from inside a run (``run-job
    --trigger``), running in a child process so that the run's supervision
    never waits for them (SPEC §9). ``done()`` says whether they ended and
    ``results`` holds what became of each hook."""

    def __init__(self, pid: int, fd: int, pidfd: int | None) -> None:
        self.pid, self.fd, self.pidfd = pid, fd, pidfd
        self.data = b""
        self.results: list[dict] | None = None

    def done(self) -> bool:
        """Read what the child wrote so far (never blocks); True once it ended."""
        if self.results is not None:
            return True
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return False
            except OSError:
                chunk = b""
            if chunk:
                self.data += chunk
                continue
            break
        os.close(self.fd)
        if self.pidfd is not None:
            try:  # through its pidfd, never blocking: a supervisor that reaps
                # every child may have reaped it first (its pid may be another
                # child's by now); one not quite gone is reaped by the next reap
                os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED | os.WNOHANG)
            except ChildProcessError:
                pass
            os.close(self.pidfd)
            self.pidfd = None
        try:
            from run_job.jsoncodec import loads

            found = loads(self.data) if self.data else []
            self.results = [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []
        except ValueError:
            self.results = [{"event": "", "hook": "", "error": "the hook runner died"}]
        return True


def start_event_hooks(config: Config, job: Job, record: Mapping[str, Any], event: str,
                      message: str, *, close: tuple[int, ...] = ()) -> EventHooks | None:
    """Start the hooks of a job's own ``event`` in a child process (None, at
    no cost, when ``<hooks_directory>/<event>`` is absent). The child leaves
    the run's session, closes ``close`` (the job's lock and the run's end
    lock: it must hold neither) and runs the hooks one after the other, each
    bounded in time, with ``RUN_JOB_EVENT`` and ``RUN_JOB_EVENT_MESSAGE``."""
    if not has_hooks(config, event):
        return None
    import signal

    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, measured by the tests' hooks
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            os.setsid()
            os.close(read_fd)
            for fd in close:
                try:
                    os.close(fd)
                except OSError:
                    pass
            from run_job.jsoncodec import dumps

            results = _run_hooks(config, job, event, record,
                                 extra={"RUN_JOB_EVENT_MESSAGE": message})
            view = memoryview(dumps(results).encode())
            while view:
                view = view[os.write(write_fd, view):]
        except BaseException:  # noqa: BLE001 - the parent reads what arrived
            pass
        finally:
            os._exit(0)
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    try:
        pidfd: int | None = os.pidfd_open(pid)  # before anyone could reap it
    except OSError:
        pidfd = None
    return EventHooks(pid, read_fd, pidfd)


def on_start(config: Config, job: Job, record: dict) -> None:
    """Fire the ``start`` hooks. Never raises."""
    try:
        _run_hooks(config, job, "start", record)
    except Exception as err:  # noqa: BLE001
        log.error("alerts: start hooks of %s failed: %s: %s", job.slug, type(err).__name__, err)


def on_end(config: Config, job: Job, record: dict, previous: list[dict],
           paused: Mapping[str, Any] | None = None) -> dict:
    """Mail and hooks for a finished (or skipped) run. Never raises.

    ``previous`` is the job's history before this run, oldest first;
    ``paused``, the pause this run put on the job (``pause_after_failures``):
    the failure mail says so and the ``pause`` hooks run. The
    result is stored as ``record["alerts"]``::

        {"counts_as": "failure"|"success"|"neutral",
         "consecutive_failures": int,
         "events": ["success", "recovery"],
         "mail": None | {"kind", "sent", "to", "subject", "error", "duration_s"},
         "hooks": [{"event", "hook", "exit_code", "signal", "timed_out",
                    "duration_s", "error"}, ...]}
    """
    alerts: dict[str, Any] = {"counts_as": None, "consecutive_failures": 0,
                              "events": [], "mail": None, "hooks": []}
    try:
        # The run itself is not its own past, even if the caller's history has it.
        previous = [e for e in (previous or []) if isinstance(e, dict)
                    and not (record.get("run_id") and e.get("run_id") == record.get("run_id"))]
        outcome = record.get("outcome")
        alerts["counts_as"] = classify(record, job.allow_overtime)
        streak = consecutive_failures(outcome, job.allow_overtime, previous)
        alerts["consecutive_failures"] = streak
        alerts["events"] = events_for(record, previous, job.allow_overtime)
        if paused is not None:
            alerts["events"].append("pause")
            alerts["paused"] = True
        kind = mail_kind(record, previous, job, streak, paused is not None)
        if kind is not None and job.failmail is not None:  # (mail_kind: None without failmail)
            alerts["mail"] = _send_mail(config, job, job.failmail, record, kind, streak, paused)
        elif is_failure(outcome, job.allow_overtime) and job.failmail is not None:
            log.info("mail: %s has %d consecutive failure(s), below the threshold of %d;"
                     " no mail", job.slug, streak, job.failure_threshold_for_mail)
        for event in alerts["events"]:
            extra = (pause_environment("pause", paused, str(paused.get("by") or ""))
                     if event == "pause" and paused is not None else None)
            alerts["hooks"].extend(_run_hooks(config, job, event, record, extra=extra))
    except Exception as err:  # noqa: BLE001 - alerts must never break a run
        log.error("alerts: %s: %s: %s", job.slug, type(err).__name__, err)
        alerts["error"] = f"{type(err).__name__}: {err}"
    return alerts
