"""Process-tree supervision, the kernel lock and lost runs, end to end.

Every process a job starts carries a unique marker in its argv; after the
run, /proc must hold none of them: not a grandchild, not a setsid'd
descendant, not a double-forked daemon that ignores SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from pctest import command, command_env, wait_for
from runjob_helpers import (PY, history, job_yaml, kill_marked, latest_status, marked_pids, marker,
                            new_site, run_dirs, tree_command)


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


def test_timeout_stops_the_whole_tree(site, mark):
    site.job("tree", job_yaml(command=tree_command(site, mark, 600), timeout="2s", kill_grace="1s"))
    started = time.monotonic()
    result = site.run_job("tree")
    elapsed = time.monotonic() - started
    assert result.returncode == 124, result.stderr
    assert elapsed < 15
    assert marked_pids(mark) == []
    output = (site.output / "tree" / "latest" / "output.log").read_text()
    assert "tree started" in output
    assert latest_status(site, "tree")["outcome"] == "timed_out"


def test_leftovers_are_swept_after_a_successful_run(site, mark):
    site.job("leftover", job_yaml(command=tree_command(site, mark, 0.5), kill_grace="1s"))
    result = site.run_job("leftover")
    assert result.returncode == 0, result.stderr
    assert marked_pids(mark) == []
    status = latest_status(site, "leftover")
    assert status["outcome"] == "success"
    assert "leftover process" in status["reason"]


def test_clean_run_has_no_sweep_note(site):
    site.job("clean", job_yaml(command="sh -c 'sleep 0.1 & wait'"))
    assert site.run_job("clean").returncode == 0
    assert latest_status(site, "clean")["reason"] == ""


def test_sigterm_to_run_job_stops_the_tree(site, mark):
    site.job("tree", job_yaml(command=tree_command(site, mark, 600), kill_grace="1s"))
    proc = start(site, "tree")
    assert wait_for(lambda: len(marked_pids(mark)) >= 4)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 128 + signal.SIGTERM
    assert marked_pids(mark) == []
    status = latest_status(site, "tree")
    assert (status["outcome"], status["signal"]) == ("killed", signal.SIGTERM)


def test_sigkill_of_run_job_no_second_copy_then_recovery(site, mark):
    site.job("tree", job_yaml(command=tree_command(site, mark, 600), kill_grace="1s"))
    proc = start(site, "tree")
    assert wait_for(lambda: len(marked_pids(mark)) >= 4)
    first_run = latest_status(site, "tree")["run_id"]
    proc.kill()
    proc.wait(10)
    time.sleep(0.2)
    assert len(marked_pids(mark)) >= 3  # the orphans live on after run-job's death
    # The orphans still hold the lock: status says lost, no second copy starts
    # beside them; the next run stops them first.
    status = site.run_job("--status", "--json")
    assert status.returncode == 0, status.stderr
    row = json.loads(status.stdout)["jobs"][0]
    assert row["running"] is False
    assert row["last"]["outcome"] == "lost"
    json.loads((site.output / "tree" / first_run / "status.json").read_text())  # parses
    site.job("tree", job_yaml(command="sh -c 'echo second run'", kill_grace="1s"))
    result = site.run_job("tree")
    assert result.returncode == 0, result.stderr
    assert marked_pids(mark) == []  # the orphans were stopped before the run
    entries = history(site, "tree")
    assert [e["outcome"] for e in entries] == ["lost", "success"]
    assert "orphaned" in entries[-1]["reason"]
    assert json.loads((site.output / "tree" / first_run / "status.json").read_text())["outcome"] == "lost"
    # and the run after that is an ordinary one
    assert site.run_job("tree").returncode == 0
    assert history(site, "tree")[-1]["reason"] == ""


def test_lost_run_with_nothing_left_is_marked_at_the_next_run(site, mark):
    site.job("short", job_yaml(command=f"{PY} -c 'import time; time.sleep(30)' {mark}",
                                kill_grace="1s"))
    proc = start(site, "short")
    assert wait_for(lambda: marked_pids(mark))
    proc.kill()  # run-job dies, then its job too (as after a host crash)
    proc.wait(10)
    kill_marked(mark)
    assert wait_for(lambda: not marked_pids(mark))
    site.job("short", job_yaml(command="/bin/true"))
    assert site.run_job("short").returncode == 0
    entries = history(site, "short")
    assert [e["outcome"] for e in entries] == ["lost", "success"]
    assert "supervision lost" in entries[0]["reason"]


def test_twenty_simultaneous_starts_one_runs(site):
    counter = site.root / "ran"
    site.job("once", job_yaml(command=f"sh -c 'echo x >> \"$0\"; sleep 2' {_q(counter)}"))
    procs = [start(site, "once") for _ in range(20)]
    codes = [p.wait(60) for p in procs]
    assert sorted(codes) == [0] + [75] * 19
    assert counter.read_text() == "x\n"
    entries = history(site, "once")
    assert len(entries) == 20
    assert sorted(e["outcome"] for e in entries) == ["skipped"] * 19 + ["success"]
    assert len(run_dirs(site, "once")) == 1
    assert latest_status(site, "once")["outcome"] == "success"


def _q(path):
    import shlex

    return shlex.quote(str(path))


def test_kill_job_stops_the_tree(site, mark):
    site.job("tree", job_yaml(command=tree_command(site, mark, 600), kill_grace="1s"))
    proc = start(site, "tree")
    assert wait_for(lambda: len(marked_pids(mark)) >= 4)
    result = site.run_job("--kill-job", "tree")
    assert result.returncode == 0, result.stderr
    assert proc.wait(20) == 128 + signal.SIGTERM
    assert marked_pids(mark) == []
    status = latest_status(site, "tree")
    assert status["outcome"] == "killed"
    assert "--kill-job" in status["reason"]
    assert site.run_job("--kill-job", "tree").returncode == 1


def test_kill_job_with_nothing_running_is_1(site):
    site.job("idle", job_yaml(command="/bin/true"))
    result = site.run_job("-k", "idle")
    assert result.returncode == 1


def test_kill_job_of_orphans_whose_run_job_died(site, mark):
    site.job("tree", job_yaml(command=tree_command(site, mark, 600), kill_grace="1s"))
    proc = start(site, "tree")
    assert wait_for(lambda: len(marked_pids(mark)) >= 4)
    proc.kill()
    proc.wait(10)
    result = site.run_job("--kill-job", "tree")
    assert result.returncode == 0, result.stderr
    assert marked_pids(mark) == []
    assert history(site, "tree")[-1]["outcome"] in ("killed", "lost")


def test_kill_job_when_the_job_file_broke_meanwhile(site, mark):
    site.job("tree", job_yaml(command=tree_command(site, mark, 600), kill_grace="1s"))
    proc = start(site, "tree")
    assert wait_for(lambda: len(marked_pids(mark)) >= 4)
    site.job("tree", "command: [broken\n")
    result = site.run_job("--kill-job", "tree")
    assert result.returncode == 0, result.stderr
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert marked_pids(mark) == []
