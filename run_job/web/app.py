"""The WSGI application of the status page and HTTP API (SPEC §12).

``make_app(config_path=None)`` builds it for one config (looked up as every
command does: ``--config``, ``$PROCESS_CONTROL_CONFIG``, then
``/etc/process-control.yaml``); ``application`` is the one for the default
lookup, made when a WSGI server first asks for it (``gunicorn
run_job.web.app:application``; Apache mod_wsgi: ``application =
make_app("/etc/process-control.yaml")`` in a .wsgi file). The config is read
once, when the application is made: restart the server after changing it.
Job files, histories, pauses and runs are read at every request.

Routing is a small table of regular expressions matched against
``PATH_INFO``: eleven routes do not need a framework. Every slug and run id
is checked (``jobs.is_slug``, ``records.is_run_id``) before anything is
looked up with it.

One request reads the state once: ``status.load_states`` and
``status.collect_status`` (the rows of ``run-job --status --json``) give one
snapshot that the page, its JSON, ``/metrics`` and the job pages all use.
Concurrent requests share it: a snapshot is served for at most
``SNAPSHOT_AGE`` (1 s, from the start of its load; a fresh one is loaded in
the background from half that age on) and dropped after every operator
action, so 50 open pages polling a 1,000-job site cost at most two loads a
second, not fifty; the footer of every page says when its state was read.
What is made from a snapshot alone (the jobs table and page, the JSON
document, the metrics, and their gzip for clients that accept it) is made
once per snapshot.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, quote

from run_job import __version__, clock
from run_job.errors import ProcessControlError, UsageError
from run_job.printable import printable_lines
from run_job.web import security, views

SNAPSHOT_AGE = 1.0  # seconds a loaded state may be reused by other requests
MAX_FORM = 16 * 1024  # bytes of a POSTed form
HERE = os.path.dirname(os.path.abspath(__file__))
STATIC_TYPES = {"style.css": "text/css; charset=utf-8", "tail.js": "text/javascript; charset=utf-8",
                "favicon.svg": "image/svg+xml"}
READ = ("GET", "HEAD")

# (name, methods, pattern of PATH_INFO)
ROUTES = [
    ("jobs", READ, r"/(?:jobs(?P<json>\.json)?)?"),
    ("job", READ, r"/jobs/(?P<slug>[^/]+?)(?P<json>\.json)?"),
    ("run", READ, r"/jobs/(?P<slug>[^/]+)/runs/(?P<run>[^/]+?)(?P<json>\.json)?"),
    ("output", READ, r"/jobs/(?P<slug>[^/]+)/runs/(?P<run>[^/]+)/output(?P<json>\.json)?"),
    ("action", ("POST",), r"/jobs/(?P<slug>[^/]+)/(?P<action>run|kill|pause|resume)"),
    ("metrics", READ, r"/metrics"),
    ("healthz", READ, r"/healthz"),
    ("static", READ, r"/static/(?P<name>[^/]+)"),
]
_ROUTES = [(name, methods, re.compile(pattern)) for name, methods, pattern in ROUTES]

DONE = {  # ?did= after an action: fixed texts only (nothing from the URL is shown)
    "run": "Run started: run-job was started as cron starts it; the run appears here within seconds.",
    "killed": "The running run was stopped.",
    "kill-none": "No run was running.",
    "kill-pending": "Kill requested: the run is being stopped (TERM, kill_grace, KILL).",
    "pause": "Paused.",
    "resume": "Resumed.",
    "resume-none": "The job was not paused.",
}


class HTTPError(Exception):
    def __init__(self, status: str, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class Snapshot:
    """The state of every job, shared by the requests of one process.

    A snapshot is never served older than ``max_age`` (its age counts from
    the start of its load). Once it is older than half that, the first
    request to see it starts a fresh load in a thread and is answered from
    it meanwhile, so that polling pages do not wait for loads; a request
    that finds it older than ``max_age`` waits for a load. One load at a
    time: concurrent requests share it. ``invalidate`` drops the snapshot
    (after an operator action), and a load begun before that is not kept.
    """

    def __init__(self, load: Callable[[], Any], max_age: float) -> None:
        self._load = load
        self._max_age = max_age
        self._lock = threading.Lock()  # guards the fields below
        self._loading = threading.Lock()  # held while a load runs
        self._value: Any = None
        self._at = float("-inf")
        self._dropped = float("-inf")

    def get(self) -> Any:
        with self._lock:
            value, age = self._value, time.monotonic() - self._at
        if value is not None and age <= self._max_age:
            if age > self._max_age / 2 and self._loading.acquire(blocking=False):
                threading.Thread(target=self._background, name="process-control-web state",
                                 daemon=True).start()
            return value
        with self._loading:
            with self._lock:
                if self._value is not None and time.monotonic() - self._at <= self._max_age:
                    return self._value  # loaded by another request meanwhile
            return self._refresh()

    def _refresh(self) -> Any:
        started = time.monotonic()
        value = self._load()
        with self._lock:
            if started >= self._dropped and started > self._at:
                self._value, self._at = value, started
        return value

    def _background(self) -> None:
        try:
            self._refresh()
        except Exception as err:  # noqa: BLE001 - the next request loads again and reports it
            print(f"process-control-web: loading the state failed: {type(err).__name__}: {err}",
                  file=sys.stderr)
        finally:
            self._loading.release()

    def invalidate(self) -> None:
        with self._lock:
            self._value = None
            self._dropped = time.monotonic()


class State:
    """One snapshot: when it was read, every JobState and the status rows.

    ``made`` keeps what is made from it alone for everyone (the jobs table,
    the JSON document, the metrics text), so that fifty pages polling in
    the same second render a 1,000-job table once, not fifty times.
    """

    MADE_LIMIT = 64  # things kept per snapshot (filters and users come from requests)

    def __init__(self, now: Any, states: list[Any], rows: list[dict[str, Any]]) -> None:
        self.now = now
        self.states = states
        self.rows = rows
        self.by_slug = {s.job: s for s in states}
        self.row_by_slug = {r["job"]: r for r in rows}
        self._made: dict[Any, Any] = {}
        self._lock = threading.RLock()  # a page is made of a table made here too

    def made(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._made:
                if len(self._made) >= self.MADE_LIMIT:
                    return make()
                self._made[key] = make()
            return self._made[key]


class Request:
    def __init__(self, environ: dict[str, Any], operators: frozenset[str]) -> None:
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        self.path = environ.get("PATH_INFO") or "/"
        self.base = quote(environ.get("SCRIPT_NAME") or "", safe="/")
        self.query = parse_qs(environ.get("QUERY_STRING") or "", max_num_fields=20)
        # REMOTE_USER is set by the front web server after it authenticated
        # the user (never taken from a request header)
        user = environ.get("REMOTE_USER")
        self.user = user if isinstance(user, str) and user else None
        self.operator = self.user is not None and self.user in operators

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self, suffix: str | None) -> bool:
        return bool(suffix) or views.wants_json(self.environ.get("HTTP_ACCEPT"))


class WebApp:
    """The WSGI callable for one config."""

    def __init__(self, config: Any, config_path: str | None, *,
                 snapshot_age: float = SNAPSHOT_AGE) -> None:
        from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

        from run_job.config.schedule import host_zone

        self.config = config
        self.config_path = config_path
        self.hosts = security.allowed_hosts(config.web.hosts)
        self.operators = frozenset(config.web.operators)
        self.show_output = bool(config.web.show_output)
        # the CSRF secret exists only where someone may act
        self.secret = security.load_secret(config.state_directory) if self.operators else b""
        self.zone = host_zone()
        self.hostname = os.uname().nodename
        self.templates = Environment(
            loader=FileSystemLoader(os.path.join(HERE, "templates")),
            autoescape=select_autoescape(["html"], default_for_string=True, default=True),
            undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, finalize=_shown)
        self.static = {}
        for name in STATIC_TYPES:
            with open(os.path.join(HERE, "static", name), "rb") as f:
                self.static[name] = f.read()
        self._base = ""  # SCRIPT_NAME of the latest jobs page request
        self.snapshot = Snapshot(self._load, snapshot_age)

    # ------------------------------------------------------------ the state

    def _load(self) -> State:
        """A new snapshot, with the unfiltered jobs table already made: the
        page every open browser polls is ready when the snapshot is served."""
        from run_job.monitor.status import collect_status, load_states

        now = clock.now()
        states = load_states(self.config, self.config_path, now=now)
        rows = collect_status(self.config, self.config_path, states=states)
        state = State(now, states, rows)
        base = self._base
        state.made(("table", base, "", ""), lambda: self._jobs_table(state, base, "", ""))
        return state

    def _jobs_table(self, state: State, base: str, health: str, tag: str) -> Any:
        from markupsafe import Markup

        rows = views.select_rows(state.rows, health=health, tag=tag)
        return Markup(self.templates.get_template("jobs_table.html").render(
            base=base, jobs=[views.job_line(row, state.now, self.zone) for row in rows],
            summary=views.summary(state.rows), health=health, tag=tag))

    # ------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        request = Request(environ, self.operators)
        try:
            # HTTP/1.0 without Host: the server's own name (no browser sends that)
            host = environ["HTTP_HOST"] if "HTTP_HOST" in environ else environ.get("SERVER_NAME")
            if not security.host_allowed(host, self.hosts):
                raise HTTPError("400 Bad Request", "This server does not answer to that host name "
                                "(Host header); add it to web.hosts in the config.")
            status, headers, body = self._route(request)
        except HTTPError as err:
            status, headers, body = self._error(request, err)
        except Exception as err:  # noqa: BLE001 - a bug is one line in the log, a 500 page
            print(f"process-control-web: internal error: {type(err).__name__}: {err}",
                  file=environ.get("wsgi.errors") or sys.stderr)
            status, headers, body = self._error(request, HTTPError(
                "500 Internal Server Error", "Internal error; the server's log says more."))
        headers = headers + list(security.HEADERS)
        if not any(name == "Cache-Control" for name, _ in headers):
            headers.append(("Cache-Control", "no-store"))
        start_response(status, headers)
        if request.method == "HEAD":
            if hasattr(body, "close"):
                body.close()
            return [b""]
        return body

    def _route(self, request: Request) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        for name, methods, pattern in _ROUTES:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if request.method not in methods:
                allow = ", ".join(methods)
                raise HTTPError("405 Method Not Allowed",
                                "Actions are POSTed from the job's page." if "POST" in methods
                                else f"This address answers {allow} only.", [("Allow", allow)])
            return getattr(self, f"page_{name}")(request, **match.groupdict())
        raise HTTPError("404 Not Found", "No such page.")

    # ------------------------------------------------------------ responses

    def _common(self, request: Request, state: State | None) -> dict[str, Any]:
        base = request.base
        return {
            "base": base,
            "user": request.user or "",
            "operator": request.operator,
            "hostname": self.hostname,
            "version": __version__,
            "read_at": views.when(state.now, state.now, self.zone) if state else None,
            "static": lambda name: f"{base}/static/{name}?v={__version__}",
            "show_output": self.show_output,
        }

    def _html(self, template: str, context: dict[str, Any], status: str = "200 OK"
              ) -> tuple[str, list[tuple[str, str]], list[bytes]]:
        body = self.templates.get_template(template).render(**context).encode("utf-8")
        return status, [("Content-Type", "text/html; charset=utf-8"),
                        ("Content-Length", str(len(body)))], [body]

    @staticmethod
    def _json(doc: Any, status: str = "200 OK") -> tuple[str, list[tuple[str, str]], list[bytes]]:
        body = (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        return status, [("Content-Type", "application/json; charset=utf-8"),
                        ("Content-Length", str(len(body)))], [body]

    @staticmethod
    def _text(text: str, status: str = "200 OK", kind: str = "text/plain; charset=utf-8"
              ) -> tuple[str, list[tuple[str, str]], list[bytes]]:
        body = text.encode("utf-8")
        return status, [("Content-Type", kind), ("Content-Length", str(len(body)))], [body]

    def _error(self, request: Request, err: HTTPError) -> tuple[str, list[tuple[str, str]], list[bytes]]:
        if request.json(".json" if request.path.endswith(".json") else None):
            status, headers, body = self._json({"error": err.message, "status": int(err.status[:3])},
                                               err.status)
        else:
            status, headers, body = self._html("error.html", {
                **self._common(request, None), "status": err.status, "message": err.message}, err.status)
        return status, headers + err.headers, body

    def _redirect(self, location: str) -> tuple[str, list[tuple[str, str]], list[bytes]]:
        return "303 See Other", [("Location", location), ("Content-Length", "0")], [b""]

    # ------------------------------------------------------------ checks

    @staticmethod
    def _slug(slug: str) -> str:
        from run_job.config.jobs import is_slug

        if not is_slug(slug):
            raise HTTPError("404 Not Found", "Not a job name.")
        return slug

    def _run_id(self, slug: str, run_id: str) -> str:
        """A checked run id; ``latest``: the run its link names (the link's
        text, checked alike; never followed)."""
        from run_job.run.records import is_run_id
        from run_job.web import runs

        if run_id == "latest":
            target = runs.latest(self.config.output_directory, slug)
            if target is None:
                raise HTTPError("404 Not Found", "This job has no latest run.")
            return target
        if not is_run_id(run_id):
            raise HTTPError("404 Not Found", "Not a run id.")
        return run_id

    def _run_folder(self, slug: str, run_id: str) -> Any:
        from run_job.web import runs

        folder = runs.open_run(self.config.output_directory, slug, run_id)
        if folder is None:
            raise HTTPError("404 Not Found", "No such run (its folder may have been pruned: keep_runs).")
        return folder

    def _hide_output(self) -> None:
        if not self.show_output:
            raise HTTPError("403 Forbidden", "Job output is not shown here (web.show_output: false).")

    # ------------------------------------------------------------ pages

    def page_jobs(self, request: Request, json: str | None = None):
        from run_job.monitor.status import document

        self._base = request.base  # the prefix the next snapshot's table is made for
        state = self.snapshot.get()
        health, tag = request.arg("health") or "", request.arg("tag") or ""
        if request.json(json):
            return self._shared(request, state, ("json", health, tag), "application/json; charset=utf-8",
                                lambda: self._json(document("status", jobs=views.select_rows(
                                    state.rows, health=health, tag=tag)))[2][0])
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in (("health", health), ("tag", tag)) if v)

        def page() -> bytes:
            return self._html("jobs.html", {
                **self._common(request, state), "total": len(state.rows),
                "table": state.made(("table", request.base, health, tag),
                                    lambda: self._jobs_table(state, request.base, health, tag)),
                "json_url": f"{request.base}/jobs.json" + (f"?{query}" if query else "")})[2][0]

        key = ("page", request.base, request.user, request.operator, health, tag)
        return self._shared(request, state, key, "text/html; charset=utf-8", page)

    @staticmethod
    def _shared(request: Request, state: State, key: tuple, kind: str, make: Callable[[], bytes]
                ) -> tuple[str, list[tuple[str, str]], list[bytes]]:
        """A large answer made once per snapshot (and key), gzipped once for
        clients that accept it. Only pages that hold no secret (no CSRF
        token) are compressed, so that a compressed size tells nothing."""
        body = state.made(key, make)
        headers = [("Content-Type", kind), ("Vary", "Accept-Encoding")]
        if "gzip" in (request.environ.get("HTTP_ACCEPT_ENCODING") or "").lower():
            import gzip

            body = state.made(("gzip", *key), lambda: gzip.compress(body, 6, mtime=0))
            headers.append(("Content-Encoding", "gzip"))
        return "200 OK", headers + [("Content-Length", str(len(body)))], [body]

    def page_job(self, request: Request, slug: str, json: str | None = None):
        from run_job.monitor.status import document

        slug = self._slug(slug)
        state = self.snapshot.get()
        job = state.by_slug.get(slug)
        if job is None:
            raise HTTPError("404 Not Found", "No such job in the job directory.")
        if request.json(json):
            return self._json(document("history", job=slug, history=list(job.history)))
        line = views.job_line(state.row_by_slug[slug], state.now, self.zone)
        did = request.arg("did")
        pid = request.arg("pid")
        done = DONE.get(did or "")
        if done and did == "run" and pid and pid.isdigit():
            done = f"{done} (run-job pid {int(pid)})"
        return self._html("job.html", {
            **self._common(request, state), "job": line,
            "history": views.history_lines(job.history, state.now, self.zone),
            "done": done or "",
            "csrf": security.csrf_token(self.secret, request.user)
            if request.operator and request.user is not None else "",
            "json_url": f"{request.base}/jobs/{slug}.json"})

    def page_run(self, request: Request, slug: str, run: str, json: str | None = None):
        from run_job.monitor.status import document

        slug = self._slug(slug)
        run_id = self._run_id(slug, run)
        if run == "latest":  # a stable address for the page (and its tail)
            return self._redirect(f"{request.base}/jobs/{slug}/runs/{run_id}{json or ''}")
        state = self.snapshot.get()
        with self._run_folder(slug, run_id) as folder:
            record = folder.status()
            running = self._running(state, slug, run_id, record)
            output = None
            if self.show_output:
                output = self._first_output(folder, running)
        base = f"{request.base}/jobs/{slug}/runs/{run_id}"
        if request.json(json):
            doc = document("run", job=slug, run_id=run_id, run=record, running=running,
                           output=None if output is None else {"size": output["size"],
                                                               "url": f"{base}/output"})
            return self._json(doc)
        return self._html("run.html", {
            **self._common(request, state), "slug": slug, "run_id": run_id,
            "run": views.run_detail(record, state.now, self.zone) if record else None,
            "record_json": json_module_dumps(record) if record else "",
            "running": running, "output": output, "tail_url": f"{base}/output.json",
            "raw_url": f"{base}/output", "json_url": f"{base}.json"})

    def _running(self, state: State, slug: str, run_id: str, record: dict[str, Any] | None) -> bool:
        """Is this run going on? As its job's state says; a run newer than
        the snapshot (or one whose end is not recorded yet) by its supervisor."""
        from run_job.run import reconcile

        if record is None or record.get("outcome") != "running":
            return False
        job = state.by_slug.get(slug)
        if job is not None and job.running is not None and job.running.get("run_id") == run_id:
            return True
        return reconcile.supervisor_alive(self.config, slug, record)

    def _first_output(self, folder: Any, running: bool) -> dict[str, Any] | None:
        """The end of the output as the run page first shows it (a run still
        going whose output.log is not there yet: a Slurm job waiting for its
        node has written nothing so far)."""
        size = folder.output_size()
        got = folder.read_output(max(0, size - views.TAIL_BYTES), views.TAIL_BYTES) if size is not None else None
        if got is None:
            return {"text": "", "size": 0, "start": 0, "offset": 0, "cut": False} if running else None
        start = max(0, size - views.TAIL_BYTES)
        data, _ = got
        skip = views.skip_continuation(data) if start else 0
        end = views.complete_utf8(data) if running else len(data)
        return {"text": views.output_text(data[skip:end]), "size": size, "start": start + skip,
                "offset": start + end, "cut": start + skip > 0}

    def page_output(self, request: Request, slug: str, run: str, json: str | None = None):
        slug = self._slug(slug)
        run_id = self._run_id(slug, run)
        self._hide_output()
        offset_text = request.arg("offset") or "0"
        if not offset_text.isdigit() or len(offset_text) > 18:
            raise HTTPError("400 Bad Request", "offset is a number of bytes.")
        offset = int(offset_text)
        folder = self._run_folder(slug, run_id)
        try:
            if not json:
                streamed = folder.stream_output(offset)
                if streamed is None:
                    raise HTTPError("404 Not Found", "This run has no output.log.")
                chunks, length = streamed
                return "200 OK", [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(length)),
                    ("Content-Disposition", f'inline; filename="{slug}-{run_id}.log"')], chunks
            from run_job.run import reconcile

            record = folder.status()
            running = bool(record and record.get("outcome") == "running"
                           and reconcile.supervisor_alive(self.config, slug, record))
            got = folder.read_output(offset, views.CHUNK_BYTES)
        finally:
            folder.close()
        if got is None:
            if not running:
                raise HTTPError("404 Not Found", "This run has no output.log.")
            got = (b"", 0)  # not written yet (a Slurm job waiting for its node)
        data, size = got
        more = offset + len(data) < size
        end = views.complete_utf8(data) if (running or more) else len(data)
        return self._json({"offset": offset, "next": offset + end, "size": size,
                           "text": views.output_text(data[:end]), "running": running,
                           "more": offset + end < size,
                           "outcome": (record or {}).get("outcome")})

    def page_metrics(self, request: Request):
        from run_job.monitor.metrics import render

        state = self.snapshot.get()
        return self._shared(request, state, ("metrics",), "text/plain; version=0.0.4; charset=utf-8",
                            lambda: render(state.states).encode("utf-8"))

    def page_healthz(self, request: Request):
        # what the pages need: the job files, and the state once there is any
        problems = [f"{key} {path} cannot be read" for key, path in (
            ("job_directory", self.config.job_directory), ("state_directory", self.config.state_directory))
            if not os.access(path, os.R_OK | os.X_OK)
            and (key == "job_directory" or os.path.lexists(path))]
        if request.json(None):
            return self._json({"status": "fail" if problems else "ok", "problems": problems},
                              "503 Service Unavailable" if problems else "200 OK")
        if problems:
            return self._text("\n".join(problems) + "\n", "503 Service Unavailable")
        return self._text("ok\n")

    def page_static(self, request: Request, name: str):
        body = self.static.get(name)
        if body is None:
            raise HTTPError("404 Not Found", "No such file.")
        return "200 OK", [("Content-Type", STATIC_TYPES[name]), ("Content-Length", str(len(body))),
                          ("Cache-Control", "public, max-age=3600")], [body]

    # ------------------------------------------------------------ actions

    def page_action(self, request: Request, slug: str, action: str):
        from run_job.web import actions

        user = request.user
        if not request.operator or user is None:
            raise HTTPError("403 Forbidden", "Only the users listed in web.operators may act, as "
                            "identified by the front web server (REMOTE_USER).")
        form = self._form(request)
        if security.cross_site(request.environ) or not security.csrf_ok(
                self.secret, user, form.get("csrf")):
            raise HTTPError("403 Forbidden", "Refused: the form did not come from this page "
                            "(cross-site request or a stale token); reload the page and retry.")
        slug = self._slug(slug)
        page = f"{request.base}/jobs/{slug}"
        try:
            if action == "run":
                pid = actions.run_now(self.config, self.config_path, slug, by=user)
                location = f"{page}?did=run&pid={pid}"
            elif action == "kill":
                result = actions.kill(self.config, self.config_path, slug, by=user)
                did = "kill-pending" if result is None else "killed" if result[0] == 0 else "kill-none"
                if result is not None and result[0] not in (0, 1):
                    raise HTTPError("500 Internal Server Error", f"Kill failed: {result[1]}")
                location = f"{page}?did={did}"
            elif action == "pause":
                reason = " ".join((form.get("reason") or "").split())
                if not reason:
                    raise HTTPError("400 Bad Request", "A pause needs a reason.")
                from run_job.operate import parse_until

                text = (form.get("until") or "").strip()
                try:
                    until = parse_until(text, clock.now()) if text else None
                except UsageError as err:
                    raise HTTPError("400 Bad Request", f"Pause until: {err}") from None
                actions.pause(self.config, self.config_path, slug, by=user, reason=reason, until=until)
                location = f"{page}?did=pause"
            else:
                ended = actions.resume(self.config, self.config_path, slug, by=user)
                location = f"{page}?did={'resume' if ended else 'resume-none'}"
        except ProcessControlError as err:
            raise HTTPError("409 Conflict", str(err)) from None
        finally:
            self.snapshot.invalidate()
        return self._redirect(location)

    @staticmethod
    def _form(request: Request) -> dict[str, str]:
        kind = (request.environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise HTTPError("415 Unsupported Media Type", "Post a form (application/x-www-form-urlencoded).")
        try:
            length = int(request.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HTTPError("400 Bad Request", "Bad Content-Length.") from None
        if length < 0 or length > MAX_FORM:
            raise HTTPError("413 Content Too Large", "The form is too large.")
        body = request.environ["wsgi.input"].read(length) if length else b""
        try:
            fields = parse_qs(body.decode("utf-8"), max_num_fields=20, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            raise HTTPError("400 Bad Request", "The form is not UTF-8 form data.") from None
        return {name: values[0] for name, values in fields.items() if values}


def _shown(value: Any) -> Any:
    """Every value a template prints, before autoescape: control characters
    escaped as ``printable`` writes them (lines kept), so that text from job
    files, records and output can neither drive a terminal it is copied to
    nor hide in the page. Markup made by our own templates passes as it is."""
    if type(value) is str:  # Markup is a subclass: made by our templates, passed as it is
        return printable_lines(value)
    return value


def json_module_dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2, ensure_ascii=False)


def make_app(config_path: str | None = None, *, snapshot_age: float = SNAPSHOT_AGE) -> WebApp:
    """The application for the config at ``config_path`` (else the default
    lookup). Raises ProcessControlError when the config is unusable or when
    it would run as another user than the service user."""
    from run_job.config.cache import cached_config
    from run_job.errors import SecurityError
    from run_job.privileges import current_user, plan_identity

    config = cached_config(config_path)
    euid, name = current_user()
    if plan_identity(euid, name, config.user) != "stay":
        raise SecurityError(
            f"the web page runs as the service user {config.user!r} (config key 'user'), not as "
            f"{name or euid!r}: start the WSGI server as that user (process-control-web switches "
            "by itself when started as root)")
    return WebApp(config, config_path, snapshot_age=snapshot_age)


_default: list[WebApp] = []
_default_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """``application``: made on first access (a WSGI server's import of it),
    so that importing this module reads no config."""
    if name == "application":
        with _default_lock:
            if not _default:
                _default.append(make_app(None))
        return _default[0]
    raise AttributeError(name)
