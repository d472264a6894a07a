"""Helpers of the web page's tests (every tier): a site, records, WSGI calls, HTTP.

Imported as ``webtest``. ``web_site`` is a ``pctest.Site`` whose config has a
``web`` section and whose ``runner_path`` starts the run-job under test from
cron's bare environment (the page's "run now" starts it exactly so).
``call`` drives the WSGI application in-process, with the environ a WSGI
server makes (``REMOTE_USER`` is what a front server sets after it
authenticated the user); ``serve``/``get`` drive the real
``process-control-web`` over loopback.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pctest
from pctest import REPO, Site, free_port, session_env, wait_for  # noqa: F401 (wait_for: for the tests)

# Text that must stay text everywhere: markup, a script, terminal control sequences.
HOSTILE_TEXT = ("<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned=2\">"
                " \x1b[31mred\x1b[0m \x1b]0;title\x07 & 'q' \"dq\"")


def runner_wrapper(folder: Path) -> Path:
    """A run-job usable from cron's bare environment: the installed one
    (``PC_INSTALLED=1``), else this checkout's on this interpreter."""
    if pctest.installed():
        return Path(pctest.command("run-job")[0])
    wrapper = folder / "run-job"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# run-job from the source tree under test, for cron's bare environment\n"
        f"PYTHONPATH={shlex.quote(str(REPO))}\n"
        "export PYTHONPATH\n"
        f"exec {shlex.quote(sys.executable)} -m run_job \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


def web_site(root: Path, **web: object) -> Site:
    """A site in ``root`` with ``web`` settings, whose run-job works from cron's
    environment (its wrapper beside ``root``: runner_path allows no spaces)."""
    root.mkdir(parents=True, exist_ok=True)
    bin_dir = root.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    runner = runner_wrapper(bin_dir)
    return Site(root, web=dict(web), runner_path=str(runner),
                # cron gives an entry the user's HOME: the session's folders instead
                cron_environment={"XDG_CACHE_HOME": session_env()["XDG_CACHE_HOME"]})


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def run_id(ts: datetime, pid: int = 4242) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S.") + f"{ts.microsecond:06d}Z-{pid}"


def record(site: Site, slug: str, *, started: datetime, outcome: str = "success",
           exit_code: int | None = 0, reason: str = "", pid: int = 4242, **extra: object) -> dict:
    """A finished (or running) run record with every field of status.json."""
    rid = run_id(started, pid)
    ended = None if outcome == "running" else started + timedelta(seconds=2)
    rec = {"job": slug, "run_id": rid, "runner": "local", "host": "web-test", "user": pctest.USER,
           "pid": pid, "slurm_job_id": None, "command": ["/bin/true"], "started_at": iso(started),
           "ended_at": iso(ended) if ended else None, "duration_s": 2.0 if ended else None,
           "exit_code": None if outcome == "running" else exit_code, "signal": None,
           "outcome": outcome, "reason": reason, "job_file_sha256": "0" * 64,
           "run_dir": str(site.output / slug / rid), "pgid": None,
           "supervisor_start_time": None, "alerts": {}}
    rec.update(extra)
    return rec


def write_run(site: Site, rec: dict, output: bytes = b"", *, latest: bool = True) -> Path:
    """The run folder of ``rec`` with its status.json and output.log."""
    folder = site.output / rec["job"] / rec["run_id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "status.json").write_text(json.dumps(rec, indent=2))
    (folder / "output.log").write_bytes(output)
    if latest:
        link = site.output / rec["job"] / "latest"
        if link.is_symlink():
            link.unlink()
        link.symlink_to(rec["run_id"])
    return folder


def write_history(site: Site, slug: str, entries: list[dict]) -> None:
    site.state.mkdir(parents=True, exist_ok=True)
    (site.state / f"{slug}.history.json").write_text(json.dumps(entries))


# ------------------------------------------------------------ WSGI, in-process


class Response:
    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.code = int(status[:3])
        self.headers = {name.lower(): value for name, value in headers}
        self.header_list = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> object:
        return json.loads(self.body)


def environ(method: str, path: str, *, host: str = "localhost:8950", user: str | None = None,
            body: bytes = b"", content_type: str | None = None, headers: dict | None = None,
            script_name: str = "") -> dict:
    """The environ a WSGI server makes for a request (PATH_INFO percent-decoded)."""
    raw_path, _, query = path.partition("?")
    env = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": script_name,
        "PATH_INFO": urllib.parse.unquote(raw_path, encoding="latin-1"),
        "QUERY_STRING": query, "SERVER_NAME": "localhost", "SERVER_PORT": "8950",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)) if body else "",
    }
    if host is not None:
        env["HTTP_HOST"] = host
    if content_type:
        env["CONTENT_TYPE"] = content_type
    if user is not None:
        env["REMOTE_USER"] = user
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call(app, method: str, path: str, **kwargs) -> Response:
    got: dict = {}

    def start_response(status: str, headers: list, exc_info=None) -> None:
        got["status"], got["headers"] = status, headers

    result = app(environ(method, path, **kwargs), start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return Response(got["status"], got["headers"], body)


def post(app, path: str, fields: dict, **kwargs) -> Response:
    body = urllib.parse.urlencode(fields).encode()
    return call(app, "POST", path, body=body, content_type="application/x-www-form-urlencoded",
                **kwargs)


def csrf_of(page: str) -> str:
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start:page.index('"', start)]


# ------------------------------------------------------------ real servers


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError) as err:
            last = err
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s: {last}")


def serve(site: Site, port: int, *extra: str) -> subprocess.Popen:
    """``process-control-web`` for ``site`` on 127.0.0.1:``port``, answering."""
    proc = subprocess.Popen(pctest.command("process-control-web") + ["--config", str(site.config), "--listen",
                                             f"127.0.0.1:{port}", *extra],
                            env=pctest.command_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
    return proc.returncode


def get(url: str, *, headers: dict | None = None, method: str = "GET", data: bytes | None = None
        ) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one HTTP request; errors are answers too."""
    request = urllib.request.Request(url, headers=headers or {}, method=method, data=data)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def run_folders(site: Site, slug: str) -> list[Path]:
    folder = site.output / slug
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name != "latest" and not p.name.startswith("."))


def history(site: Site, slug: str) -> list[dict]:
    path = site.state / f"{slug}.history.json"
    return json.loads(path.read_text()) if path.exists() else []


def audit(site: Site) -> list[dict]:
    path = site.state / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def start_run(site: Site, slug: str) -> subprocess.Popen:
    """``run-job --job SLUG`` in the background (as cron would start it)."""
    return subprocess.Popen(pctest.command("run-job") + ["--config", str(site.config), "--job", slug],
                            env=pctest.command_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def running_run_id(site: Site, slug: str) -> str | None:
    for entry in reversed(history(site, slug)):
        if entry.get("outcome") == "running":
            return entry["run_id"]
    return None
