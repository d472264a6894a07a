"""The real consumers of the monitoring (SPEC §11), started by the tests as
foreground children in tmp folders: Debian's Icinga 2 (``icinga2 daemon``
with a config of its own, its API on a free loopback port) and Debian's
prometheus-node-exporter (textfile collector only). Neither touches
/etc/icinga2, /var/lib/icinga2 or any system service; each is stopped at
the end of its test, with its whole process group.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from pctest import free_port

ICINGA2 = shutil.which("icinga2") or "/usr/sbin/icinga2"
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
API_USER, API_PASSWORD = "pc-test", "pc-test-secret"
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def need(path: str, package: str) -> None:
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not installed (Debian's {package}; .ci/run installs it)")


def icinga_string(text: str) -> str:
    """A string literal of the Icinga 2 config language."""
    return json.dumps(text)


def stop_group(proc: subprocess.Popen) -> None:
    """TERM the process group (Icinga 2 forks an umbrella and a worker), then KILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=15)


class Icinga:
    """One Icinga 2 daemon with a host and one service per check: each
    service's CheckCommand runs ``argv`` with ``env``, every second."""

    def __init__(self, root: Path, services: dict[str, tuple[list[str], dict[str, str]]]) -> None:
        need(ICINGA2, "icinga2")
        self.root = root
        self.port = free_port()
        self.log = root / "icinga2.log"
        dirs = {name: root / name for name in ("data", "log", "cache", "spool", "run")}
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        (dirs["run"] / "icinga2").mkdir(exist_ok=True)
        self.defines = [f"-DDataDir={dirs['data']}", f"-DLogDir={dirs['log']}",
                        f"-DCacheDir={dirs['cache']}", f"-DSpoolDir={dirs['spool']}",
                        f"-DInitRunDir={dirs['run']}", "-DRunAsUser=root", "-DRunAsGroup=root"]
        certs = dirs["data"] / "certs"
        certs.mkdir(exist_ok=True)
        made = subprocess.run([ICINGA2, "pki", "new-cert", "--cn", "pc-test", "--key",
                               str(certs / "pc-test.key"), "--cert", str(certs / "pc-test.crt"),
                               *self.defines], capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stdout + made.stderr
        shutil.copy(certs / "pc-test.crt", certs / "ca.crt")  # self-signed: its own CA
        lines = [
            "include <itl>",
            'const NodeName = "pc-test"',
            'const ZoneName = "pc-test"',
            "object Endpoint NodeName {}",
            "object Zone ZoneName { endpoints = [ NodeName ] }",
            f'object ApiListener "api" {{ bind_host = "127.0.0.1"; bind_port = {self.port};'
            " accept_commands = false; accept_config = false }",
            f"object ApiUser {icinga_string(API_USER)} {{ password = {icinga_string(API_PASSWORD)};"
            ' permissions = [ "objects/query/*", "console" ] }',
            'object CheckerComponent "checker" {}',
            'object CheckCommand "pc-host-alive" { command = [ "/bin/true" ] }',
            'object Host "pc-host" { check_command = "pc-host-alive"; enable_active_checks = false }',
        ]
        for name, (argv, env) in services.items():
            command = ", ".join(icinga_string(a) for a in argv)
            environment = "; ".join(f"{key} = {icinga_string(value)}" for key, value in env.items())
            lines += [
                f"object CheckCommand {icinga_string('pc-' + name)} {{",
                f"  command = [ {command} ]",
                f"  env = {{ {environment} }}",
                "  timeout = 60s",
                "}",
                f"object Service {icinga_string(name)} {{ host_name = \"pc-host\";"
                f" check_command = {icinga_string('pc-' + name)}; check_interval = 1s;"
                " retry_interval = 1s; max_check_attempts = 1 }",
            ]
        self.config = root / "icinga2.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Icinga":
        self.started = time.time()
        self.log_handle = open(self.log, "wb")
        # A clean environment: Icinga 2 appends a CheckCommand's env to its
        # own, and Python keeps the first of two equal names (an inherited
        # SLURM_CONF would win over the service's).
        self.proc = subprocess.Popen([ICINGA2, "daemon", "-c", str(self.config), *self.defines],
                                     stdout=self.log_handle, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     env=CLEAN_ENV)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.api("GET", "/v1/objects/hosts/pc-host", attrs="name")
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"icinga2 did not start:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.log_handle.close()

    def api(self, method: str, path: str, **query: str) -> dict:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # its own self-signed certificate, on loopback
        url = f"https://127.0.0.1:{self.port}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, method=method)
        token = base64.b64encode(f"{API_USER}:{API_PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Accept", "application/json")
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return json.load(response)

    def result(self, service: str, *, after: float | None = None, timeout: float = 60) -> dict:
        """The service's ``last_check_result`` from a check that started after
        ``after`` (default: the daemon's start)."""
        after = self.started if after is None else after
        deadline = time.monotonic() + timeout
        while True:
            found = self.api("GET", f"/v1/objects/services/pc-host!{service}",
                             attrs="last_check_result")["results"][0]["attrs"]["last_check_result"]
            if found and found.get("execution_start", 0) > after:
                return found
            if time.monotonic() > deadline:
                pytest.fail(f"no check result of {service} after {after}: {found}")
            time.sleep(0.3)

    def parse_perfdata(self, item: str) -> dict:
        """Icinga's own parser (``parse_performance_data``) on one value."""
        answer = self.api("POST", "/v1/console/execute-script",
                          command=f"parse_performance_data({icinga_string(item)})")["results"][0]
        assert answer["code"] == 200, answer
        return answer["result"]

    def complaints(self) -> list[str]:
        """Warning and critical lines of its log (none are expected)."""
        return [line for line in self.log.read_text(errors="replace").splitlines()
                if "warning/" in line or "critical/" in line]


class NodeExporter:
    """prometheus-node-exporter with the textfile collector alone."""

    def __init__(self, directory: Path, log: Path) -> None:
        need(NODE_EXPORTER, "prometheus-node-exporter")
        self.port = free_port()
        self.log = log
        self.handle = open(log, "wb")
        self.proc = subprocess.Popen(
            [NODE_EXPORTER, "--collector.disable-defaults", "--collector.textfile",
             f"--collector.textfile.directory={directory}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.scrape()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"node_exporter did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as response:
            return response.read().decode()

    def stop(self) -> None:
        stop_group(self.proc)
        self.handle.close()


def promtool_check(text: str) -> subprocess.CompletedProcess:
    """``promtool check metrics`` on ``text`` (stdin): exit 0 without errors;
    lint findings are printed on stderr."""
    need(PROMTOOL, "prometheus")
    return subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
