"""Trust: no job left unsupervised, damaged state never stops a job (issue "trust", items 4-10, 15).

Every test drives the real ``run-job`` against a site in tmp_path: timeouts
that once overflowed, state files damaged field by field (and replaced by a
FIFO), run-jobs SIGKILLed at random points, history trimming under
``allow_overtime``, ``--kill-job`` facing a pid it cannot verify.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

import pytest

from pctest import command, command_env, wait_for
from runjob_helpers import PY, history, job_yaml, latest_status, new_site, run_dirs


@pytest.fixture
def site(tmp_path):
    return new_site(tmp_path)


# -- item 5: every accepted timeout is supervised ------------------------------

@pytest.mark.parametrize("timeout", [".inf", ".nan", "-.inf", "'400d'", "-1", "'1e3m'"])
def test_timeouts_that_cannot_be_enforced_are_refused(site, timeout):
    site.job("t", f"command: /bin/true\ntimeout: {timeout}\n")
    res = site.run_job("--validate", "t")
    assert res.returncode == 1, res.stdout
    assert "timeout" in res.stdout
    run = site.run_job("t")
    assert run.returncode == 125 and "Traceback" not in run.stderr
    assert not (site.output / "t").exists()


@pytest.mark.parametrize("timeout", ["'25d'", "40000", "'30d'", "525600"])
def test_long_timeouts_are_accepted_and_supervised(site, timeout):
    site.job("long", f"command: {PY} -c 'import time; time.sleep(0.3)'\ntimeout: {timeout}\n")
    assert site.run_job("--validate", "long").returncode == 0
    res = site.run_job("long")
    assert res.returncode == 0, res.stderr
    assert latest_status(site, "long")["outcome"] == "success"


def test_a_long_timeout_run_still_obeys_sigterm(site):
    site.job("long", f"command: {PY} -c 'import time; time.sleep(60)'\ntimeout: '30d'\n"
                     "kill_grace: 1s\n")
    proc = subprocess.Popen(command("run-job") + ["--config", str(site.config), "long"],
                            env=command_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: (site.output / "long" / "latest" / "status.json").exists())
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert latest_status(site, "long")["outcome"] == "killed"


# -- item 7: damaged state, field by field ---------------------------------------

def _good(run_id: str, outcome: str = "success") -> dict:
    return {"job": "d", "run_id": run_id, "outcome": outcome, "pid": 1,
            "started_at": "2026-01-02T03:04:05.000000Z", "ended_at": "2026-01-02T03:04:06.000000Z",
            "duration_s": 1.0, "exit_code": 0, "reason": ""}


def test_a_damaged_entry_is_set_aside_and_the_job_runs(site):
    site.job("d", job_yaml(command="/bin/true"))
    site.job("other", job_yaml(command="/bin/true"))
    assert site.run_job("other").returncode == 0
    site.state.mkdir(parents=True, exist_ok=True)
    flipped = _good("20260102T030405.000000Z-7")
    flipped["started_at"] = "2026-13-02T03:04:05.000000Z"  # one flipped character
    running = _good("20260102T030406.000000Z-8", "running")
    running["pid"] = "8"  # a wrong type
    path = site.state / "d.history.json"
    path.write_text(json.dumps([_good("20260102T030404.000000Z-6"), flipped, running]))
    status = site.run_job("--status", "--json")
    assert status.returncode == 0, status.stderr
    assert {row["job"] for row in json.loads(status.stdout)["jobs"]} == {"d", "other"}
    for attempt in range(2):  # every run works, not only the first
        res = site.run_job("d")
        assert res.returncode == 0, res.stderr
    entries = history(site, "d")
    assert [e["run_id"] for e in entries][0] == "20260102T030404.000000Z-6"
    assert all(e["outcome"] == "success" for e in entries) and len(entries) == 3
    aside = sorted(site.state.glob("d.history.json.damaged-*"))
    assert len(aside) == 1
    kept = json.loads(aside[0].read_text())
    assert [e["run_id"] for e in kept] == [flipped["run_id"], running["run_id"]]
    # damaged again: a second copy beside the first, never over it
    path.write_text(json.dumps(entries + [flipped]))
    assert site.run_job("d").returncode == 0
    assert len(list(site.state.glob("d.history.json.damaged-*"))) == 2
    assert json.loads(aside[0].read_text()) == kept


@pytest.mark.parametrize("content", [b"{not json", b'{"a": 1}', b"\xff\xfe", b"[" * 5000])
def test_a_damaged_history_file_is_set_aside_whole(site, content):
    site.job("d", job_yaml(command="/bin/true"))
    site.state.mkdir(parents=True, exist_ok=True)
    (site.state / "d.history.json").write_bytes(content)
    assert site.run_job("--status").returncode == 0
    res = site.run_job("d")
    assert res.returncode == 0, res.stderr
    assert [e["outcome"] for e in history(site, "d")] == ["success"]
    assert [p.read_bytes() for p in site.state.glob("d.history.json.damaged-*")] == [content]


def test_a_fifo_as_history_never_hangs_a_run(site):
    site.job("f", job_yaml(command="/bin/true"))
    site.state.mkdir(parents=True, exist_ok=True)
    os.mkfifo(site.state / "f.history.json")
    assert site.run_job("--status", timeout=20).returncode == 0
    assert site.run_job("--history", "f", timeout=20).returncode == 0
    res = site.run_job("f", timeout=20)  # subprocess.TimeoutExpired would fail the test
    assert res.returncode == 0, res.stderr
    assert [e["outcome"] for e in history(site, "f")] == ["success"]
    assert len(list(site.state.glob("f.history.json.damaged-*"))) == 1


def test_a_damaged_status_json_does_not_break_status(site):
    site.job("s", job_yaml(command="/bin/true"))
    assert site.run_job("s").returncode == 0
    status_path = run_dirs(site, "s")[0] / "status.json"
    record = json.loads(status_path.read_text())
    record["ended_at"] = "not a time"
    status_path.write_text(json.dumps(record))
    res = site.run_job("--status", "--json")
    assert res.returncode == 0, res.stderr
    assert site.run_job("s").returncode == 0


def test_a_cache_entry_of_the_right_format_but_the_wrong_shape_is_a_miss(site, tmp_path):
    import marshal

    cache = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    site.job("c", job_yaml(command="/bin/true"))
    assert site.run_job("c", env=env).returncode == 0
    assert site.run_job("--status", env=env).returncode == 0
    entries = list((cache / "process-control").iterdir())
    assert entries
    for shape in ({"jobs": {"c": 5}, "config": 7}, {"jobs": 3}, [1, 2], ("k", "p", 3, 4),
                  ("k", "p", ("R", "NoSuchRecord", ()), ("R", "Job", (1,)))):
        for entry in entries:
            entry.write_bytes(b"run-job-cache-4\n" + marshal.dumps(shape))
        for args in (["c"], ["--status"], ["--list-jobs"]):
            res = site.run_job(*args, env=env)
            assert res.returncode == 0, (shape, args, res.stderr)
            assert "Traceback" not in res.stderr and "internal error" not in res.stderr


# -- item 8: a run whose run-job died is always settled ------------------------

def test_sigkill_at_random_points_never_leaves_a_run_at_running(site):
    site.job("k", job_yaml(command=f"{PY} -c 'import time; time.sleep(0.2)'", kill_grace="1s"))
    rng = random.Random(7)
    for _ in range(40):
        proc = subprocess.Popen(command("run-job") + ["--config", str(site.config), "k"],
                                env=command_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.25))
        proc.kill()
        proc.wait()
    time.sleep(0.5)  # orphans end by themselves (0.2 s jobs)
    res = site.run_job("--status", "--json")
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout)["jobs"][0]
    assert not row["running"], row
    res = site.run_job("k")
    assert res.returncode == 0, res.stderr
    for folder in run_dirs(site, "k"):
        status = json.loads((folder / "status.json").read_text())
        assert status["outcome"] != "running", folder
    assert all(e["outcome"] != "running" for e in history(site, "k"))
    assert os.path.islink(site.output / "k" / "latest")


def test_a_run_that_died_before_its_history_entry_is_settled(site):
    """The run folder is the only record (simulated exactly: a folder at
    ``running`` whose run-job is gone, newer than every history entry)."""
    site.job("h", job_yaml(command="/bin/true"))
    assert site.run_job("h").returncode == 0
    first = latest_status(site, "h")
    ghost_id = "29990101T000000.000000Z-999999"
    ghost = site.output / "h" / ghost_id
    ghost.mkdir()
    record = dict(first, run_id=ghost_id, outcome="running", ended_at=None, duration_s=None,
                  exit_code=None, pid=999999, supervisor_start_time=1, run_dir=str(ghost))
    (ghost / "status.json").write_text(json.dumps(record))
    os.unlink(site.output / "h" / "latest")
    os.symlink(ghost_id, site.output / "h" / "latest")
    res = site.run_job("--status", "--json")
    assert res.returncode == 0
    assert json.loads((ghost / "status.json").read_text())["outcome"] == "lost"
    assert any(e["run_id"] == ghost_id and e["outcome"] == "lost" for e in history(site, "h"))


def test_the_next_run_settles_stuck_run_folders(site):
    site.job("h", job_yaml(command="/bin/true"))
    site.output.mkdir(parents=True, exist_ok=True)
    ghost_id = "20200101T000000.000000Z-999999"
    ghost = site.output / "h" / ghost_id
    ghost.mkdir(parents=True)
    (ghost / "status.json").write_text(json.dumps(
        {"job": "h", "run_id": ghost_id, "outcome": "running", "pid": 999999,
         "started_at": "2020-01-01T00:00:00.000000Z", "run_dir": str(ghost)}))
    assert site.run_job("h").returncode == 0
    assert json.loads((ghost / "status.json").read_text())["outcome"] == "lost"
    assert [e["outcome"] for e in history(site, "h")] == ["lost", "success"]


def test_latest_turned_into_a_folder_is_set_aside(site):
    site.job("l", job_yaml(command="/bin/true"))
    (site.output / "l" / "latest").mkdir(parents=True)
    (site.output / "l" / "latest" / "keep-me").write_text("x")
    res = site.run_job("l")
    assert res.returncode == 0, res.stderr
    assert os.path.islink(site.output / "l" / "latest")
    aside = list((site.output / "l").glob("latest.damaged-*"))
    assert len(aside) == 1 and (aside[0] / "keep-me").read_text() == "x"


# -- item 9: a running run survives any number of skips --------------------------

def test_history_length_never_evicts_the_running_entry(tmp_path):
    site = new_site(tmp_path, history_length=2)
    site.job("o", job_yaml(command=f"{PY} -c 'import time; time.sleep(30)'", allow_overtime=True,
                           kill_grace="1s"))
    proc = subprocess.Popen(command("run-job") + ["--config", str(site.config), "o"],
                            env=command_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: any(e["outcome"] == "running" for e in history_or_empty(site, "o")))
        for _ in range(4):
            assert site.run_job("o").returncode == 0  # skipped quietly
        rows = json.loads(site.run_job("--status", "--json").stdout)["jobs"]
        assert rows[0]["running"], rows
        assert [e["outcome"] for e in history(site, "o")] == ["running", "skipped"]
    finally:
        assert site.run_job("--kill-job", "o").returncode == 0
        proc.wait(timeout=30)


def history_or_empty(site, slug):
    try:
        return history(site, slug)
    except (OSError, ValueError):
        return []


# -- item 4: --kill-job signals only a process it can identify ------------------

def test_kill_job_never_signals_a_pid_it_cannot_verify(site):
    site.job("v", job_yaml(command="/bin/true"))
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        site.state.mkdir(parents=True, exist_ok=True)
        entry = _good("20260102T030405.000000Z-1", "running")
        entry.update(pid=bystander.pid, ended_at=None, duration_s=None, exit_code=None)
        (site.state / "v.history.json").write_text(json.dumps([entry]))
        res = site.run_job("--kill-job", "v")
        assert res.returncode == 1, (res.stdout, res.stderr)
        time.sleep(0.2)
        assert bystander.poll() is None, "an unrelated process was signalled"
        # with a start time that does not match, neither
        entry["supervisor_start_time"] = 1
        (site.state / "v.history.json").write_text(json.dumps([entry]))
        assert site.run_job("--kill-job", "v").returncode == 1
        time.sleep(0.2)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


# -- item 15: --history of a name nobody knows -----------------------------------

def test_history_of_an_unknown_name_is_an_error(site):
    res = site.run_job("--history", "nosuchjob")
    assert res.returncode == 2
    assert len(res.stderr.splitlines()) == 1 and "nosuchjob" in res.stderr
    site.job("known", job_yaml(command="/bin/true"))
    res = site.run_job("--history", "known")
    assert res.returncode == 0 and "no runs recorded" in res.stdout


# -- item 17: a password file others can read is said at every start ------------

def test_a_readable_password_file_is_reported_when_a_run_starts(tmp_path):
    secret = tmp_path / "smtp-password"
    secret.write_text("hunter2\n")
    secret.chmod(0o644)
    site = new_site(tmp_path, mail={"smtp_host": "127.0.0.1", "username": "u",
                                    "password_file": str(secret)})
    site.job("m", job_yaml(command="/bin/true", failmail={"to_address": "ops@example.org"}))
    res = site.run_job("m")
    assert res.returncode == 0
    assert "password" in res.stderr and "hunter2" not in res.stderr
    secret.chmod(0o600)
    res = site.run_job("m")
    assert res.returncode == 0 and res.stderr == ""


def test_a_run_folder_without_status_json_is_settled_by_the_next_run(site):
    """run-job killed between making the run folder and writing status.json."""
    site.job("b", job_yaml(command="/bin/true"))
    ghost_id = "20200101T000000.000000Z-999999"
    (site.output / "b" / ghost_id).mkdir(parents=True)
    assert site.run_job("b").returncode == 0
    status = json.loads((site.output / "b" / ghost_id / "status.json").read_text())
    assert status["outcome"] == "lost" and status["started_at"].startswith("2020-01-01T00:00:00")
    assert [e["outcome"] for e in history(site, "b")] == ["lost", "success"]
