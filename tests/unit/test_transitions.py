"""The state transitions of run records (run_job/run/transitions.py): tables."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from run_job.run import transitions

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
RID = "20260102T030405.000000Z-1"


def rec(run_id: str = RID, outcome: str = "running", **fields):
    return {"run_id": run_id, "outcome": outcome, "started_at": "2026-01-02T03:04:05.000000Z",
            "pid": 1, **fields}


@pytest.mark.parametrize("entry,problem", [
    (rec(), None),
    (rec(outcome="lost", ended_at="2026-01-02T03:05:00.000000Z", duration_s=55.0), None),
    ([], "not a mapping"),
    ("x", "not a mapping"),
    (rec(run_id=5), "not a run id"),
    (rec(run_id=""), "not a run id"),
    (rec(run_id="../x"), "not a run id"),
    (rec(outcome="runnimg"), "outcome"),
    (rec(outcome=None), "outcome"),
    (rec(started_at="2026-13-02T03:04:05Z"), "started_at"),  # one flipped character
    (rec(started_at=12), "started_at"),
    (rec(ended_at="yesterday"), "ended_at"),
    (rec(pid="12"), "pid has the wrong type"),
    (rec(pid=True), "pid has the wrong type"),
    (rec(supervisor_start_time=1.5), "supervisor_start_time"),
    (rec(duration_s="3"), "duration_s"),
    (rec(alerts=[]), "alerts"),
    (rec(run_dir=7), "run_dir"),
])
def test_entry_problem(entry, problem):
    found = transitions.entry_problem(entry)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_trim_never_drops_a_running_entry():
    entries = [rec("1", "running")] + [rec(str(i), "skipped") for i in range(2, 12)]
    out = transitions.trim(entries, 3)
    assert [e["run_id"] for e in out] == ["1", "10", "11"]
    assert transitions.trim(entries, -1) == entries


def test_insert_keeps_run_id_order():
    entries = [rec("a", "success"), rec("c", "success")]
    assert [e["run_id"] for e in transitions.insert(entries, rec("b", "lost"), 10)] == ["a", "b", "c"]
    assert [e["run_id"] for e in transitions.insert(entries, rec("d", "lost"), 10)] == ["a", "c", "d"]


def test_replace_only_the_matching_outcome():
    entries = [rec("a", "lost"), rec("b", "running")]
    new = rec("a", "lost", alerts={"counts_as": "failure"})
    assert transitions.replace(entries, "a", new, only="lost")[0] is new
    assert transitions.replace(entries, "a", new, only="running")[0] is entries[0]


def test_settled_keeps_a_recorded_end_else_lost():
    entry = rec()
    recorded = rec(outcome="success", ended_at="2026-01-02T03:04:06.000000Z", exit_code=0)
    assert transitions.settled(entry, recorded, "gone", T0) is recorded
    lost = transitions.settled(entry, rec(), "gone", T0 + timedelta(seconds=10))
    assert (lost["outcome"], lost["reason"], lost["duration_s"]) == ("lost", "gone", 10.0)
    # a damaged or foreign status.json is not believed
    assert transitions.settled(entry, rec(outcome="success", pid="x"), "gone", T0)["outcome"] == "lost"
    assert transitions.settled(entry, rec("other", "success"), "gone", T0)["outcome"] == "lost"


def test_killed_names_the_processes():
    done = transitions.killed(rec(), 3, 15, T0)
    assert done["outcome"] == "killed" and done["signal"] == 15 and "3 processes" in done["reason"]


def e(run_id, outcome):
    return {"run_id": run_id, "outcome": outcome}


def test_upsert_replaces_running_appends_skips_and_trims():
    entries = [e("1", "success"), e("2", "running")]
    assert transitions.upsert(entries, e("2", "failed"), 10) == [e("1", "success"), e("2", "failed")]
    assert transitions.upsert(entries, e("3", "skipped"), 10)[-1] == e("3", "skipped")
    assert transitions.upsert(entries, e("3", "success"), 2) == [e("2", "running"), e("3", "success")]
    # a running entry is never trimmed away
    assert transitions.upsert(entries, e("3", "success"), 0) == [e("2", "running")]
