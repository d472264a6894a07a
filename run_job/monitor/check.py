"""What ``check-jobs-icinga`` says (SPEC §11): a pure function of the jobs'
states and the services' Slurm answer.

``decide`` turns ``JobState``s (from ``status.load_states``, never computed a
second way) and the watch of the started services into a ``CheckResult``:
the exit status, the status line, the perfdata and one line per problem.
``render`` writes it as a plugin does (Monitoring Plugins guidelines):

    FAILING JOBS: a, b; LATE JOBS: c | jobs=5;;;0 failing=2;;0;0 ...
    a: failing: failed at 2026-06-01T11:00:02Z (exit 1), 3 consecutive failures: ...
    c: late: no run started since the expected start at 2026-06-01T11:00:00Z ...

The reference's words stay as they were: nothing wrong is ``JOBS OK`` (0);
failing jobs are ``FAILING JOBS: a, b`` (slugs sorted, comma and space) and
CRITICAL (2). Beyond it: late and invalid jobs are WARNING (1), services that
sbatch-service started and Slurm no longer has are CRITICAL, services whose
state Slurm could not tell are UNKNOWN (3). The worst state wins, in the
order of the Monitoring Plugins library's ``max_state_alt``:
CRITICAL > WARNING > UNKNOWN > OK, so that an unreachable Slurm never hides
a failing or late job. Paused and disabled jobs are never failing or late
(``jobstate``); pauses are listed.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from datetime import datetime
    from typing import Any, Mapping, Sequence

from run_job import clock
from run_job.errors import CHECK_CRITICAL, CHECK_OK, CHECK_UNKNOWN, CHECK_WARNING
from run_job.model import Record
from run_job.monitor.jobstate import JobState
from run_job.printable import printable

STATE_NAMES = {CHECK_OK: "OK", CHECK_WARNING: "WARNING", CHECK_CRITICAL: "CRITICAL",
               CHECK_UNKNOWN: "UNKNOWN"}
# worst last: max_state_alt of the Monitoring Plugins library
_RANK = {CHECK_OK: 0, CHECK_UNKNOWN: 1, CHECK_WARNING: 2, CHECK_CRITICAL: 3}

# The problem groups of the status line, in this order, with their state.
GROUPS = (
    ("failing", "FAILING JOBS", CHECK_CRITICAL),  # the reference's words, first
    ("late", "LATE JOBS", CHECK_WARNING),
    ("invalid", "INVALID JOBS", CHECK_WARNING),
    ("services_down", "SERVICES DOWN", CHECK_CRITICAL),
    ("services_unknown", "SERVICES UNKNOWN", CHECK_UNKNOWN),
)
OK_LINE = "JOBS OK"
UNKNOWN_PREFIX = "JOBS UNKNOWN"


class CheckResult(Record):
    """What the check says (frozen)."""

    status: int  # CHECK_OK .. CHECK_UNKNOWN
    summary: str  # the status line, without perfdata
    perfdata: tuple = ()  # "label=value[UOM];warn;crit;min;max" each
    lines: tuple = ()  # the long output: one line per problem, pause or the single job
    groups: dict | None = None  # group -> sorted slugs

    @property
    def state(self) -> str:
        return STATE_NAMES[self.status]


def worst(statuses: Sequence[int]) -> int:
    """The worst of plugin states: CRITICAL > WARNING > UNKNOWN > OK (pure)."""
    return max(statuses, key=_RANK.__getitem__, default=CHECK_OK)


def decide(states: Sequence[JobState], services: Mapping[str, tuple[str, str]] | None = None,
           *, now: datetime, single: bool = False) -> CheckResult:
    """The check's verdict (pure). ``services``: slug -> (``up``|``down``|
    ``unknown``, detail) for the services sbatch-service last started;
    ``single``: one job was asked for (``--job NAME``): its age, duration and
    consecutive failures go into the perfdata."""
    services = dict(services or {})
    monitored = {s.job: s for s in states}
    groups: dict[str, list[str]] = {name: [] for name, _, _ in GROUPS}
    lines: list[str] = []
    for state in states:
        if state.health == "invalid":
            groups["invalid"].append(state.job)
            lines.append(_line(state.job, "invalid", _problem(state)))
            continue
        if state.failing:
            groups["failing"].append(state.job)
            lines.append(_line(state.job, "failing", _failure(state)))
        if state.late:
            groups["late"].append(state.job)
            lines.append(_line(state.job, "late", _lateness(state)))
    for slug in sorted(services):
        watched = monitored.get(slug)
        if watched is None or not watched.enabled or watched.paused is not None:
            continue  # not asked for, disabled or paused: never down
        found, detail = services[slug]
        if found == "down":
            groups["services_down"].append(slug)
            lines.append(_line(slug, "service down", detail))
        elif found == "unknown":
            groups["services_unknown"].append(slug)
            lines.append(_line(slug, "service state unknown", detail))
    for state in states:
        if state.paused is not None:
            from run_job.run.pauses import describe

            lines.append(_line(state.job, "paused", describe(state.paused)[len("paused "):]))
    if single and len(states) == 1:
        lines.append(_line(states[0].job, states[0].health, _summary(states[0], now)))
    statuses = [status for name, _, status in GROUPS if groups[name]]
    status = worst(statuses)
    parts = [f"{words}: {', '.join(sorted(groups[name]))}" for name, words, _ in GROUPS
             if groups[name]]
    summary = "; ".join(parts) if parts else OK_LINE
    return CheckResult(status=status, summary=_clean(summary),
                       perfdata=tuple(perfdata(states, groups, now=now, single=single)),
                       lines=tuple(_clean(line) for line in lines),
                       groups={name: sorted(slugs) for name, slugs in groups.items()})


def perfdata(states: Sequence[JobState], groups: Mapping[str, list[str]], *, now: datetime,
             single: bool = False) -> list[str]:
    """The perfdata values (pure). Counts have min 0; ``failing`` has the
    critical threshold 0 and ``late`` and ``invalid`` the warning threshold 0
    (any job makes the state), so graphs draw them. With one job: ``age``
    (since its last success; left out when it never succeeded), ``duration``
    (of its last finished run) and ``consecutive_failures``."""
    out = [
        _perf("jobs", len(states)),
        _perf("failing", len(groups["failing"]), crit="0"),
        _perf("late", len(groups["late"]), warn="0"),
        _perf("running", sum(1 for s in states if s.running is not None)),
        _perf("paused", sum(1 for s in states if s.paused is not None)),
        _perf("invalid", len(groups["invalid"]), warn="0"),
    ]
    if single and len(states) == 1:
        state = states[0]
        success = clock.parse_iso((state.last_success or {}).get("ended_at"))
        if success is not None:
            out.append(_perf("age", max(0.0, (now - success).total_seconds()), unit="s"))
        duration = (state.last or {}).get("duration_s")
        if isinstance(duration, (int, float)) and not isinstance(duration, bool):
            out.append(_perf("duration", max(0.0, float(duration)), unit="s"))
        out.append(_perf("consecutive_failures", state.consecutive_failures))
    return out


def _perf(label: str, value: float | int, *, unit: str = "", warn: str = "", crit: str = "") -> str:
    """``label=value[UOM];warn;crit;min`` (labels here need no quotes)."""
    return f"{label}={_number(value)}{unit};{warn};{crit};0"


def _number(value: float | int) -> str:
    """A plain decimal, never an exponent (the guidelines' ``[-0-9.]``)."""
    if isinstance(value, int):
        return str(value)
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def render(result: CheckResult) -> str:
    """The plugin output: status line, ``|``, perfdata; then the long output."""
    head = result.summary
    if result.perfdata:
        head += " | " + " ".join(result.perfdata)
    return "\n".join([head, *result.lines]) + "\n"


def unknown(lines: Sequence[str]) -> str:
    """The output of a check that cannot tell (exit 3): ``JOBS UNKNOWN: why``."""
    lines = [_clean(str(line)) for line in lines] or ["cannot determine the state"]
    return "\n".join([f"{UNKNOWN_PREFIX}: {lines[0]}", *lines[1:]]) + "\n"


# ---------------------------------------------------------------------------
# the words of each line (pure)


def _clean(text: str) -> str:
    """One line, control characters escaped, and no ``|``: Icinga would read
    what follows as perfdata."""
    return printable(text).replace("|", "/")


def _line(slug: str, what: str, detail: str) -> str:
    return f"{slug}: {what}" + (f": {detail}" if detail else "")


def _problem(state: JobState) -> str:
    problems = list(state.problems)
    if not problems:
        return "the job file is not valid"
    more = f" (and {len(problems) - 1} more; run-job --validate shows them)" if len(problems) > 1 else ""
    return str(problems[0]) + more


def _failure(state: JobState) -> str:
    last = state.last or {}
    text = f"{last.get('outcome')} at {_when(last.get('ended_at') or last.get('started_at'))}"
    if last.get("exit_code") not in (None, 0):
        text += f" (exit {last.get('exit_code')})"
    if state.consecutive_failures > 1:
        text += f", {state.consecutive_failures} consecutive failures"
    if last.get("reason"):
        text += f": {last['reason']}"
    return text


def _lateness(state: JobState) -> str:
    spec = state.spec
    text = f"no run started since the expected start at {_stamp(state.expected)}"
    if spec is not None:
        zone = f" in {spec.timezone}" if spec.timezone else ""
        text += f" (schedule '{spec.schedule}'{zone}, grace {_span(spec.monitor_grace)})"
    newest = state.running or state.last
    if newest is None:
        text += "; it never ran"
    return text


def _summary(state: JobState, now: datetime) -> str:
    """One line about the one job asked for."""
    if state.spec is None:
        return _problem(state)
    parts = []
    last = state.last
    if last is not None:
        duration = last.get("duration_s")
        took = f", took {_span(duration)}" if isinstance(duration, (int, float)) else ""
        parts.append(f"last run {last.get('outcome')} at {_when(last.get('started_at'))}{took}")
    else:
        parts.append("no finished run")
    if state.running is not None:
        parts.append(f"running since {_when(state.running.get('started_at'))}")
    if state.next_run is not None:
        parts.append(f"next run {_stamp(state.next_run)}")
    return "; ".join(parts)


def _when(text: Any) -> str:
    return _stamp(clock.parse_iso(text))


def _stamp(when: datetime | None) -> str:
    if when is None:
        return "?"
    from datetime import timezone

    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(seconds: Any) -> str:
    """``10m``, ``1h30m``, ``12.5s`` (pure)."""
    if not isinstance(seconds, (int, float)):
        return "?"
    if seconds < 60:
        return f"{_number(float(seconds))}s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"
