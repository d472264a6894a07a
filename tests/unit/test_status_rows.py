"""The rows of --list-jobs and --status (monitor/status.py)."""

from __future__ import annotations

from datetime import datetime, timezone

from run_job.monitor import status

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)


def e(run_id, outcome):
    return {"run_id": run_id, "outcome": outcome}


def test_status_row():
    from pathlib import Path

    from run_job.model import Job
    from run_job.monitor.jobstate import job_state

    base = status.job_row("j", "/j.yaml", None, ["bad"])
    assert base["valid"] is False
    job = Job(slug="j", path=Path("/j.yaml"), sha256="", commands=(("true",),), command_text=("true",))
    entries = [e("1", "failed"), e("2", "running"), e("3", "skipped")]
    row = status.status_row(job_state(slug="j", file="/j.yaml", job=job, entries=entries,
                                      pause=None, now=T0))
    assert row["running"] and row["current"]["run_id"] == "2"
    assert row["last"]["run_id"] == "1" and row["consecutive_failures"] == 1
    row = status.status_row(job_state(slug="j", file="/j.yaml", job=job, entries=entries[:1],
                                      pause=None, now=T0))
    assert not row["running"] and row["health"] == "failing"
