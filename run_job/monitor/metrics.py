"""Prometheus metrics of jobs (SPEC §11), in the text exposition format (pure).

One family per fact of ``jobstate.JobState``, so that the metrics, the check,
``--status`` and the web page never disagree. Every family carries the same
``# HELP`` and ``# TYPE`` lines wherever it is written (node_exporter's
textfile collector refuses files whose help texts differ), samples have the
label ``job`` only (``last_outcome`` adds ``outcome``, ``health`` ``health``), and no timestamps. A
value that is not known (a job that never ran has no last start) is left out;
its family's HELP and TYPE lines stay.

``render(states)`` gives one text for any number of jobs (``run-job
--metrics``, the web page's ``/metrics``); ``render_job(state)`` the text of
one job's textfile.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from datetime import datetime
    from typing import Any, Iterable

from run_job import clock
from run_job.monitor.jobstate import HEALTHS, JobState
from run_job.run.transitions import OUTCOMES

PREFIX = "process_control_job_"
FINISHED = tuple(o for o in OUTCOMES if o not in ("running", "skipped"))

# name (after PREFIX), type, help
FAMILIES = (
    ("last_start_timestamp_seconds", "gauge", "When the newest run of the job started (Unix time)."),
    ("last_end_timestamp_seconds", "gauge", "When the newest finished run of the job ended (Unix time)."),
    ("last_success_timestamp_seconds", "gauge", "When the newest successful run of the job ended (Unix time)."),
    ("last_duration_seconds", "gauge", "How long the newest finished run of the job took."),
    ("last_exit_code", "gauge", "Exit code of the newest finished run (absent when it had none)."),
    ("last_outcome", "gauge", "1 for the outcome of the newest finished run, 0 for the others."),
    ("running", "gauge", "1 while a run of the job is going on."),
    ("consecutive_failures", "gauge", "Finished runs that failed since the last success."),
    ("paused", "gauge", "1 while the job is paused (run-job --pause, or pause_after_failures)."),
    ("late", "gauge", "1 when no run started since an expected start older than the job's grace."),
    ("next_run_timestamp_seconds", "gauge", "When cron starts the job next (Unix time)."),
    ("valid", "gauge", "1 when the job file validates, 0 when run-job refuses it."),
    ("health", "gauge", "1 for the job's state in one word (as check-jobs-icinga and --status judge it),"
                        " 0 for the others."),
)


def _escape(value: str) -> str:
    """A label value as the exposition format writes it (pure)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float | int) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _seconds(text: Any) -> float | None:
    when = clock.parse_iso(text)
    return when.timestamp() if when is not None else None


def _timestamp(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


def samples(state: JobState) -> dict[str, list[tuple[dict[str, str], float | int]]]:
    """family -> [(extra labels, value)] of one job (pure)."""
    out: dict[str, list[tuple[dict[str, str], float | int]]] = {name: [] for name, _, _ in FAMILIES}

    def put(name: str, value: Any, labels: dict[str, str] | None = None) -> None:
        if value is not None:
            out[name].append((labels or {}, value))

    newest = state.running or state.last
    put("last_start_timestamp_seconds", _seconds(newest.get("started_at")) if newest else None)
    last = state.last
    if last is not None:
        put("last_end_timestamp_seconds", _seconds(last.get("ended_at")))
        duration = last.get("duration_s")
        put("last_duration_seconds", duration if isinstance(duration, (int, float)) else None)
        code = last.get("exit_code")
        put("last_exit_code", code if isinstance(code, int) and not isinstance(code, bool) else None)
        for outcome in FINISHED:
            put("last_outcome", int(last.get("outcome") == outcome), {"outcome": outcome})
    if state.last_success is not None:
        put("last_success_timestamp_seconds", _seconds(state.last_success.get("ended_at")))
    if state.valid:
        put("running", int(state.running is not None))
        put("consecutive_failures", state.consecutive_failures)
        put("late", int(state.late))
        put("next_run_timestamp_seconds", _timestamp(state.next_run))
    put("paused", int(state.paused is not None))
    put("valid", int(state.valid))
    for health in HEALTHS:
        put("health", int(state.health == health), {"health": health})
    return out


def render(states: Iterable[JobState]) -> str:
    """The metrics of every job in ``states``, family by family (pure)."""
    per_job = [(state.job, samples(state)) for state in states]
    lines = []
    for name, kind, text in FAMILIES:
        lines.append(f"# HELP {PREFIX}{name} {text}")
        lines.append(f"# TYPE {PREFIX}{name} {kind}")
        for slug, families in per_job:
            for labels, value in families[name]:
                label_text = ",".join(f'{key}="{_escape(val)}"'
                                      for key, val in {"job": slug, **labels}.items())
                lines.append(f"{PREFIX}{name}{{{label_text}}} {_number(value)}")
    return "\n".join(lines) + "\n"


def render_job(state: JobState) -> str:
    """The textfile of one job (pure)."""
    return render([state])
