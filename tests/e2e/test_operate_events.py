"""Events from inside a run: run-job --trigger, hooks, status.json (SPEC §9).

The jobs call the real ``run-job --trigger``; hooks are small scripts that
write what they were given into files. Runs are started as cron starts them.
"""

from __future__ import annotations

import json
import shlex
import sys
import time

import pytest

from operate_helpers import start_as_cron, status_of
from pctest import command
from runjob_helpers import PY, job_yaml, new_site, q

RUN_JOB = " ".join(shlex.quote(word) for word in command("run-job"))
HOSTILE = "line one\nline two\r\n$(touch pwned) `touch pwned2`; rm -rf / & | > x \x1b[31m 'q' \"dq\""


@pytest.fixture
def site(tmp_path):
    return new_site(tmp_path, hooks_directory=str(tmp_path / "hook dir; 'x'"))


def hook(site, event: str, body: str = "") -> None:
    """A hook of ``event`` that writes its RUN_JOB_* environment to
    <site>/<event>.<time>.json, after ``body`` (Python)."""
    folder = site.root.parent / "hook dir; 'x'" / event
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "dump"
    script.write_text(f"#!{sys.executable}\nimport json, os, time\n{body}\n"
                      f"path = os.path.join({str(site.root)!r}, {event!r} + '.%f.json' % time.time())\n"
                      "with open(path, 'w') as f:\n"
                      "    json.dump({k: v for k, v in os.environ.items() if k.startswith('RUN_JOB_')}, f)\n")
    script.chmod(0o755)


def hook_calls(site, event: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(site.root.glob(f"{event}.*.json"))]


def script(site, name: str, text: str) -> str:
    path = site.root / name
    path.write_text(text)
    return f"{PY} {q(path)}"


def run(site, slug: str) -> tuple[int, bytes, bytes]:
    proc = start_as_cron(site, slug)
    out, err = proc.communicate(timeout=90)
    return proc.returncode, out, err


def test_trigger_records_the_event_and_its_hooks_run_while_the_run_goes_on(site):
    hook(site, "progress", body=f"open(os.path.join({str(site.root)!r}, 'hook-ran'), 'w').close()")
    job = script(site, "job.py", f"""
import os, subprocess, sys, time
rc = subprocess.call({RUN_JOB!r} + " --trigger progress --message 'half way: 50%'", shell=True)
assert rc == 0, rc
started = time.monotonic()
while not os.path.exists(os.path.join({str(site.root)!r}, 'hook-ran')):
    if time.monotonic() - started > 5:
        sys.exit(9)  # the hook did not run while the run went on
    time.sleep(0.01)
print("hook seen after %.2f s" % (time.monotonic() - started), flush=True)
""")
    site.job("ev", job_yaml(command=job, events=["progress", "done"]))
    code, out, err = run(site, "ev")
    assert code == 0, err
    status = status_of(site, "ev")
    log = (site.output / "ev" / status["run_id"] / "output.log").read_text()
    assert float(log.split()[3]) < 1.5  # within a second (and the poll)
    [event] = status["events"]
    assert event["event"] == "progress" and event["message"] == "half way: 50%"
    assert event["hooks"][0]["exit_code"] == 0 and event["hooks"][0]["hook"] == "dump"
    [call] = hook_calls(site, "progress")
    assert call["RUN_JOB_EVENT"] == "progress" and call["RUN_JOB_EVENT_MESSAGE"] == "half way: 50%"
    assert call["RUN_JOB_NAME"] == "ev" and call["RUN_JOB_RUN_ID"] == status["run_id"]
    assert call["RUN_JOB_OUTCOME"] == "running"


def test_hostile_messages_are_cut_and_never_reach_a_shell(site):
    hook(site, "note")
    big = ("x" * 1000 + HOSTILE) * 100  # ~110 KB: close to the kernel's limit of one argument
    job = script(site, "job.py", f"""
import os, subprocess, sys
argv = {command("run-job")!r}
subprocess.check_call(argv + ["--trigger", "note", "--message", {HOSTILE!r}])
subprocess.check_call(argv + ["--trigger", "note", "--message", {big!r}])
mega = ({HOSTILE!r} + "y" * 5000) * 200  # 1 MB: only stdin can carry it
proc = subprocess.run(argv + ["--trigger", "note", "--message", "-"], input=mega.encode())
assert proc.returncode == 0, proc.returncode
""")
    site.job("hostile", job_yaml(command=job, events=["note"]))
    code, out, err = run(site, "hostile")
    assert code == 0, err
    events = status_of(site, "hostile")["events"]
    assert len(events) == 3
    calls = hook_calls(site, "note")
    assert len(calls) == 3
    for event in events:
        message = event["message"]
        assert "\n" not in message and "\r" not in message and "\x1b" not in message
        assert len(message.encode()) <= 1024
        assert message.startswith(("line one line two $(touch pwned)", "x" * 1000))
    assert events[0]["message"] == ("line one line two $(touch pwned) `touch pwned2`; rm -rf / &"
                                    " | > x [31m 'q' \"dq\"")
    assert len(events[1]["message"].encode()) == 1024
    assert sorted(c["RUN_JOB_EVENT_MESSAGE"] for c in calls) == sorted(e["message"] for e in events)
    assert not list(site.root.glob("pwned*")) and not list(site.root.parent.glob("pwned*"))


def test_undeclared_event_and_trigger_outside_a_run(site):
    job = script(site, "job.py", f"""
import subprocess
argv = {command("run-job")!r}
for event in ("progres", "start", "Progress"):
    proc = subprocess.run(argv + ["--trigger", event], capture_output=True, text=True)
    print(proc.returncode, proc.stderr.strip(), flush=True)
print("job goes on", flush=True)
""")
    site.job("typo", job_yaml(command=job, events=["progress", "finished"]))
    code, out, err = run(site, "typo")
    assert code == 0, err
    log = (site.output / "typo" / "latest" / "output.log").read_text().splitlines()
    assert log[0].startswith("2 run-job: event 'progres' is not declared by job typo")
    assert "did you mean 'progress'?" in log[0]
    assert log[1].startswith("2 ") and "'start' is not declared" in log[1]
    assert log[2].startswith("2 ") and log[3] == "job goes on"
    assert status_of(site, "typo").get("events", []) == []
    # outside a run
    res = site.run_job("--trigger", "progress")
    assert res.returncode == 2 and "only inside a run" in res.stderr
    # a job that declares none
    site.job("none", job_yaml(command=f"{RUN_JOB} --trigger progress"))
    code, _, _ = run(site, "none")
    assert code == 2
    assert "declares no events" in (site.output / "none" / "latest" / "output.log").read_text()
    # a forged environment pointing elsewhere
    res = site.run_job("--trigger", "x", env={"RUN_JOB_NAME": "a", "RUN_JOB_EVENTS": "x",
                                                "RUN_JOB_RUN_ID": "20260102T030405.123456Z-1",
                                                "RUN_JOB_RUN_DIR": "/etc"})
    assert res.returncode == 2 and "is not the folder of run" in res.stderr


def test_timeout_fires_on_time_while_an_event_hook_runs(site):
    hook(site, "slow_hook", body="time.sleep(3)")
    site.job("late", job_yaml(command=f"{RUN_JOB} --trigger slow_hook", events=["slow_hook"]))
    site.job("bounded", job_yaml(
        command=script(site, "job.py", f"""
import subprocess, time
subprocess.check_call({command("run-job")!r} + ["--trigger", "slow_hook"])
time.sleep(60)
"""), events=["slow_hook"], timeout="1s", kill_grace="1s"))
    started = time.monotonic()
    code, out, err = run(site, "bounded")
    took = time.monotonic() - started
    assert code == 124, err
    status = status_of(site, "bounded")
    assert status["outcome"] == "timed_out"
    assert status["duration_s"] < 2.5  # the timeout fired while the hook slept
    assert took >= 3  # and the end was recorded once the hook had ended
    [event] = status["events"]
    assert event["hooks"][0]["exit_code"] == 0  # the sweep left the hook alone
    assert event["hooks"][0]["duration_s"] >= 3
    # an event triggered as the last act of a run still gets its hooks
    code, _, err = run(site, "late")
    assert code == 0, err
    assert status_of(site, "late")["events"][0]["hooks"][0]["exit_code"] == 0


def test_forged_lines_are_ignored(site):
    job = script(site, "job.py", """
import json, os
with open(os.path.join(os.environ["RUN_JOB_RUN_DIR"], "events.jsonl"), "a") as f:
    f.write(json.dumps({"time": "x", "event": "undeclared", "message": "m"}) + "\\n")
    f.write("not json\\n")
    f.write(json.dumps({"time": "2026-01-01T00:00:00Z", "event": "ok", "message": "a\\nb"}) + "\\n")
""")
    site.job("forged", job_yaml(command=job, events=["ok"]))
    code, out, err = run(site, "forged")
    assert code == 0
    assert status_of(site, "forged")["events"] == [
        {"time": "2026-01-01T00:00:00Z", "event": "ok", "message": "a b"}]
    assert b"ignored undeclared event 'undeclared'" in err and b"not JSON" in err
