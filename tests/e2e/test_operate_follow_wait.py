"""--follow and --wait against real runs started by another process (SPEC §9).

Runs are started as cron starts them (``env -i PATH=/usr/bin:/bin``, no
terminal, their own session); their jobs wait on a gate file named after
their run id, so the tests decide when a run ends. Folder names are
adversarial.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from operate_helpers import open_files, run_dir_of, start, start_as_cron, status_of, wait_ended, wait_running
from runjob_helpers import PY, history, job_yaml, marked_pids, marker, new_site, q

GATE = r'''
import os, sys, time
gate = os.path.join(os.environ["GATE_DIR"], os.environ["RUN_JOB_RUN_ID"])
sys.stdout.buffer.write(b"started\n"); sys.stdout.flush()
while not os.path.exists(gate):
    time.sleep(0.01)
with open(gate, "rb") as f:
    sys.stdout.buffer.write(f.read()); sys.stdout.flush()
sys.exit(int(os.environ.get("EXIT", "0")))
'''


@pytest.fixture
def site(tmp_path):
    site = new_site(tmp_path)
    (site.root / "gates").mkdir()
    (site.root / "gate.py").write_text(GATE)
    return site


def gated(site, slug: str, exit_code: int = 0, **fields) -> None:
    site.job(slug, job_yaml(command=f"{PY} {q(site.root / 'gate.py')} {marker()}",
                            environment={"GATE_DIR": str(site.root / "gates"),
                                         "EXIT": exit_code}, **fields))


def open_gate(site, run_id: str, data: bytes = b"") -> None:
    path = site.root / "gates" / run_id
    tmp = path.with_name(run_id + ".tmp")
    tmp.write_bytes(data)
    tmp.rename(path)


def finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, bytes, bytes]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_follow_is_live_byte_for_byte_and_exits_with_the_run(site):
    gated(site, "bin", exit_code=7)
    run = start_as_cron(site, "bin")
    status = wait_running(site, "bin")
    follower = start(site, "--follow", "bin")
    folder = run_dir_of(site, "bin")
    deadline = time.monotonic() + 10
    while not any(p.endswith("/output.log") for p in open_files(follower.pid)):
        assert time.monotonic() < deadline, "the follower never opened output.log"
        time.sleep(0.02)
    payload = bytes(range(256)) * 4000 + b"\r\x00no newline at the end"
    open_gate(site, status["run_id"], payload)
    code, out, err = finish(follower)
    assert code == 7, err
    assert out == b"started\n" + payload
    assert out == (folder / "output.log").read_bytes()
    assert finish(run)[0] == 7


def test_follow_a_finished_run_prints_it_whole(site):
    site.job("done", job_yaml(command=[f"{PY} -c 'import sys; sys.stdout.write(\"first\\n\")'",
                                       f"{PY} -c 'import sys; sys.exit(4)'"]))
    assert site.run_job("done").returncode == 4
    site.job("done", job_yaml(command="echo second"))
    assert site.run_job("done").returncode == 0
    res = site.run_job("--follow", "done")
    assert (res.returncode, res.stdout) == (0, "second\n")
    first = history(site, "done")[0]["run_id"]
    res = site.run_job("--follow", "done", "--run", first)
    assert (res.returncode, res.stdout) == (4, "first\n")
    for bad in ("../../etc", "latest", first + "/..", "20260102T030405.123456Z-12/x", "٢" * 30):
        res = site.run_job("--follow", "done", "--run", bad)
        assert res.returncode == 2 and "is not a run id" in res.stderr, bad
    res = site.run_job("--follow", "done", "--run", "20200102T030405.123456Z-12")
    assert res.returncode == 2 and "has no run" in res.stderr
    assert site.run_job("--follow", "nosuch").returncode == 2
    site.job("never", job_yaml(command="true"))
    res = site.run_job("--follow", "never")
    assert res.returncode == 2 and "has not run yet" in res.stderr
    bad_name = site.run_job("--follow", "../x")  # as --history refuses a bad name
    assert bad_name.returncode == site.run_job("--history", "../x").returncode != 0
    assert "not a job name" in bad_name.stderr


def test_follow_and_wait_of_a_timed_out_run(site):
    site.job("slow", job_yaml(command=f"{PY} -c 'import time; print(\"x\", flush=True);"
                                      f" time.sleep(30)'", timeout="1s", kill_grace="1s"))
    run = start_as_cron(site, "slow")
    wait_running(site, "slow")
    follower, waiter = start(site, "--follow", "slow"), start(site, "--wait", "slow")
    assert finish(follower)[:2] == (124, b"x\n")
    assert finish(waiter)[0] == 124
    assert finish(run)[0] == 124


def test_ctrl_c_detaches_and_the_run_goes_on(site):
    gated(site, "goon")
    run = start_as_cron(site, "goon")
    status = wait_running(site, "goon")
    follower, waiter = start(site, "--follow", "goon"), start(site, "--wait", "goon")
    time.sleep(1.0)  # both attached and asleep
    follower.send_signal(signal.SIGINT)
    waiter.send_signal(signal.SIGINT)
    assert finish(follower)[0] == 130 and finish(waiter)[0] == 130
    assert status_of(site, "goon")["outcome"] == "running"
    open_gate(site, status["run_id"])
    assert finish(run)[0] == 0
    assert status_of(site, "goon")["outcome"] == "success"


def test_wait_exits_with_the_run_and_prints_its_record(site):
    gated(site, "w", exit_code=3)
    run = start_as_cron(site, "w")
    status = wait_running(site, "w")
    waiters = [start(site, "--wait", "w", "--json") for _ in range(3)]
    time.sleep(0.5)
    assert all(w.poll() is None for w in waiters)
    open_gate(site, status["run_id"])
    for waiter in waiters:
        code, out, err = finish(waiter)
        assert code == 3, err
        record = json.loads(out)
        assert record == status_of(site, "w") and record["outcome"] == "failed"
        from jsonschema import Draft7Validator

        from run_job.config.schema import load_schema

        Draft7Validator(load_schema("status")).validate(record)
    assert finish(run)[0] == 3
    res = site.run_job("--wait", "w")  # nothing running: the newest run's status, at once
    assert res.returncode == 3


def test_wait_timeout_is_75_and_the_run_is_unaffected(site):
    gated(site, "t")
    run = start_as_cron(site, "t")
    status = wait_running(site, "t")
    started = time.monotonic()
    res = site.run_job("--wait", "t", "--timeout", "0.5", "--json")
    assert res.returncode == 75 and time.monotonic() - started < 10
    assert json.loads(res.stdout)["outcome"] == "running"
    assert site.run_job("--wait", "t", "--timeout", "1s").returncode == 75
    open_gate(site, status["run_id"])
    assert finish(run)[0] == 0
    assert status_of(site, "t")["outcome"] == "success"
    assert site.run_job("--wait", "t", "--next", "--timeout", "0.3").returncode == 75
    for bad in ("-1", "soon", "1x"):
        assert site.run_job("--wait", "t", "--timeout", bad).returncode == 2


def test_wait_next_waits_for_the_next_run(site):
    gated(site, "nx", exit_code=5)
    waiters = [start(site, "--wait", "nx", "--next") for _ in range(3)]
    for waiter in waiters:  # "next" counts from when each took its baseline
        while "anon_inode:inotify" not in open_files(waiter.pid):
            time.sleep(0.02)
    assert all(w.poll() is None for w in waiters)  # no run yet: they wait
    run = start_as_cron(site, "nx")
    status = wait_running(site, "nx")
    time.sleep(0.3)
    assert all(w.poll() is None for w in waiters)  # started, not ended
    open_gate(site, status["run_id"])
    assert [finish(w)[0] for w in waiters] == [5, 5, 5]
    assert finish(run)[0] == 5


def test_a_dead_supervisor_makes_the_run_lost_for_waiters_and_followers(site):
    mark = marker()
    site.job("dies", job_yaml(command=f"{PY} -c 'import time; time.sleep(60)' {mark}",
                              kill_grace="1s"))
    run = start_as_cron(site, "dies")
    status = wait_running(site, "dies")
    waiter, follower = start(site, "--wait", "dies"), start(site, "--follow", "dies")
    time.sleep(1.0)
    try:
        os.kill(run.pid, signal.SIGKILL)  # run-job dies; its job goes on, unsupervised
        assert finish(waiter)[0] == 125
        assert finish(follower)[0] == 125
        final = status_of(site, "dies")
        assert final["run_id"] == status["run_id"] and final["outcome"] == "lost"
        assert "supervision lost" in final["reason"]
    finally:
        for pid in marked_pids(mark):
            os.kill(pid, signal.SIGKILL)
        run.communicate(timeout=30)


def test_followers_and_waiters_never_take_the_job_lock(site):
    """20 followers and waiters attached to a run, 20 waiters for the next
    one: none of them ever has the job's lock file open, and the next run,
    started as cron starts it while they wait, is never skipped."""
    gated(site, "busy")
    lock_file = str(site.rundir / "busy.lock")
    next_waiters = [start(site, "--wait", "busy", "--next") for _ in range(20)]
    previous = None
    for round_ in range(2):
        deadline = time.monotonic() + 30
        for proc in next_waiters:  # each has taken its baseline (then opened inotify)
            while "anon_inode:inotify" not in open_files(proc.pid):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.02)
        run = start_as_cron(site, "busy")
        status = wait_running(site, "busy", previous=previous)
        attached = [start(site, "--follow", "busy") for _ in range(10)]
        attached += [start(site, "--wait", "busy") for _ in range(10)]
        deadline = time.monotonic() + 30
        waiting = [p for p in attached if p.args[-2] == "--wait"]
        for proc in waiting:  # every waiter asleep on the run's end lock
            while not any(p.endswith("/.supervisor.lock") for p in open_files(proc.pid)):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.02)
        for proc in attached + next_waiters:
            assert lock_file not in open_files(proc.pid)
        open_gate(site, status["run_id"], b"round %d\n" % round_)
        assert finish(run)[0] == 0
        for proc in attached:
            code, out, _ = finish(proc)
            assert code == 0
            if proc.args[-2] == "--follow":
                assert out == b"started\nround %d\n" % round_
        assert [finish(w)[0] for w in next_waiters] == [0] * 20
        next_waiters = [start(site, "--wait", "busy", "--next") for _ in range(20)]
        previous = status["run_id"]
    for proc in next_waiters:
        proc.kill()
        proc.communicate()
    assert [e["outcome"] for e in history(site, "busy")] == ["success", "success"]


def test_wait_and_follow_as_cron_would_call_them(site):
    """A script started from cron's bare environment waits and follows too."""
    gated(site, "bare")
    run = start_as_cron(site, "bare")
    status = wait_running(site, "bare")
    from operate_helpers import cron_env
    from pctest import command

    argv = ["env", "-i", *(f"{k}={v}" for k, v in cron_env().items()), *command("run-job"),
            "--config", str(site.config)]
    waiter = subprocess.Popen(argv + ["--wait", "bare"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd="/")
    follower = subprocess.Popen(argv + ["--follow", "bare"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd="/")
    time.sleep(0.5)
    open_gate(site, status["run_id"], b"end\n")
    assert finish(waiter)[0] == 0
    assert finish(follower)[:2] == (0, b"started\nend\n")
    assert finish(run)[0] == 0
    wait_ended(site, "bare")
