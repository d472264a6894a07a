"""``run-job --status``, ``--list-jobs``, ``--history`` and ``--kill-job``.

Rows are built by pure functions from jobs and history entries (``job_row``,
``status_row``) and rendered as text or as one JSON document described by
``schemas/status.schema.json`` (field names of ``status.json``). An invalid
job file is a row with ``valid: false`` and its problems, never a crash.
A ``running`` entry whose run-job is gone is shown — and, when the state can
be written, recorded — as ``lost``.
"""

from __future__ import annotations

import os
import signal
import time
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

from run_job.run import history, lock, records, supervise
from run_job.errors import ProcessControlError
from run_job.printable import printable

STATUS_SCHEMA = "status.schema.json"


# ---------------------------------------------------------------------------
# Loading every job (through the validation cache)


def load_all(config: Any, config_path: str | None) -> list[tuple[str, str, Any, list[str]]]:
    """[(slug, path, Job or None, problems)] for every job file, sorted by slug."""
    from run_job.config import cache
    from run_job.config.jobs import bad_name_message, classify

    directory = os.fspath(config.job_directory)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError as err:
        from run_job.config.jobs import missing_job_directory

        raise ProcessControlError(missing_job_directory(config)) from err
    except OSError as err:
        raise ProcessControlError(
            f"cannot read job_directory {directory}: {err.strerror}") from err
    kinds = [(name, classify(name)) for name in names]
    jobs = cache.validated_jobs(config, config_path,
                                [name[:-5] for name, kind in kinds if kind == "job"])
    out = []
    for name, kind in kinds:
        if kind == "ignored":
            continue
        path = os.path.join(directory, name)
        slug = name[:-5]
        if kind == "bad-name":
            out.append((slug, path, None, [bad_name_message(name)]))
            continue
        found = jobs[slug]
        if isinstance(found, ProcessControlError):
            out.append((slug, path, None, str(found).splitlines() or [type(found).__name__]))
        else:
            out.append((slug, path, found, []))
    return out


# ---------------------------------------------------------------------------
# Pure rows


def job_row(slug: str, path: str, job: Any, problems: list[str]) -> dict[str, Any]:
    """What --list-jobs shows of one job file (pure)."""
    if job is None:
        return {"job": slug, "file": path, "valid": False, "problems": problems,
                "name": None, "description": None, "tags": [], "schedule": None,
                "disabled": None, "runner": None, "service": None}
    return {
        "job": slug, "file": path, "valid": True, "problems": [],
        "name": job.name, "description": job.description, "tags": list(job.tags),
        "schedule": job.schedule, "disabled": job.disabled, "runner": job.runner,
        "service": job.is_service,
    }


def status_row(base: dict[str, Any], entries: list[dict[str, Any]], alive: bool | None,
               next_run: str | None) -> dict[str, Any]:
    """--status of one job from its list row and history (pure).

    ``alive``: whether the run-job of a trailing ``running`` entry still lives
    (None when there is no such entry).
    """
    row = dict(base)
    row["next_run"] = next_run
    current = history.current_run(entries)
    if current is not None and alive is False:
        current = None
    row["running"] = current is not None
    row["current"] = current
    last = history.last_finished(entries)
    row["last"] = last
    row["consecutive_failures"] = _consecutive_failures(entries)
    return row


def _consecutive_failures(entries: list[dict[str, Any]]) -> int:
    """As the mail threshold counts them (stored by alerts with each run), else from the history."""
    for entry in reversed(entries):
        if entry.get("outcome") == "running":
            continue
        alerts = entry.get("alerts")
        if isinstance(alerts, dict) and isinstance(alerts.get("consecutive_failures"), int):
            return alerts["consecutive_failures"]
        break
    return history.consecutive_failures(entries)


def lost_reason(entry: dict[str, Any], lock_held: bool | None) -> str:
    pid = entry.get("pid")
    if lock_held:
        return (f"supervision lost: run-job (pid {pid}) is gone; processes of the run still"
                " hold the job's lock and will be stopped by the next run")
    return f"supervision lost: run-job (pid {pid}) is gone"


# ---------------------------------------------------------------------------
# Effects: --status, --list-jobs, --history


_next_runs: dict[str, str | None] = {}


def _next_run(job: Any) -> str | None:
    """Next start in the host's time zone; computed once per distinct schedule."""
    if job is None or not job.schedule or job.disabled:
        return None
    if job.schedule not in _next_runs:
        try:
            from run_job.config.schedule import next_run

            when = next_run(job.schedule)
        except Exception:  # noqa: BLE001 - a bad schedule is shown by --validate
            when = None
        _next_runs[job.schedule] = when.isoformat(timespec="seconds") if when is not None else None
    return _next_runs[job.schedule]


def collect_status(config: Any, config_path: str | None, only_running: bool = False) -> list[dict[str, Any]]:
    rows = []
    loaded = load_all(config, config_path)
    services = _service_states(config, [job for _slug, _path, job, _problems in loaded
                                        if job is not None and job.is_service])
    for slug, path, job, problems in loaded:
        entries = history.read(config.state_directory, slug)
        alive = None
        entry = history.current_run(entries)
        if entry is not None:
            alive = supervise.process_alive(entry.get("pid"), entry.get("supervisor_start_time"))
            if not alive:
                lost = _record_lost(config, slug, entry)
                entries = [lost if e is entry else e for e in entries]
        row = status_row(job_row(slug, path, job, problems), entries, alive, _next_run(job))
        if only_running and not row["running"]:
            continue
        row["slurm"] = _slurm_state(row["current"])
        if slug in services:
            row["service_state"] = services[slug]
        rows.append(row)
    return rows


def _service_states(config: Any, jobs: list[Any]) -> dict[str, str]:
    """Slurm state of each service (one squeue; a dead controller costs 5 s at most)."""
    if not jobs:
        return {}
    try:
        from run_job.slurm.service import service_states
        from run_job.slurm.client import SlurmClient

        return service_states(config, jobs, SlurmClient(timeout=5))
    except Exception as err:  # noqa: BLE001 - status never crashes on Slurm trouble
        return {job.slug: f"unknown: {err}" for job in jobs}


def _slurm_state(current: dict[str, Any] | None) -> str | None:
    """``slurm job ID: STATE`` of a running Slurm run (asks Slurm), else None."""
    if not current or current.get("runner") != "slurm":
        return None
    try:
        from run_job.slurm import runner as slurm_runner

        return slurm_runner.describe(current)
    except Exception as err:  # noqa: BLE001 - status never crashes on Slurm trouble
        return f"slurm state unknown: {err}"


def _record_lost(config: Any, slug: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Mark a running entry whose run-job is gone as lost (best effort)."""
    from run_job import clock

    held = lock.is_locked(lock.lock_path(config.run_directory, slug))
    lost = records.mark_lost(entry, lost_reason(entry, held), clock.now())
    recorded = records.read_status(entry["run_dir"]) if entry.get("run_dir") else None
    if recorded is not None and recorded.get("run_id") == entry.get("run_id") \
            and recorded.get("outcome") not in (None, "running"):
        lost = recorded  # run-job died after recording the end in status.json

    def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = list(entries)
        for i, e in enumerate(out):
            if e.get("run_id") == entry.get("run_id") and e.get("outcome") == "running":
                out[i] = lost
        return out

    try:
        history.update(config.state_directory, slug, change)
        run_dir = entry.get("run_dir")
        if run_dir:
            status = records.read_status(run_dir)
            if status is not None and status.get("outcome") == "running":
                records.write_status(run_dir, records.mark_lost(status, lost["reason"], clock.now()))
    except (ProcessControlError, OSError):
        pass  # --status by a user who may not write the state: show it all the same
    return lost


def list_jobs(config: Any, config_path: str | None, only_running: bool = False) -> list[dict[str, Any]]:
    if only_running:
        return [{k: v for k, v in row.items() if k not in ("current", "last", "next_run", "slurm",
                                                           "consecutive_failures", "running")}
                for row in collect_status(config, config_path, only_running=True)]
    return [job_row(*item) for item in load_all(config, config_path)]


def _when(text: str | None) -> str:
    from run_job import clock

    ts = clock.parse_iso(text)
    if ts is None:
        return "-"
    return ts.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def render_status(rows: list[dict[str, Any]]) -> str:
    """Text of --status (pure but for the local time zone). Everything from job
    files and records goes through ``printable``: a name or description cannot
    drive the terminal or split a line."""
    if not rows:
        return "no jobs\n"
    out = []
    for row in rows:
        title = printable(row["job"]) + (f": {printable(row['name'])}" if row.get("name") else "")
        if row.get("tags"):
            title += f"  [{', '.join(printable(tag) for tag in row['tags'])}]"
        out.append(title)
        if not row["valid"]:
            out.append("  INVALID: " + (printable(row["problems"][0]) if row["problems"] else "invalid"))
            for more in row["problems"][1:4]:
                out.append("           " + printable(more))
            out.append("")
            continue
        if row.get("description"):
            out.append("  " + printable(" ".join(str(row["description"]).split())))
        if row.get("service"):
            sched = f"Slurm service (sbatch-service): {printable(row.get('service_state') or 'unknown')}"
        elif row.get("schedule"):
            sched = printable(row["schedule"]) + (" (disabled)" if row.get("disabled") else "")
            if row.get("next_run"):
                sched += f", next run {_when(row['next_run'])}"
        else:
            sched = "not scheduled"
        out.append(f"  schedule: {sched}")
        current = row.get("current")
        if current:
            extra = f"; {printable(row['slurm'])}" if row.get("slurm") else ""
            out.append(f"  running:  pid {printable(current.get('pid'))} since {_when(current.get('started_at'))}"
                       f" (run {printable(current.get('run_id'))}{extra})")
        last = row.get("last")
        if last:
            out.append(f"  last run: {printable(last.get('outcome'))} at {_when(last.get('started_at'))},"
                       f" {_dur(last.get('duration_s'))}" +
                       (f", exit {printable(last['exit_code'])}" if last.get("exit_code") not in (None, 0)
                        else "") +
                       (f" — {printable(last['reason'])}" if last.get("reason") else ""))
        else:
            out.append("  last run: never")
        if row["consecutive_failures"]:
            out.append(f"  consecutive failures: {row['consecutive_failures']}")
        out.append("")
    return "\n".join(out)


def render_list(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    names = [printable(r["job"]) for r in rows]
    width = max(len(name) for name in names)
    lines = []
    for name, row in zip(names, rows):
        if not row["valid"]:
            lines.append(f"{name:<{width}}  (invalid: {printable(row['problems'][0]) if row['problems'] else ''})")
        else:
            lines.append(f"{name:<{width}}  {printable(row.get('name') or '')}".rstrip())
    return "\n".join(lines) + "\n"


def render_history(slug: str, entries: list[dict[str, Any]]) -> str:
    if not entries:
        return f"{printable(slug)}: no runs recorded\n"
    lines = [f"{'run_id':<30} {'outcome':<9} {'started':<24} {'duration':>9} {'exit':>4}  reason"]
    for e in entries:
        code = e.get("exit_code")
        code = "-" if code is None else printable(code)
        lines.append(f"{printable(e.get('run_id', '')):<30} {printable(e.get('outcome', '')):<9} "
                     f"{_when(e.get('started_at')):<24} {_dur(e.get('duration_s')):>9} {code:>4}  "
                     f"{printable(e.get('reason') or '')}")
    return "\n".join(lines) + "\n"


def document(kind: str, **content: Any) -> dict[str, Any]:
    """The --json document (pure)."""
    from run_job import __version__

    return {"kind": kind, "version": __version__, **content}


# ---------------------------------------------------------------------------
# --kill-job


def kill_job(config: Any, job: Any, *, wait: float | None = None) -> tuple[int, str]:
    """Stop the running run of ``job`` and its whole tree: (exit status, message)."""
    slug = job.slug
    entries = history.read(config.state_directory, slug)
    current = history.current_run(entries)
    lock_file = lock.lock_path(config.run_directory, slug)
    held = lock.is_locked(lock_file)
    pid, start, run_id = lock.read_holder(lock_file)
    if current is None and not held:
        return 1, f"{slug}: no run is running"
    if current is not None:
        run_id = run_id or current.get("run_id")
        pid = pid or current.get("pid")
        start = start if start is not None else current.get("supervisor_start_time")
    if current is not None and current.get("runner") == "slurm":
        try:
            from run_job.slurm import runner as slurm_runner  # type: ignore[attr-defined]

            slurm_runner.kill(config, job, current)
        except ImportError:
            pass
    grace = job.kill_grace
    if supervise.process_alive(pid, start):
        # The supervisor forwards the signal, sweeps the tree and records `killed`.
        _write_kill_request(current)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError as err:
            raise ProcessControlError(
                f"{slug}: cannot signal run-job pid {pid}: {err.strerror}; run --kill-job as the"
                " service user or root") from err
        deadline = time.monotonic() + (wait if wait is not None else grace + 30)
        while supervise.process_alive(pid, start) and time.monotonic() < deadline:
            time.sleep(0.02)
        if supervise.process_alive(pid, start):
            os.kill(pid, signal.SIGKILL)  # it will not stop: the tree is swept below
        else:
            return 0, f"{slug}: run {run_id} killed"
    # No live supervisor: stop the orphans ourselves and record the end.
    count = supervise.sweep(run_id, grace, own_tree=False) if run_id else 0
    recorded = records.read_status(current["run_dir"]) if current and current.get("run_dir") else None
    if count == 0 and recorded is not None and recorded.get("run_id") == current.get("run_id") \
            and recorded.get("outcome") not in (None, "running"):
        # its commands had ended (run-job was busy with mail or hooks): keep that outcome
        _replace_entry(config, slug, current, recorded)
        return 1, f"{slug}: no run is running (run {run_id} had ended: {recorded['outcome']})"
    if current is not None:
        _record_killed(config, slug, current, count)
    if count == 0 and current is None:
        return 1, f"{slug}: no run is running"
    return 0, f"{slug}: run {run_id} killed ({count} process{'es' if count != 1 else ''} stopped)"


def _write_kill_request(current: dict[str, Any] | None) -> None:
    """Leave a note for the supervisor so that its reason names --kill-job."""
    if not current or not current.get("run_dir"):
        return
    try:
        from run_job.atomic import write_atomic

        write_atomic(os.path.join(current["run_dir"], ".kill-request"),
                     f"{os.getpid()}\n".encode(), 0o640, fsync=False)
    except OSError:
        pass


def _replace_entry(config: Any, slug: str, entry: dict[str, Any], new: dict[str, Any]) -> None:
    def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [new if e.get("run_id") == entry.get("run_id") and e.get("outcome") == "running"
                else e for e in entries]

    try:
        history.update(config.state_directory, slug, change)
    except ProcessControlError:
        pass


def _record_killed(config: Any, slug: str, entry: dict[str, Any], count: int) -> None:
    from run_job import clock

    reason = (f"stopped by run-job --kill-job ({count} process{'es' if count != 1 else ''});"
              " its run-job was gone")
    done = records.finish_record(entry, ended_at=clock.now(), outcome="killed",
                                 signal=signal.SIGTERM, reason=reason)

    def change(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [done if e.get("run_id") == entry.get("run_id") and e.get("outcome") == "running"
                else e for e in entries]

    try:
        history.update(config.state_directory, slug, change)
        if entry.get("run_dir"):
            records.write_status(entry["run_dir"], done)
    except ProcessControlError:
        pass
