"""Operator actions on jobs: pause and resume (SPEC §9).

One owner for what an operator's pause or resume does, whoever asks (``run-job
--pause/--resume``, the web page's operator actions): the pause record and
its audit line (``run/pauses.py``), the ``pause``/``resume`` hooks (through
``alerts.notify``, the one place that runs hooks; their environment says who,
since, until and why), and the job's metrics file when
``metrics.textfile_directory`` is set. Callers have already become the
service user (state is never written as root).

``parse_until`` is pure.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

from run_job import clock
from run_job.errors import UsageError
from run_job.printable import printable


def parse_until(text: str, now: datetime) -> datetime:
    """``--until WHEN`` as a UTC time (pure): an ISO 8601 time (the host's
    time zone when it has no offset) or a duration from ``now`` (``2h``,
    ``3d``). UsageError for anything else and for a time not after ``now``."""
    from run_job.config.durations import parse_duration

    value = text.strip()
    try:
        when = now + timedelta(seconds=parse_duration(value))
    except ValueError:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z")
                                          else value)
        except ValueError:
            raise UsageError(
                f"--until {text!r} is neither a time (ISO 8601, such as 2026-03-01T08:00 or"
                " 2026-03-01T08:00+01:00) nor a duration from now (such as 2h or 3d)") from None
        if when.tzinfo is None:
            when = when.astimezone()  # a naive time is the host's wall clock
    when = when.astimezone(now.tzinfo)
    if when <= now:
        raise UsageError(f"--until {text!r} is not in the future ({clock.iso(when)});"
                         " a pause must end after it starts")
    return when


def pause(config: Any, slug: str, *, reason: str, until: datetime | None, by: str,
          config_path: str | None = None) -> dict:
    """Pause ``slug`` (replacing an earlier pause); the pause record."""
    from run_job.alerts import notify
    from run_job.run import pauses

    record = pauses.pause(config.state_directory, slug, reason=reason, until=until,
                          source="manual", by=by)
    notify.on_pause_change(config, slug, "pause", record, by)
    refresh_metrics(config, slug, config_path)
    return record


def resume(config: Any, slug: str, *, by: str, config_path: str | None = None) -> dict | None:
    """End the pause of ``slug``; the pause that ended, or None if there was none."""
    from run_job.alerts import notify
    from run_job.run import pauses

    record = pauses.resume(config.state_directory, slug, by=by)
    if record is not None:
        notify.on_pause_change(config, slug, "resume", record, by)
        refresh_metrics(config, slug, config_path)
    return record


def refresh_metrics(config: Any, slug: str, config_path: str | None = None) -> None:
    """Rewrite the job's Prometheus textfile (SPEC §11) when
    ``metrics.textfile_directory`` is set (``monitor/textfile.write_job``
    never raises: the pause is recorded whatever the metrics do)."""
    if config.metrics_directory is None:
        return  # the monitor package stays unimported
    from run_job.monitor import textfile

    textfile.write_job(config, slug, config_path=config_path)


def pause_or_resume(config: Any, opts: Any) -> int:
    """``run-job --pause NAME|--tag T --reason TEXT [--until WHEN]`` and
    ``run-job --resume NAME|--tag T``: one line per job; exit 0 (also when
    nothing was paused), 2 for a name or tag that names no job."""
    from run_job.config.jobs import job_path
    from run_job.monitor import status
    from run_job.run import pauses

    name = opts.pause if opts.pause is not None else opts.resume
    names = [name] if name else []
    for slug in names:
        job_path(config, slug)  # refuses what is not a slug, before any path is built
    chosen = [state.job for state in status.selected(config, opts.config, names=names,
                                                     tags=opts.tag)]
    by = pauses.who()
    if opts.pause is not None:
        until = parse_until(opts.until, clock.now()) if opts.until else None
        for slug in chosen:
            record = pause(config, slug, reason=opts.reason, until=until, by=by,
                           config_path=opts.config)
            _say(f"{slug}: {pauses.describe(record)}")
        return 0
    for slug in chosen:
        ended = resume(config, slug, by=by, config_path=opts.config)
        _say(f"{slug}: resumed (it was {pauses.describe(ended)})" if ended is not None
             else f"{slug}: was not paused")
    return 0


def _say(line: str) -> None:
    sys.stdout.write(printable(line) + "\n")
