"""The web page as the package installs it: the unit (shipped, not enabled),
the WSGI file, Debian's Jinja2, and the command serving as the service user."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from pkgtools import packaged  # noqa: F401  (fixtures)
from pkgtools import CLEAN_ENV, SERVICE_USER, STATE_DIR, run

UNIT = Path("/lib/systemd/system/process-control-web.service")


def test_unit_is_shipped_not_enabled() -> None:
    text = UNIT.read_text()
    assert "User=process-control" in text and "ExecStart=/usr/bin/process-control-web" in text
    assert "KillMode=process" in text  # runs started from the page outlive a restart
    wants = list(Path("/etc/systemd/system").rglob("process-control-web.service"))
    assert wants == [], wants  # not enabled by the package


def test_wsgi_file_and_debian_jinja2() -> None:
    wsgi = Path("/usr/share/process-control/process-control-web.wsgi")
    compile(wsgi.read_text(), str(wsgi), "exec")
    probe = subprocess.run(["/usr/bin/python3", "-P", "-c", "import jinja2, run_job.web.app;"
                            "print(jinja2.__file__)"], capture_output=True, text=True,
                           env=dict(CLEAN_ENV), cwd="/", timeout=60)
    assert probe.returncode == 0, probe.stderr
    owner = subprocess.run(["dpkg", "-S", probe.stdout.strip()], capture_output=True, text=True)
    assert owner.stdout.startswith("python3-jinja2:"), owner.stdout


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serves_the_installed_jobs_as_the_service_user() -> None:
    port = _port()
    proc = subprocess.Popen(["/usr/bin/process-control-web", "--listen", f"127.0.0.1:{port}"],
                            env=dict(CLEAN_ENV), cwd="/", stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/jobs.json", timeout=10) as r:
                    doc = json.load(r)
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert doc["kind"] == "status"
        with open(f"/proc/{proc.pid}/status") as f:
            uid = next(line for line in f if line.startswith("Uid:")).split()[1]
        import pwd

        assert int(uid) == pwd.getpwnam(SERVICE_USER).pw_uid
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    assert run(["/usr/bin/process-control-web", "--version"]).stdout.startswith("process-control-web ")
    assert not (STATE_DIR / "web.secret").exists()  # no operators configured: no secret
