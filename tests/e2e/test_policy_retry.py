"""Retries (SPEC §10) end to end: the real run-job, every folder in tmp_path.

All attempts are one run: one folder, one run id, the lock held through the
delays; every attempt in status.json; the outcome and exit status are the
last attempt's; mail and end hooks once; --kill-job during a delay ends the
run killed at once.
"""

from __future__ import annotations

import email
import json
import subprocess
import sys
import time
from email import policy
from pathlib import Path

import pytest

from pctest import command, command_env, free_port, wait_for
from runjob_helpers import history, job_yaml, latest_status, new_site, q, run_dirs

PY = sys.executable
# Fails (exit 3) until it has been called N times; prints which call it is.
COUNTER = r'''
import sys
path, succeed_at = sys.argv[1], int(sys.argv[2])
try:
    n = int(open(path).read()) + 1
except FileNotFoundError:
    n = 1
open(path, "w").write(str(n))
sys.stdout.write(f"call {n} out; no newline" if n == 1 else f"call {n} out\n")
sys.exit(0 if n >= succeed_at else 3)
'''


def counter_job(site, slug, succeed_at, retry, **fields):
    script = site.root / "counter.py"
    script.write_text(COUNTER)
    count = site.root / f"{slug}.count"
    site.job(slug, job_yaml(command=f"{q(PY)} {q(script)} {q(count)} {succeed_at}", retry=retry,
                            **fields))
    return count


def smtp_server():
    from aiosmtpd.controller import Controller

    class Recorder:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            self.messages.append(email.message_from_bytes(envelope.original_content,
                                                          policy=policy.default))
            return "250 OK"

    port = free_port()
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, handler, port


@pytest.fixture
def smtp():
    pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd is not installed")
    controller, handler, port = smtp_server()
    yield handler, port
    controller.stop()


FAILMAIL = {"from_address": "pc@example.org", "to_address": ["ops@example.org"]}


def test_a_job_that_fails_twice_then_succeeds_is_one_run_with_three_attempts_and_no_mail(tmp_path, smtp):
    handler, port = smtp
    site = new_site(tmp_path, mail={"smtp_host": "127.0.0.1", "smtp_port": port},
                    hooks_directory=str(tmp_path / "hooks"))
    hooks = tmp_path / "hooks"
    for event in ("start", "failure", "success"):
        (hooks / event).mkdir(parents=True)
        hook = hooks / event / "log"
        hook.write_text(f"#!/bin/sh\necho {event} >> {q(tmp_path / 'events')}\n")
        hook.chmod(0o755)
    counter_job(site, "flaky", 3, {"maximum_retries": 3, "initial_delay": "0.2s",
                                   "backoff_multiplier": 2}, failmail=FAILMAIL)
    started = time.monotonic()
    res = site.run_job("--job", "flaky")
    took = time.monotonic() - started
    assert res.returncode == 0, res.stderr
    assert took >= 0.6, took  # 0.2 s, then 0.4 s
    assert len(run_dirs(site, "flaky")) == 1
    entries = history(site, "flaky")
    assert len(entries) == 1 and entries[0]["outcome"] == "success"
    status = latest_status(site, "flaky")
    assert status["outcome"] == "success" and status["exit_code"] == 0
    assert status["reason"] == "succeeded at attempt 3 of 4"
    attempts = status["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "success"]
    assert [a["exit_code"] for a in attempts] == [3, 3, 0]
    assert all(a["started_at"] <= a["ended_at"] for a in attempts)
    assert attempts[0]["retry_at"] and attempts[1]["retry_at"] and attempts[2]["retry_at"] is None
    assert entries[0]["attempts"] == attempts
    # output: the first attempt's bytes as the job wrote them, then a marker per retry
    log = (Path(status["run_dir"]) / "output.log").read_bytes()
    assert log.startswith(b"call 1 out; no newline\n--- run-job: attempt 2 of 4 at ")
    assert attempts[0]["output_offset"] == 0
    for attempt in attempts[1:]:
        assert log[attempt["output_offset"]:].startswith(f"call {attempt['attempt']} out\n".encode())
    assert log.count(b"--- run-job: attempt") == 2
    assert handler.messages == []  # a success: no mail
    assert (tmp_path / "events").read_text().split() == ["start", "success"]  # hooks once
    check_record(status)


def check_record(record):
    from jsonschema import Draft7Validator

    from pctest import REPO

    schema = json.loads((REPO / "schemas" / "status.schema.json").read_text())
    record_schema = {**schema["definitions"]["record"], "definitions": schema["definitions"]}
    Draft7Validator(record_schema).validate(record)


def test_every_attempt_failing_ends_with_the_last_attempt_and_one_mail(tmp_path, smtp):
    handler, port = smtp
    site = new_site(tmp_path, mail={"smtp_host": "127.0.0.1", "smtp_port": port})
    counter_job(site, "broken", 99, {"maximum_retries": 2, "initial_delay": "0.1s"},
                failmail=FAILMAIL)
    res = site.run_job("--job", "broken")
    assert res.returncode == 3
    status = latest_status(site, "broken")
    assert status["outcome"] == "failed" and status["exit_code"] == 3
    assert [a["outcome"] for a in status["attempts"]] == ["failed"] * 3
    assert status["reason"].endswith("attempt 3 of 3 (earlier: failed, failed);"
                                     " gave up after 3 attempts (retry.maximum_retries: 2)")
    assert wait_for(lambda: handler.messages, timeout=5)
    time.sleep(0.3)
    assert len(handler.messages) == 1


def test_timeout_bounds_each_attempt(tmp_path):
    site = new_site(tmp_path)
    site.job("slow", job_yaml(command=f"{q(PY)} -c 'import time; time.sleep(30)'", timeout="1s",
                              kill_grace="1s", retry={"maximum_retries": 1, "initial_delay": "0.1s"}))
    started = time.monotonic()
    res = site.run_job("--job", "slow")
    assert res.returncode == 124
    assert 2.0 <= time.monotonic() - started < 15
    status = latest_status(site, "slow")
    assert [a["outcome"] for a in status["attempts"]] == ["timed_out", "timed_out"]
    assert status["outcome"] == "timed_out"


def test_without_retry_there_are_no_attempts_and_no_marker(tmp_path):
    site = new_site(tmp_path)
    counter_job(site, "plain", 99, {"maximum_retries": 0})
    assert site.run_job("--job", "plain").returncode == 3
    status = latest_status(site, "plain")
    assert "attempts" not in status
    assert (Path(status["run_dir"]) / "output.log").read_bytes() == b"call 1 out; no newline"


def start_run(site, slug):
    return subprocess.Popen(command("run-job") + ["--config", str(site.config), "--job", slug],
                            env=command_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def waiting_to_retry(site, slug):
    def check():
        dirs = run_dirs(site, slug)
        if not dirs:
            return None
        try:
            status = json.loads((dirs[-1] / "status.json").read_text())
        except (OSError, ValueError):
            return None
        attempts = status.get("attempts") or []
        return status if attempts and attempts[-1].get("retry_at") else None
    return check


def test_kill_job_during_a_delay_ends_the_run_killed_at_once(tmp_path):
    site = new_site(tmp_path)
    count = counter_job(site, "patient", 99, {"maximum_retries": 5, "initial_delay": "10m",
                                              "maximum_delay": "10m"})
    proc = start_run(site, "patient")
    try:
        assert wait_for(waiting_to_retry(site, "patient"), timeout=20)
        # meanwhile the lock is held: a scheduled start is skipped as usual
        second = site.run_job("--job", "patient")
        assert second.returncode == 75, second.stderr
        started = time.monotonic()
        kill = site.run_job("--kill-job", "patient")
        assert kill.returncode == 0, kill.stdout + kill.stderr
        proc.wait(timeout=20)
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + 15
    status = latest_status(site, "patient")
    assert status["outcome"] == "killed" and status["signal"] == 15
    assert status["reason"].startswith("run-job --kill-job SIGTERM while waiting to retry:"
                                       " attempt 2 never started (attempt 1 failed")
    assert [a["outcome"] for a in status["attempts"]] == ["failed"]
    assert status["attempts"][0]["retry_at"] is None
    assert count.read_text() == "1"
    outcomes = [e["outcome"] for e in history(site, "patient")]
    assert sorted(outcomes) == ["killed", "skipped"]


def test_a_killed_attempt_is_never_retried(tmp_path):
    site = new_site(tmp_path)
    site.job("sleepy", job_yaml(command=f"{q(PY)} -c 'import time; print(1, flush=True); time.sleep(60)'",
                                retry={"maximum_retries": 3, "initial_delay": "0.1s"}))
    proc = start_run(site, "sleepy")
    try:
        assert wait_for(lambda: run_dirs(site, "sleepy") and (run_dirs(site, "sleepy")[-1] / "output.log")
                        .exists() and (run_dirs(site, "sleepy")[-1] / "output.log").read_bytes(), timeout=20)
        assert site.run_job("--kill-job", "sleepy").returncode == 0
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143
    status = latest_status(site, "sleepy")
    assert status["outcome"] == "killed"
    assert [a["outcome"] for a in status["attempts"]] == ["killed"]


def test_no_retry_starts_after_the_next_scheduled_start(tmp_path):
    site = new_site(tmp_path)
    counter_job(site, "every-minute", 99, {"maximum_retries": 3, "initial_delay": "2m",
                                           "maximum_delay": "5m"}, schedule="* * * * *")
    res = site.run_job("--job", "every-minute")
    assert res.returncode == 3
    status = latest_status(site, "every-minute")
    assert len(status["attempts"]) == 1
    assert "not retried: attempt 2 would start after 120s delay, at or after the next scheduled" \
           " start" in status["reason"]
