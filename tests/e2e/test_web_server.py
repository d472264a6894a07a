"""``process-control-web``, the real command, over loopback HTTP (SPEC §12).

The one-command start, the Host check on the wire, slow clients, the
loopback-only rule, the exit statuses, and (as root) the switch to the
service user before any state is read.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import pctest
import webtest
from webtest import free_port, get, serve, stop, web_site


@pytest.fixture
def site(tmp_path):
    s = web_site(tmp_path / "site; 'q' %s")
    s.job("hello", "name: Hello\ncommand: echo hello\nschedule: '*/5 * * * *'\n")
    assert s.run_job("hello").returncode == 0
    return s


@pytest.fixture
def server(site):
    port = free_port()
    proc = serve(site, port)
    yield f"http://127.0.0.1:{port}", proc
    stop(proc)


def test_one_command_serves_every_page(server, site):
    url, proc = server
    run_id = webtest.history(site, "hello")[-1]["run_id"]
    for path, kind in (("/", "text/html"), ("/jobs/hello", "text/html"), (f"/jobs/hello/runs/{run_id}", "text/html"),
                       ("/jobs.json", "application/json"), ("/metrics", "text/plain"),
                       ("/healthz", "text/plain"), ("/static/style.css", "text/css"),
                       ("/static/tail.js", "text/javascript"), (f"/jobs/hello/runs/{run_id}/output", "text/plain")):
        status, headers, body = get(url + path)
        assert status == 200 and headers["content-type"].startswith(kind), path
        assert headers["x-frame-options"] == "DENY" and "default-src 'self'" in headers["content-security-policy"]
    assert json.loads(get(url + "/", headers={"Accept": "application/json"})[2])["kind"] == "status"
    status, headers, body = get(url + "/jobs/hello", method="HEAD")
    assert status == 200 and body == b""
    assert get(url + "/nope")[0] == 404
    assert get(url + "/jobs/hello/run", method="POST", data=b"csrf=x",
               headers={"Content-Type": "application/x-www-form-urlencoded"})[0] == 403


def test_host_header_is_checked_on_the_wire(server):
    url, _ = server
    for host in ("attacker.example", "attacker.example:8950", "127.0.0.1.nip.io"):
        status, _, body = get(url + "/", headers={"Host": host})
        assert status == 400 and b"web.hosts" in body, host
    assert get(url + "/", headers={"Host": "localhost"})[0] == 200


def test_path_checks_on_the_wire(server, tmp_path):
    url, _ = server
    for path in ("/jobs/%2e%2e/runs/latest", "/jobs/..%2f..%2fetc/runs/latest", "/static/..%2fapp.py",
                 "/jobs/hello/runs/%2e%2e%2f%2e%2e%2fstate/output", "/../../etc/passwd"):
        status, _, body = get(url + path)
        assert status in (400, 404) and b"root:" not in body, path


def test_slow_clients_do_not_stop_the_others(server):
    url, _ = server
    port = int(url.rsplit(":", 1)[1])
    stalled = []
    try:
        for _ in range(20):  # each sends half a request line and waits
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: local")
            stalled.append(sock)
        started = time.monotonic()
        for _ in range(5):
            assert get(url + "/healthz")[0] == 200
        assert time.monotonic() - started < 5
    finally:
        for sock in stalled:
            sock.close()


def test_the_embedded_server_makes_nobody_an_operator(tmp_path):
    """wsgiref copies the server's own environment into every request: a
    REMOTE_USER exported where it was started must not make visitors operators."""
    site = web_site(tmp_path / "s", operators=["alice"])
    site.job("hello", "command: echo hi\n")
    port = free_port()
    proc = subprocess.Popen(pctest.command("process-control-web") + [
        "--config", str(site.config), "--listen", f"127.0.0.1:{port}"],
        env=pctest.command_env({"REMOTE_USER": "alice", "AUTH_TYPE": "Basic"}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        webtest.wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        page = get(f"http://127.0.0.1:{port}/jobs/hello")[2].decode()
        assert 'id="run-now"' not in page and "read-only" in page
        status, _, _ = get(f"http://127.0.0.1:{port}/jobs/hello/run", method="POST", data=b"csrf=x",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 403 and webtest.run_folders(site, "hello") == []
    finally:
        stop(proc)
    assert "read-only" in proc.stderr.read()


def test_sigterm_stops_it_with_status_0(site):
    port = free_port()
    proc = serve(site, port)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert "serving http://127.0.0.1:" in proc.stderr.read()


def test_refuses_a_remote_address_unless_allowed(tmp_path):
    site = web_site(tmp_path / "s")
    site.job("hello", "command: echo hi\n")
    port = free_port()
    refused = subprocess.run(pctest.command("process-control-web") + ["--config", str(site.config),
                                                                      "--listen", f"0.0.0.0:{port}"],
                             env=pctest.command_env(), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "not a loopback address" in refused.stderr and "web.allow_remote" in refused.stderr
    assert refused.stderr.count("\n") == 1  # one line, no traceback
    allowed = web_site(tmp_path / "r", allow_remote=True)
    proc = serve(allowed, port, "--listen", f"0.0.0.0:{port}")  # the last --listen wins
    try:
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        stop(proc)


@pytest.mark.parametrize("args,says", [
    (["--listen", "nonsense"], "write HOST:PORT"),
    (["--config", "/nonexistent/pc.yaml"], "/nonexistent/pc.yaml"),
])
def test_bad_command_lines_exit_2_with_one_line(args, says):
    proc = subprocess.run(pctest.command("process-control-web") + args, env=pctest.command_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and says in proc.stderr
    assert "Traceback" not in proc.stderr


def test_address_in_use_exits_1(server, site):
    url, _ = server
    port = url.rsplit(":", 1)[1]
    proc = subprocess.run(pctest.command("process-control-web") + ["--config", str(site.config),
                                                                   "--listen", f"127.0.0.1:{port}"],
                          env=pctest.command_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "cannot listen on 127.0.0.1" in proc.stderr


# ------------------------------------------------------------ as root: the service user

def _jinja_for_any_user() -> str | None:
    reason = pctest.any_user_skip_reason()
    if reason or pctest.installed():
        return reason
    probe = subprocess.run([pctest.SYSTEM_PYTHON, "-c", "import jinja2"], capture_output=True)
    return None if probe.returncode == 0 else "Debian's python3 has no jinja2 (apt-get install python3-jinja2)"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: switching to a service user")
def test_started_as_root_it_serves_as_the_service_user():
    reason = _jinja_for_any_user()
    if reason:
        pytest.skip(reason)
    user = pctest.ensure_service_user()
    top = Path(tempfile.mkdtemp(prefix="pc-web-root-"))
    try:
        top.chmod(0o755)
        jobs, var = top / "jobs", top / "var"
        jobs.mkdir()
        var.mkdir()
        jobs.chmod(0o755)
        os.chown(var, user.pw_uid, user.pw_gid)
        (jobs / "hello.yaml").write_text("command: echo hi\n")
        (jobs / "hello.yaml").chmod(0o644)
        config = top / "process-control.yaml"
        config.write_text(json.dumps({
            "job_directory": str(jobs), "output_directory": str(var / "log"),
            "state_directory": str(var / "state"), "run_directory": str(var / "run"),
            "output_crontab": "console", "user": user.pw_name, "web": {"operators": ["alice"]}}))
        config.chmod(0o644)
        port = free_port()
        env = pctest.any_user_env({"XDG_CACHE_HOME": str(var / "cache"), "HOME": str(var)})
        proc = subprocess.Popen([*pctest.any_user_command("process-control-web"), "--config", str(config),
                                 "--listen", f"127.0.0.1:{port}"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            webtest.wait_for(lambda: proc.poll() is not None or _answers(port), timeout=30)
            assert proc.poll() is None, proc.stderr.read()
            assert get(f"http://127.0.0.1:{port}/")[0] == 200
            with open(f"/proc/{proc.pid}/status") as f:
                uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
            assert set(uids) == {str(user.pw_uid)}
            secret = var / "state" / "web.secret"
            assert secret.stat().st_uid == user.pw_uid and secret.stat().st_mode & 0o777 == 0o600
        finally:
            stop(proc)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
