"""Mail composition (pure): subject, body fields, output tail, header safety."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest

from run_job.alerts import mail
from run_job.model import FailMail, Job

JOB = Job(slug="nightly_backup-1", path=Path("/jobs dir/nightly_backup-1.yaml"), sha256="0",
          commands=(("false",),), command_text=("/bin/echo 'a; b' 100%", "false"),
          name="Nightly \"backup\"; 100%\nInjected: header")
FAILMAIL = FailMail("process control <pc@example.org>", ("ops@example.org", "dev@example.org"))
RECORD = {
    "job": JOB.slug, "run_id": "20260101T000000.000000Z-1", "host": "db1.example.org",
    "outcome": "failed", "reason": "command 2 (false) exited with status 1",
    "exit_code": 1, "signal": None, "started_at": "2026-01-01T00:00:00.000000Z",
    "ended_at": "2026-01-01T00:01:30.500000Z", "duration_s": 90.5,
    "run_dir": "/var/log/process-control/nightly_backup-1/20260101T000000.000000Z-1",
    "command": list(JOB.command_text),
}


def parse(msg) -> email.message.EmailMessage:
    return email.message_from_bytes(msg.as_bytes(), policy=policy.default)


def test_subject_format():
    assert mail.subject("h1", "job", "failed") == "[process-control] h1 job: failed"
    assert (mail.subject("h1", "job", "success", recovered=True)
            == "[process-control] h1 job: success (recovered)")


def test_failure_message_fields():
    msg = parse(mail.compose(FAILMAIL, JOB, RECORD, kind="failure", tail="line a\nline b",
                             consecutive_failures=2, output_path=RECORD["run_dir"] + "/output.log"))
    assert msg["Subject"] == "[process-control] db1.example.org nightly_backup-1: failed"
    assert msg["To"] == "ops@example.org, dev@example.org"
    assert "pc@example.org" in msg["From"]
    assert msg["Auto-Submitted"] == "auto-generated"
    text = msg.get_content().replace("\r\n", "\n")
    for expected in ("Host:", "db1.example.org", "Job:", "nightly_backup-1",
                     'Nightly "backup"; 100% Injected: header',
                     "Outcome:", "failed", "command 2 (false) exited with status 1",
                     "Exit code:", "Started:", "2026-01-01T00:00:00.000000Z",
                     "Ended:", "2026-01-01T00:01:30.500000Z", "Duration:", "90.500 s",
                     "Run folder:", RECORD["run_dir"], "Consecutive failures: 2",
                     "Command 1:", "/bin/echo 'a; b' 100%", "line a\nline b"):
        assert expected in text, expected
    # The newline in the name did not become a header.
    assert msg["Injected"] is None


def test_recovery_message():
    record = dict(RECORD, outcome="success", reason="", exit_code=0)
    msg = parse(mail.compose(FAILMAIL, JOB, record, kind="recovery", tail="",
                             output_path="/x/output.log"))
    assert msg["Subject"] == "[process-control] db1.example.org nightly_backup-1: success (recovered)"
    assert "succeeded again" in msg.get_content()


def test_signal_is_named():
    record = dict(RECORD, outcome="killed", exit_code=None, signal=9)
    text = parse(mail.compose(FAILMAIL, JOB, record, kind="failure", tail="")).get_content()
    assert "9 (SIGKILL)" in text


def test_no_run_folder_for_a_skipped_run():
    record = dict(RECORD, outcome="skipped", run_dir=None)
    text = parse(mail.compose(FAILMAIL, JOB, record, kind="failure", tail=None)).get_content()
    assert "no run folder" in text


def test_unknown_kind_is_an_error():
    with pytest.raises(mail.MailError):
        mail.compose(FAILMAIL, JOB, RECORD, kind="weird", tail="")


@pytest.mark.parametrize("data, head_cut, expected, cut", [
    (b"", False, "", False),
    (b"a\nb\n", False, "a\nb", False),
    (b"a\nb", False, "a\nb", False),
    (b"partial\nb\nc\n", True, "b\nc", True),      # first line of a cut read is dropped
    (b"only-partial", True, "only-partial", True),
    (b"\xff\xfeok\x00\n", False, "\ufffd\ufffdok\ufffd", False),
    (b"dos line\r\n", False, "dos line", False),
    (b"10%\r50%\r100% done\n", False, "100% done", False),
    (b"\x1b[31mred\x1b[0m \x1b[1;32mbold\x1b[m\n", False, "red bold", False),
    (b"bell\x07 esc\x1b tab\tok\n", False, "bell\ufffd esc\ufffd tab\tok", False),
])
def test_tail_text(data, head_cut, expected, cut):
    assert mail.tail_text(data, truncated_head=head_cut) == (expected, cut)


def test_tail_text_keeps_last_50_lines():
    data = b"".join(b"line %d\n" % i for i in range(1, 201))
    text, cut = mail.tail_text(data, truncated_head=False)
    lines = text.split("\n")
    assert len(lines) == 50 and lines[0] == "line 151" and lines[-1] == "line 200" and cut


def test_read_tail_is_bounded(tmp_path):
    log = tmp_path / "output.log"
    with open(log, "wb") as fh:
        fh.write(b"x" * (5 * 1024 * 1024))  # one 5 MiB line
        fh.write(b"\nlast line\n")
    text, cut = mail.read_tail(log)
    assert cut and text == "last line"
    log.write_bytes(b"y" * (1024 * 1024))  # a single huge line, no newline
    text, cut = mail.read_tail(log)
    assert cut and len(text) == mail.TAIL_BYTES


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_password_file_refused_when_others_can_read(tmp_path, mode):
    pw = tmp_path / "pass word"
    pw.write_text("secret\n")
    pw.chmod(mode)
    with pytest.raises(mail.MailError, match="chmod 600"):
        mail.read_password(pw)


def test_password_file_first_line(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cr;et %\nignored\n")
    pw.chmod(0o600)
    assert mail.read_password(pw) == "s3cr;et %"
    with pytest.raises(mail.MailError, match="cannot open"):
        mail.read_password(tmp_path / "missing")
