"""What state a job is in: one pure function of its file, history, pause and the clock.

``run-job --status``, ``check-jobs-icinga``, the Prometheus metrics and the web
page all ask ``job_state`` and nothing else, so that they never disagree
(SPEC §11). The facts it reads:

* the job file: valid or not, disabled, its schedule, time zone and grace;
* the history, as ``reconcile.refresh`` leaves it (a run whose run-job died
  is no longer ``running``);
* the pause record (``run/pauses.py``), already past its expiry or not;
* ``now``, and when the job file appeared (a job that never ran is late only
  for expected starts after that).

``health`` is one word, the worst that applies, in this order: ``invalid``,
``failing`` (the newest finished run failed), ``late`` (no run started since
an expected start older than the grace), then ``paused``, ``disabled``,
``running``, ``ok``, ``never_run``. Paused and disabled jobs are never
failing or late.
"""

from __future__ import annotations

from datetime import datetime, timedelta
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

from run_job import clock
from run_job.model import FAILED_OUTCOMES, Job, Record
from run_job.run import history

HEALTHS = ("invalid", "failing", "late", "paused", "disabled", "running", "ok", "never_run")


class JobState(Record):
    """Everything the faces show of one job (frozen)."""

    job: str  # the slug
    file: str
    valid: bool
    problems: tuple = ()
    spec: Job | None = None  # the validated job file
    paused: dict | None = None  # the pause record
    running: dict | None = None  # the record of the run going on
    last: dict | None = None  # the newest finished run
    last_success: dict | None = None
    consecutive_failures: int = 0
    next_run: datetime | None = None  # UTC
    expected: datetime | None = None  # the latest expected start past the grace (UTC)
    late: bool = False
    failing: bool = False
    health: str = "ok"
    history: tuple = ()  # the entries it was computed from, oldest first (the web's job page)

    @property
    def enabled(self) -> bool:
        return self.valid and self.spec is not None and not self.spec.disabled

    @property
    def scheduled(self) -> bool:
        return (self.enabled and self.spec is not None and bool(self.spec.schedule)
                and not self.spec.is_service)


def job_state(*, slug: str, file: str, job: Job | None, problems: tuple | list = (),
              entries: list[dict[str, Any]], pause: dict[str, Any] | None, now: datetime,
              appeared: datetime | None = None, schedule: str | None = None) -> JobState:
    """The state of one job (pure; ``schedule``: the job's schedule with any
    hashed fields expanded, default its own)."""

    if job is None:
        return JobState(job=slug, file=file, valid=False, problems=tuple(problems),
                        health="invalid", paused=pause, history=tuple(entries))
    running = history.current_run(entries)
    last = history.last_finished(entries)
    last_success = next((e for e in reversed(entries) if e.get("outcome") == "success"), None)
    streak = consecutive_failures(entries)
    active = not job.disabled and pause is None
    failing = active and last is not None and last.get("outcome") in FAILED_OUTCOMES
    expr = schedule or job.schedule
    next_run = expected = None
    late = False
    if expr and not job.is_service and not job.disabled:
        next_run, expected = _times(expr, job.timezone, job.monitor_grace, now)
        if active and expected is not None:
            late = _missed(expected, entries, appeared)
    if failing:
        health = "failing"
    elif late:
        health = "late"
    elif pause is not None:
        health = "paused"
    elif job.disabled:
        health = "disabled"
    elif running is not None:
        health = "running"
    elif last is None and not entries:
        health = "never_run"
    else:
        health = "ok"
    return JobState(job=slug, file=file, valid=True, spec=job, paused=pause, running=running,
                    last=last, last_success=last_success, consecutive_failures=streak,
                    next_run=next_run, expected=expected, late=late, failing=failing,
                    health=health, history=tuple(entries))


_TIMES: dict[tuple, tuple] = {}


def _times(expr: str, zone_name: str | None, grace: float, now: datetime) -> tuple:
    """(next start, latest expected start past the grace), once per distinct
    schedule, zone and grace at one ``now`` (a job directory repeats a few
    schedules many times)."""
    key = (expr, zone_name, grace, now)
    if key not in _TIMES:
        from run_job.config.schedule import next_start, previous_start, zone_of

        if len(_TIMES) > 4096:
            _TIMES.clear()
        zone = zone_of(zone_name)
        _TIMES[key] = (next_start(expr, now, zone),
                       previous_start(expr, now - timedelta(seconds=grace), zone))
    return _TIMES[key]


def _missed(expected: datetime, entries: list[dict[str, Any]], appeared: datetime | None) -> bool:
    """No run (skipped ones count: cron did start run-job) since ``expected``;
    a job with no history at all only for a start after its file appeared."""
    if not entries:
        return appeared is not None and expected >= appeared
    for entry in reversed(entries):
        started = clock.parse_iso(entry.get("started_at"))
        if started is not None and started >= expected:
            return False
    return True


def consecutive_failures(entries: list[dict[str, Any]]) -> int:
    """As the mail threshold counts them (stored by the alerts with each run),
    else from the history: failed runs since the last success."""
    for entry in reversed(entries):
        if entry.get("outcome") == "running":
            continue
        alerts = entry.get("alerts")
        if isinstance(alerts, dict) and isinstance(alerts.get("consecutive_failures"), int) \
                and not isinstance(alerts.get("consecutive_failures"), bool):
            return alerts["consecutive_failures"]
        break
    return history.consecutive_failures(entries)


def select(states: list[JobState], *, names: tuple | list = (), tags: tuple | list = ()
           ) -> list[JobState]:
    """The states of the jobs named or carrying any of ``tags`` (all when
    neither is given). Raises UsageError for a tag no job carries (SPEC §9)
    and for a name that is no job."""
    if not names and not tags:
        return list(states)
    from run_job.errors import UsageError

    known = {s.job for s in states}
    for name in names:
        if name not in known:
            raise UsageError(f"no job named {name!r}; run-job --list-jobs shows the jobs")
    carried = {tag for s in states if s.spec is not None for tag in s.spec.tags}
    for tag in tags:
        if tag not in carried:
            hint = f" (tags in use: {', '.join(sorted(carried))})" if carried else ""
            raise UsageError(f"no job carries the tag {tag!r}{hint}")
    wanted = set(names)
    return [s for s in states if s.job in wanted
            or (s.spec is not None and any(tag in s.spec.tags for tag in tags))]
