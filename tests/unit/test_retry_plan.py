"""Retries (run/retry.py): delays, when to retry, the words (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from run_job.model import Retry
from run_job.run import retry
from run_job.model import ExecResult

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
R = Retry(maximum_retries=3, initial_delay=10.0, maximum_delay=300.0, backoff_multiplier=2.0)


@pytest.mark.parametrize("r, delays", [
    (R, [10, 20, 40, 80, 160, 300, 300]),
    (Retry(maximum_retries=5, initial_delay=1.0, maximum_delay=5.0, backoff_multiplier=3.0), [1, 3, 5, 5]),
    (Retry(maximum_retries=2, initial_delay=30.0, maximum_delay=30.0, backoff_multiplier=1.0), [30, 30]),
    (Retry(maximum_retries=100, initial_delay=1.0, maximum_delay=60.0, backoff_multiplier=100.0),
     [1, 60] + [60] * 98),  # no overflow however many retries
])
def test_delay_is_yacrons_backoff(r, delays):
    assert [retry.delay(r, n) for n in range(1, len(delays) + 1)] == delays


def plan(outcome="failed", attempt=1, stopping=False, next_start=None, r=R):
    return retry.plan(r, attempt=attempt, outcome=outcome, stopping=stopping, now=NOW,
                      next_start=next_start)


def test_failed_and_timed_out_are_retried_with_the_delay():
    assert plan("failed").delay == 10 and plan("timed_out", attempt=2).delay == 20


@pytest.mark.parametrize("outcome", ["success", "killed", "lost", "skipped"])
def test_other_outcomes_are_never_retried(outcome):
    assert plan(outcome).delay is None and plan(outcome).why == ""


def test_a_stop_signal_ends_the_retries():
    assert plan(stopping=True).delay is None


def test_no_retry_without_retries_left():
    p = plan(attempt=4)
    assert p.delay is None and p.why == "gave up after 4 attempts (retry.maximum_retries: 3)"
    assert plan(r=None).delay is None
    assert plan(r=Retry(maximum_retries=0)).delay is None


def test_no_attempt_starts_at_or_after_the_next_scheduled_start():
    assert plan(next_start=NOW + timedelta(seconds=11)).delay == 10
    for later in (10, 9):
        p = plan(next_start=NOW + timedelta(seconds=later))
        assert p.delay is None and "next scheduled start 2026-06-01T12:00:" in p.why


def test_attempt_records_and_summary():
    first = retry.attempt_record(1, NOW, 0)
    assert first["outcome"] == "running" and first["ended_at"] is None
    done = retry.ended_attempt(first, ExecResult("failed", 3, exit_code=3, reason="exit 3"),
                               NOW + timedelta(seconds=2), NOW + timedelta(seconds=12))
    assert (done["outcome"], done["exit_code"], done["duration_s"]) == ("failed", 3, 2.0)
    assert done["retry_at"] == "2026-06-01T12:00:12.000000Z"
    ok = {**done, "outcome": "success"}
    assert retry.summary([done, done, ok], R, "success", "") == "succeeded at attempt 3 of 4"
    assert retry.summary([ok], R, "success", "") == ""
    assert retry.summary([done, done], R, "failed", "gave up") == \
        "attempt 2 of 4 (earlier: failed); gave up"


def test_marker_line_names_the_attempt_and_what_came_before():
    line = retry.marker_line(2, 4, NOW, {"outcome": "failed", "reason": "exit\nstatus 3"})
    assert line == (b"--- run-job: attempt 2 of 4 at 2026-06-01T12:00:00.000000Z"
                    b" (attempt 1 failed: exit status 3) ---\n")
