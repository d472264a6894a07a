"""pause_after_failures: the decision and the mail's words (pure)."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest

from run_job.alerts import mail, notify
from run_job.model import FailMail, Job
from run_job.run.pauses import auto_pause_reason

JOB = Job(slug="fragile", path=Path("/jobs/fragile.yaml"), sha256="0", commands=(("false",),),
          command_text=("false",), pause_after_failures=3,
          failmail=FailMail("pc@example.org", ("ops@example.org",)), failure_threshold_for_mail=5)


@pytest.mark.parametrize("threshold, streak, failed, paused", [
    (None, 9, True, False), (3, 2, True, False), (3, 3, True, True), (3, 4, True, True),
    (3, 3, False, False), (1, 1, True, True),
])
def test_auto_pause_decision(threshold, streak, failed, paused):
    reason = auto_pause_reason(threshold, streak, failed, "timed_out", "RUN")
    assert (reason is not None) is paused
    if paused:
        assert reason == (f"{streak} consecutive failures (pause_after_failures: {threshold});"
                          " the last run RUN ended timed_out")


def test_the_streak_is_the_alerts_streak():
    previous = [{"outcome": "failed"}, {"outcome": "skipped", "alerts": {"counts_as": "neutral"}},
                {"outcome": "timed_out"}]
    assert notify.consecutive_failures("failed", False, previous) == 3
    assert notify.consecutive_failures("failed", False, previous + [{"outcome": "success"}]) == 1


def test_the_pausing_run_is_mailed_whatever_the_threshold():
    record = {"outcome": "failed"}
    assert notify.mail_kind(record, [], JOB, 3) is None
    assert notify.mail_kind(record, [], JOB, 3, paused=True) == "failure"


def test_failure_mail_says_the_job_is_now_paused_and_how_to_resume():
    pause = {"reason": "3 consecutive failures (pause_after_failures: 3); the last run R ended failed",
             "since": "2026-01-01T00:00:00.000000Z", "source": "auto"}
    record = {"job": "fragile", "outcome": "failed", "host": "h", "run_id": "R", "command": ["false"]}
    msg = email.message_from_bytes(mail.compose(JOB.failmail, JOB, record, kind="failure", tail="",
                                                consecutive_failures=3, paused=pause).as_bytes(),
                                   policy=policy.default)
    assert msg["Subject"] == "[process-control] h fragile: failed (now paused)"
    body = msg.get_content()
    assert "The job is now paused: 3 consecutive failures (pause_after_failures: 3)" in body
    assert "\n    run-job --resume fragile\r\n" in body
    assert "Paused:" in body and "since 2026-01-01T00:00:00.000000Z (until run-job --resume)" in body
    plain = mail.body(JOB, record, kind="failure", tail="", tail_cut=False, consecutive_failures=1,
                      output_path=None)
    assert "paused" not in plain
