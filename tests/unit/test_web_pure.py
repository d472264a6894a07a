"""The web page's pure parts: output text, times, rows, Host names, tokens, run ids, addresses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from run_job.errors import ProcessControlError, UsageError
from run_job.model import Config
from run_job.run.records import is_run_id, make_run_id
from run_job.web import actions, security, views
from run_job import web_cli

UTC = timezone.utc
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BERLIN = __import__("zoneinfo").ZoneInfo("Europe/Berlin")


# ------------------------------------------------------------ output


@pytest.mark.parametrize("data,text", [
    (b"plain\nlines\tand tabs\n", "plain\nlines\tand tabs\n"),
    (b"\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    (b"title\x1b]0;owned\x07", "title\\x1b]0;owned\\x07"),
    (b"dos\r\nline\rover", "dos\nline\\rover"),
    (b"<script>alert(1)</script>", "<script>alert(1)</script>"),  # HTML escaping is Jinja2's job
    (b"bad \xff byte", "bad \ufffd byte"),
    ("caf\u00e9 \u202eevil".encode(), "caf\u00e9 \\u202eevil"),  # bidi override shown, not obeyed
    (b"nul\x00del\x7f", "nul\\x00del\\x7f"),
])
def test_output_text_escapes_control_characters_keeps_lines(data, text):
    assert views.output_text(data) == text


@pytest.mark.parametrize("data,complete", [
    (b"", 0), (b"abc", 3), ("é".encode(), 2), ("é".encode()[:1], 0),
    (b"ab" + "€".encode()[:2], 2), (b"ab" + "€".encode(), 5),
    (b"x" + "𝄞".encode()[:3], 1), (b"x" + "𝄞".encode(), 5),
    (b"\x80\x80\x80\x80", 4),  # not UTF-8 at all: nothing to wait for
])
def test_complete_utf8_keeps_a_cut_character_for_the_next_read(data, complete):
    assert views.complete_utf8(data) == complete


def test_a_character_cut_anywhere_is_whole_after_two_reads():
    data = "aé€𝄞b".encode()
    for cut in range(len(data) + 1):
        first = data[:cut]
        used = views.complete_utf8(first)
        assert (first[:used] + data[used:]).decode() == "aé€𝄞b"
        assert "\ufffd" not in first[:used].decode("utf-8", "replace")


@pytest.mark.parametrize("data,skip", [(b"abc", 0), ("€".encode()[1:] + b"x", 2), (b"\x80\x80\x80\x80", 3)])
def test_skip_continuation(data, skip):
    assert views.skip_continuation(data) == skip


# ------------------------------------------------------------ times


@pytest.mark.parametrize("seconds,text", [(5, "5 s ago"), (-120, "in 2 min"), (7200, "2 h ago"),
                                          (3 * 86400, "3 d ago")])
def test_ago(seconds, text):
    assert views.ago(seconds) == text


def test_when_shows_the_zone_and_keeps_the_instant():
    shown = views.when("2026-06-01T10:00:00.000000Z", NOW, BERLIN)
    assert shown["text"] == "2026-06-01 12:00:00 CEST"
    assert shown["ago"] == "2 h ago"
    assert datetime.fromisoformat(shown["iso"]) == datetime(2026, 6, 1, 10, tzinfo=UTC)
    assert views.when(None, NOW, BERLIN) is None and views.when("garbage", NOW, BERLIN) is None


# ------------------------------------------------------------ rows


def row(job: str, health: str, **extra) -> dict:
    base = {"job": job, "file": f"/j/{job}.yaml", "valid": health != "invalid", "problems": [],
            "name": None, "description": None, "tags": [], "schedule": "0 * * * *",
            "disabled": False, "runner": "local", "service": False, "next_run": None,
            "running": False, "current": None, "last": None, "slurm": None,
            "consecutive_failures": 0, "health": health, "late": False, "expected_start": None,
            "paused": None, "timezone": None}
    base.update(extra)
    return base


def test_summary_counts_in_health_order_and_filters():
    rows = [row("a", "ok"), row("b", "failing", tags=["db"]), row("c", "ok", tags=["db"]),
            row("d", "invalid")]
    assert [(s["health"], s["count"]) for s in views.summary(rows)] == [
        ("invalid", 1), ("failing", 1), ("ok", 2)]
    assert [r["job"] for r in views.select_rows(rows, health="ok")] == ["a", "c"]
    assert [r["job"] for r in views.select_rows(rows, tag="db")] == ["b", "c"]
    assert [r["job"] for r in views.select_rows(rows, health="ok", tag="db")] == ["c"]


def test_job_line_from_a_status_row():
    last = {"run_id": "20260601T100000.000000Z-7", "outcome": "timed_out", "exit_code": None,
            "started_at": "2026-06-01T10:00:00.000000Z", "ended_at": "2026-06-01T10:05:00.000000Z",
            "duration_s": 300.0, "run_dir": "/log/a/20260601T100000.000000Z-7", "reason": "took too long"}
    line = views.job_line(row("a", "failing", name="A <b>", tags=["x"], last=last,
                              consecutive_failures=3,
                              paused={"by": "ops", "reason": "db move", "since": "2026-06-01T09:00:00Z",
                                      "until": None, "source": "manual"}), NOW, UTC)
    assert line["last"]["outcome"] == "timed_out" and line["last"]["problem"]
    assert line["last"]["duration"] == "5m00s" and line["last"]["linked"]
    assert line["failures"] == 3 and line["paused"]["reason"] == "db move"
    assert line["name"] == "A <b>"  # raw: the template escapes
    skipped = dict(last, run_dir=None, outcome="skipped")
    assert not views.run_brief(skipped, NOW, UTC)["linked"]  # no folder: no link
    assert not views.run_brief(dict(last, run_id="../../etc"), NOW, UTC)["linked"]


def test_history_lines_newest_first():
    entries = [{"run_id": f"2026060{i}T000000.000000Z-1", "outcome": "success", "run_dir": "x"}
               for i in (1, 2, 3)]
    assert [h["run_id"][:9] for h in views.history_lines(entries, NOW, UTC)] == [
        "20260603T", "20260602T", "20260601T"]


@pytest.mark.parametrize("accept,json", [
    (None, False), ("text/html,application/xhtml+xml,*/*;q=0.8", False),
    ("application/json", True), ("application/json, text/plain", True),
    ("text/html, application/json", False), ("*/*", False),
])
def test_wants_json(accept, json):
    assert views.wants_json(accept) is json


# ------------------------------------------------------------ security


@pytest.mark.parametrize("header,name", [
    ("localhost", "localhost"), ("LOCALHOST:8950", "localhost"), ("127.0.0.1:8950", "127.0.0.1"),
    ("[::1]:8950", "[::1]"), ("[::1]", "[::1]"), ("jobs.example.org.", "jobs.example.org"),
    (None, None), ("", None), ("evil.example:80:80", None), ("a b", None), ("user@host", None),
    ("[::1]junk", None), ("host:port", None), ("h\u00e9", None), ("x" * 300, None),
])
def test_host_name(header, name):
    assert security.host_name(header) == name


def test_host_allow_list_is_loopback_plus_web_hosts():
    allowed = security.allowed_hosts(("Jobs.Example.org", "[2001:db8::1]"))
    for good in ("localhost:8950", "127.0.0.1", "[::1]:1", "jobs.example.org:443", "[2001:db8::1]:8950"):
        assert security.host_allowed(good, allowed), good
    for bad in ("evil.example", "rebind.attacker.test:8950", "127.0.0.2", "localhost.evil", None, ""):
        assert not security.host_allowed(bad, allowed), bad


def test_csrf_token_binds_the_user_and_the_secret():
    token = security.csrf_token(b"s" * 64, "alice")
    assert security.csrf_ok(b"s" * 64, "alice", token)
    assert not security.csrf_ok(b"s" * 64, "mallory", token)
    assert not security.csrf_ok(b"t" * 64, "alice", token)
    assert not security.csrf_ok(b"s" * 64, "alice", None)
    assert not security.csrf_ok(b"s" * 64, "alice", token[:-1])


@pytest.mark.parametrize("headers,cross", [
    ({}, False),
    ({"HTTP_SEC_FETCH_SITE": "same-origin", "HTTP_ORIGIN": "http://localhost:8950"}, False),
    ({"HTTP_SEC_FETCH_SITE": "cross-site"}, True),
    ({"HTTP_SEC_FETCH_SITE": "same-site"}, True),
    ({"HTTP_ORIGIN": "http://evil.example"}, True),
    ({"HTTP_ORIGIN": "null", "HTTP_SEC_FETCH_SITE": "same-origin"}, False),  # no-referrer forms
    ({"HTTP_ORIGIN": "null", "HTTP_SEC_FETCH_SITE": "cross-site"}, True),
    ({"HTTP_ORIGIN": "http://localhost:8950"}, False),
    ({"HTTP_ORIGIN": "http://localhost:8951"}, True),
])
def test_cross_site(headers, cross):
    assert security.cross_site({"HTTP_HOST": "localhost:8950", **headers}) is cross


def test_every_response_header_of_the_policy():
    names = dict(security.HEADERS)
    assert "default-src 'self'" in names["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in names["Content-Security-Policy"]
    assert "unsafe-inline" not in names["Content-Security-Policy"]
    assert names["X-Content-Type-Options"] == "nosniff"
    assert names["X-Frame-Options"] == "DENY"
    assert names["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("text,ok", [
    (make_run_id(NOW, 4242), True), ("20260601T120000.000000Z-1", True),
    ("20260601T120000.000000Z", False), ("20260601T120000.000000Z-", False),
    ("20260601T120000.000000Z-12/../../etc", False), ("20260601T120000.000000Z-1x", False),
    ("20260601T120000.000000Z/..", False), ("latest", False), ("..", False), ("", False),
    ("20261301T120000.000000Z-1", False), ("20260601T120000.000000Z-١٢", False), (None, False),
])
def test_is_run_id_checks_the_whole_name(text, ok):
    assert is_run_id(text) is ok


# ------------------------------------------------------------ the embedded server's address


@pytest.mark.parametrize("text,parsed", [
    ("127.0.0.1:8950", ("127.0.0.1", 8950)), ("localhost:1", ("localhost", 1)),
    ("[::1]:8950", ("::1", 8950)), ("0.0.0.0:80", ("0.0.0.0", 80)),
])
def test_parse_listen(text, parsed):
    assert web_cli.parse_listen(text) == parsed


@pytest.mark.parametrize("text", ["8950", "localhost", ":8950", "host:0", "host:65536", "::1:8950",
                                  "[::1]8950", "host:port"])
def test_parse_listen_refuses(text):
    with pytest.raises(UsageError):
        web_cli.parse_listen(text)


def test_only_loopback_addresses_without_allow_remote():
    web_cli.check_address("localhost", ["127.0.0.1", "::1"], False)
    web_cli.check_address("0.0.0.0", ["0.0.0.0"], True)
    for outside in (["0.0.0.0"], ["::"], ["192.0.2.1"], ["127.0.0.1", "192.0.2.1"]):
        with pytest.raises(ProcessControlError, match="web.allow_remote"):
            web_cli.check_address("h", outside, False)


# ------------------------------------------------------------ run now: cron's command and environment


def config(**extra) -> Config:
    base = dict(source=Path("/etc/pc/site config.yaml"), job_directory=Path("/j"),
                output_directory=Path("/o"), state_directory=Path("/s"), run_directory=Path("/r"),
                output_crontab="console", user="svc", runner_path="/usr/bin/run-job",
                service_runner_path="/usr/bin/sbatch-service")
    base.update(extra)
    return Config(**base)


def test_run_now_is_cron_s_command():
    assert actions.run_argv(config(), "nightly") == [
        "/usr/bin/run-job", "--config", "/etc/pc/site config.yaml", "--job", "nightly"]
    assert actions.run_argv(config(source=None), "n") == ["/usr/bin/run-job", "--job", "n"]


def test_run_now_gets_cron_s_environment_only():
    env = actions.cron_environment(config(cron_environment=(("MAILTO", ""), ("PATH", "/opt/bin:/usr/bin"))),
                                   "/home/svc", "svc")
    assert env == {"PATH": "/opt/bin:/usr/bin", "SHELL": "/bin/sh", "HOME": "/home/svc",
                   "LOGNAME": "svc", "USER": "svc", "MAILTO": ""}
