"""The installed commands on the packaged config: a job file dropped into
/var/lib/process-control is validated, run as the service user, and put in
/etc/cron.d/process-control, which the real cron daemon runs."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import shlex
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from pkgtools import packaged, job_file, saved_crontab  # noqa: F401  (fixtures)
from pctest import comm, wait_for
from pkgtools import CRONTAB, JOB_DIR, LOG_DIR, RUN_DIR, SERVICE_USER, run

# Arguments that a shell or cron would mangle; the job gets them unchanged.
HOSTILE = "a b; c %d 'q' \"dq\" $HOME `x`"


def latest_record(slug: str) -> dict | None:
    status = LOG_DIR / slug / "latest" / "status.json"
    try:
        return json.loads(status.read_text())
    except (OSError, ValueError):
        return None


def finished_record(slug: str) -> dict | None:
    record = latest_record(slug)
    return record if record and record.get("outcome") not in (None, "running") else None


def test_validate_the_packaged_config_and_a_dropped_job(job_file) -> None:
    slug = job_file("valid", "command: /bin/true\nschedule: '*/5 * * * *'\n")
    whole = run(["/usr/bin/run-job", "--validate"])
    assert whole.returncode == 0, whole.stdout + whole.stderr
    one = run(["/usr/bin/run-job", "--validate", slug])
    assert one.returncode == 0, one.stdout + one.stderr
    as_json = run(["/usr/bin/run-job", "--validate", "--json"])
    assert as_json.returncode == 0, as_json.stderr
    json.loads(as_json.stdout)


def test_list_status_and_history_show_a_dropped_job(job_file) -> None:
    slug = job_file("listed", "command: /bin/true\nschedule: '@daily'\n")
    assert run(["/usr/bin/run-job", "--job", slug], timeout=120).returncode == 0
    listed = run(["/usr/bin/run-job", "--list-jobs"])
    assert listed.returncode == 0, listed.stderr
    assert slug in listed.stdout
    status = run(["/usr/bin/run-job", "--status", "--json"])
    assert status.returncode == 0, status.stderr
    assert slug in json.dumps(json.loads(status.stdout))
    history = run(["/usr/bin/run-job", "--history", slug, "--json"])
    assert history.returncode == 0, history.stderr
    assert "success" in json.dumps(json.loads(history.stdout))


def test_validate_reports_a_bad_job_file(job_file) -> None:
    slug = job_file("invalid", "command: /bin/true\nschedule: '61 * * * *'\nno_such_key: 1\n")
    result = run(["/usr/bin/run-job", "--validate"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{slug}.yaml" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_run_job_as_root_runs_the_job_as_the_service_user(job_file) -> None:
    job = {
        "command": [
            "/usr/bin/id -un",
            shlex.join(["/usr/bin/printf", "%s|%s\\n", "$RUN_JOB_NAME", HOSTILE]),
            "/usr/bin/printenv RUN_JOB_NAME HOSTILE",
        ],
        "environment": {"HOSTILE": HOSTILE},
    }
    slug = job_file("whoami", yaml.safe_dump(job))
    result = run(["/usr/bin/run-job", "--job", slug], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    record = latest_record(slug)
    assert record is not None
    assert record["outcome"] == "success"
    assert record["user"] == SERVICE_USER
    assert record["exit_code"] == 0
    run_dir = (LOG_DIR / slug / "latest").resolve()
    assert pwd.getpwuid(run_dir.stat().st_uid).pw_name == SERVICE_USER
    output = (run_dir / "output.log").read_text().splitlines()
    assert output[0] == SERVICE_USER
    # no shell: "$RUN_JOB_NAME" is passed literally, the hostile text unchanged
    assert output[1] == f"$RUN_JOB_NAME|{HOSTILE}"
    assert output[2:] == [slug, HOSTILE]


def test_run_job_as_root_recreates_a_missing_run_directory(job_file) -> None:
    """/run is a tmpfs: after a reboot the folder is back only once
    systemd-tmpfiles has run; run-job started by root must not need it."""
    slug = job_file("rundir", "command: /bin/true\n")
    moved = RUN_DIR.with_name(f".process-control.pkgtest-{os.getpid()}")
    os.rename(RUN_DIR, moved)
    try:
        result = run(["/usr/bin/run-job", "--job", slug], timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        st = RUN_DIR.stat()
        assert (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name) == (
            SERVICE_USER, SERVICE_USER)
        assert stat.S_IMODE(st.st_mode) & 0o002 == 0
    finally:
        if RUN_DIR.exists():
            shutil.rmtree(moved, ignore_errors=True)
        else:
            os.rename(moved, RUN_DIR)


def test_run_job_passes_the_commands_status_through(job_file) -> None:
    slug = job_file("status", "command: /bin/sh -c 'exit 7'\n")
    result = run(["/usr/bin/run-job", "--job", slug], timeout=120)
    assert result.returncode == 7, result.stdout + result.stderr
    record = latest_record(slug)
    assert record is not None and record["outcome"] == "failed" and record["exit_code"] == 7


def test_cron_generate_writes_the_entry_for_the_service_user(job_file, saved_crontab) -> None:
    slug = job_file("crontab", "command: /bin/true\nschedule: '*/5 * * * *'\n")
    off = job_file("disabled", "command: /bin/true\nschedule: '@daily'\ndisabled: true\n")
    result = run(["/usr/bin/cron-generate"])
    assert result.returncode == 0, result.stdout + result.stderr
    text = CRONTAB.read_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    entry = f"*/5 * * * * {SERVICE_USER} /usr/bin/run-job --job {slug}"
    assert entry in lines
    assert f"# Generated from {JOB_DIR / (slug + '.yaml')}" in lines
    assert lines[lines.index(entry) - 1].startswith("# Generated from ")
    assert f"# Skipping disabled job {off}" in lines
    st = CRONTAB.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)
    check = run(["/usr/bin/cron-generate", "--check"])
    assert check.returncode == 0, check.stdout + check.stderr


def test_cron_generate_refuses_an_invalid_job_and_keeps_the_crontab(job_file, saved_crontab) -> None:
    good = job_file("kept", "command: /bin/true\nschedule: '@hourly'\n")
    assert run(["/usr/bin/cron-generate"]).returncode == 0
    before = CRONTAB.read_bytes()
    bad = job_file("broken", "command: /bin/true\nschedule: '* * * * * /bin/evil'\n")
    result = run(["/usr/bin/cron-generate"])
    assert result.returncode == 2
    assert f"{bad}.yaml" in result.stdout + result.stderr
    assert CRONTAB.read_bytes() == before
    assert good in before.decode()


def _cron_pid() -> int | None:
    """The pid of the running cron daemon, from its pid file, if that process
    is cron (a stale pid file may name a reused pid)."""
    try:
        pid = int(Path("/run/crond.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if comm(pid) == "cron" else None


@pytest.mark.cron
@pytest.mark.slow
def test_cron_daemon_runs_the_generated_entry_as_the_service_user(job_file, saved_crontab) -> None:
    if not Path("/usr/sbin/cron").exists():
        pytest.skip("Debian's cron is not installed")
    slug = job_file("cron", "command: /usr/bin/id -un\nschedule: '* * * * *'\n")
    # cron notices a changed /etc/cron.d by its mtime in whole seconds: keep
    # this write out of the second of an earlier test's write.
    time.sleep(1.1)
    result = run(["/usr/bin/cron-generate"])
    assert result.returncode == 0, result.stdout + result.stderr
    ours = None
    if _cron_pid() is None:
        # Our own daemon in the foreground, stopped below; an already running
        # one is used as it is.
        ours = subprocess.Popen(["/usr/sbin/cron", "-f"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        assert wait_for(_cron_pid, 10), "cron did not start"
    try:
        record = wait_for(lambda: finished_record(slug), 75, step=1)
        assert record, (f"cron (pid {_cron_pid()}) did not run the job within 75 s; crontab:\n"
                        + (CRONTAB.read_text() if CRONTAB.exists() else "(missing)"))
        assert record["outcome"] == "success", record
        assert record["user"] == SERVICE_USER
        output = (LOG_DIR / slug / "latest" / "output.log").read_text()
        assert output == f"{SERVICE_USER}\n"
    finally:
        (JOB_DIR / f"{slug}.yaml").unlink(missing_ok=True)
        run(["/usr/bin/cron-generate"])
        # a run started in the meantime must end before its traces are removed
        wait_for(lambda: latest_record(slug) is None or finished_record(slug), 30)
        if ours is not None:
            ours.send_signal(signal.SIGTERM)
            try:
                ours.wait(timeout=10)
            except subprocess.TimeoutExpired:
                ours.kill()
                ours.wait()
