"""The web page's WSGI application on real sites, real runs and real files (SPEC §12).

The application is called as a WSGI server calls it (``webtest.call``);
``REMOTE_USER`` in the environ is what a front web server sets after it
authenticated the user. Runs are made by the real run-job. Each security
rule of §12 has its test here: Host allow list, escaping, path checks, no
action without an operator, no action by GET, CSRF, ``show_output: false``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

import webtest
from pctest import REPO
from webtest import HOSTILE_TEXT, call, csrf_of, post, web_site

SCHEMA = json.loads((REPO / "schemas" / "status.schema.json").read_text())
PY = sys.executable


def app_for(site, **kwargs):
    from run_job.web.app import make_app

    return make_app(str(site.config), **kwargs)


@pytest.fixture
def site(tmp_path):
    s = web_site(tmp_path / "site; 'q' %s", operators=["alice"])
    s.job("hello", "name: Hello\ncommand: echo hello\nschedule: '*/5 * * * *'\ntag: [demo]\n")
    return s


def test_pages_answer_and_say_the_truth_about_every_job(site):
    site.job("broken", "command: [unclosed\n")
    site.job("failing", "command: /bin/false\nschedule: '0 * * * *'\n")
    assert site.run_job("hello").returncode == 0
    assert site.run_job("failing").returncode == 1
    app = app_for(site)
    page = call(app, "GET", "/")
    assert page.code == 200 and page.headers["content-type"].startswith("text/html")
    for slug in ("hello", "broken", "failing"):
        assert f'href="/jobs/{slug}"' in page.text
    assert 'class="badge h-failing"' in page.text and 'class="badge h-invalid"' in page.text
    assert "unclosed" in page.text or "broken.yaml" in page.text  # the invalid file's error
    # the JSON is run-job --status --json's document
    doc = call(app, "GET", "/jobs.json").json()
    jsonschema.Draft7Validator(SCHEMA).validate(doc)
    cli = json.loads(site.run_job("--status", "--json").stdout)
    assert [(r["job"], r["health"], r["last"] and r["last"]["run_id"]) for r in doc["jobs"]] == \
        [(r["job"], r["health"], r["last"] and r["last"]["run_id"]) for r in cli["jobs"]]
    assert call(app, "GET", "/", headers={"Accept": "application/json"}).json()["kind"] == "status"
    failing = call(app, "GET", "/?health=failing").text
    assert 'href="/jobs/failing"' in failing and 'href="/jobs/hello"' not in failing
    assert 'href="/jobs/hello"' in call(app, "GET", "/?tag=demo").text


def test_job_page_history_and_run_page(site):
    assert site.run_job("hello").returncode == 0
    app = app_for(site)
    entries = webtest.history(site, "hello")
    run_id = entries[-1]["run_id"]
    page = call(app, "GET", "/jobs/hello")
    assert page.code == 200 and f'href="/jobs/hello/runs/{run_id}"' in page.text
    doc = call(app, "GET", "/jobs/hello.json").json()
    jsonschema.Draft7Validator(SCHEMA).validate(doc)
    assert doc["kind"] == "history" and [e["run_id"] for e in doc["history"]] == [run_id]
    run = call(app, "GET", f"/jobs/hello/runs/{run_id}")
    assert run.code == 200 and "hello\n" in run.text and "success" in run.text
    rdoc = call(app, "GET", f"/jobs/hello/runs/{run_id}.json").json()
    jsonschema.Draft7Validator(SCHEMA).validate(rdoc)
    assert rdoc["run"]["outcome"] == "success" and rdoc["output"]["size"] == 6
    latest = call(app, "GET", "/jobs/hello/runs/latest")
    assert latest.code == 303 and latest.headers["location"] == f"/jobs/hello/runs/{run_id}"
    raw = call(app, "GET", f"/jobs/hello/runs/{run_id}/output")
    assert raw.body == b"hello\n" and raw.headers["content-type"].startswith("text/plain")
    assert call(app, "GET", f"/jobs/hello/runs/{run_id}/output?offset=2").body == b"llo\n"
    assert call(app, "GET", "/jobs/hello/runs/latest/output").body == b"hello\n"
    assert call(app, "GET", "/jobs/hello/runs/latest/output.json").json()["text"] == "hello\n"
    assert call(app, "GET", "/jobs/nope").code == 404
    assert call(app, "GET", "/jobs/hello/runs/20200101T000000.000000Z-1").code == 404


def test_links_carry_the_front_server_s_prefix(site):
    assert site.run_job("hello").returncode == 0
    page = call(app_for(site), "GET", "/", script_name="/process control")
    assert 'href="/process%20control/jobs/hello"' in page.text
    assert 'href="/process%20control/static/style.css' in page.text


def test_metrics_and_healthz(site):
    assert site.run_job("hello").returncode == 0
    app = app_for(site)
    metrics = call(app, "GET", "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'process_control_job_last_outcome{job="hello",outcome="success"} 1' in metrics.text
    assert "# TYPE process_control_job_running gauge" in metrics.text
    health = call(app, "GET", "/healthz")
    assert health.code == 200 and health.text == "ok\n"


def test_big_answers_are_gzipped_once_for_clients_that_accept_it_but_never_a_secret(site):
    import gzip

    assert site.run_job("hello").returncode == 0
    app = app_for(site)
    for path in ("/", "/jobs.json", "/metrics"):
        plain = call(app, "GET", path)
        packed = call(app, "GET", path, headers={"Accept-Encoding": "gzip, deflate, br"})
        assert packed.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
        assert gzip.decompress(packed.body) == plain.body and "Accept-Encoding" in packed.headers["vary"]
    job = call(app, "GET", "/jobs/hello", user="alice", headers={"Accept-Encoding": "gzip"})
    assert 'name="csrf"' in job.text and "content-encoding" not in job.headers  # no BREACH


def test_every_response_has_the_security_headers(site):
    app = app_for(site)
    for path in ("/", "/jobs/hello", "/nope", "/metrics", "/healthz", "/static/style.css", "/jobs/x/run"):
        response = call(app, "GET", path)
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "<script" not in call(app, "GET", "/").text  # no script on the jobs page at all


# ------------------------------------------------------------ Host allow list


def test_host_header_must_name_this_server(tmp_path):
    site = web_site(tmp_path / "s", hosts=["jobs.example.org"])
    site.job("hello", "command: echo hi\n")
    app = app_for(site)
    for host in ("localhost:8950", "127.0.0.1", "[::1]:8950", "jobs.example.org", "JOBS.example.org:443"):
        assert call(app, "GET", "/", host=host).code == 200, host
    for host in ("attacker.example", "rebound.attacker.example:8950", "jobs.example.org.evil", ""):
        response = call(app, "GET", "/", host=host)
        assert response.code == 400 and "web.hosts" in response.text, host
    # actions too: a rebound name cannot post
    assert post(app, "/jobs/hello/run", {"csrf": "x"}, host="attacker.example", user="alice").code == 400


# ------------------------------------------------------------ escaping


def test_hostile_text_is_escaped_in_every_page(site):
    site.job("evil", "name: " + json.dumps(HOSTILE_TEXT) + "\ndescription: " + json.dumps(HOSTILE_TEXT)
             + "\ncommand: /bin/true\ntag: [" + json.dumps("<b>tag</b>") + "]\n")
    started = webtest.now()
    rec = webtest.record(site, "evil", started=started, outcome="failed", exit_code=3, reason=HOSTILE_TEXT,
                         events=[{"time": webtest.iso(started), "event": "custom", "message": HOSTILE_TEXT}])
    webtest.write_run(site, rec, output=HOSTILE_TEXT.encode() + b"\n\x1b[2J\x1b[H cleared?\n")
    webtest.write_history(site, "evil", [rec])
    from run_job.run import pauses

    pauses.pause(site.state, "evil", reason=HOSTILE_TEXT, by="<i>ops</i>")
    app = app_for(site)
    pages = {path: call(app, "GET", path, user="alice").text for path in (
        "/", "/jobs/evil", f"/jobs/evil/runs/{rec['run_id']}", "/?tag=%3Cb%3Etag%3C/b%3E")}
    for path, text in pages.items():
        assert "<script>window" not in text and "<img src=x" not in text, path
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in text, path
        assert "\x1b" not in text and "\x07" not in text, path
        assert "<b>tag</b>" not in text and "<i>ops</i>" not in text, path
    run_page = pages[f"/jobs/evil/runs/{rec['run_id']}"]
    assert "\\x1b[31mred\\x1b[0m" in run_page and "\\x1b[2J\\x1b[H cleared?" in run_page
    assert run_page.count("&lt;script&gt;window.__pwned") >= 3  # reason, event message, output
    tail = call(app, "GET", f"/jobs/evil/runs/{rec['run_id']}/output.json?offset=0").json()
    assert tail["text"].startswith("<script>window") and "\\x1b[2J" in tail["text"]  # JSON: exact text
    assert "\x1b" not in tail["text"]
    # JSON documents keep the exact values (JSON escapes what it must)
    doc = call(app, "GET", "/jobs.json").json()
    assert next(r for r in doc["jobs"] if r["job"] == "evil")["description"] == HOSTILE_TEXT


# ------------------------------------------------------------ path checks


def test_names_that_are_not_slugs_or_run_ids_never_reach_the_disk(site, tmp_path):
    assert site.run_job("hello").returncode == 0
    run_id = webtest.history(site, "hello")[-1]["run_id"]
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    app = app_for(site)
    for path in ("/jobs/..", "/jobs/%2e%2e", "/jobs/..%2f..%2fetc%2fpasswd", "/jobs/%2e%2e/runs/latest",
                 f"/jobs/hello/runs/..%2f..%2f{run_id}", f"/jobs/hello/runs/{run_id}%2f..%2f..",
                 f"/jobs/hello/runs/{run_id}-..%2f/output", "/jobs/hello/runs/%2e%2e/output",
                 "/jobs/hello%00/runs/latest", "/static/..%2fapp.py", "/static/%2e%2e/app.py",
                 "/jobs/hello/runs/../../../etc/passwd", "/jobs/hello.yaml"):
        response = call(app, "GET", path)
        assert response.code in (400, 404), (path, response.code)
        assert b"TOP SECRET" not in response.body and b"root:" not in response.body


def test_a_symlinked_latest_run_folder_or_file_is_never_followed(site, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "status.json").write_text(json.dumps(webtest.record(site, "hello", started=webtest.now())))
    (outside / "output.log").write_text("TOP SECRET\n")
    app = app_for(site)
    job_out = site.output / "hello"
    job_out.mkdir(parents=True)
    # latest pointing outside: its text is no run id
    (job_out / "latest").symlink_to(outside)
    assert call(app, "GET", "/jobs/hello/runs/latest").code == 404
    # a run folder that is a link, and latest naming it
    fake = webtest.run_id(webtest.now(), 1)
    (job_out / fake).symlink_to(outside)
    (job_out / "latest").unlink()
    (job_out / "latest").symlink_to(fake)
    assert call(app, "GET", "/jobs/hello/runs/latest").code == 303  # a run id: the link text only
    for path in (f"/jobs/hello/runs/{fake}", f"/jobs/hello/runs/{fake}/output",
                 f"/jobs/hello/runs/{fake}/output.json", f"/jobs/hello/runs/{fake}.json"):
        response = call(app, "GET", path)
        assert response.code == 404 and b"TOP SECRET" not in response.body, path
    # a real run folder whose output.log and status.json are links
    real = job_out / webtest.run_id(webtest.now(), 2)
    real.mkdir()
    (real / "output.log").symlink_to(outside / "output.log")
    (real / "status.json").symlink_to(outside / "status.json")
    page = call(app, "GET", f"/jobs/hello/runs/{real.name}")
    assert page.code == 200 and "TOP SECRET" not in page.text and "missing or damaged" in page.text
    assert call(app, "GET", f"/jobs/hello/runs/{real.name}/output").code == 404
    # the job's own output folder as a link
    other = tmp_path / "other-out"
    (other / real.name).mkdir(parents=True)
    (other / real.name / "output.log").write_text("TOP SECRET\n")
    os.rename(job_out, tmp_path / "moved")
    job_out.symlink_to(other)
    assert call(app, "GET", f"/jobs/hello/runs/{real.name}/output").code == 404


def test_a_fifo_as_output_never_blocks(site):
    rec = webtest.record(site, "hello", started=webtest.now())
    folder = webtest.write_run(site, rec)
    (folder / "output.log").unlink()
    os.mkfifo(folder / "output.log")
    app = app_for(site)
    assert call(app, "GET", f"/jobs/hello/runs/{rec['run_id']}/output").code == 404
    assert call(app, "GET", f"/jobs/hello/runs/{rec['run_id']}").code == 200


# ------------------------------------------------------------ operators, POST, CSRF


def test_only_operators_act_only_by_post_only_with_the_token(site):
    app = app_for(site)
    token = csrf_of(call(app, "GET", "/jobs/hello", user="alice").text)
    assert 'id="run-now"' not in call(app, "GET", "/jobs/hello").text  # no forms for others
    assert 'id="run-now"' not in call(app, "GET", "/jobs/hello", user="bob").text
    # nobody, a non-operator, a GET, a bad token, another user's token, a cross-site post
    from run_job.web.security import csrf_token

    attempts = [
        post(app, "/jobs/hello/run", {"csrf": token}),
        post(app, "/jobs/hello/run", {"csrf": token}, user="bob"),
        post(app, "/jobs/hello/run", {"csrf": csrf_token(app.secret, "bob")}, user="bob"),
        call(app, "GET", "/jobs/hello/run", user="alice"),
        call(app, "GET", f"/jobs/hello/run?csrf={token}", user="alice"),
        post(app, "/jobs/hello/run", {}, user="alice"),
        post(app, "/jobs/hello/run", {"csrf": "0" * 64}, user="alice"),
        post(app, "/jobs/hello/run", {"csrf": csrf_token(app.secret, "bob")}, user="alice"),
        post(app, "/jobs/hello/run", {"csrf": token}, user="alice",
             headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}),
        post(app, "/jobs/hello/pause", {"csrf": token, "reason": "x"}, user="mallory"),
        call(app, "POST", "/jobs/hello/run", user="alice", body=json.dumps({"csrf": token}).encode(),
             content_type="application/json"),
    ]
    assert [r.code for r in attempts] == [403, 403, 403, 405, 405, 403, 403, 403, 403, 403, 415]
    assert attempts[3].headers["allow"] == "POST"
    assert webtest.run_folders(site, "hello") == [] and webtest.audit(site) == []
    assert not (site.state / "hello.pause.json").exists()


def test_secret_is_the_service_user_s_alone(site):
    app = app_for(site)
    path = site.state / "web.secret"
    assert path.stat().st_mode & 0o777 == 0o600 and len(app.secret) >= 32
    path.chmod(0o644)
    from run_job.errors import SecurityError

    with pytest.raises(SecurityError, match="mode 0600"):
        app_for(site)


def test_run_now_starts_the_job_as_cron_would(site, monkeypatch):
    site.job("env", f"command: {PY} -c 'import os, json; print(json.dumps(dict(os.environ)))'\n")
    monkeypatch.setenv("PC_WEB_SERVER_ONLY", "leak")
    app = app_for(site)
    token = csrf_of(call(app, "GET", "/jobs/env", user="alice").text)
    response = post(app, "/jobs/env/run", {"csrf": token}, user="alice")
    assert response.code == 303 and response.headers["location"].startswith("/jobs/env?did=run&pid=")
    entry = webtest.wait_for(lambda: [e for e in webtest.history(site, "env") if e["outcome"] != "running"])
    assert entry and entry[-1]["outcome"] == "success", webtest.history(site, "env")
    folder = webtest.run_folders(site, "env")[-1]
    env = json.loads((folder / "output.log").read_text())
    assert "PC_WEB_SERVER_ONLY" not in env and env["PATH"] == "/usr/bin:/bin"
    assert env["RUN_JOB_NAME"] == "env" and env["SHELL"] == "/bin/sh"
    assert env["XDG_CACHE_HOME"]  # the config's cron_environment line
    done = call(app, "GET", response.headers["location"], user="alice")
    assert "Run started" in done.text
    assert webtest.audit(site)[-1] | {"time": None} == {
        "time": None, "action": "run", "job": "env", "by": "alice", "via": "web"}


def test_run_now_refuses_what_run_job_would_not_run(site):
    site.job("broken", "command: [unclosed\n")
    site.job("svc", "runner: slurm\nservice: {}\ncommand: /bin/true\n")
    app = app_for(site)
    token = csrf_of(call(app, "GET", "/jobs/hello", user="alice").text)
    assert post(app, "/jobs/broken/run", {"csrf": token}, user="alice").code == 409
    assert post(app, "/jobs/missing/run", {"csrf": token}, user="alice").code == 409
    assert post(app, "/jobs/..%2fbin%2fsh/run", {"csrf": token}, user="alice").code == 404
    svc = post(app, "/jobs/svc/run", {"csrf": token}, user="alice")
    assert svc.code == 409 and "sbatch-service" in svc.text
    assert not any(webtest.run_folders(site, s) for s in ("broken", "missing", "svc"))


def test_pause_with_reason_and_until_then_resume(site):
    app = app_for(site)
    token = csrf_of(call(app, "GET", "/jobs/hello", user="alice").text)
    assert post(app, "/jobs/hello/pause", {"csrf": token, "reason": "  "}, user="alice").code == 400
    assert post(app, "/jobs/hello/pause", {"csrf": token, "reason": "x", "until": "yesterday"},
                user="alice").code == 400
    done = post(app, "/jobs/hello/pause", {"csrf": token, "reason": "db migration", "until": "2h"},
                user="alice")
    assert done.code == 303 and done.headers["location"] == "/jobs/hello?did=pause"
    pause = json.loads((site.state / "hello.pause.json").read_text())
    assert pause["by"] == "alice" and pause["reason"] == "db migration" and pause["until"]
    page = call(app, "GET", "/jobs/hello", user="alice").text
    assert "db migration" in page and 'id="resume"' in page and 'h-paused' in page
    status = json.loads(site.run_job("--status", "--json").stdout)
    assert status["jobs"][0]["paused"]["by"] == "alice"  # the one truth, seen by --status too
    assert post(app, "/jobs/hello/resume", {"csrf": token}, user="alice").headers["location"] == \
        "/jobs/hello?did=resume"
    assert not (site.state / "hello.pause.json").exists()
    assert [(a["action"], a["by"]) for a in webtest.audit(site)] == [("pause", "alice"), ("resume", "alice")]


def test_kill_stops_the_running_run(site):
    site.job("slow", "command: sleep 60\nkill_grace: 2s\n")
    proc = webtest.start_run(site, "slow")
    try:
        run_id = webtest.wait_for(lambda: webtest.running_run_id(site, "slow"))
        assert run_id
        app = app_for(site)
        page = call(app, "GET", "/jobs/slow", user="alice").text
        assert 'h-running' in page and f"/jobs/slow/runs/{run_id}" in page
        done = post(app, "/jobs/slow/kill", {"csrf": csrf_of(page)}, user="alice")
        assert done.code == 303 and done.headers["location"] in ("/jobs/slow?did=killed",
                                                                  "/jobs/slow?did=kill-pending")
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        assert webtest.history(site, "slow")[-1]["outcome"] == "killed"
        assert webtest.audit(site)[-1]["action"] == "kill"
    finally:
        if proc.poll() is None:
            proc.kill()


# ------------------------------------------------------------ live tail


def test_the_tail_reads_by_byte_offset_while_the_run_grows(site, tmp_path):
    gate = tmp_path / "gate"
    script = tmp_path / "talk.py"
    script.write_text("import os, sys, time\n"
                      "print('first', flush=True)\n"
                      f"while not os.path.exists({str(gate)!r}):\n"
                      "    time.sleep(0.05)\n"
                      "sys.stdout.buffer.write('second é\\n'.encode())\n")
    site.job("talk", f"command: {PY} {script}\n")
    proc = webtest.start_run(site, "talk")
    try:
        run_id = webtest.wait_for(lambda: webtest.running_run_id(site, "talk"))
        app = app_for(site)
        out = site.output / "talk" / run_id / "output.log"
        assert webtest.wait_for(lambda: out.exists() and out.read_bytes() == b"first\n")
        page = call(app, "GET", f"/jobs/talk/runs/{run_id}").text
        assert 'data-tail="/jobs/talk/runs/' in page and 'data-offset="6"' in page
        assert 'src="/static/tail.js' in page
        chunk = call(app, "GET", f"/jobs/talk/runs/{run_id}/output.json?offset=6").json()
        assert chunk == {"offset": 6, "next": 6, "size": 6, "text": "", "running": True, "more": False,
                         "outcome": "running"}
        gate.write_text("go")
        assert proc.wait(timeout=30) == 0
        chunk = call(app, "GET", f"/jobs/talk/runs/{run_id}/output.json?offset=6").json()
        assert chunk["text"] == "second é\n" and chunk["next"] == len("first\nsecond é\n".encode())
        assert chunk["running"] is False and chunk["outcome"] == "success"
        assert call(app, "GET", f"/jobs/talk/runs/{run_id}/output.json?offset=x").code == 400
        assert 'data-tail' not in call(app, "GET", f"/jobs/talk/runs/{run_id}").text
    finally:
        if proc.poll() is None:
            proc.kill()


# ------------------------------------------------------------ show_output: false


def test_show_output_false_hides_output_everywhere(tmp_path):
    site = web_site(tmp_path / "s", show_output=False)
    site.job("secret", "command: sh -c 'echo password=$((6*7))hunter'\n")
    assert site.run_job("secret").returncode == 0
    run_id = webtest.history(site, "secret")[-1]["run_id"]
    app = app_for(site)
    bodies = []
    for path in ("/", "/jobs/secret", f"/jobs/secret/runs/{run_id}", f"/jobs/secret/runs/{run_id}.json",
                 "/jobs.json", "/jobs/secret.json", "/metrics"):
        response = call(app, "GET", path)
        assert response.code == 200, path
        bodies.append(response.body)
    for path in (f"/jobs/secret/runs/{run_id}/output", f"/jobs/secret/runs/{run_id}/output.json",
                 f"/jobs/secret/runs/{run_id}/output?offset=0"):
        response = call(app, "GET", path)
        assert response.code == 403, path
        bodies.append(response.body)
    assert not any(b"42hunter" in body for body in bodies)
    assert call(app, "GET", f"/jobs/secret/runs/{run_id}.json").json()["output"] is None
    assert "web.show_output: false" in call(app, "GET", f"/jobs/secret/runs/{run_id}").text


# ------------------------------------------------------------ one state read per request


def test_the_state_is_read_once_per_request(site, monkeypatch):
    for i in range(5):
        site.job(f"more-{i}", "command: /bin/true\nschedule: '0 * * * *'\n")
    assert site.run_job("hello").returncode == 0
    from run_job.monitor import status
    from run_job.run import history

    loads, reads = [], []
    real_load, real_read = status.load_states, history.read
    monkeypatch.setattr(status, "load_states", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    monkeypatch.setattr(history, "read", lambda *a, **k: reads.append(a[1]) or real_read(*a, **k))
    app = app_for(site, snapshot_age=0)
    run_id = webtest.history(site, "hello")[-1]["run_id"]
    for path in ("/", "/jobs.json", "/jobs/hello", "/metrics", f"/jobs/hello/runs/{run_id}"):
        loads.clear()
        reads.clear()
        assert call(app, "GET", path).code == 200
        assert len(loads) == 1, path
        assert sorted(reads) == sorted(set(reads)) and len(reads) == 6, (path, reads)  # each job once
    # shared: requests within SNAPSHOT_AGE use one load
    shared = app_for(site, snapshot_age=60)
    loads.clear()
    for path in ("/", "/jobs/hello", "/metrics", "/jobs.json"):
        call(shared, "GET", path)
    assert len(loads) == 1


def test_no_web_section_means_read_only_and_no_secret(tmp_path):
    site = webtest.Site(tmp_path / "plain")
    site.job("hello", "command: echo hi\n")
    from run_job.web.app import make_app

    app = make_app(str(site.config))
    assert call(app, "GET", "/").code == 200
    assert not (site.state / "web.secret").exists()
    assert post(app, "/jobs/hello/run", {"csrf": ""}, user="root").code == 403


def test_refuses_to_serve_as_another_user_than_the_service_user(tmp_path):
    site = webtest.Site(tmp_path / "other", user="nobody")
    from run_job.errors import SecurityError
    from run_job.web.app import make_app

    with pytest.raises(SecurityError, match="service user 'nobody'"):
        make_app(str(site.config))


def test_pause_and_resume_from_the_page_do_what_run_job_does(tmp_path):
    """operate.pause/resume: the hooks fire with the operator's name and the
    job's metrics file is rewritten, as for run-job --pause/--resume."""
    hooks, metrics = tmp_path / "hooks", tmp_path / "metrics"
    metrics.mkdir()
    site = web_site(tmp_path / "s", operators=["alice"])
    site.config.write_text(site.config.read_text() + f"hooks_directory: {hooks}\n"
                           f"metrics:\n  textfile_directory: {metrics}\n")
    site.job("hello", "command: echo hi\nschedule: '0 * * * *'\n")
    calls = tmp_path / "calls.jsonl"
    for event in ("pause", "resume"):
        folder = hooks / event
        folder.mkdir(parents=True)
        script = folder / "dump"
        script.write_text(f"#!{PY}\nimport json, os\nwith open({str(calls)!r}, 'a') as f:\n"
                          "    f.write(json.dumps({k: v for k, v in os.environ.items()"
                          " if k.startswith('RUN_JOB_')}) + '\\n')\n")
        script.chmod(0o755)
    app = app_for(site)
    token = csrf_of(call(app, "GET", "/jobs/hello", user="alice").text)
    assert post(app, "/jobs/hello/pause", {"csrf": token, "reason": "disk swap"}, user="alice").code == 303
    prom = (metrics / "process_control_hello.prom").read_text()
    assert 'process_control_job_paused{job="hello"} 1' in prom
    assert post(app, "/jobs/hello/resume", {"csrf": token}, user="alice").code == 303
    assert 'process_control_job_paused{job="hello"} 0' in (metrics / "process_control_hello.prom").read_text()
    got = [json.loads(line) for line in calls.read_text().splitlines()]
    assert [(c["RUN_JOB_EVENT"], c["RUN_JOB_NAME"]) for c in got] == [("pause", "hello"), ("resume", "hello")]
    assert got[0]["RUN_JOB_PAUSED_BY"] == "alice" and got[0]["RUN_JOB_PAUSE_REASON"] == "disk swap"


def test_a_running_run_without_output_yet_has_an_empty_live_tail(site):
    """A Slurm job waiting for its node has no output.log yet: its page tails
    from byte 0 instead of saying there is none."""
    from run_job.run.proctree import proc_start_time

    rec = webtest.record(site, "hello", started=webtest.now(), outcome="running", pid=os.getpid(),
                         supervisor_start_time=proc_start_time(os.getpid()))
    folder = webtest.write_run(site, rec)
    (folder / "output.log").unlink()
    webtest.write_history(site, "hello", [rec])
    app = app_for(site)
    page = call(app, "GET", f"/jobs/hello/runs/{rec['run_id']}").text
    assert 'data-offset="0"' in page and "data-tail=" in page
    chunk = call(app, "GET", f"/jobs/hello/runs/{rec['run_id']}/output.json?offset=0").json()
    assert (chunk["running"], chunk["text"], chunk["next"]) == (True, "", 0)
    (folder / "output.log").write_bytes(b"now\n")
    assert call(app, "GET", f"/jobs/hello/runs/{rec['run_id']}/output.json?offset=0").json()["text"] == "now\n"
