"""Pure alert decisions: streaks, the mail threshold, recovery, hook events."""

from __future__ import annotations

from pathlib import Path

import pytest

from pctest import config_record
from run_job.alerts import notify as alerts
from run_job.model import FailMail, Job


def entry(outcome: str, *, mail: str | None = None, sent: bool = True,
          counts_as: str | None = None) -> dict:
    alerts_field: dict = {}
    if mail:
        alerts_field["mail"] = {"kind": mail, "sent": sent}
    if counts_as:
        alerts_field["counts_as"] = counts_as
    return {"job": "j", "outcome": outcome, "alerts": alerts_field or None}


def job(threshold: int = 1, *, allow_overtime: bool = False, failmail: bool = True) -> Job:
    return Job(slug="j", path=Path("/jobs/j.yaml"), sha256="0", commands=(("false",),),
               command_text=("false",), allow_overtime=allow_overtime,
               failure_threshold_for_mail=threshold,
               failmail=FailMail("pc@example.org", ("ops@example.org",)) if failmail else None)


@pytest.mark.parametrize("outcome, allow_overtime, expected", [
    ("success", False, False),
    ("failed", False, True),
    ("timed_out", False, True),
    ("killed", False, True),
    ("lost", False, True),
    ("skipped", False, True),  # the previous run overran: a failure, as in the reference
    ("skipped", True, False),  # allow_overtime: quiet
    ("running", False, False),
    (None, False, False),
])
def test_is_failure(outcome, allow_overtime, expected):
    assert alerts.is_failure(outcome, allow_overtime) is expected


@pytest.mark.parametrize("outcome, history, allow_overtime, expected", [
    ("failed", [], False, 1),
    ("failed", ["failed", "failed"], False, 3),
    ("failed", ["failed", "success", "failed"], False, 2),
    ("success", ["failed", "failed"], False, 0),
    # A quiet skip neither adds to the streak nor breaks it.
    ("failed", ["failed", "skipped", "failed"], True, 3),
    ("skipped", ["failed"], True, 1),
    # Without allow_overtime a skip is a failure.
    ("skipped", ["failed"], False, 2),
    ("failed", ["failed", "running"], False, 2),
    ("timed_out", ["killed", "lost"], False, 3),
])
def test_consecutive_failures(outcome, history, allow_overtime, expected):
    previous = [entry(o) for o in history]
    assert alerts.consecutive_failures(outcome, allow_overtime, previous) == expected


def test_skipped_entry_keeps_its_recorded_class():
    # Recorded as a failure when allow_overtime was off; the job now allows overtime.
    previous = [entry("failed"), entry("skipped", counts_as="failure")]
    assert alerts.consecutive_failures("failed", True, previous) == 3
    previous = [entry("failed"), entry("skipped", counts_as="neutral")]
    assert alerts.consecutive_failures("failed", False, previous) == 2


@pytest.mark.parametrize("outcome, consecutive, threshold, expected", [
    ("failed", 1, 1, True),
    ("failed", 1, 3, False),
    ("failed", 2, 3, False),
    ("failed", 3, 3, True),   # at the threshold
    ("failed", 7, 3, True),   # and every failing run after it
    ("success", 5, 1, False),
    ("skipped", 1, 1, True),
    ("lost", 1, 1, True),
    ("failed", 1, 0, True),   # a nonsensical threshold acts as 1
])
def test_should_mail(outcome, consecutive, threshold, expected):
    assert alerts.should_mail(outcome, False, consecutive, threshold) is expected


def test_should_mail_skipped_under_allow_overtime_never_mails():
    assert alerts.should_mail("skipped", True, 10, 1) is False


@pytest.mark.parametrize("history, expected", [
    ([], False),
    (["success"], False),
    (["failed"], True),
    (["failed", "success"], False),
    (["success", "timed_out"], True),
    (["failed", "skipped"], True),       # neutral under allow_overtime: look past it
    (["success", "running"], False),
])
def test_is_recovery(history, expected):
    assert alerts.is_recovery([entry(o) for o in history], True) is expected


def test_failure_mail_pending_only_counts_sent_mail_since_last_success():
    sent = [entry("failed", mail="failure")]
    assert alerts.failure_mail_pending(sent, False)
    assert alerts.failure_mail_pending(sent + [entry("failed")], False)
    assert not alerts.failure_mail_pending(sent + [entry("success")], False)
    assert not alerts.failure_mail_pending([entry("failed", mail="failure", sent=False)], False)
    assert not alerts.failure_mail_pending([entry("failed")], False)
    # A recovery mail before does not count as a failure mail.
    assert not alerts.failure_mail_pending([entry("success", mail="recovery")], False)


@pytest.mark.parametrize("outcome, history, expected", [
    ("success", [], ["success"]),
    ("success", ["failed"], ["success", "recovery"]),
    ("success", ["failed", "success"], ["success"]),
    ("failed", [], ["failure"]),
    ("killed", [], ["failure"]),
    ("lost", [], ["failure"]),
    ("timed_out", [], ["timeout"]),
    ("skipped", [], ["skipped"]),
    ("running", [], []),
])
def test_events_for(outcome, history, expected):
    assert alerts.events_for({"outcome": outcome}, [entry(o) for o in history]) == expected


def test_events_ignore_the_mail_threshold():
    # recovery fires after one failure even though no mail was ever due
    previous = [entry("failed")]
    assert alerts.events_for({"outcome": "success"}, previous) == ["success", "recovery"]
    assert alerts.mail_kind({"outcome": "success"}, previous, job(threshold=3), 0) is None


@pytest.mark.parametrize("outcome, history, threshold, failmail, expected", [
    ("failed", [], 1, True, "failure"),
    ("failed", [], 1, False, None),
    ("failed", ["failed"], 3, True, None),
    ("failed", ["failed", "failed"], 3, True, "failure"),
    ("success", [("failed", "failure")], 1, True, "recovery"),
    ("success", [("failed", "failure"), "failed"], 1, True, "recovery"),
    ("success", ["failed"], 1, True, None),      # failure mail never sent: no recovery mail
    ("success", [("failed", "failure")], 1, False, None),
])
def test_mail_kind(outcome, history, threshold, failmail, expected):
    previous = [entry(h[0], mail=h[1]) if isinstance(h, tuple) else entry(h) for h in history]
    j = job(threshold, failmail=failmail)
    streak = alerts.consecutive_failures(outcome, False, previous)
    assert alerts.mail_kind({"outcome": outcome}, previous, j, streak) == expected


def test_on_end_ignores_the_run_itself_in_previous(tmp_path):
    config = config_record(tmp_path, user="root")
    record = {"job": "j", "run_id": "r2", "outcome": "skipped", "run_dir": None}
    previous = [{"job": "j", "run_id": "r1", "outcome": "failed"}, dict(record)]
    result = alerts.on_end(config, job(threshold=5), record, previous)
    assert result["consecutive_failures"] == 2 and result["events"] == ["skipped"]


def test_on_end_never_raises_on_garbage(tmp_path):
    config = config_record(tmp_path, user="root")
    result = alerts.on_end(config, job(), {"outcome": object()}, ["junk", None, {"outcome": 3}])
    assert isinstance(result, dict)


def test_unalerted_lost():
    entries = [entry("lost"), entry("success"), dict(entry("lost"), alerts={"counts_as": "failure"}),
               entry("failed"), entry("lost")]
    assert [i for i, _ in alerts.unalerted_lost(entries)] == [0, 4]
    assert alerts.unalerted_lost([]) == []
