"""The metrics text (monitor/metrics.py): families, labels, escaping, values from job_state."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from run_job.model import Job
from run_job.monitor import metrics
from run_job.monitor.jobstate import job_state

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def state(slug, entries, pause=None):
    job = Job(slug=slug, path=Path(f"/{slug}.yaml"), sha256="", commands=(("true",),),
              command_text=("true",), schedule="0 * * * *")
    return job_state(slug=slug, file=f"/{slug}.yaml", job=job, entries=entries, pause=pause, now=NOW)


def test_every_family_has_the_same_help_and_type_in_any_file():
    one = metrics.render_job(state("a", []))
    two = metrics.render([state("b", []), state("c", [])])
    heads = [line for line in one.splitlines() if line.startswith("#")]
    assert heads == [line for line in two.splitlines() if line.startswith("#")]
    assert len(heads) == 2 * len(metrics.FAMILIES)


def test_values_of_a_failed_run():
    entries = [{"run_id": "r1", "outcome": "success", "started_at": "2026-06-01T10:00:00.000000Z",
                "ended_at": "2026-06-01T10:00:05.000000Z", "duration_s": 5.0, "exit_code": 0},
               {"run_id": "r2", "outcome": "failed", "started_at": "2026-06-01T11:00:00.000000Z",
                "ended_at": "2026-06-01T11:00:02.500000Z", "duration_s": 2.5, "exit_code": 3}]
    text = metrics.render_job(state("j", entries))
    assert 'process_control_job_last_exit_code{job="j"} 3\n' in text
    assert 'process_control_job_last_duration_seconds{job="j"} 2.5\n' in text
    assert 'process_control_job_last_outcome{job="j",outcome="failed"} 1\n' in text
    assert 'process_control_job_last_outcome{job="j",outcome="success"} 0\n' in text
    assert 'process_control_job_consecutive_failures{job="j"} 1\n' in text
    assert 'process_control_job_last_success_timestamp_seconds{job="j"} 1780308005.0\n' in text
    assert 'process_control_job_running{job="j"} 0\n' in text
    assert 'process_control_job_next_run_timestamp_seconds{job="j"} 1780318800.0\n' in text
    assert "process_control_job_last_start_timestamp_seconds" in text


def test_a_job_that_never_ran_has_no_last_values():
    text = metrics.render_job(state("new", []))
    assert "last_start_timestamp_seconds{" not in text and "last_outcome{" not in text
    assert 'process_control_job_paused{job="new"} 0\n' in text


def test_label_values_are_escaped():
    assert metrics._escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_health_and_validity_are_one_hot():
    from run_job.monitor.jobstate import HEALTHS

    text = metrics.render_job(state("j", [{"run_id": "r", "outcome": "failed",
                                            "started_at": "2026-06-01T11:30:00.000000Z",
                                            "ended_at": "2026-06-01T11:30:01.000000Z"}]))
    assert 'process_control_job_health{job="j",health="failing"} 1\n' in text
    assert sum(f'health="{h}"}} 1' in text for h in HEALTHS) == 1
    assert 'process_control_job_valid{job="j"} 1\n' in text
    invalid = job_state(slug="bad", file="/bad.yaml", job=None, problems=("x",), entries=[],
                        pause=None, now=NOW)
    text = metrics.render_job(invalid)
    assert 'process_control_job_valid{job="bad"} 0\n' in text
    assert 'process_control_job_health{job="bad",health="invalid"} 1\n' in text
