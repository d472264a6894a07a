"""The hand-off of a run's wait to the lean waiter (run/handoff.py, run/lean.py), end to end.

A command still running after ``HANDOFF_AFTER`` has its wait handed to a
small interpreter in the same process: the same pid (cron's child, what
``--kill-job`` and lost-run detection know), the job's lock and the run's end
lock kept open; the way back to the full run-job when the command ends, the
deadline comes or a stop signal arrives. Every guarantee of a run holds
across it: these tests look at each through the exec windows.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time

import pytest

from pctest import command, command_env, comm, wait_for, cmdline, installed, private_kb
from runjob_helpers import (PY, history, job_yaml, kill_marked, latest_status, marked_pids, marker,
                            new_site, q, tree_command)


@pytest.fixture
def site(tmp_path):
    return new_site(tmp_path)


@pytest.fixture
def mark():
    value = marker()
    yield value
    kill_marked(value)


def start(site, *args):
    return subprocess.Popen(command("run-job") + ["--config", str(site.config), *args],
                            env=command_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_long_command_is_waited_for_by_the_lean_waiter_in_the_same_process(site, mark):
    site.job("long", job_yaml(command=f"{PY} -c 'import time,sys; time.sleep(4)' {mark}"))
    proc = start(site, "--job", "long")
    try:
        wait_for(lambda: (site.output / "long" / "latest" / "status.json").exists(), timeout=10)
        # the name it started with: run-job's (installed), the interpreter's (checkout)
        name = "run-job" if installed() else comm(proc.pid)
        wait_for(lambda: "run_job.run.lean" in cmdline(proc.pid), timeout=10)
        # ps, pgrep and pkill still find it by its job, and by name once the
        # waiter has set it back (between the exec and that, it is the
        # interpreter's: a window of an interpreter start)
        assert "run-job --job long" in cmdline(proc.pid)
        wait_for(lambda: comm(proc.pid) == name, timeout=5,
                 what=f"the waiter's process name set back to {name!r}")
        # the run's record names this very process: the supervisor did not change
        status = latest_status(site, "long")
        assert status["pid"] == proc.pid and status["outcome"] == "running"
        # the job's lock is still held across the exec
        with open(site.rundir / "long.lock", "rb") as f:
            with pytest.raises(BlockingIOError):
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # the waiting process is small: what the full run-job holds is gone
        assert private_kb(proc.pid) < 4500, private_kb(proc.pid)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    status = latest_status(site, "long")
    assert status["outcome"] == "success" and status["pid"] == proc.pid
    assert history(site, "long")[-1]["outcome"] == "success"
    assert marked_pids(mark) == []


def test_the_timeout_is_enforced_after_the_hand_off(site, mark):
    site.job("slow", job_yaml(command=tree_command(site, mark, 600), timeout="3s", kill_grace="1s"))
    started = time.monotonic()
    result = site.run_job("slow")
    assert result.returncode == 124, result.stderr
    assert time.monotonic() - started < 15
    assert latest_status(site, "slow")["outcome"] == "timed_out"
    assert marked_pids(mark) == []


@pytest.mark.parametrize("delay", [0.9, 0.97, 1.0, 1.03, 1.06, 1.1, 1.2, 1.5, 2.5])
def test_a_stop_signal_in_any_window_of_the_hand_off_stops_the_run(site, mark, delay):
    """TERM just before, during and after the exec into the lean waiter: never
    lost, never the default action (death without a record), always the job
    stopped and the run recorded ``killed``."""
    site.job("term", job_yaml(command=tree_command(site, mark, 600), kill_grace="1s"))
    proc = start(site, "--job", "term")
    try:
        wait_for(lambda: marked_pids(mark), timeout=10)
        time.sleep(max(0.0, delay - 0.3))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, err)
    status = latest_status(site, "term")
    assert status["outcome"] == "killed", status
    assert marked_pids(mark) == []


def test_leftovers_that_end_while_the_lean_waiter_waits_are_reaped(site, mark):
    script = site.root / "spawner.py"
    script.write_text(
        "import os, sys, time\n"
        "for i in range(20):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(1.5); os._exit(0)\n"  # a daemon: reparented to run-job
        "        os._exit(0)\n"
        "time.sleep(4)\n")
    site.job("spawner", job_yaml(command=f"{PY} {q(script)} {mark}"))
    proc = start(site, "--job", "spawner")
    try:
        wait_for(lambda: "run_job.run.lean" in cmdline(proc.pid), timeout=10)
        time.sleep(2.0)  # the daemons ended meanwhile: no zombie of them is kept

        def zombies() -> list[int]:
            found = []
            for name in os.listdir("/proc"):
                if name.isdigit():
                    try:
                        with open(f"/proc/{name}/stat") as f:
                            fields = f.read().rsplit(")", 1)[1].split()
                    except OSError:
                        continue
                    if fields[0] == "Z" and int(fields[1]) == proc.pid:
                        found.append(int(name))
            return found

        assert zombies() == []
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err


def test_a_second_command_starts_after_the_first_was_waited_for_by_the_lean_waiter(site):
    site.job("two", job_yaml(command=["sleep 2", "sh -c 'echo second; sleep 2; exit 3'"]))
    result = site.run_job("two")
    assert result.returncode == 3, result.stderr
    status = latest_status(site, "two")
    assert status["outcome"] == "failed" and "command 2" in status["reason"]
    assert "second" in (site.output / "two" / "latest" / "output.log").read_text()


def test_retries_go_on_across_hand_offs(site):
    site.job("retried", job_yaml(command="sh -c 'sleep 2; exit 1'",
                                 retry={"maximum_retries": 1, "initial_delay": "1s"}))
    result = site.run_job("retried")
    assert result.returncode == 1, result.stderr
    status = latest_status(site, "retried")
    assert status["outcome"] == "failed"
    assert [a["outcome"] for a in status["attempts"]] == ["failed", "failed"]


def test_kill_job_stops_a_run_the_lean_waiter_waits_for(site, mark):
    site.job("victim", job_yaml(command=tree_command(site, mark, 600), kill_grace="1s"))
    proc = start(site, "--job", "victim")
    try:
        wait_for(lambda: "run_job.run.lean" in cmdline(proc.pid), timeout=10)
        killed = site.run_job("--kill-job", "victim")
        assert killed.returncode == 0, killed.stderr
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    status = latest_status(site, "victim")
    assert status["outcome"] == "killed" and "--kill-job" in status["reason"]
    assert marked_pids(mark) == []


def test_the_wait_before_a_retry_is_the_lean_waiters(site):
    count = site.root / "count"
    script = site.root / "second-time.py"
    script.write_text("import sys\nwith open(sys.argv[1], 'a+') as f:\n    f.write('x')\n"
                      "    f.seek(0)\n    sys.exit(0 if len(f.read()) >= 2 else 1)\n")
    site.job("later", job_yaml(command=f"{PY} {q(script)} {q(count)}",
                               retry={"maximum_retries": 1, "initial_delay": "3s"}))
    proc = start(site, "--job", "later")
    try:
        wait_for(lambda: "run_job.run.lean" in cmdline(proc.pid), timeout=10)
        assert count.read_text().count("x") == 1  # waiting to retry, in the lean waiter
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    status = latest_status(site, "later")
    assert status["outcome"] == "success"
    assert [a["outcome"] for a in status["attempts"]] == ["failed", "success"]


def test_a_stop_while_waiting_to_retry_in_the_lean_waiter_ends_the_run_killed(site):
    site.job("never", job_yaml(command="false", retry={"maximum_retries": 2, "initial_delay": "30s"}))
    proc = start(site, "--job", "never")
    try:
        wait_for(lambda: "run_job.run.lean" in cmdline(proc.pid), timeout=10)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    status = latest_status(site, "never")
    assert status["outcome"] == "killed"
    assert "while waiting to retry: attempt 2 never started" in status["reason"]
    assert status["attempts"][-1]["retry_at"] is None
