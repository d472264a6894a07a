"""check-jobs-icinga end to end: the real command against a site in tmp_path.

The reference's words and exit statuses (JOBS OK / FAILING JOBS: a, b, 0 / 2),
late (from a history written as run-job writes it), invalid, paused, a
started service whose Slurm cannot be asked (UNKNOWN without hiding the
rest), --job with age/duration/consecutive failures, --tag, --json against
the schema, exit 3 (never a traceback) for every way the state cannot be
read or the arguments are wrong, and the autumn clock change under a real
faked clock (libfaketime) with TZ=Europe/Berlin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest

import pctest
from pctest import REPO, Site

SCHEMA = json.loads((REPO / "schemas" / "status.schema.json").read_text())
UTC = timezone.utc
ODD = "we'ird; 100% \"name\""  # folder names are adversarial


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / ODD)


def check(site: Site, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return pctest.run("check-jobs-icinga", "--config", str(site.config), *args, env=env)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_history(site: Site, slug: str, *runs: tuple[datetime, str]) -> None:
    """History entries as run-job writes them (field names of status.json)."""
    entries = []
    for number, (started, outcome) in enumerate(runs):
        entries.append({
            "job": slug, "run_id": f"{started.strftime('%Y%m%dT%H%M%S.%f')}Z-{number}",
            "runner": "local", "host": "h", "user": pctest.USER, "pid": 1, "slurm_job_id": None,
            "command": ["/bin/true"], "started_at": iso(started),
            "ended_at": iso(started + timedelta(seconds=2)), "duration_s": 2.0,
            "exit_code": 0 if outcome == "success" else 1, "signal": None, "outcome": outcome,
            "reason": "", "job_file_sha256": "", "run_dir": None})
    site.state.mkdir(parents=True, exist_ok=True)
    (site.state / f"{slug}.history.json").write_text(json.dumps(entries))


def head(result: subprocess.CompletedProcess) -> tuple[str, str]:
    """(status line, perfdata) of a plugin's output."""
    first = result.stdout.splitlines()[0]
    summary, _, perf = first.partition(" | ")
    return summary, perf


def test_the_references_words_and_statuses(site):
    site.job("good", "command: /bin/true\nschedule: '0 * * * *'\n")
    site.job("b-bad", "command: /bin/false\nschedule: '0 * * * *'\n")
    site.job("a-bad", "command: /bin/false\n")
    first = check(site)
    assert (first.returncode, head(first)[0]) == (0, "JOBS OK"), first.stdout + first.stderr
    for slug in ("good", "b-bad", "a-bad"):
        site.run_job(slug)
    failing = check(site)
    assert failing.returncode == 2, failing.stdout + failing.stderr
    assert head(failing)[0] == "FAILING JOBS: a-bad, b-bad"
    assert failing.stderr == ""
    lines = failing.stdout.splitlines()[1:]
    assert [line.split(":")[0] for line in lines] == ["a-bad", "b-bad"]
    assert "failed at" in lines[0] and "(exit 1)" in lines[0]
    # the next run succeeds: OK again
    site.job("a-bad", "command: /bin/true\n")
    site.job("b-bad", "command: /bin/true\n")
    site.run_job("a-bad")
    site.run_job("b-bad")
    assert head(check(site))[0] == "JOBS OK"


def test_late_invalid_paused_and_perfdata(site):
    now = datetime.now(UTC)
    site.job("late", "command: /bin/true\nschedule: '0 * * * *'\n")
    write_history(site, "late", (now - timedelta(hours=3), "success"))
    site.job("graced", "command: /bin/true\nschedule: '0 * * * *'\nmonitor: {grace: 5h}\n")
    write_history(site, "graced", (now - timedelta(hours=3), "success"))
    site.job("broken", "command: [unclosed\n")
    site.job("held", "command: /bin/false\nschedule: '0 * * * *'\n")
    write_history(site, "held", (now - timedelta(hours=3), "failed"))
    from run_job.run import pauses

    pauses.pause(site.state, "held", reason="disk | full", by="ops", until=now + timedelta(days=1))
    result = check(site)
    assert result.returncode == 1, result.stdout + result.stderr
    summary, perf = head(result)
    assert summary == "LATE JOBS: late; INVALID JOBS: broken"
    assert perf == "jobs=4;;;0 failing=0;;0;0 late=1;0;;0 running=0;;;0 paused=1;;;0 invalid=1;0;;0"
    body = result.stdout.splitlines()[1:]
    assert any(line.startswith("late: late: no run started since the expected start at") for line in body)
    assert any(line.startswith("broken: invalid: ") for line in body)
    assert any(line.startswith("held: paused: by ops since ") and line.endswith("disk / full")
               for line in body)
    assert result.stdout.count("|") == 1


def test_one_job_has_age_duration_and_consecutive_failures(site):
    now = datetime.now(UTC)
    site.job("one", "command: /bin/false\n")
    write_history(site, "one", (now - timedelta(hours=2), "success"), (now - timedelta(hours=1), "failed"),
                  (now - timedelta(minutes=1), "failed"))
    site.job("other", "command: /bin/true\n")
    result = check(site, "--job", "one")
    assert result.returncode == 2
    summary, perf = head(result)
    assert summary == "FAILING JOBS: one"
    values = dict(item.split("=", 1) for item in perf.split())
    assert values["jobs"] == "1;;;0"
    age = float(values["age"].split(";")[0].rstrip("s"))
    assert 2 * 3600 - 60 < age < 2 * 3600 + 60
    assert values["duration"] == "2s;;;0" and values["consecutive_failures"] == "2;;;0"


def test_tag_selects_and_an_unknown_tag_or_job_is_unknown(site):
    site.job("tagged", "command: /bin/false\ntag: [nightly]\n")
    site.job("plain", "command: /bin/false\n")
    site.run_job("tagged")
    site.run_job("plain")
    result = check(site, "--tag", "nightly")
    assert (result.returncode, head(result)[0]) == (2, "FAILING JOBS: tagged")
    for args, words in ((("--tag", "nope"), "no job carries the tag 'nope'"),
                        (("--job", "nope"), "no job named 'nope'"),
                        (("--bogus",), "unrecognized arguments: --bogus")):
        bad = check(site, *args)
        assert bad.returncode == 3, bad
        assert bad.stdout.startswith("JOBS UNKNOWN: ") and words in bad.stdout
        assert "Traceback" not in bad.stdout + bad.stderr


def test_json_is_every_jobs_state_and_valid(site):
    site.job("bad", "command: /bin/false\n")
    site.job("broken", "command: [unclosed\n")
    site.run_job("bad")
    result = check(site, "--json")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    jsonschema.Draft7Validator(SCHEMA).validate(doc)
    assert (doc["kind"], doc["status"], doc["state"]) == ("check", 2, "CRITICAL")
    assert doc["summary"] == "FAILING JOBS: bad; INVALID JOBS: broken"
    assert doc["groups"]["failing"] == ["bad"] and doc["groups"]["invalid"] == ["broken"]
    assert doc["perfdata"]["jobs"] == 2
    assert [row["job"] for row in doc["jobs"]] == ["bad", "broken"]
    assert doc["jobs"][0]["health"] == "failing" and doc["jobs"][1]["valid"] is False


@pytest.mark.parametrize("breakage", ["config", "state-not-a-folder", "history-fifo",
                                      "job-directory-missing"])
def test_a_state_that_cannot_be_read_is_unknown_never_ok(site, breakage):
    site.job("a", "command: /bin/true\n")
    site.run_job("a")
    if breakage == "config":
        site.config.write_text(site.config.read_text() + "bogus_key: [\n")
    elif breakage == "state-not-a-folder":
        shutil.rmtree(site.state)
        site.state.write_text("")
    elif breakage == "history-fifo":
        history = site.state / "a.history.json"
        history.unlink()
        os.mkfifo(history)
    else:
        shutil.rmtree(site.jobs)
    result = check(site)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith("JOBS UNKNOWN: ")
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the check becomes the service user")
def test_root_reads_as_the_service_user_and_a_state_it_cannot_read_is_unknown(tmp_path):
    reason = pctest.any_user_skip_reason()
    if reason:
        pytest.skip(reason)
    top = pctest.session_folder() / f"check-{os.getpid()}-{tmp_path.name}"
    site = Site(top, user="nobody")
    try:
        site.job("a", "command: /bin/true\n")
        site.state.mkdir(mode=0o700)  # root's: nobody cannot read it
        argv = pctest.any_user_command("check-jobs-icinga") + ["--config", str(site.config)]
        result = subprocess.run(argv, capture_output=True, text=True, env=pctest.any_user_env(),
                                timeout=60)
        assert result.returncode == 3, result.stdout + result.stderr
        assert result.stdout.startswith("JOBS UNKNOWN: cannot read state_directory ")
        assert "Permission denied" in result.stdout
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_an_unreachable_slurm_is_unknown_for_started_services_only(site, tmp_path):
    site.job("svc", "runner: slurm\ncommand: /bin/sleep 1000\nservice: {}\n")
    site.job("stopped", "runner: slurm\ncommand: /bin/sleep 1000\nservice: {}\n")
    services = site.state / "services"
    services.mkdir(parents=True)
    (services / "svc.json").write_text(json.dumps({"last_action": "start", "job_id": "17"}))
    (services / "stopped.json").write_text(json.dumps({"last_action": "stop"}))
    empty = tmp_path / "no slurm here"
    empty.mkdir()
    dead = {"PATH": str(empty)}  # squeue cannot be run: Slurm cannot be asked
    alone = check(site, env=dead)
    assert alone.returncode == 3, alone.stdout + alone.stderr
    assert head(alone)[0] == "SERVICES UNKNOWN: svc"
    assert alone.stdout.splitlines()[1].startswith("svc: service state unknown: ")
    # a failing job is not hidden by it: CRITICAL wins
    site.job("bad", "command: /bin/false\n")
    site.run_job("bad")
    both = check(site, env=dead)
    assert both.returncode == 2
    assert head(both)[0] == "FAILING JOBS: bad; SERVICES UNKNOWN: svc"


FAKETIME = shutil.which("faketime")


@pytest.mark.skipif(FAKETIME is None, reason="needs faketime (Debian's faketime package; .ci/run installs it)")
@pytest.mark.parametrize("now,summary,status", [
    # 02:30 CEST ran (00:30 UTC); 02:45 CET (01:45 UTC): the repeated 02:30 is no expected start
    (datetime(2026, 10, 25, 1, 45, tzinfo=UTC), "JOBS OK", 0),
    (datetime(2026, 10, 25, 12, 0, tzinfo=UTC), "JOBS OK", 0),
    (datetime(2026, 10, 26, 1, 45, tzinfo=UTC), "LATE JOBS: nightly", 1),  # the next day's missed
])
def test_no_false_alarm_after_the_autumn_change_with_a_real_clock(site, now, summary, status):
    """The real command under a faked clock (libfaketime), host zone
    Europe/Berlin as cron sees it ($TZ)."""
    site.job("nightly", "command: /bin/true\nschedule: '30 2 * * *'\n")
    write_history(site, "nightly", (datetime(2026, 10, 25, 0, 30, 2, tzinfo=UTC), "success"))
    argv = [FAKETIME, f"@{now.timestamp():.0f}"] + pctest.command("check-jobs-icinga") + \
        ["--config", str(site.config)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                            env=pctest.command_env({"TZ": "Europe/Berlin"}))
    assert (head(result)[0], result.returncode) == (summary, status), result.stdout + result.stderr
