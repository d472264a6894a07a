"""The one job-state function (monitor/jobstate.py): a table of facts and what they make."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from run_job.errors import UsageError
from run_job.model import Job
from run_job.monitor.jobstate import job_state, select

UTC = timezone.utc
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def job(**fields) -> Job:
    fields.setdefault("schedule", "0 * * * *")
    return Job(slug=fields.pop("slug", "j"), path=Path("/j.yaml"), sha256="", commands=(("true",),),
               command_text=("true",), **fields)


def run(minutes_ago: float, outcome: str = "success", run_id: str | None = None) -> dict:
    started = NOW - timedelta(minutes=minutes_ago)
    return {"run_id": run_id or started.strftime("%Y%m%dT%H%M%S.000000Z-1"), "outcome": outcome,
            "started_at": started.strftime("%Y-%m-%dT%H:%M:%S.000000Z")}


def state(spec, entries, pause=None, appeared=NOW - timedelta(days=30), now=NOW):
    return job_state(slug=spec.slug if spec else "j", file="/j.yaml", job=spec, entries=entries,
                     pause=pause, now=now, appeared=appeared)


PAUSE = {"by": "ops", "since": "2026-06-01T00:00:00.000000Z", "until": None, "reason": "x",
         "source": "manual"}


@pytest.mark.parametrize("spec,entries,pause,health,late,failing", [
    (job(), [run(60), run(0.5)], None, "ok", False, False),          # ran at 12:00
    (job(), [run(75)], None, "late", True, False),                   # 11:00 missed, grace 10m
    (job(monitor_grace=7200.0), [run(75)], None, "ok", False, False),  # within a long grace
    (job(), [run(0.5, "failed")], None, "failing", False, True),
    (job(), [run(90, "failed"), run(0.5, "running")], None, "failing", False, True),
    (job(), [run(60, "failed")], PAUSE, "paused", False, False),     # paused: neither
    (job(disabled=True), [run(600, "failed")], None, "disabled", False, False),
    (job(), [run(0.5, "running")], None, "running", False, False),
    (job(), [run(60), run(0.5, "skipped")], None, "ok", False, False),  # cron did start it
    (job(schedule=None), [], None, "never_run", False, False),
    (None, [], None, "invalid", False, False),
])
def test_health_table(spec, entries, pause, health, late, failing):
    found = state(spec, entries, pause)
    assert (found.health, found.late, found.failing) == (health, late, failing)


def test_a_job_that_never_ran_is_late_only_after_its_file_appeared():
    assert state(job(), [], appeared=NOW - timedelta(days=1)).late
    assert not state(job(), [], appeared=NOW - timedelta(minutes=30)).late
    assert state(job(), [], appeared=NOW - timedelta(minutes=30)).health == "never_run"


def test_no_false_alarm_after_the_autumn_change_in_berlin():
    """A 02:30 job ran at 02:30 CEST; an hour later the clock shows 02:30
    again: cron does not run it again, so it is not late."""
    spec = job(schedule="30 2 * * *", timezone="Europe/Berlin")
    first_pass = datetime(2026, 10, 25, 0, 30, 1, tzinfo=UTC)
    entries = [{"run_id": "r", "outcome": "success",
                "started_at": first_pass.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}]
    for minutes in range(0, 24 * 60, 7):  # the whole day after it
        now = first_pass + timedelta(minutes=minutes)
        assert not state(spec, entries, now=now).late, now
    assert state(spec, entries, now=datetime(2026, 10, 26, 1, 45, tzinfo=UTC)).late


def test_next_run_in_the_jobs_zone():
    spec = job(schedule="0 9 * * *", timezone="Europe/Berlin")
    assert state(spec, []).next_run == datetime(2026, 6, 2, 7, 0, tzinfo=UTC)


def test_select_by_name_and_tag():
    states = [state(job(slug="a", tags=("db",)), []), state(job(slug="b", tags=("web", "db")), []),
              state(job(slug="c"), [])]
    assert [s.job for s in select(states, tags=["db"])] == ["a", "b"]
    assert [s.job for s in select(states, names=["c"], tags=["web"])] == ["b", "c"]
    assert len(select(states)) == 3
    with pytest.raises(UsageError, match="no job carries the tag 'nope'"):
        select(states, tags=["nope"])
    with pytest.raises(UsageError, match="no job named"):
        select(states, names=["zz"])
