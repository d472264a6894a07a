"""``run-job --job NAME --if-due`` (SPEC §10): is a start of the job due now?

cron-generate gives a job with its own ``timezone`` host-zone entries that
fire at every host time its starts can fall on (``config/zones.py``), and
more; each calls ``run-job --job NAME --if-due``. The run goes on only when
a start of the job, in its zone with Debian cron's clock-change rule
(``schedule.previous_start``), falls in the current minute and no run of
the job has started since that start (two entries may fire in the same
minute, e.g. cron's catch-up after the host's spring change). Otherwise
run-job exits 0 at once, silently, leaving no record.

``due_instant`` and ``ran_since`` are pure (``due_instant`` reads the zone
data); ``due_now`` adds the clock. The history is checked by the controller,
as the service user, before it takes the lock and again under it.
"""

from __future__ import annotations

from datetime import datetime
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

from run_job import clock
from run_job.model import Config, Job


def due_instant(schedule: str | None, zone: Any, now: datetime) -> datetime | None:
    """The start of ``schedule`` (concrete) in ``zone`` that falls in the
    minute of ``now`` (at or before ``now``), or None (pure)."""
    if not schedule:
        return None
    from run_job.config.schedule import (field_values, previous_start, split_fields, steady,
                                         to_five_fields)

    minute = now.replace(second=0, microsecond=0)
    if steady(zone, minute):
        # Far from a clock change a start in this minute has this wall
        # minute and hour: most calls end here, without croniter.
        wall = minute.astimezone(zone)
        fields = split_fields(to_five_fields(schedule))
        try:
            if wall.minute not in field_values(fields[0], 0) or wall.hour not in field_values(fields[1], 1):
                return None
        except (ValueError, IndexError):
            return None
    instant = previous_start(schedule, now, zone)
    if instant is None or instant < minute:
        return None
    return instant


def ran_since(entries: list[dict[str, Any]], instant: datetime) -> bool:
    """Has a run of the job (any entry: run, skip) started at or after
    ``instant``? (pure)"""
    for entry in reversed(entries):
        started = clock.parse_iso(entry.get("started_at"))
        if started is not None and started >= instant:
            return True
    return False


def run_started_since(run_id: str | None, instant: datetime) -> bool:
    """Did the run ``run_id`` (a lock holder's) start at or after ``instant``? (pure)"""
    if not run_id:
        return False
    from run_job.run.records import run_id_time

    started = run_id_time(run_id)
    return started is not None and started >= instant


def due_now(config: Config, job: Job, now: datetime | None = None) -> datetime | None:
    """The start of ``job`` due in the current minute (its zone, its hashed
    fields expanded), or None."""
    if not job.schedule or job.disabled:
        return None
    from run_job.config.schedule import expand, zone_of

    return due_instant(expand(job.schedule, config.hash_seed, job.slug), zone_of(job.timezone),
                       now or clock.now())
