"""Failure and recovery mail through a real SMTP server (aiosmtpd) on loopback.

Each test starts its own server on a free port and calls ``alerts.on_end``
the way the controller does, feeding it back its own history. Also: TLS
(STARTTLS and implicit) with login, SMTP down, a silent server, and a server
that dribbles bytes forever: ``on_end`` returns within the mail timeout and
records the error.
"""

from __future__ import annotations

import email
import socket
import subprocess
import threading
import time
from email import policy
from pathlib import Path

import pytest

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd is not installed")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

from pctest import config_record, free_port  # noqa: E402
from run_job.alerts import notify as alerts  # noqa: E402
from run_job.model import Config, FailMail, Job, MailConfig  # noqa: E402

# aiosmtpd warns when a test server allows AUTH without TLS (implicit TLS case).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

HOST = "127.0.0.1"
SLUG = "nightly_job-1"
ODD = "we'ird; 100% \"dir\""  # adversarial path component


class Recorder:
    """aiosmtpd handler keeping every message it accepted."""

    def __init__(self) -> None:
        self.messages: list[tuple[object, email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        msg = email.message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append((envelope, msg))
        return "250 OK"


@pytest.fixture
def smtp_server():
    servers = []

    def start(**kwargs):
        handler = Recorder()
        port = free_port()
        controller = aiosmtpd_controller.Controller(handler, hostname=HOST, port=port, **kwargs)
        controller.start()
        servers.append(controller)
        return handler, port

    yield start
    for controller in servers:
        controller.stop()


def make_config(tmp_path: Path, port: int, **mail) -> Config:
    mail.setdefault("timeout", 5.0)
    return config_record(tmp_path / ODD, user="root",
                         mail=MailConfig(smtp_host=HOST, smtp_port=port, **mail))


def make_job(tmp_path: Path, threshold: int = 1, failmail: bool = True, **kw) -> Job:
    return Job(slug=SLUG, path=tmp_path / ODD / "jobs" / f"{SLUG}.yaml", sha256="0",
               commands=(("/bin/false",),), command_text=("/bin/false 'x; y' 100%",),
               name="Nightly \"job\"; 100%", failure_threshold_for_mail=threshold,
               failmail=FailMail("pc@example.org", ("ops@example.org", "dev@example.org"))
               if failmail else None, **kw)


class Runs:
    """Plays the controller: run records with output, history fed back."""

    def __init__(self, tmp_path: Path, config: Config, job: Job) -> None:
        self.tmp_path, self.config, self.job = tmp_path, config, job
        self.history: list[dict] = []

    def record(self, outcome: str, *, lines: int = 200) -> dict:
        n = len(self.history) + 1
        run_id = f"20260101T0000{n:02d}.000000Z-{n}"
        run_dir = self.config.output_directory / SLUG / run_id
        run_dir.mkdir(parents=True)
        with open(run_dir / "output.log", "wb") as fh:
            for i in range(1, lines + 1):
                fh.write(b"output line %d \xff\n" % i)
        return {"job": SLUG, "run_id": run_id, "runner": "local", "host": "testhost",
                "user": "root", "pid": 1, "slurm_job_id": None,
                "command": list(self.job.command_text),
                "started_at": "2026-01-01T00:00:00.000000Z",
                "ended_at": "2026-01-01T00:00:02.250000Z", "duration_s": 2.25,
                "exit_code": 0 if outcome == "success" else 1, "signal": None,
                "outcome": outcome, "reason": "" if outcome == "success" else "exited with status 1",
                "job_file_sha256": "0", "run_dir": str(run_dir)}

    def run(self, outcome: str) -> dict:
        record = self.record(outcome)
        result = alerts.on_end(self.config, self.job, record, list(self.history))
        record["alerts"] = result
        self.history.append(record)
        return result


def test_failure_mail_content(tmp_path, smtp_server):
    handler, port = smtp_server()
    runs = Runs(tmp_path, make_config(tmp_path, port), make_job(tmp_path))
    result = runs.run("failed")
    assert result["mail"]["sent"] is True, result
    assert result["mail"]["kind"] == "failure" and result["mail"]["error"] is None
    assert len(handler.messages) == 1
    envelope, msg = handler.messages[0]
    assert envelope.mail_from == "pc@example.org"
    assert sorted(envelope.rcpt_tos) == ["dev@example.org", "ops@example.org"]
    assert msg["Subject"] == f"[process-control] testhost {SLUG}: failed"
    text = msg.get_content().replace("\r\n", "\n")
    record = runs.history[0]
    for expected in ("testhost", SLUG, 'Nightly "job"; 100%', "exited with status 1",
                     "Exit code:", "2026-01-01T00:00:00.000000Z",
                     "2026-01-01T00:00:02.250000Z", "2.250 s", record["run_dir"],
                     "/bin/false 'x; y' 100%"):
        assert expected in text, expected
    output = [line for line in text.split("\n") if line.startswith("output line")]
    assert len(output) == 50
    assert output[0] == "output line 151 \ufffd" and output[-1] == "output line 200 \ufffd"
    assert "output line 150 " not in text


def test_threshold_then_every_failure_then_one_recovery(tmp_path, smtp_server):
    handler, port = smtp_server()
    runs = Runs(tmp_path, make_config(tmp_path, port), make_job(tmp_path, threshold=3))
    assert runs.run("failed")["mail"] is None
    assert runs.run("timed_out")["mail"] is None
    assert len(handler.messages) == 0
    third = runs.run("killed")  # at the threshold
    assert third["mail"]["sent"] and third["consecutive_failures"] == 3
    fourth = runs.run("failed")  # after it: mailed again
    assert fourth["mail"]["sent"] and fourth["consecutive_failures"] == 4
    recovery = runs.run("success")
    assert recovery["mail"]["kind"] == "recovery" and recovery["mail"]["sent"]
    assert runs.run("success")["mail"] is None  # only one recovery mail
    subjects = [m["Subject"] for _, m in handler.messages]
    assert subjects == [f"[process-control] testhost {SLUG}: killed",
                        f"[process-control] testhost {SLUG}: failed",
                        f"[process-control] testhost {SLUG}: success (recovered)"]
    assert "succeeded again" in handler.messages[-1][1].get_content()


def test_success_then_failure_below_threshold_sends_no_recovery(tmp_path, smtp_server):
    handler, port = smtp_server()
    runs = Runs(tmp_path, make_config(tmp_path, port), make_job(tmp_path, threshold=2))
    runs.run("failed")
    result = runs.run("success")
    assert result["mail"] is None and result["events"] == ["success", "recovery"]
    assert handler.messages == []


def test_no_failmail_no_mail(tmp_path, smtp_server):
    handler, port = smtp_server()
    runs = Runs(tmp_path, make_config(tmp_path, port), make_job(tmp_path, failmail=False))
    assert runs.run("failed")["mail"] is None
    assert handler.messages == []


def test_skipped_without_overtime_is_mailed_without_run_folder(tmp_path, smtp_server):
    handler, port = smtp_server()
    config = make_config(tmp_path, port)
    job = make_job(tmp_path)
    record = {"job": SLUG, "run_id": "r1", "host": "testhost", "outcome": "skipped",
              "reason": "the previous run is still running", "exit_code": None,
              "signal": None, "run_dir": None, "command": ["/bin/false"]}
    result = alerts.on_end(config, job, record, [])
    assert result["mail"]["sent"], result
    assert handler.messages[0][1]["Subject"] == f"[process-control] testhost {SLUG}: skipped"
    # Under allow_overtime the same skip is quiet.
    quiet = alerts.on_end(config, make_job(tmp_path, allow_overtime=True), record, [])
    assert quiet["mail"] is None and quiet["counts_as"] == "neutral"
    assert len(handler.messages) == 1


def test_recipient_refused_is_recorded(tmp_path, smtp_server):
    class Refuser(Recorder):
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
            return "550 no such user"

    handler = Refuser()
    port = free_port()
    controller = aiosmtpd_controller.Controller(handler, hostname=HOST, port=port)
    controller.start()
    try:
        runs = Runs(tmp_path, make_config(tmp_path, port), make_job(tmp_path))
        result = runs.run("failed")
    finally:
        controller.stop()
    assert result["mail"]["sent"] is False
    assert "refused every recipient" in result["mail"]["error"]
    assert "550" in result["mail"]["error"]


# --------------------------------------------------------------------------
# Unreachable, silent and dribbling servers: bounded in time, recorded
# --------------------------------------------------------------------------

def test_smtp_down(tmp_path, capfd, caplog):
    port = free_port()  # nothing listens there any more
    runs = Runs(tmp_path, make_config(tmp_path, port, timeout=3.0), make_job(tmp_path))
    started = time.monotonic()
    result = runs.run("failed")
    assert time.monotonic() - started < 3.0
    assert result["mail"]["sent"] is False
    assert "refused the connection" in result["mail"]["error"]
    # logsetup: stderr without a logging config, else the process-control logger
    logged = capfd.readouterr().err + caplog.text
    assert "failure mail for job nightly_job-1 not sent" in logged
    # A failure mail that was never sent earns no recovery mail.
    assert runs.run("success")["mail"] is None


@pytest.fixture
def silent_server():
    """Accepts TCP connections (kernel backlog) and never says a word."""
    sock = socket.socket()
    sock.bind((HOST, 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


def test_silent_server_returns_within_timeout(tmp_path, silent_server):
    runs = Runs(tmp_path, make_config(tmp_path, silent_server, timeout=1.5), make_job(tmp_path))
    started = time.monotonic()
    result = runs.run("failed")
    elapsed = time.monotonic() - started
    assert 1.0 < elapsed < 1.5 + 2.5, elapsed
    assert result["mail"]["sent"] is False
    assert "did not answer within 1.5 s" in result["mail"]["error"]


@pytest.fixture
def dribbling_server():
    """Sends one byte every 0.2 s and never a whole line: per-read timeouts never fire."""
    sock = socket.socket()
    sock.bind((HOST, 0))
    sock.listen(4)
    stop = threading.Event()

    def serve():
        sock.settimeout(0.2)
        conns = []
        while not stop.is_set():
            try:
                conns.append(sock.accept()[0])
            except OSError:
                pass
            for conn in conns:
                try:
                    conn.sendall(b"2")
                except OSError:
                    pass
        for conn in conns:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(5)
    sock.close()


def test_dribbling_server_is_cut_at_the_deadline(tmp_path, dribbling_server):
    runs = Runs(tmp_path, make_config(tmp_path, dribbling_server, timeout=1.5),
                make_job(tmp_path))
    started = time.monotonic()
    result = runs.run("failed")
    elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 2.5, elapsed
    assert result["mail"]["sent"] is False and "within 1.5 s" in result["mail"]["error"]


# --------------------------------------------------------------------------
# TLS and login
# --------------------------------------------------------------------------

@pytest.fixture
def certificate(tmp_path, monkeypatch):
    """A self-signed certificate for 127.0.0.1, trusted through SSL_CERT_FILE."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "2",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True, timeout=60)
    except (FileNotFoundError, subprocess.CalledProcessError) as err:
        pytest.skip(f"openssl cannot make a test certificate: {err}")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    import ssl
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def password_file(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "smtp pass; word"
    path.write_text("s3cret %;'\n")
    path.chmod(mode)
    return path


class Authenticator:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes, bytes]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            self.seen.append((mechanism, auth_data.login, auth_data.password))
            ok = auth_data.login == b"pc" and auth_data.password == b"s3cret %;'"
            # handled=False: aiosmtpd itself answers 235 or 535.
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)


def test_starttls_with_login(tmp_path, smtp_server, certificate):
    auth = Authenticator()
    handler, port = smtp_server(tls_context=certificate, require_starttls=True,
                                authenticator=auth, auth_required=True)
    config = make_config(tmp_path, port, starttls=True, username="pc",
                         password_file=password_file(tmp_path))
    result = Runs(tmp_path, config, make_job(tmp_path)).run("failed")
    assert result["mail"]["sent"], result
    assert auth.seen and auth.seen[0][1:] == (b"pc", b"s3cret %;'")
    assert len(handler.messages) == 1


def test_starttls_required_but_not_configured(tmp_path, smtp_server, certificate):
    handler, port = smtp_server(tls_context=certificate, require_starttls=True)
    result = Runs(tmp_path, make_config(tmp_path, port), make_job(tmp_path)).run("failed")
    assert result["mail"]["sent"] is False and "530" in result["mail"]["error"]
    assert handler.messages == []


def test_implicit_tls_with_login(tmp_path, smtp_server, certificate):
    auth = Authenticator()
    # aiosmtpd does not count implicit TLS as TLS for its AUTH rule.
    handler, port = smtp_server(ssl_context=certificate, authenticator=auth, auth_required=True,
                                auth_require_tls=False)
    config = make_config(tmp_path, port, ssl=True, username="pc",
                         password_file=password_file(tmp_path))
    result = Runs(tmp_path, config, make_job(tmp_path)).run("failed")
    assert result["mail"]["sent"], result
    assert len(handler.messages) == 1


def test_wrong_password_is_recorded(tmp_path, smtp_server, certificate):
    handler, port = smtp_server(tls_context=certificate, require_starttls=True,
                                authenticator=Authenticator(), auth_required=True)
    pw = tmp_path / "pw"
    pw.write_text("wrong\n")
    pw.chmod(0o600)
    config = make_config(tmp_path, port, starttls=True, username="pc", password_file=pw)
    result = Runs(tmp_path, config, make_job(tmp_path)).run("failed")
    assert result["mail"]["sent"] is False and "535" in result["mail"]["error"]


def test_readable_password_file_refused_before_connecting(tmp_path, smtp_server, certificate):
    auth = Authenticator()
    handler, port = smtp_server(tls_context=certificate, require_starttls=True,
                                authenticator=auth, auth_required=True)
    config = make_config(tmp_path, port, starttls=True, username="pc",
                         password_file=password_file(tmp_path, 0o644))
    result = Runs(tmp_path, config, make_job(tmp_path)).run("failed")
    assert result["mail"]["sent"] is False and "chmod 600" in result["mail"]["error"]
    assert auth.seen == [] and handler.messages == []


def test_untrusted_certificate_is_an_error(tmp_path, smtp_server, certificate, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE")
    handler, port = smtp_server(tls_context=certificate, require_starttls=True)
    config = make_config(tmp_path, port, starttls=True)
    result = Runs(tmp_path, config, make_job(tmp_path)).run("failed")
    assert result["mail"]["sent"] is False
    assert "certificate" in result["mail"]["error"].lower()
    assert handler.messages == []
