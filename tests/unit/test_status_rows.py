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


def _states():
    from pathlib import Path

    from run_job.model import Job, Service
    from run_job.monitor.jobstate import job_state

    def job(slug, **fields):
        return Job(slug=slug, path=Path(f"/j/{slug}.yaml"), sha256="", commands=(("true",),),
                   command_text=("true",), **fields)

    made = [
        job_state(slug="a", file="/j/a.yaml", job=job("a", name="A", tags=("x", "y"), schedule="*/5 * * * *",
                                                       description="one\ntwo"),
                  entries=[e("1", "failed"), e("2", "running")], pause=None, now=T0),
        job_state(slug="b", file="/j/b.yaml", job=None, problems=["bad", "worse"], entries=[], pause=None,
                  now=T0),
        job_state(slug="svc", file="/j/svc.yaml", job=job("svc", runner="slurm", service=Service()),
                  entries=[], pause=None, now=T0),
        job_state(slug="z", file="/j/z.yaml", job=job("z", name="Ünïcode"), entries=[e("3", "success")],
                  pause={"by": "ops", "since": "2026-01-01T00:00:00Z", "reason": "r"}, now=T0),
    ]
    return made


def test_write_status_streams_exactly_what_the_rows_render(monkeypatch):
    """--status written job by job is the text (and the JSON document) the
    whole list of rows gives; the services' one squeue answers at the end."""
    import io
    import json

    asked = []

    def service_states(config, jobs):
        asked.append([job.slug for job in jobs])
        return {job.slug: "RUNNING" for job in jobs}

    monkeypatch.setattr(status, "_service_states", service_states)
    for states in (_states(), _states()[:2], _states()[2:], []):
        for only_running in (False, True):
            rows = status.collect_status(None, None, only_running=only_running, states=states)
            out = io.StringIO()
            status.write_status(None, None, out, only_running=only_running, states=iter(states))
            assert out.getvalue() == status.render_status(rows)
            out = io.StringIO()
            status.write_status(None, None, out, only_running=only_running, as_json=True, states=iter(states))
            expected = json.dumps(status.document("status", jobs=rows), indent=2, ensure_ascii=False) + "\n"
            assert out.getvalue() == expected
    assert asked and all(names == ["svc"] for names in asked if names)
