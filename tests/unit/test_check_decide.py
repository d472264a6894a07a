"""check-jobs-icinga's verdict (monitor/check.py): a pure function of job states.

The states come from the one job-state function (``jobstate.job_state``), as
the command gets them; the table covers every state the SPEC names, the
reference's words, the order of the worst state, perfdata as the Monitoring
Plugins guidelines write it, and the autumn clock change in a host zone
that has one (TZ=Europe/Berlin, a fixed "now" around the change).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from run_job.errors import CHECK_CRITICAL, CHECK_OK, CHECK_UNKNOWN, CHECK_WARNING
from run_job.model import Job
from run_job.monitor.check import decide, render, unknown, worst
from run_job.monitor.jobstate import job_state

UTC = timezone.utc
NOW = datetime(2026, 6, 1, 12, 5, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=30)
# 'label'=value[UOM];[warn];[crit];[min];[max] (guidelines, section 2.6)
PERF = re.compile(r"^'?[^'=|]+'?=-?[0-9.]+(s|ms|us|%|B|KB|MB|TB|c)?(;[-0-9.:~@]*){0,4}$")


def spec(slug: str = "j", **fields) -> Job:
    fields.setdefault("schedule", "0 * * * *")
    return Job(slug=slug, path=Path(f"/jobs/{slug}.yaml"), sha256="", commands=(("true",),),
               command_text=("true",), **fields)


def entry(minutes_ago: float, outcome: str = "success", **extra) -> dict:
    started = NOW - timedelta(minutes=minutes_ago)
    record = {"run_id": f"r{minutes_ago}", "outcome": outcome,
              "started_at": started.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    if outcome not in ("running", "skipped"):
        record.update(ended_at=(started + timedelta(seconds=12.5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                      duration_s=12.5, exit_code=0 if outcome == "success" else 1)
    record.update(extra)
    return record


def state(slug: str, job: Job | None, entries=(), pause=None, now=NOW, problems=()):
    return job_state(slug=slug, file=f"/jobs/{slug}.yaml", job=job, problems=problems,
                     entries=list(entries), pause=pause, now=now, appeared=LONG_AGO)


PAUSE = {"by": "ops", "since": "2026-06-01T00:00:00.000000Z", "until": "2026-06-02T00:00:00.000000Z",
         "reason": "disk full | waiting", "source": "manual"}


def test_nothing_wrong_is_the_references_jobs_ok():
    result = decide([state("a", spec("a"), [entry(5)]), state("b", spec("b"), [entry(5)])], now=NOW)
    assert (result.status, result.summary) == (CHECK_OK, "JOBS OK")
    assert render(result).splitlines()[0].startswith("JOBS OK | jobs=2;;;0 failing=0;;0;0")


def test_failing_jobs_are_the_references_words_sorted_and_critical():
    states = [state(slug, spec(slug), [entry(5, "failed")]) for slug in ("zeta", "alpha", "mid")]
    result = decide(states, now=NOW)
    assert result.status == CHECK_CRITICAL
    assert result.summary == "FAILING JOBS: alpha, mid, zeta"
    assert [line.split(":")[0] for line in result.lines] == ["zeta", "alpha", "mid"]


@pytest.mark.parametrize("outcome", ["failed", "timed_out", "killed", "lost"])
def test_every_failed_outcome_is_failing(outcome):
    assert decide([state("a", spec("a"), [entry(5, outcome)])], now=NOW).summary == "FAILING JOBS: a"


def test_every_group_in_order_and_the_worst_state_wins():
    states = [
        state("f", spec("f"), [entry(5, "failed")]),
        state("l", spec("l"), [entry(70)]),  # 11:00 missed, grace 10m
        state("i", None, problems=["/jobs/i.yaml:3: schedule: bad"]),
        state("s", spec("s", schedule=None, runner="slurm", service=True)),
        state("u", spec("u", schedule=None, runner="slurm", service=True)),
        state("p", spec("p"), [entry(70, "failed")], pause=PAUSE),
        state("d", spec("d", disabled=True), [entry(700, "failed")]),
    ]
    services = {"s": ("down", "sbatch-service started it; Slurm no longer has it"),
                "u": ("unknown", "Slurm unreachable: connection refused")}
    result = decide(states, services, now=NOW)
    assert result.summary == ("FAILING JOBS: f; LATE JOBS: l; INVALID JOBS: i; SERVICES DOWN: s; "
                              "SERVICES UNKNOWN: u")
    assert result.status == CHECK_CRITICAL
    assert "p: paused: by ops since 2026-06-01T00:00:00.000000Z until 2026-06-02T00:00:00.000000Z: " \
           "disk full / waiting" in result.lines  # listed; a '|' would start perfdata
    assert not any(line.startswith("d:") for line in result.lines)  # disabled: quiet
    text = render(result)
    assert text.count("|") == 1


def test_late_and_invalid_are_warning_and_beat_unknown():
    late = state("l", spec("l"), [entry(70)])
    assert decide([late], now=NOW).status == CHECK_WARNING
    invalid = state("i", None, problems=["x"])
    assert decide([invalid], now=NOW).status == CHECK_WARNING
    svc = state("u", spec("u", schedule=None, runner="slurm", service=True))
    unknown_only = decide([svc], {"u": ("unknown", "Slurm unreachable")}, now=NOW)
    assert (unknown_only.status, unknown_only.summary) == (CHECK_UNKNOWN, "SERVICES UNKNOWN: u")
    both = decide([late, svc], {"u": ("unknown", "Slurm unreachable")}, now=NOW)
    assert both.status == CHECK_WARNING and both.summary == "LATE JOBS: l; SERVICES UNKNOWN: u"
    assert worst([CHECK_OK, CHECK_UNKNOWN, CHECK_WARNING]) == CHECK_WARNING
    assert worst([CHECK_UNKNOWN, CHECK_CRITICAL]) == CHECK_CRITICAL
    assert worst([]) == CHECK_OK


def test_a_service_that_is_up_paused_or_disabled_is_never_down():
    up = state("a", spec("a", schedule=None, runner="slurm", service=True))
    paused = state("b", spec("b", schedule=None, runner="slurm", service=True), pause=PAUSE)
    off = state("c", spec("c", schedule=None, runner="slurm", service=True, disabled=True))
    services = {"a": ("up", "Slurm job 7 RUNNING"), "b": ("down", "x"), "c": ("down", "x"),
                "gone": ("down", "a service not asked for")}
    assert decide([up, paused, off], services, now=NOW).summary == "JOBS OK"


def test_perfdata_follows_the_guidelines():
    states = [state("a", spec("a"), [entry(5, "failed")]), state("b", spec("b"), [entry(0.5, "running")]),
              state("c", spec("c"), [entry(5)], pause=PAUSE), state("i", None)]
    result = decide(states, now=NOW)
    assert result.perfdata == ("jobs=4;;;0", "failing=1;;0;0", "late=0;0;;0", "running=1;;;0",
                               "paused=1;;;0", "invalid=1;0;;0")
    for item in result.perfdata:
        assert PERF.match(item), item


def test_one_job_adds_age_duration_and_consecutive_failures():
    entries = [entry(125), entry(65, "failed", duration_s=3.25), entry(5, "failed", duration_s=1e-05)]
    result = decide([state("a", spec("a"), entries)], now=NOW, single=True)
    perf = dict(item.split("=", 1) for item in result.perfdata)
    assert perf["age"] == f"{(125 * 60 - 12.5):g}s;;;0"  # since the success ended
    assert perf["duration"] == "0s;;;0"  # never an exponent
    assert perf["consecutive_failures"] == "2;;;0"
    for item in result.perfdata:
        assert PERF.match(item), item
    assert result.lines[-1].startswith("a: failing: last run failed at 2026-06-01T12:00:00Z")
    never = decide([state("n", spec("n"), [entry(5, "failed")])], now=NOW, single=True)
    assert not any(item.startswith("age=") for item in never.perfdata)  # never succeeded


def test_text_from_files_cannot_forge_lines_or_perfdata():
    bad = state("a", spec("a"), [entry(5, "failed", reason="boom\nb: ok | jobs=0")])
    text = render(decide([bad], now=NOW))
    lines = text.splitlines()
    assert len(lines) == 2 and text.count("|") == 1
    assert "\\n" in lines[1] and "/ jobs=0" in lines[1]


def test_unknown_says_why_on_one_status_line():
    assert unknown(["cannot read state_directory /s: Permission denied", "more"]) == \
        "JOBS UNKNOWN: cannot read state_directory /s: Permission denied\nmore\n"
    assert unknown([]).startswith("JOBS UNKNOWN: ")


def test_no_false_alarm_on_the_autumn_change_in_the_host_zone(monkeypatch):
    """Host zone Europe/Berlin (cron's own zone): a 02:30 job ran at 02:30
    CEST (00:30 UTC); at 02:45 CET (01:45 UTC) the clock has shown 02:30
    again, and cron did not run the job again: the check stays OK, all day."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    job = spec("nightly", schedule="30 2 * * *")
    ran = datetime(2026, 10, 25, 0, 30, 2, tzinfo=UTC)
    entries = [{"run_id": "r1", "outcome": "success", "started_at": ran.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "ended_at": (ran + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "duration_s": 5.0, "exit_code": 0}]
    for minutes in (15, 60, 75, 76, 90, 120, 600, 23 * 60):
        now = ran + timedelta(minutes=minutes)
        result = decide([state("nightly", job, entries, now=now)], now=now)
        assert (result.status, result.summary) == (CHECK_OK, "JOBS OK"), now
    # the next day's 02:30 missed: late
    next_day = datetime(2026, 10, 26, 1, 45, tzinfo=UTC)
    assert decide([state("nightly", job, entries, now=next_day)], now=next_day).summary == \
        "LATE JOBS: nightly"


def test_spring_change_expects_the_skipped_time_right_after_the_change(monkeypatch):
    """02:30 does not exist on 29 March 2026 in Berlin: cron runs the job at
    03:00 CEST (01:00 UTC); not having run by 01:11 UTC is late."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    job = spec("nightly", schedule="30 2 * * *")
    ran_before = datetime(2026, 3, 28, 1, 30, 2, tzinfo=UTC)
    entries = [{"run_id": "r1", "outcome": "success",
                "started_at": ran_before.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}]
    ok_at = datetime(2026, 3, 29, 1, 9, tzinfo=UTC)
    late_at = datetime(2026, 3, 29, 1, 11, tzinfo=UTC)
    assert decide([state("nightly", job, entries, now=ok_at)], now=ok_at).status == CHECK_OK
    assert decide([state("nightly", job, entries, now=late_at)], now=late_at).summary == \
        "LATE JOBS: nightly"
