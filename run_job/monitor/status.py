"""``run-job --status``, ``--list-jobs`` and ``--history``: rows and their rendering.

Rows are built by pure functions from jobs and history entries (``job_row``,
``status_row``) and rendered as text or as one JSON document described by
``schemas/status.schema.json`` (field names of ``status.json``). An invalid
job file is a row with ``valid: false`` and its problems, never a crash.
A ``running`` entry whose run-job is gone is shown — and, when the state can
be written, recorded — as ``lost`` (``run/reconcile.py``).
"""

from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

from run_job import clock
from run_job.errors import ProcessControlError
from run_job.monitor.jobstate import JobState, job_state
from run_job.run import history, reconcile
from run_job.printable import printable

STATUS_SCHEMA = "status.schema.json"


# ---------------------------------------------------------------------------
# Loading every job (through the validation cache)


def load_all(config: Any, config_path: str | None) -> list[tuple[str, str, Any, list[str]]]:
    """[(slug, path, Job or None, problems)] for every job file, sorted by slug."""
    return list(iter_all(config, config_path))


def iter_all(config: Any, config_path: str | None):
    """(slug, path, Job or None, problems) of each job file in turn, sorted by
    file name; nothing is kept (100,000 job files stream through)."""
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
    folder = directory if directory.endswith("/") else directory + "/"
    jobs = cache.iter_validated(config, config_path,
                                (name[:-5] for name in names if classify(name) == "job"))
    for name in names:
        kind = classify(name)
        if kind == "ignored":
            continue
        path = folder + name  # os.path.join, without its cost per job
        slug = name[:-5]
        if kind == "bad-name":
            yield slug, path, None, [bad_name_message(name)]
            continue
        got, found = next(jobs)  # the same order: in step
        assert got == slug
        if isinstance(found, ProcessControlError):
            yield slug, path, None, str(found).splitlines() or [type(found).__name__]
        else:
            yield slug, path, found, []
    for _ in jobs:  # the end of the stream writes the bundle
        pass


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


def status_row(state: JobState) -> dict[str, Any]:
    """--status of one job (pure): its list row and what ``job_state`` says."""
    spec = state.spec
    row = job_row(state.job, state.file, spec, list(state.problems))
    row["next_run"] = _local_iso(state.next_run, spec)
    row["running"] = state.running is not None
    row["current"] = state.running
    row["last"] = state.last
    row["consecutive_failures"] = state.consecutive_failures
    row["health"] = state.health
    row["late"] = state.late
    row["expected_start"] = clock.iso(state.expected) if state.late else None
    row["paused"] = state.paused
    row["timezone"] = spec.timezone if spec is not None else None
    return row


def _local_iso(when: Any, spec: Any) -> str | None:
    """An instant as ISO 8601 with the offset of the job's zone (the host's by default)."""
    if when is None:
        return None
    from run_job.config.schedule import zone_of

    return when.astimezone(zone_of(spec.timezone if spec is not None else None)).isoformat(
        timespec="seconds")


# ---------------------------------------------------------------------------
# Effects: --status, --list-jobs, --history


def load_states(config: Any, config_path: str | None, *, now: Any = None,
                strict: bool = False) -> list[JobState]:
    """Every job's state, each file read once: the job files (through the
    validation cache), histories (``reconcile.refresh``), pauses and the clock.
    ``strict`` (the check): a state folder or history that is there but cannot
    be read raises ProcessControlError instead of looking like no runs."""
    return list(iter_states(config, config_path, now=now, strict=strict))


def iter_states(config: Any, config_path: str | None, *, now: Any = None, strict: bool = False):
    """``load_states`` one job at a time (nothing kept)."""
    now = now or clock.now()
    if strict:
        _check_state_directory(config)
    for slug, path, job, problems in iter_all(config, config_path):
        yield state_of(config, slug, path, job, problems, now=now, strict=strict)


def state_of(config: Any, slug: str, path: str, job: Any, problems: list[str] | tuple = (), *,
             now: Any, strict: bool = False) -> JobState:
    """One job's state from its files: the one way every face gets it."""
    from run_job.config.schedule import expand
    from run_job.run import pauses

    entries = reconcile.refresh(config, slug,
                                history.read(config.state_directory, slug, strict=strict))
    return job_state(
        slug=slug, file=path, job=job, problems=problems, entries=entries,
        pause=pauses.read(config.state_directory, slug, now=now), now=now,
        appeared=_appeared(path),
        schedule=expand(job.schedule, config.hash_seed, slug) if job and job.schedule else None)


def _check_state_directory(config: Any) -> None:
    """A state folder that is there must be a folder this process can read
    (missing is fine: nothing ran yet)."""
    directory = os.fspath(config.state_directory)
    try:
        os.listdir(directory)
    except FileNotFoundError:
        return
    except OSError as err:
        raise ProcessControlError(
            f"cannot read state_directory {directory}: {err.strerror or err}") from err


def selected(config: Any, config_path: str | None, *, names: list[str] | tuple = (),
             tags: list[str] | tuple = ()) -> list[JobState]:
    """The jobs named or carrying any of ``tags`` (SPEC §9), from the job
    files alone (no history is read): states with their file, validity and
    spec. UsageError (exit 2) for a tag no job carries or an unknown name."""
    from run_job.monitor.jobstate import select

    states = [JobState(job=slug, file=path, valid=job is not None, problems=tuple(problems),
                       spec=job)
              for slug, path, job, problems in load_all(config, config_path)]
    return select(states, names=names, tags=tags)


def _appeared(path: str) -> Any:
    """When a job file appeared here (its inode's change time; a copy made
    with its old mtime kept still counts from its arrival)."""
    from datetime import datetime, timezone

    try:
        return datetime.fromtimestamp(os.stat(path).st_ctime, timezone.utc)
    except OSError:
        return None


def collect_status(config: Any, config_path: str | None, only_running: bool = False,
                   states: list[JobState] | None = None) -> list[dict[str, Any]]:
    rows = []
    states = states if states is not None else load_states(config, config_path)
    services = _service_states(config, [s.spec for s in states
                                        if s.spec is not None and s.spec.is_service])
    for state in states:
        row = status_row(state)
        if only_running and not row["running"]:
            continue
        row["slurm"] = _slurm_state(row["current"])
        if state.job in services:
            row["service_state"] = services[state.job]
        rows.append(row)
    return rows


def _service_states(config: Any, jobs: list[Any]) -> dict[str, str]:
    """Slurm state of each service (one squeue; a dead controller costs 5 s at most)."""
    if not jobs:
        return {}
    try:
        from run_job.slurm.client import SlurmClient
        from run_job.slurm.service import service_states

        return service_states(config, jobs, SlurmClient(timeout=5))
    except Exception as err:  # noqa: BLE001 - status never crashes on Slurm trouble
        return {job.slug: f"unknown: {err}" for job in jobs}


def _slurm_state(current: dict[str, Any] | None) -> str | None:
    """``slurm job ID: STATE`` of a running Slurm run (asks Slurm), else None."""
    if not current or current.get("runner") != "slurm":
        return None
    try:
        from run_job.slurm import batch as slurm_runner

        return slurm_runner.describe(current)
    except Exception as err:  # noqa: BLE001 - status never crashes on Slurm trouble
        return f"slurm state unknown: {err}"


def list_jobs(config: Any, config_path: str | None, only_running: bool = False) -> list[dict[str, Any]]:
    if only_running:
        keys = tuple(job_row("", "", None, []))
        return [{k: row[k] for k in keys}
                for row in collect_status(config, config_path, only_running=True)]
    return [job_row(*item) for item in load_all(config, config_path)]


def _when(text: str | None, zone_name: str | None = None) -> str:
    """An instant in the host's zone, or in ``zone_name`` (named after it)."""
    from run_job import clock

    ts = clock.parse_iso(text)
    if ts is None:
        return "-"
    if zone_name:
        from run_job.config.schedule import zone_of

        return ts.astimezone(zone_of(zone_name)).strftime("%Y-%m-%d %H:%M:%S %Z") + f" ({zone_name})"
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
        out.extend(status_lines(row))
    return "\n".join(out)


def status_lines(row: dict[str, Any]) -> list[str]:
    """The lines of one job in --status, the last one empty (pure but for the
    local time zone)."""
    out = []
    title = printable(row["job"]) + (f": {printable(row['name'])}" if row.get("name") else "")
    if row.get("tags"):
        title += f"  [{', '.join(printable(tag) for tag in row['tags'])}]"
    out.append(title)
    if not row["valid"]:
        out.append("  INVALID: " + (printable(row["problems"][0]) if row["problems"] else "invalid"))
        for more in row["problems"][1:4]:
            out.append("           " + printable(more))
        out.append("")
        return out
    if row.get("description"):
        out.append("  " + printable(" ".join(str(row["description"]).split())))
    if row.get("service"):
        sched = f"Slurm service (sbatch-service): {printable(row.get('service_state') or 'unknown')}"
    elif row.get("schedule"):
        sched = printable(row["schedule"]) + (" (disabled)" if row.get("disabled") else "")
        if row.get("next_run"):
            sched += f", next run {_when(row['next_run'], row.get('timezone'))}"
    else:
        sched = "not scheduled"
    out.append(f"  schedule: {sched}")
    if row.get("paused"):
        out.append(f"  paused:   {render_pause(row['paused'])}")
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
    return out


def write_status(config: Any, config_path: str | None, out: Any, *, only_running: bool = False,
                 as_json: bool = False, states: Any = None) -> None:
    """--status (text, or the --json document) written to ``out`` as the job
    files stream through: the same bytes as ``render_status(collect_status())``
    (or the JSON of ``document("status", jobs=rows)``), without holding every
    row. A service's Slurm state needs one squeue for all services: rows from
    the first service shown on wait for it at the end."""
    import json

    states = states if states is not None else iter_states(config, config_path)
    services: list[Any] = []  # every service (as collect_status asks squeue about them all)
    held: list[tuple[dict[str, Any], bool]] = []
    shown = [0]

    def emit(row: dict[str, Any]) -> None:
        if as_json:
            text = json.dumps(row, indent=2, ensure_ascii=False).replace("\n", "\n    ")
            out.write(("," if shown[0] else "") + "\n    " + text)
        else:
            out.write(("\n" if shown[0] else "") + "\n".join(status_lines(row)))
        shown[0] += 1

    if as_json:
        head = json.dumps(document("status"), indent=2, ensure_ascii=False)
        out.write(head[:-2] + ',\n  "jobs": [')
    for state in states:
        service = state.spec is not None and state.spec.is_service
        if service:
            services.append(state.spec)
        row = status_row(state)
        if only_running and not row["running"]:
            continue
        row["slurm"] = _slurm_state(row["current"])
        if service or held:
            held.append((row, service))
        else:
            emit(row)
    if services:
        states_of = _service_states(config, services)
        for row, service in held:
            if service and row["job"] in states_of:
                row["service_state"] = states_of[row["job"]]
            emit(row)
    if as_json:
        out.write("\n  ]\n}\n" if shown[0] else "]\n}\n")
    elif not shown[0]:
        out.write("no jobs\n")


def render_pause(pause: dict[str, Any]) -> str:
    """One line of a pause: who, since, until, why (pure but for the local
    time zone; every value through ``printable``)."""
    until = pause.get("until")
    text = (f"by {printable(pause.get('by') or '?')} since {_when(pause.get('since'))},"
            f" {'until ' + _when(until) if until else 'until resumed'}")
    if pause.get("source") == "auto":
        text += " (automatically)"
    return f"{text}: {printable(pause.get('reason') or '')}"


def render_list(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    names = [printable(r["job"]) for r in rows]
    width = max(len(name) for name in names)
    lines = []
    for name, row in zip(names, rows, strict=True):
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
