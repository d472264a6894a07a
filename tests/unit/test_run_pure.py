"""Pure parts of run-job's supervision, records, history, lock, CLI and status."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone

import pytest

from run_job import cli, logsetup, privileges
from run_job.run import history, lock, proctree, records, supervise, transitions
from run_job.monitor import status
from run_job.config.cache import _plain_slug, make_key

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)


# records ---------------------------------------------------------------------

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


# history ---------------------------------------------------------------------

def e(run_id, outcome):
    return {"run_id": run_id, "outcome": outcome}


def test_upsert_replaces_running_appends_skips_and_trims():
    entries = [e("1", "success"), e("2", "running")]
    assert transitions.upsert(entries, e("2", "failed"), 10) == [e("1", "success"), e("2", "failed")]
    assert transitions.upsert(entries, e("3", "skipped"), 10)[-1] == e("3", "skipped")
    assert transitions.upsert(entries, e("3", "success"), 2) == [e("2", "running"), e("3", "success")]
    # a running entry is never trimmed away
    assert transitions.upsert(entries, e("3", "success"), 0) == [e("2", "running")]


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
    assert history.parse(b'[1, ' + records.dumps(good).encode() + b']') == ([good], [1])


# lock ------------------------------------------------------------------------

def test_lock_holder_round_trip_and_reference_pid_files():
    text = lock.format_holder(12, 345, "20260102T030405.123456Z-12")
    assert lock.parse_holder(text) == (12, 345, "20260102T030405.123456Z-12")
    assert lock.parse_holder(b"4242\n") == (4242, None, None)  # the reference's pid file
    assert lock.parse_holder(b"") == (None, None, None)
    assert lock.parse_holder(b"\xff garbage") == (None, None, None)


def test_flock_is_exclusive_and_released_on_close(tmp_path):
    path = lock.lock_path(tmp_path / "run dir; 'x'", "job")
    a = lock.open_lock(path)
    b = lock.open_lock(path)
    try:
        assert lock.try_lock(a)
        assert not lock.try_lock(b)
        assert lock.is_locked(path) is True
        import os

        os.close(a)
        assert lock.try_lock(b)
    finally:
        import os

        os.close(b)


# supervise -------------------------------------------------------------------

def test_descendants_from_a_process_table():
    table = {1: ("S", 0, 1), 10: ("S", 1, 10), 11: ("S", 10, 11), 12: ("Z", 11, 11),
             13: ("S", 12, 13), 20: ("S", 1, 20)}
    assert proctree.descendants(10, table) == {11, 13}
    assert proctree.descendants(99, table) == set()


def test_parse_proc_stat_with_hostile_comm():
    data = b"123 (a) b (c)) S 1 123 123 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0"
    assert proctree.parse_proc_stat(data) == ("S", 1, 123)


def test_resolve_command(tmp_path):
    exe = tmp_path / "tool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    plain = tmp_path / "plain"
    plain.write_text("")
    plain.chmod(0o644)
    env = {"PATH": f"{tmp_path}:/nonexistent"}
    assert supervise.resolve_command("tool", env) == (str(exe), 0, "")
    assert supervise.resolve_command("plain", env)[1] == 126
    assert supervise.resolve_command("missing", env)[1] == 127
    assert supervise.resolve_command(str(tmp_path), env)[1] == 126
    assert supervise.resolve_command("./nope", env)[1] == 127


def test_signal_name():
    assert supervise.signal_name(signal.SIGTERM) == "SIGTERM"
    assert supervise.signal_name(200) == "signal 200"


# privileges ------------------------------------------------------------------

@pytest.mark.parametrize("euid,name,wanted,action", [
    (0, "root", "root", "stay"),
    (0, "root", "svc", "drop"),
    (1000, "svc", "svc", "stay"),
    (1000, "alice", "svc", "refuse"),
    (1000, None, "svc", "refuse"),
])
def test_plan_identity(euid, name, wanted, action):
    assert privileges.plan_identity(euid, name, wanted) == action


# CLI -------------------------------------------------------------------------

@pytest.mark.parametrize("argv,job,config,slow", [
    (["--job", "a"], "a", None, False),
    (["-j", "a", "--config", "/c d"], "a", "/c d", False),
    (["--config=/c", "a", "-w"], "a", "/c", True),
    (["--job=a-b_c"], "a-b_c", None, False),
])
def test_fast_parse_cron_forms(argv, job, config, slow):
    opts = cli.fast_parse(argv)
    assert (opts.job, opts.config, opts.slow_start) == (job, config, slow)


@pytest.mark.parametrize("argv", [[], ["--status"], ["-j"], ["a", "b"], ["--job", "--status"],
                                  ["a", "--json"], ["-h"], ["--job", "a", "--job", "b"]])
def test_fast_parse_leaves_the_rest_to_argparse(argv):
    assert cli.fast_parse(argv) is None


def test_argparse_forms():
    assert cli.parse(["-r"]).status is True
    assert cli.parse(["-l", "-r"]).list_jobs is True
    assert cli.parse(["--validate"]).validate == []
    with pytest.raises(SystemExit) as err:
        cli.parse(["-s", "-l"])
    assert err.value.code == 2


def test_plain_slug():
    assert _plain_slug("a-b_1")
    for bad in ("", "-a", "a/b", "..", "a.yaml", "é", "a b"):
        assert not _plain_slug(bad)


def test_cache_key_changes_with_every_input(tmp_path):
    job = tmp_path / "j.yaml"
    job.write_text("command: x\n")
    base = dict(config_path="/c", config_bytes=b"c", job_path=str(job), job_bytes=b"j",
                stamp=b"s", env={"HOME": "/h"}, euid=0)
    key = make_key(**base)
    assert key == make_key(**base)
    for change in (dict(config_path="/d"), dict(config_bytes=b"C"), dict(job_bytes=b"J"),
                   dict(stamp=b"S"), dict(env={"HOME": "/i"}), dict(euid=1)):
        assert make_key(**{**base, **change}) != key
    job.chmod(0o600)
    assert make_key(**base) != key  # mode is part of the key


# logging ---------------------------------------------------------------------

def test_without_handlers_removes_every_reference():
    cfg = {"version": 1, "handlers": {"syslog": {"class": "x"}, "mem": {"class": "y", "target": "syslog"}},
           "loggers": {"process-control": {"handlers": ["syslog", "mem"]}},
           "root": {"handlers": ["syslog"]}}
    out = logsetup.without_handlers(cfg, {"syslog"})
    assert out["handlers"] == {"mem": {"class": "y"}}
    assert out["loggers"]["process-control"]["handlers"] == ["mem"]
    assert out["root"]["handlers"] == []
    assert cfg["root"]["handlers"] == ["syslog"]  # pure


def test_failing_syslog_handler_is_left_out(tmp_path, capsys):
    cfg = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"syslog": {"class": "logging.handlers.SysLogHandler",
                                   "address": str(tmp_path / "no socket")},
                        "bad": {"class": "no.such.Handler"}},
           "loggers": {"process-control": {"handlers": ["syslog", "bad"], "level": "DEBUG"}}}
    problems = logsetup.configure(cfg)
    assert any("'bad'" in p for p in problems)
    logsetup.info("hello %s", "world")  # never raises, never prints a traceback
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    logsetup.configure(None)


# status ----------------------------------------------------------------------

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


# JSON through _json, and cache entries ----------------------------------------

@pytest.mark.parametrize("value", [
    {"a": [1, 2.5, None, True, False, "é\"\n\u2028\x00 ; % '"], "b": {"c": -3, "d": 1e300}},
    [], "x", 0, [{"k": "v"}] * 3,
])
def test_json_round_trip_matches_the_json_module(value):
    import json

    assert json.loads(records.dumps(value)) == value
    assert records.loads(records.dumps(value)) == value
    assert records.loads(json.dumps(value, indent=2)) == value
    assert records.loads(records.to_json({"v": value})) == {"v": value}


@pytest.mark.parametrize("bad", [b"{oops", b"[1] x", b"", b"\xff", b"[1,]", b"nul"])
def test_json_damage_is_value_error(bad):
    with pytest.raises(ValueError):
        records.loads(bad)


def test_cache_entry_round_trip(tmp_path):
    from pathlib import Path

    from run_job.config import cache
    from run_job.model import Config, FailMail, Job

    config = Config(source=None, job_directory=tmp_path, output_directory=tmp_path / "o",
                    state_directory=tmp_path / "s", run_directory=tmp_path / "r",
                    output_crontab="console", user="u", runner_path="/x", service_runner_path="/y",
                    default_job_config={"timeout": 10, "environment": {"A": "1"}})
    job = Job(slug="j", path=Path(tmp_path / "j.yaml"), sha256="s", commands=(("a", "b c"),),
              command_text=("a 'b c'",), environment=(("K", "v; %"),), tags=("t",),
              failmail=FailMail(from_address="f@x", to_addresses=("a@x",)))
    key, config2, job2 = cache.decode(cache.encode("k", config, job))
    assert (key, config2, job2) == ("k", config, job)
    assert isinstance(job2.path, Path) and isinstance(job2.commands[0], tuple)
    with pytest.raises(ValueError):
        cache.decode(b"something else\n")


def test_validate_targets_after_other_flags():
    assert cli.parse(["--validate", "--json", "some dir"]).validate == ["some dir"]
    assert cli.parse(["--validate", "a", "--json"]).validate == ["a"]


@pytest.mark.parametrize("argv", [["--job", ""], ["--job="], ["-k", " "], ["--history", ""]])
def test_empty_job_names_are_usage_errors(argv):
    with pytest.raises(SystemExit) as err:
        cli.parse(argv)
    assert err.value.code == 2


def test_cache_key_follows_the_config_files_mode(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("user: x\n")
    job = tmp_path / "j.yaml"
    job.write_text("command: x\n")
    base = dict(config_path=str(cfg), config_bytes=b"c", job_path=str(job), job_bytes=b"j",
                stamp=b"s", env={}, euid=0)
    key = make_key(**base)
    cfg.chmod(0o666)  # now refused as root: a cached "valid" must not survive
    assert make_key(**base) != key


def test_cache_stamp_follows_the_modules_themselves(tmp_path, monkeypatch):
    """A module added, changed, moved or removed changes the program stamp
    (no list of file names to keep up to date by hand)."""
    import shutil

    from run_job.config import cache

    package = tmp_path / "run_job"
    shutil.copytree(cache._PKG, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "_PKG", str(package))
    first = cache._program_stamp()
    assert cache._program_stamp() == first
    (package / "config" / "jobs.py").rename(package / "config" / "job_files.py")  # a move
    moved = cache._program_stamp()
    assert moved != first
    (package / "run" / "new.py").write_text("x = 1\n")  # a module added anywhere
    assert cache._program_stamp() != moved
