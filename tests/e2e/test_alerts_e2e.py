"""``run-job --job`` with failure mail to a real SMTP server (aiosmtpd) and hooks.

The command runs as a subprocess with its own ``--config``; the SMTP server
runs in this test process on a free loopback port. Checks: the mail arrives
with the right subject and output, the threshold and the recovery mail across
real runs, and the exit status is the job's own whether SMTP works, is down
or never answers.
"""

from __future__ import annotations

import email
import json
import socket
import sys
import time
from email import policy
from pathlib import Path

import pytest

from pctest import Site, free_port, wait_for

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd is not installed")

HOST = "127.0.0.1"
SLUG = "fail_mail-job"


class Recorder:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        self.messages.append(email.message_from_bytes(envelope.original_content,
                                                      policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp():
    handler = Recorder()
    port = free_port(HOST)
    controller = aiosmtpd_controller.Controller(handler, hostname=HOST, port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def make_site(tmp_path):
    """Sites with mail settings."""

    def make(port: int, timeout: str = "10s", **settings):
        return Site(tmp_path / "si te; 'x' 100%",
                          mail={"smtp_host": HOST, "smtp_port": port, "timeout": timeout},
                          **settings)
    return make


# The job fails while the flag file exists, and prints 80 lines first.
JOB = """\
name: "Fail \\"mail\\"; 100%"
command: {python} -c "import os, sys; [print('line', i) for i in range(1, 81)]; sys.exit(3 if os.path.exists(sys.argv[1]) else 0)" "{flag}"
failmail:
  from_address: pc@example.org
  to_address: [ops@example.org]
failure_threshold_for_mail: {threshold}
"""


def add_job(site, flag: Path, threshold: int = 1) -> None:
    site.job(SLUG, JOB.format(python=sys.executable, flag=flag, threshold=threshold))


def latest_status(site) -> dict:
    return json.loads((site.output / SLUG / "latest" / "status.json").read_text())


def test_failure_mail_and_exit_status(tmp_path, smtp, make_site):
    handler, port = smtp
    site = make_site(port)
    flag = tmp_path / "fail flag"
    flag.touch()
    add_job(site, flag)
    proc = site.run_job("--job", SLUG)
    assert proc.returncode == 3, proc.stderr
    status = latest_status(site)
    assert status["outcome"] == "failed"
    assert status["alerts"]["mail"]["sent"] is True, status["alerts"]
    assert len(handler.messages) == 1
    msg = handler.messages[0]
    assert msg["Subject"] == f"[process-control] {status['host']} {SLUG}: failed"
    text = msg.get_content().replace("\r\n", "\n")
    assert status["run_dir"] in text and 'Fail "mail"; 100%' in text
    lines = [line for line in text.split("\n") if line.startswith("line ")]
    assert lines == [f"line {i}" for i in range(31, 81)]


def test_threshold_and_recovery_across_runs(tmp_path, smtp, make_site):
    handler, port = smtp
    site = make_site(port)
    flag = tmp_path / "flag"
    flag.touch()
    add_job(site, flag, threshold=2)
    assert site.run_job("--job", SLUG).returncode == 3
    assert handler.messages == []  # below the threshold
    assert site.run_job("--job", SLUG).returncode == 3
    assert len(handler.messages) == 1
    flag.unlink()
    assert site.run_job("--job", SLUG).returncode == 0
    assert len(handler.messages) == 2
    assert handler.messages[1]["Subject"].endswith(f"{SLUG}: success (recovered)")
    assert latest_status(site)["alerts"]["mail"]["kind"] == "recovery"
    assert site.run_job("--job", SLUG).returncode == 0
    assert len(handler.messages) == 2  # one recovery mail only


def test_smtp_down_leaves_exit_status_alone(tmp_path, make_site):
    site = make_site(free_port())
    flag = tmp_path / "flag"
    flag.touch()
    add_job(site, flag)
    started = time.monotonic()
    proc = site.run_job("--job", SLUG)
    assert time.monotonic() - started < 10
    assert proc.returncode == 3, proc.stderr
    status = latest_status(site)
    assert status["outcome"] == "failed"
    assert status["alerts"]["mail"]["sent"] is False
    assert "refused the connection" in status["alerts"]["mail"]["error"]
    assert "Traceback" not in proc.stderr
    flag.unlink()
    assert site.run_job("--job", SLUG).returncode == 0


def test_silent_smtp_server_is_bounded(tmp_path, make_site):
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen(8)  # accepts (kernel backlog), never answers
        site = make_site(silent.getsockname()[1], timeout="1s")
        flag = tmp_path / "flag"
        flag.touch()
        add_job(site, flag)
        started = time.monotonic()
        proc = site.run_job("--job", SLUG)
        elapsed = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr
    assert elapsed < 1 + 2 + 5, elapsed  # timeout + teardown + start-up slack
    mail = latest_status(site)["alerts"]["mail"]
    assert mail["sent"] is False and "did not answer within 1 s" in mail["error"]


def test_hooks_fire_with_the_run_variables(tmp_path, make_site):
    hooks_dir = tmp_path / "hoo ks"
    out = tmp_path / "hook-out"
    out.mkdir()
    for event in ("start", "failure"):
        folder = hooks_dir / event
        folder.mkdir(parents=True)
        hook = folder / "10-record"
        hook.write_text(f"#!{sys.executable}\n"
                        "import json, os\n"
                        f"out = {str(out)!r}\n"
                        "env = {k: v for k, v in os.environ.items() if k.startswith('RUN_JOB_')}\n"
                        "open(os.path.join(out, env['RUN_JOB_EVENT']), 'w').write(json.dumps(env))\n")
        hook.chmod(0o755)
    for folder in (hooks_dir, hooks_dir / "start", hooks_dir / "failure"):
        folder.chmod(0o755)
    site = make_site(free_port(), hooks_directory=str(hooks_dir))
    flag = tmp_path / "flag"
    flag.touch()
    add_job(site, flag)
    proc = site.run_job("--job", SLUG)
    assert proc.returncode == 3, proc.stderr
    status = latest_status(site)
    start = json.loads((out / "start").read_text())
    failure = json.loads((out / "failure").read_text())
    assert start["RUN_JOB_OUTCOME"] == "running" and start["RUN_JOB_EXIT_CODE"] == ""
    for env in (start, failure):
        assert env["RUN_JOB_NAME"] == SLUG
        assert env["RUN_JOB_RUN_ID"] == status["run_id"]
        assert env["RUN_JOB_RUN_DIR"] == status["run_dir"]
    assert failure["RUN_JOB_OUTCOME"] == "failed" and failure["RUN_JOB_EXIT_CODE"] == "3"
    assert failure["RUN_JOB_REASON"] == status["reason"]
    assert [h["event"] for h in status["alerts"]["hooks"]] == ["failure"]


def test_a_lost_run_is_mailed_by_the_next_run(smtp, make_site):
    """run-job SIGKILLed mid-run: the next run marks the run lost, stops its
    orphans, and sends the failure mail the dead run-job never could."""
    import os
    import signal
    import subprocess

    from pctest import command, command_env

    handler, port = smtp
    site = make_site(port)
    site.job("lost-job", "command: /bin/sleep 60\nkill_grace: 1s\nfailmail:\n"
                         "  from_address: pc@example.org\n  to_address: ops@example.org\n")
    first = subprocess.Popen(command("run-job") + ["--config", str(site.config), "--job", "lost-job"],
                             env=command_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = site.output / "lost-job" / "latest" / "status.json"
    wait_for(status.exists)
    assert status.exists()
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    lost_run = json.loads(status.read_text())["run_id"]
    site.job("lost-job", "command: /bin/true\nkill_grace: 1s\nfailmail:\n"
                         "  from_address: pc@example.org\n  to_address: ops@example.org\n")
    result = site.run_job("--job", "lost-job", timeout=60)
    assert result.returncode == 0, result.stderr
    lost = json.loads((site.output / "lost-job" / lost_run / "status.json").read_text())
    assert lost["outcome"] == "lost", lost
    assert lost["alerts"]["mail"]["sent"] is True, lost
    subjects = [m["subject"] for m in handler.messages]
    assert any(s.endswith("lost-job: lost") for s in subjects), subjects
    assert any("recovered" in s for s in subjects), subjects
