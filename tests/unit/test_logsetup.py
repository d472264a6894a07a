"""run-job's own logging (logsetup.py): handlers left out, failing handlers."""

from __future__ import annotations

from run_job import logsetup


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
