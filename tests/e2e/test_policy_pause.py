"""pause_after_failures (SPEC §10) end to end: the real run-job, a real SMTP
server on loopback, every folder in tmp_path."""

from __future__ import annotations

import json
import sys
import time


from pctest import wait_for
from runjob_helpers import history, job_yaml, new_site, q, run_dirs
from test_policy_retry import smtp  # noqa: F401 - the fixture

from run_job.run import pauses

PY = sys.executable


def failing_job(site, slug, flag, **fields):
    site.job(slug, job_yaml(
        command=f"{q(PY)} -c 'import os, sys; print(\"working\"); sys.exit(4 if os.path.exists(sys.argv[1]) else 0)'"
                f" {q(flag)}",
        failmail={"from_address": "pc@example.org", "to_address": "ops@example.org"}, **fields))


def test_a_job_paused_itself_after_n_failures_and_said_so(tmp_path, smtp):
    handler, port = smtp
    site = new_site(tmp_path, mail={"smtp_host": "127.0.0.1", "smtp_port": port})
    flag = tmp_path / "broken"
    flag.touch()
    failing_job(site, "fragile", flag, pause_after_failures=3)
    for n in (1, 2):
        assert site.run_job("--job", "fragile").returncode == 4
        assert pauses.read(site.state, "fragile") is None
    res = site.run_job("--job", "fragile")
    assert res.returncode == 4
    pause = pauses.read(site.state, "fragile")
    assert pause is not None and pause["source"] == "auto" and pause["until"] is None
    last = history(site, "fragile")[-1]
    assert pause["reason"] == ("3 consecutive failures (pause_after_failures: 3);"
                               f" the last run {last['run_id']} ended failed")
    assert last["reason"].endswith("the job is now paused; run-job --resume fragile ends the pause")
    assert last["alerts"]["paused"] is True and "pause" in last["alerts"]["events"]
    audit = [json.loads(line) for line in (site.state / "audit.log").read_text().splitlines()]
    assert [(a["action"], a["job"], a["source"]) for a in audit] == [("pause", "fragile", "auto")]
    assert wait_for(lambda: len(handler.messages) == 3, timeout=10)
    first, third = handler.messages[0], handler.messages[2]
    assert "now paused" not in first.get_content() and "now paused" not in first["Subject"]
    assert third["Subject"].endswith("fragile: failed (now paused)")
    text = third.get_content()
    assert "The job is now paused: 3 consecutive failures (pause_after_failures: 3)" in text
    assert "run-job --resume fragile" in text

    # paused: the next scheduled run is skipped quietly, exit 0, no folder, no mail
    folders = len(run_dirs(site, "fragile"))
    res = site.run_job("--job", "fragile")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    skipped = history(site, "fragile")[-1]
    assert skipped["outcome"] == "skipped" and skipped["run_dir"] is None
    assert skipped["reason"].startswith("paused by run-job since ")
    assert "(until resumed) (automatically): 3 consecutive failures" in skipped["reason"]
    assert skipped["alerts"]["counts_as"] == "neutral"
    assert len(run_dirs(site, "fragile")) == folders
    time.sleep(0.5)
    assert len(handler.messages) == 3

    # only a resume ends it; a job resumed while still failing is paused again by its next failure
    assert pauses.resume(site.state, "fragile", by="ops") is not None
    assert site.run_job("--job", "fragile").returncode == 4
    assert pauses.read(site.state, "fragile")["source"] == "auto"
    pauses.resume(site.state, "fragile", by="ops")
    flag.unlink()
    assert site.run_job("--job", "fragile").returncode == 0
    assert pauses.read(site.state, "fragile") is None


def test_the_pausing_run_is_mailed_below_the_mail_threshold(tmp_path, smtp):
    handler, port = smtp
    site = new_site(tmp_path, mail={"smtp_host": "127.0.0.1", "smtp_port": port})
    flag = tmp_path / "broken"
    flag.touch()
    failing_job(site, "quiet", flag, pause_after_failures=2, failure_threshold_for_mail=10)
    assert site.run_job("--job", "quiet").returncode == 4
    assert site.run_job("--job", "quiet").returncode == 4
    assert wait_for(lambda: handler.messages, timeout=10)
    assert len(handler.messages) == 1 and "now paused" in handler.messages[0]["Subject"]


def test_a_manual_pause_is_kept(tmp_path):
    site = new_site(tmp_path)
    flag = tmp_path / "broken"
    flag.touch()
    site.job("held", job_yaml(command=f"{q(PY)} -c 'import sys; sys.exit(1)'", pause_after_failures=1))
    assert site.run_job("--job", "held").returncode == 1
    assert pauses.read(site.state, "held")["source"] == "auto"
    pauses.pause(site.state, "held", reason="maintenance", source="manual", by="ops")
    assert site.run_job("--job", "held").returncode == 0  # skipped: paused
    assert pauses.read(site.state, "held")["reason"] == "maintenance"
