"""Run records (run/records.py): run ids, retention, a new record and its end,
the JSON of records."""

from __future__ import annotations

from run_job import jsoncodec

from datetime import datetime, timedelta, timezone

import pytest

from run_job.run import records, transitions

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)


def test_run_id_round_trip_and_order():
    a = records.make_run_id(T0, 42)
    b = records.make_run_id(T0 + timedelta(microseconds=1), 7)
    assert a == "20260102T030405.123456Z-42"
    assert a < b
    assert records.run_id_time(a) == T0
    for bad in ("latest", ".latest.tmp1", "20260102T030405", "x" * 30, "20261399T030405.123456Z-1"):
        assert records.run_id_time(bad) is None


@pytest.mark.parametrize("keep_runs,keep_days,expected", [
    (100, None, []),
    (2, None, ["r2", "r1", "r0"]),
    (0, None, ["r3", "r2", "r1", "r0"]),  # never the current run
    (100, 1.5, ["r2", "r1", "r0"]),
    (3, 2.5, ["r1", "r0"]),
])
def test_runs_to_prune(keep_runs, keep_days, expected):
    ids = {f"r{i}": records.make_run_id(T0 - timedelta(days=4 - i), i) for i in range(5)}
    names = list(ids.values()) + ["latest", ".latest.tmp3", "not-a-run"]
    doomed = records.runs_to_prune(names, ids["r4"], T0, keep_runs, keep_days)
    by_id = {v: k for k, v in ids.items()}
    assert [by_id[d] for d in doomed] == expected


def test_new_and_finish_record():
    rec = records.new_record(job="j", run_id="r", runner="local", host="h", user="u", pid=1,
                             command=("a", "b"), started_at=T0, job_file_sha256="s",
                             run_dir="/x", supervisor_start_time=5)
    assert set(records.FIELDS) == set(rec)
    assert rec["outcome"] == "running" and rec["ended_at"] is None
    done = transitions.finished(rec, ended_at=T0 + timedelta(seconds=2.5), outcome="failed",
                                exit_code=3, reason="why")
    assert (done["duration_s"], done["exit_code"], done["outcome"]) == (2.5, 3, "failed")
    assert rec["outcome"] == "running"  # pure
    lost = transitions.lost(rec, "gone", T0)
    assert lost["outcome"] == "lost" and lost["reason"] == "gone"


@pytest.mark.parametrize("value", [
    {"a": [1, 2.5, None, True, False, "é\"\n\u2028\x00 ; % '"], "b": {"c": -3, "d": 1e300}},
    [], "x", 0, [{"k": "v"}] * 3,
])
def test_json_round_trip_matches_the_json_module(value):
    import json

    assert json.loads(jsoncodec.dumps(value)) == value
    assert jsoncodec.loads(jsoncodec.dumps(value)) == value
    assert jsoncodec.loads(json.dumps(value, indent=2)) == value
    assert jsoncodec.loads(jsoncodec.to_json({"v": value})) == {"v": value}


@pytest.mark.parametrize("bad", [b"{oops", b"[1] x", b"", b"\xff", b"[1,]", b"nul"])
def test_json_damage_is_value_error(bad):
    with pytest.raises(ValueError):
        jsoncodec.loads(bad)
