"""Pure parts of operating jobs (SPEC §9): messages, event lines, exit statuses,
--until, run ids, pause lines and hook variables."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from run_job.alerts.events import (MAX_MESSAGE, cut_message, declared_from_env,
                                   undeclared_message)
from run_job.alerts.notify import pause_environment
from run_job.errors import UsageError
from run_job.monitor.status import render_pause
from run_job.operate import parse_until
from run_job.run.jobevents import parse_lines
from run_job.run.records import is_run_id
from run_job.run.transitions import exit_status

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, expected", [
    ("plain", "plain"),
    ("two\nlines\r\nand\ttabs", "two lines and tabs"),
    ("  padded  ", "padded"),
    ("esc\x1b[31mred\x07bell\x00nul\x7fdel\x85nel\u2028ls", "esc [31mred bell nul del nel ls"),
    ("$(rm -rf /); `id` | > & 'q' \"dq\"", "$(rm -rf /); `id` | > & 'q' \"dq\""),
    ("", ""),
])
def test_cut_message_is_one_line(text, expected):
    assert cut_message(text) == expected


def test_cut_message_bounds_bytes_and_never_splits_a_character():
    assert len(cut_message("a" * 5000).encode()) == MAX_MESSAGE
    cut = cut_message("é" * 1000)  # 2 bytes each: 512 fit
    assert cut == "é" * 512
    cut = cut_message("a" + "€" * 1000)  # 3 bytes each: the 342nd would straddle the limit
    assert len(cut.encode()) <= MAX_MESSAGE and cut.endswith("€")
    assert cut_message("\udcff bytes") == "? bytes"  # undecodable argv bytes
    assert cut_message("x" * 2_000_000 + "\n" * 10) == "x" * MAX_MESSAGE


def test_declared_events_and_the_did_you_mean():
    assert declared_from_env("a,b_c,,d") == ("a", "b_c", "d")
    assert declared_from_env(None) == ()
    text = undeclared_message("progres", "job", ("progress", "done"))
    assert "did you mean 'progress'?" in text and "its events: progress, done" in text
    assert "did you mean" not in undeclared_message("zzz", "job", ("progress",))
    assert "declares no events" in undeclared_message("x", "job", ())


def test_parse_lines_keeps_declared_events_only():
    data = (b'{"time": "2026-01-01T00:00:00Z", "event": "ok", "message": "a\\nb"}\n'
            b'{"time": "bad", "event": "ok"}\n'
            b'{"event": "nope", "message": "x"}\n'
            b'not json\n' + b'{"event": "ok", "message": "' + b"x" * 5000 + b'"}\n'
            b'[1, 2]\n\n')
    events, dropped = parse_lines(data, ("ok",))
    assert events[0] == {"time": "2026-01-01T00:00:00Z", "event": "ok", "message": "a b"}
    assert events[1]["event"] == "ok" and events[1]["message"] == ""
    assert events[1]["time"].endswith("Z")  # a damaged time: when it was read
    assert len(events) == 2
    assert any("undeclared event 'nope'" in d for d in dropped)
    assert any("not JSON" in d for d in dropped)
    assert any("a line of" in d for d in dropped)
    assert any("without an event" in d for d in dropped)


@pytest.mark.parametrize("record, status", [
    ({"outcome": "success", "exit_code": 0}, 0),
    ({"outcome": "failed", "exit_code": 3}, 3),
    ({"outcome": "failed", "exit_code": 127}, 127),
    ({"outcome": "failed", "exit_code": None, "signal": 9}, 137),
    ({"outcome": "failed", "exit_code": None, "signal": None}, 125),
    ({"outcome": "timed_out"}, 124),
    ({"outcome": "killed", "signal": 15}, 143),
    ({"outcome": "killed", "signal": 2}, 130),
    ({"outcome": "killed"}, 143),
    ({"outcome": "lost"}, 125),
    ({"outcome": "skipped"}, 75),
    ({"outcome": "running"}, None),
    ({"outcome": "failed", "exit_code": True}, 125),  # a damaged field is no status
])
def test_exit_status_of_a_record(record, status):
    assert exit_status(record) == status


def test_parse_until():
    assert parse_until("2h", NOW) == NOW + timedelta(hours=2)
    assert parse_until("3d", NOW) == NOW + timedelta(days=3)
    assert parse_until("2026-03-02T00:00:00+01:00", NOW) == datetime(2026, 3, 1, 23, 0,
                                                                     tzinfo=timezone.utc)
    assert parse_until("2026-03-02T00:00Z", NOW) == datetime(2026, 3, 2, tzinfo=timezone.utc)
    naive = parse_until("2026-03-05 08:30", NOW)
    assert naive == datetime(2026, 3, 5, 8, 30).astimezone().astimezone(timezone.utc)
    for bad in ("2026-03-01T11:00Z", "0s", "yesterday", "2", "-1h", ""):
        with pytest.raises(UsageError):
            parse_until(bad, NOW)


@pytest.mark.parametrize("text, ok", [
    ("20260102T030405.123456Z-4242", True),
    ("20260102T030405.123456Z-", False),
    ("20260102T030405.123456Z-12/x", False),
    ("20260102T030405.123456Z-../..", False),
    ("20261302T030405.123456Z-1", False),  # month 13
    ("latest", False),
    ("../../etc", False),
    ("٢٠٢٦٠١٠٢T030405.123456Z-1", False),
    (None, False),
])
def test_is_run_id(text, ok):
    assert is_run_id(text) is ok


def test_pause_line_and_hook_variables():
    pause = {"by": "ali\x1bce", "since": "2026-03-01T12:00:00Z", "until": None,
             "reason": "why\nnot", "source": "auto"}
    line = render_pause(pause)
    assert "\n" not in line and "\x1b" not in line
    assert "until resumed" in line and "(automatically)" in line and line.endswith("why\\nnot")
    env = pause_environment("pause", pause, "bob")
    assert env["RUN_JOB_PAUSED_BY"] == "ali\x1bce" and env["RUN_JOB_PAUSE_UNTIL"] == ""
    assert "RUN_JOB_RESUMED_BY" not in env
    assert pause_environment("resume", pause, "bob")["RUN_JOB_RESUMED_BY"] == "bob"
