"""The controller of one run of ``run-job --job``: wires identity, lock, records,
executor and alerts together, and returns the exit status of SPEC §4.

Order of a run:

1. refuse services; become the service user (before touching any file);
2. take the job's flock (``lock.py``). Held by someone else: if that run's
   run-job is alive the run is ``skipped`` (exit 75, 0 under
   ``allow_overtime``). If it is gone, the run it supervised is marked
   ``lost`` and its orphaned processes (found by their ``RUN_JOB_RUN_ID``
   marker) are stopped — TERM, ``kill_grace``, KILL — so that no job runs on
   unsupervised; then this run takes the lock and goes on;
3. a ``running`` history entry left by a run whose run-job died (the lock
   was free) is marked ``lost``;
4. Slurm jobs: ``slurm_runner.precheck`` (a reason = skipped);
5. run folder, ``status.json`` (running), ``latest``, history entry, start hooks;
6. the executor (``supervise.execute`` or ``slurm_runner.execute``);
7. final ``status.json`` and history, end alerts, retention.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

from run_job import clock, logsetup
from run_job.run import history, lock, records, supervise
from run_job.model import Config, Job

def _errors():
    """``run_job.errors``, imported only when an error is raised or caught: the
    hot path of ``run-job --job`` does not pay for it."""
    from run_job import errors

    return errors


_EXIT_SKIPPED = 75  # errors.EXIT_SKIPPED (SPEC §4)
_EXIT_CANNOT_RUN = 125  # errors.EXIT_CANNOT_RUN



def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


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
    return env


def run(config: Config, job: Job, *, slow_start: bool = False) -> int:
    """One run of ``job``; returns run-job's exit status. Raises ProcessControlError
    for what stops a run before it starts (exit 125)."""
    from run_job import privileges

    if job.is_service:
        raise _errors().ProcessControlError(
            f"{job.slug} is a Slurm service, not a batch job; use"
            f" 'sbatch-service start {job.slug}' (or stop/restart/status)")
    if os.geteuid() == 0:
        _ensure_run_directory(config)
    # Before the switch: prctl needs ctypes, and the switch is for the run's files.
    supervise.become_subreaper()
    identity_env = privileges.become(config.user)
    supervise.install_signal_handlers()
    commands, command_text = job.commands, job.command_text
    if slow_start and job.slow_start_commands:
        commands, command_text = job.slow_start_commands, job.slow_start_text or command_text
    started = clock.now()
    run_id = records.make_run_id(started, os.getpid())
    my_start = supervise.proc_start_time(os.getpid())

    lock_fd = lock.open_lock(lock.lock_path(config.run_directory, job.slug))
    try:
        acquired = lock.try_lock(lock_fd)
        takeover_note = ""
        if not acquired:
            acquired, why = _take_over_lost_run(config, job, lock_fd)
            if not acquired:
                return _skip(config, job, command_text, why)
            takeover_note = why
        lock.write_holder(lock_fd, lock.format_holder(os.getpid(), my_start, run_id))
        try:
            return _run_locked(config, job, commands, command_text, run_id, started, my_start,
                               lock_fd, identity_env, takeover_note)
        finally:
            try:  # an empty holder: nobody mistakes this run for a live one
                os.ftruncate(lock_fd, 0)
            except OSError:
                pass
    finally:
        os.close(lock_fd)


def _ensure_run_directory(config: Config) -> None:
    """As root: recreate a missing ``run_directory`` for the service user.

    /run is a tmpfs: after a reboot the folder is back only once
    systemd-tmpfiles has run, and the service user cannot create it in /run.
    Failures are left to the step that needs the folder, which reports them.
    """
    path = os.fspath(config.run_directory)
    if os.path.isdir(path):
        return
    import pwd

    try:
        entry = pwd.getpwnam(config.user)
        os.makedirs(path, mode=0o755, exist_ok=True)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    except (KeyError, OSError):
        return


def _run_locked(config: Config, job: Job, commands: tuple, command_text: tuple, run_id: str,
                started: Any, my_start: int | None, lock_fd: int, identity_env: dict[str, str],
                takeover_note: str) -> int:
    slurm = None
    if job.runner == "slurm":
        try:
            from run_job.slurm import runner as slurm  # type: ignore[no-redef]
        except ImportError:
            raise _errors().ProcessControlError(
                f"{job.slug}: runner 'slurm': Slurm runner not available in this installation")
        reason = slurm.precheck(config, job)  # SlurmUnreachable propagates: exit 125
        if reason:
            return _skip(config, job, command_text, reason)

    run_dir = records.create_run_dir(config.output_directory, job.slug, run_id)
    record = records.new_record(
        job=job.slug, run_id=run_id, runner=job.runner, host=records.host_name(),
        user=_user_name(), pid=os.getpid(), command=command_text, started_at=started,
        job_file_sha256=job.sha256, run_dir=run_dir, supervisor_start_time=my_start,
        reason=takeover_note)
    records.write_status(run_dir, record, fsync=False)
    records.point_latest(config.output_directory, job.slug, run_id)
    stale: list[dict[str, Any]] = []
    seen: list[list[dict[str, Any]]] = []

    def start_entry(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        updated = history.upsert(_settle_stale(config, job, entries, stale), record, config.history_length)
        seen.append(updated)
        return updated

    history.update(config.state_directory, job.slug, start_entry, fsync=False)
    for entry in stale:  # their status.json too
        _fix_status(config, job, entry)
    if seen and any(_unalerted_lost(entry) for entry in seen[-1]):
        _alert_lost_runs(config, job, seen[-1])
    logsetup.info("%s: run %s started (%s)", job.slug, run_id, "; ".join(command_text))
    _alerts_start(config, job, record)

    state = {"record": record}

    def update_status(**fields: Any) -> None:
        state["record"] = {**state["record"], **fields}
        records.write_status(run_dir, state["record"], fsync=False)
        if "slurm_job_id" in fields:  # --status and --kill-job read the history entry
            history.update(config.state_directory, job.slug,
                           lambda entries: history.upsert(entries, state["record"], config.history_length),
                           fsync=False)

    from run_job.run.runtypes import ExecResult, RunContext

    env = job_environment(dict(os.environ), job, run_id, run_dir)
    workdir = job.working_directory or privileges_home(identity_env)
    ctx = RunContext(
        config=config, job=job, run_id=run_id, run_dir=_path(run_dir),
        output_path=_path(os.path.join(run_dir, "output.log")), commands=commands,
        command_text=command_text, environment=env, working_directory=_path(workdir),
        update_status=update_status, stop_requested=supervise.stop_requested)
    os.set_inheritable(lock_fd, True)  # the job's own tree holds the lock too
    try:
        if slurm is not None:
            result = slurm.execute(ctx)
        else:
            result = supervise.execute(ctx)
    except _errors().ProcessControlError as err:
        result = ExecResult("failed", err.exit_status, reason=str(err))
    except OSError as err:
        result = ExecResult("failed", _EXIT_CANNOT_RUN, reason=f"run-job could not run the job: {err}")
    finally:
        os.set_inheritable(lock_fd, False)
    reason = "; ".join(r for r in (takeover_note, result.reason) if r)
    final = records.finish_record(
        state["record"], ended_at=clock.now(), outcome=result.outcome,
        exit_code=result.exit_code, signal=result.signal, reason=reason,
        slurm_job_id=result.slurm_job_id if result.slurm_job_id is not None
        else state["record"].get("slurm_job_id"))
    # The outcome is durable in the run folder first; history gets it once,
    # with the alerts' results (a run-job dying in between is repaired from
    # status.json by the next run, see _mark_lost).
    records.write_status(run_dir, final, fsync=False)  # history, written next, is fsynced
    _log_end(job, final, result.exit_status)
    previous = [e for e in history.read(config.state_directory, job.slug)
                if e.get("run_id") != run_id]
    alerts = _alerts_end(config, job, final, previous)
    if alerts:
        final = {**final, "alerts": alerts}
    history.update(config.state_directory, job.slug,
                   lambda entries: history.upsert(entries, final, config.history_length))
    if alerts:
        try:
            records.write_status(run_dir, final, fsync=False)
        except _errors().RunRecordError as err:
            logsetup.error("%s: %s", job.slug, err)
    for problem in records.prune_runs(config.output_directory, job.slug, run_id,
                                      config.keep_runs, config.keep_days):
        logsetup.warning("%s: %s", job.slug, problem)
    return result.exit_status


def privileges_home(identity_env: dict[str, str]) -> str:
    from run_job.privileges import default_working_directory

    return default_working_directory(identity_env.get("HOME"))


def _path(text: str) -> Any:
    from pathlib import Path

    return Path(text)


def _log_end(job: Job, record: dict[str, Any], status: int) -> None:
    level = logsetup.INFO if record["outcome"] == "success" else logsetup.WARNING
    logsetup.log(level, "%s: run %s %s (exit %s)%s", job.slug, record["run_id"],
                 record["outcome"], status, f": {record['reason']}" if record["reason"] else "")


def _alerts_start(config: Config, job: Job, record: dict[str, Any]) -> None:
    try:
        from run_job.alerts import notify as alerts

        alerts.on_start(config, job, dict(record))
    except Exception as err:  # noqa: BLE001 - alerts never stop a run
        logsetup.error("%s: start alerts failed: %s", job.slug, err)


def _alerts_end(config: Config, job: Job, record: dict[str, Any],
                previous: list[dict[str, Any]]) -> dict:
    try:
        from run_job.alerts import notify as alerts

        result = alerts.on_end(config, job, dict(record), previous)
        return result if isinstance(result, dict) else {}
    except Exception as err:  # noqa: BLE001 - alerts never hide the job's result
        logsetup.error("%s: end alerts failed: %s", job.slug, err)
        return {"error": str(err)}


def _unalerted_lost(entry: dict[str, Any]) -> bool:
    """A lost run whose end alerts never ran (its ``alerts`` is still the empty start value)."""
    alerts = entry.get("alerts")
    return entry.get("outcome") == "lost" and not (isinstance(alerts, dict) and alerts.get("counts_as"))


def _alert_lost_runs(config: Config, job: Job, entries: list[dict[str, Any]]) -> None:
    """A run marked ``lost`` (its run-job died; marked by this run or by ``--status``)
    never had its end alerts: mail and ``failure`` hooks now, oldest first."""
    for index, lost in enumerate(entries):
        if not _unalerted_lost(lost):
            continue
        done = {**lost, "alerts": _alerts_end(config, job, dict(lost), entries[:index])}
        try:
            history.update(config.state_directory, job.slug,
                           lambda es, done=done: [done if e.get("run_id") == done.get("run_id")
                                                  and e.get("outcome") == "lost" else e for e in es])
            status = records.read_status(lost["run_dir"]) if lost.get("run_dir") else None
            if status is not None and status.get("run_id") == done.get("run_id"):
                records.write_status(lost["run_dir"], done, fsync=False)
        except _errors().RunRecordError as err:
            logsetup.error("%s: %s", job.slug, err)


def _skip(config: Config, job: Job, command_text: tuple, reason: str) -> int:
    """A skipped run: a history entry only (no folder, ``latest`` unchanged)."""
    now = clock.now()
    record = records.new_record(
        job=job.slug, run_id=records.make_run_id(now, os.getpid()), runner=job.runner,
        host=records.host_name(), user=_user_name(), pid=os.getpid(), command=command_text,
        started_at=now, job_file_sha256=job.sha256, run_dir=None,
        supervisor_start_time=None, outcome="skipped", reason=reason)
    record = records.finish_record(record, ended_at=now, outcome="skipped", reason=reason)
    status = 0 if job.allow_overtime else _EXIT_SKIPPED
    try:
        previous = [e for e in history.update(config.state_directory, job.slug,
                                              lambda entries: history.upsert(entries, record,
                                                                             config.history_length))
                    if e.get("run_id") != record["run_id"]]
    except _errors().RunRecordError as err:
        logsetup.error("%s: %s", job.slug, err)
        previous = []
    logsetup.log(logsetup.INFO if job.allow_overtime else logsetup.WARNING,
                 "%s: skipped: %s", job.slug, reason)
    alerts = _alerts_end(config, job, record, previous)
    if alerts:
        record = {**record, "alerts": alerts}
        try:
            history.update(config.state_directory, job.slug,
                           lambda entries: _replace_skipped(entries, record))
        except _errors().RunRecordError:
            pass
    return status


def _replace_skipped(entries: list[dict[str, Any]], record: dict[str, Any]) -> list[dict[str, Any]]:
    out = list(entries)
    for i in range(len(out) - 1, -1, -1):
        if out[i].get("run_id") == record["run_id"] and out[i].get("outcome") == "skipped":
            out[i] = record
            break
    return out


def _take_over_lost_run(config: Config, job: Job, lock_fd: int) -> tuple[bool, str]:
    """The lock is held. (True, note) if it belonged to a dead run-job whose
    orphans were stopped and the lock is now ours; else (False, skip reason)."""
    pid, start, run_id = lock.read_holder(lock_fd)
    if pid is None or run_id is None or supervise.process_alive(pid, start):
        who = f" (run-job pid {pid}, run {run_id})" if pid else ""
        return False, f"the previous run is still running{who}"
    count = supervise.sweep(run_id, job.kill_grace, own_tree=False)
    note = (f"run-job of run {run_id} (pid {pid}) was gone; {count} orphaned"
            f" process{'es' if count != 1 else ''} of it stopped (TERM, KILL after"
            f" {job.kill_grace:g}s) before this run")
    _mark_lost(config, job, run_id,
               f"supervision lost: run-job (pid {pid}) died; {count} orphaned"
               f" process{'es' if count != 1 else ''} stopped by the next run")
    logsetup.warning("%s: %s", job.slug, note)
    import time

    deadline = time.monotonic() + 2.0
    while True:
        if lock.try_lock(lock_fd):
            return True, note
        if time.monotonic() >= deadline:
            holders = lock.read_holder(lock_fd)
            return False, (f"the lock is still held by processes of run {holders[2] or run_id}"
                           " that carry no run marker; stop them by hand")
        time.sleep(0.02)


def _mark_lost(config: Config, job: Job, run_id: str, reason: str) -> None:
    """Mark the run ``run_id`` lost in its status.json and the history (best effort)."""
    now = clock.now()
    run_dir = os.path.join(records.job_output_dir(config.output_directory, job.slug), run_id)
    status = records.read_status(run_dir)
    finished = status if status is not None and status.get("outcome") not in (None, "running") \
        and status.get("run_id") == run_id else None

    def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = list(entries)
        for i, entry in enumerate(out):
            if entry.get("run_id") == run_id and entry.get("outcome") == "running":
                # run-job died after recording the end in status.json: keep that
                out[i] = finished if finished is not None else records.mark_lost(entry, reason, now)
        return out

    try:
        history.update(config.state_directory, job.slug, change)
    except _errors().RunRecordError as err:
        logsetup.error("%s: %s", job.slug, err)
    if status is not None and status.get("outcome") == "running":
        try:
            records.write_status(run_dir, records.mark_lost(status, reason, now))
        except _errors().RunRecordError as err:
            logsetup.error("%s: %s", job.slug, err)


def _settle_stale(config: Config, job: Job, entries: list[dict[str, Any]],
                  settled: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """With the lock ours, a ``running`` entry lost its run-job: it becomes
    ``lost`` (or what its status.json recorded, if run-job died after writing
    it). The new entries are appended to ``settled``."""
    out = list(entries)
    for i, entry in enumerate(out):
        if entry.get("outcome") != "running":
            continue
        run_id = entry.get("run_id") or ""
        status = records.read_status(os.path.join(
            records.job_output_dir(config.output_directory, job.slug), run_id)) if run_id else None
        if status is not None and status.get("run_id") == run_id \
                and status.get("outcome") not in (None, "running"):
            out[i] = status
        else:
            out[i] = records.mark_lost(entry, (
                f"supervision lost: run-job (pid {entry.get('pid')}) died and no process of"
                " the run was left"), clock.now())
        settled.append(out[i])
    return out


def _fix_status(config: Config, job: Job, entry: dict[str, Any]) -> None:
    run_dir = os.path.join(records.job_output_dir(config.output_directory, job.slug),
                           entry.get("run_id") or "")
    status = records.read_status(run_dir)
    if status is not None and status.get("outcome") == "running":
        try:
            records.write_status(run_dir, entry)
        except _errors().RunRecordError as err:
            logsetup.error("%s: %s", job.slug, err)
