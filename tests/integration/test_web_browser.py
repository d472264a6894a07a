"""The web page in a real browser under a real WSGI server (SPEC §12).

gunicorn (2 workers, 4 threads each) serves the application for a site in
tmp, behind ``web_front.py`` (the stand-in for the front server's
authentication: every request is the operator ``alice``); Debian's headless
Chromium, driven over the DevTools protocol, loads the pages: the table
shows every job and its state, a running run's tail grows while the job
writes, "Run now" starts a run, hostile text stays text, and the console
shows no error at all. Screenshots of the jobs page, a job page and a run
page go to ``$PC_WEB_SCREENSHOTS`` (default: a folder of pytest's tmp).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import webtest
from chromium_cdp import Chromium, skip_reason
from pctest import REPO
from webtest import HOSTILE_TEXT, free_port, wait_http, web_site

HERE = Path(__file__).resolve().parent
PY = sys.executable

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


def gunicorn_missing() -> str | None:
    probe = subprocess.run([PY, "-m", "gunicorn", "--version"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"{PY} has no gunicorn (pip install gunicorn, or apt-get install gunicorn)"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-browser")
    s = web_site(root / "site; 'q' %s", operators=["alice"])
    gate = root / "gate"
    writer = root / "writer.py"
    writer.write_text(
        "import os, sys, time\n"
        "for i in range(1, 100000):\n"
        "    print(f'line {i}: \\x1b[32mgreen\\x1b[0m <b>not bold</b>', flush=True)\n"
        f"    if os.path.exists({str(gate)!r}):\n"
        "        break\n"
        "    time.sleep(0.2)\n")
    s.job("hello", "name: Hello world\ndescription: Says hello.\ncommand: echo hello\n"
                   "schedule: '*/5 * * * *'\ntag: [demo]\n")
    s.job("nightly-report", "name: Nightly report\ncommand: sh -c 'echo report failed >&2; exit 3'\n"
                            "schedule: '0 2 * * *'\ntag: [reports, demo]\n")
    s.job("tail-me", f"name: Streams its output\ncommand: {PY} {writer}\n")
    s.job("on-hold", "command: /bin/true\nschedule: '30 * * * *'\n")
    s.job("retired", "command: /bin/true\nschedule: '0 0 * * 0'\ndisabled: true\n")
    s.job("broken", "command: [unclosed\n")
    s.job("evil", "name: " + __import__("json").dumps(HOSTILE_TEXT) + "\ndescription: "
          + __import__("json").dumps(HOSTILE_TEXT) + "\ncommand: /bin/true\n")
    assert s.run_job("hello").returncode == 0
    assert s.run_job("nightly-report").returncode == 3
    from run_job.run import pauses

    pauses.pause(s.state, "on-hold", reason="database migration, back on Monday", by="alice")
    s.gate = gate
    return s


@pytest.fixture(scope="module")
def server(site, tmp_path_factory):
    reason = gunicorn_missing()
    if reason:
        pytest.skip(reason)
    port = free_port()
    runtime = tmp_path_factory.mktemp("gunicorn-runtime")  # newer gunicorns put a control socket there
    env = dict(webtest.pctest.command_env(), PYTHONPATH=f"{REPO}:{HERE}", PC_WEB_CONFIG=str(site.config),
               PC_WEB_TEST_USER="alice", XDG_RUNTIME_DIR=str(runtime))
    proc = subprocess.Popen([PY, "-m", "gunicorn", "--workers", "2", "--threads", "4",
                             "--worker-class", "gthread", "--bind", f"127.0.0.1:{port}",
                             "--chdir", str(HERE), "--graceful-timeout", "5", "web_front:application"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        webtest.stop(proc)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("PC_WEB_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Chromium(tmp_path_factory.mktemp("chromium-profile"), free_port())
    yield chromium
    chromium.close()


def test_the_jobs_table_shows_every_job_and_its_state(server, browser, shots):
    browser.navigate(server + "/")
    rows = browser.evaluate("""[...document.querySelectorAll('table.jobs tbody tr')].map(tr => [
        tr.querySelector('a.slug').textContent, tr.querySelector('.badge').textContent])""")
    assert dict(rows) == {"broken": "invalid", "evil": "never run", "hello": "ok",
                          "nightly-report": "failing", "on-hold": "paused", "retired": "disabled",
                          "tail-me": "never run"}
    text = browser.evaluate("document.body.innerText")
    assert "database migration, back on Monday" in text  # the pause and its reason
    assert "unclosed" in text or "broken.yaml" in text  # the invalid file's error
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    assert browser.evaluate("document.scripts.length") == 0
    print("screenshot:", browser.screenshot(shots / "jobs.png"))


def test_hostile_text_stays_text(server, browser):
    browser.navigate(server + "/jobs/evil")
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    assert browser.evaluate("document.querySelectorAll('img').length") == 0
    description = browser.evaluate("document.querySelector('.description').textContent")
    assert description.startswith("<script>window.__pwned = 1</script>") and "\\x1b[31mred" in description


def test_the_live_tail_grows_while_the_job_writes(server, browser, site, shots):
    proc = webtest.start_run(site, "tail-me")
    try:
        run_id = webtest.wait_for(lambda: webtest.running_run_id(site, "tail-me"))
        assert run_id
        time.sleep(1.0)
        browser.navigate(f"{server}/jobs/tail-me/runs/{run_id}")
        assert browser.evaluate("document.getElementById('output').dataset.tail") is not None
        first = browser.evaluate("document.getElementById('output').textContent")
        browser.pump(3.0)
        later = browser.evaluate("document.getElementById('output').textContent")
        assert len(later) > len(first) and later.startswith(first)
        assert later.count("\n") >= first.count("\n") + 5
        assert "\\x1b[32mgreen\\x1b[0m <b>not bold</b>" in later  # shown, not interpreted
        assert browser.evaluate("document.querySelectorAll('#output b').length") == 0
        browser.evaluate("window.scrollTo(0, 0)")
        print("screenshot:", browser.screenshot(shots / "run.png"))
        site.gate.write_text("stop")
        assert proc.wait(timeout=30) == 0
        # the page notices the end and shows the final record
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            browser.pump(0.5)
            if browser.evaluate("!!document.querySelector('h1 .o-success')"):
                break
        assert browser.evaluate("!!document.querySelector('h1 .o-success')")
        assert browser.evaluate("document.getElementById('output').dataset.tail") is None
    finally:
        if proc.poll() is None:
            proc.kill()


def test_an_operator_s_run_now_starts_a_run(server, browser, site, shots):
    before = webtest.run_folders(site, "hello")
    browser.navigate(server + "/jobs/hello")
    assert "alice" in browser.evaluate("document.querySelector('header .who').textContent")
    browser.click_and_wait("#run-now")
    assert "Run started" in browser.evaluate("document.querySelector('.done').textContent")
    after = webtest.wait_for(lambda: len(webtest.run_folders(site, "hello")) > len(before)
                             and webtest.history(site, "hello")[-1]["outcome"] == "success")
    assert after, webtest.history(site, "hello")
    assert webtest.audit(site)[-1]["action"] == "run" and webtest.audit(site)[-1]["by"] == "alice"
    time.sleep(1.1)  # a worker's snapshot of the state is at most 1 s old (SNAPSHOT_AGE)
    browser.navigate(server + "/jobs/hello")
    rows = browser.evaluate("document.querySelectorAll('table.history tbody tr').length")
    assert rows == len(webtest.run_folders(site, "hello"))
    print("screenshot:", browser.screenshot(shots / "job.png"))


def test_pause_and_resume_from_the_page(server, browser, site):
    browser.navigate(server + "/jobs/nightly-report")
    browser.evaluate("document.querySelector('input[name=reason]').value = 'vendor outage'")
    browser.evaluate("document.querySelector('input[name=until]').value = '2h'")
    browser.click_and_wait("#pause")
    assert browser.evaluate("document.querySelector('h1 .badge').textContent") == "paused"
    assert "vendor outage" in browser.evaluate("document.body.innerText")
    browser.click_and_wait("#resume")
    assert browser.evaluate("document.querySelector('h1 .badge').textContent") == "failing"


def test_no_console_errors_on_any_page(server, browser):
    for path in ("/", "/jobs/hello", "/jobs/broken", "/jobs/evil", "/jobs/hello/runs/latest"):
        browser.navigate(server + path)
    assert browser.errors() == []
