"""A job's history (run/history.py): failure streaks, the current run, damaged files."""

from __future__ import annotations

from run_job import jsoncodec

import pytest

from run_job.run import history, records


def e(run_id, outcome):
    return {"run_id": run_id, "outcome": outcome}


@pytest.mark.parametrize("outcomes,count", [
    ([], 0),
    (["success"], 0),
    (["failed"], 1),
    (["success", "failed", "skipped", "timed_out", "running"], 2),
    (["failed", "success", "lost", "killed"], 2),
])
def test_consecutive_failures(outcomes, count):
    assert history.consecutive_failures([e(str(i), o) for i, o in enumerate(outcomes)]) == count


def test_current_run_ignores_trailing_skips():
    assert history.current_run([e("1", "running"), e("2", "skipped")]) == e("1", "running")
    assert history.current_run([e("1", "success"), e("2", "skipped")]) is None
    assert history.last_finished([e("1", "failed"), e("2", "running")]) == e("1", "failed")


def test_damaged_history_parses_as_none_and_damaged_entries_apart():
    assert history.parse(b"{oops") is None
    assert history.parse(b'{"a": 1}') is None
    assert history.parse(b'[1]') == ([], [1])
    assert history.parse(b'[{"a": 1}]') == ([], [{"a": 1}])
    good = {"run_id": "20260102T030405.123456Z-1", "outcome": "success"}
    assert history.parse(b'[1, ' + jsoncodec.dumps(good).encode() + b']') == ([good], [1])
