"""run-job --job: every exit status of SPEC §4, with the real command.

0, the command's own status, 75 (skipped; 0 under allow_overtime), 124,
125, 126, 127 and 128+N, each with the ``outcome`` recorded in status.json
or history. Folder names are adversarial.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from pctest import command, command_env, wait_for
from runjob_helpers import PY, history, job_yaml, latest_status, new_site, q, run_dirs


@pytest.fixture
def site(tmp_path):
    return new_site(tmp_path)


def test_success_is_0(site):
    site.job("ok", "name: \"it's 100% ok; really\"\ncommand: /bin/true\n")
    result = site.run_job("--job", "ok")
    assert result.returncode == 0, result.stderr
    assert latest_status(site, "ok")["outcome"] == "success"
    assert result.stderr == ""


def test_bare_name_runs_the_job(site):
    site.job("ok", "command: /bin/true\n")
    assert site.run_job("ok").returncode == 0
    assert latest_status(site, "ok")["outcome"] == "success"


def test_command_status_passes_through(site):
    site.job("three", "command: sh -c 'exit 3'\n")
    result = site.run_job("--job", "three")
    assert result.returncode == 3
    status = latest_status(site, "three")
    assert (status["outcome"], status["exit_code"]) == ("failed", 3)
    assert "exited with status 3" in status["reason"]


def test_command_exiting_75_or_124_is_failed_not_skipped(site):
    site.job("seventy-five", "command: sh -c 'exit 75'\n")
    assert site.run_job("seventy-five").returncode == 75
    assert latest_status(site, "seventy-five")["outcome"] == "failed"


def test_skipped_is_75_and_0_under_allow_overtime(site):
    site.job("busy", "command: sleep 30\nkill_grace: 1s\n")
    site.job("busy-ok", "command: sleep 30\nallow_overtime: true\nkill_grace: 1s\n")
    procs = [subprocess.Popen(command("run-job") + ["--config", str(site.config), slug],
                              env=command_env(), stderr=subprocess.DEVNULL)
             for slug in ("busy", "busy-ok")]
    try:
        for slug in ("busy", "busy-ok"):
            assert wait_for(lambda: (site.output / slug / "latest").exists())
        second = site.run_job("busy")
        assert second.returncode == 75
        assert site.run_job("busy-ok").returncode == 0
        for slug in ("busy", "busy-ok"):
            entries = history(site, slug)
            assert entries[-1]["outcome"] == "skipped"
            assert entries[-1]["run_dir"] is None
            assert entries[-2]["outcome"] == "running"
            assert len(run_dirs(site, slug)) == 1  # a skip gets no folder
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            assert p.wait(20) == 128 + signal.SIGTERM


def test_timeout_is_124(site):
    site.job("slow", "command: sleep 30\ntimeout: 1s\nkill_grace: 1s\n")
    started = time.monotonic()
    result = site.run_job("slow")
    assert result.returncode == 124
    assert time.monotonic() - started < 10
    assert latest_status(site, "slow")["outcome"] == "timed_out"


def test_timeout_in_minutes_as_in_the_reference(site):
    site.job("slow", "command: sleep 30\ntimeout: 0.02\nkill_grace: 1s\n")  # 1.2 s
    assert site.run_job("slow").returncode == 124


def test_bad_job_file_is_125_one_line(site):
    site.job("bad", "command: /bin/true\nno_such_key: 1\n")
    result = site.run_job("bad")
    assert result.returncode == 125
    assert "Traceback" not in result.stderr
    assert "no_such_key" in result.stderr


def test_missing_job_is_125(site):
    result = site.run_job("nope")
    assert result.returncode == 125
    assert "Traceback" not in result.stderr


def test_unwritable_run_record_is_125(site, tmp_path):
    if os.geteuid() == 0:
        # root writes anywhere: make output_directory a file instead
        blocker = tmp_path / "not a folder"
        blocker.write_text("")
        from pctest import Site
        site = Site(tmp_path / "other site", output_directory=str(blocker / "log"))
    else:
        site.output.mkdir(parents=True, exist_ok=True)
        site.output.chmod(0o500)
    site.job("ok", "command: /bin/true\n")
    result = site.run_job("ok")
    assert result.returncode == 125
    assert "Traceback" not in result.stderr
    assert "run folder" in result.stderr


def test_not_executable_is_126(site):
    script = site.root / "not executable.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    site.job("noexec", job_yaml(command=[q(script)]))
    result = site.run_job("noexec")
    assert result.returncode == 126
    status = latest_status(site, "noexec")
    assert status["outcome"] == "failed" and status["exit_code"] == 126


def test_not_found_is_127(site):
    site.job("nf", "command: definitely-not-a-command-xyz --flag\n")
    result = site.run_job("nf")
    assert result.returncode == 127
    assert "Traceback" not in result.stderr
    assert "not found" in latest_status(site, "nf")["reason"]


def test_killed_by_signal_is_128_plus_n(site):
    site.job("selfkill", "command: sh -c 'kill -USR1 $$'\n")
    result = site.run_job("selfkill")
    assert result.returncode == 128 + signal.SIGUSR1
    status = latest_status(site, "selfkill")
    assert status["signal"] == signal.SIGUSR1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_to_run_job_is_forwarded(site, signum):
    mark_file = site.root / "got"
    code = (f"import signal,sys,time; signal.signal({int(signum)}, lambda *a: "
            "(open(sys.argv[1],'w').write('yes'), sys.exit(0))); "
            "open(sys.argv[1] + '.ready','w'); time.sleep(60)")
    site.job("fwd", job_yaml(command=f"{PY} -c {q(code)} {q(mark_file)}", kill_grace="2s"))
    proc = subprocess.Popen(command("run-job") + ["--config", str(site.config), "fwd"],
                            env=command_env(), stderr=subprocess.PIPE)
    assert wait_for(lambda: (site.root / "got.ready").exists())
    proc.send_signal(signum)
    assert proc.wait(20) == 128 + signum
    assert mark_file.read_text() == "yes"  # the job itself received the signal
    status = latest_status(site, "fwd")
    assert status["outcome"] == "killed" and status["signal"] == signum


def test_service_job_is_refused(site):
    site.job("svc", "command: sleep 1\nrunner: slurm\nservice: {}\n")
    result = site.run_job("svc")
    assert result.returncode == 125
    assert "sbatch-service start svc" in result.stderr


def test_usage_error_is_2(site):
    result = site.run_job("--status", "--list-jobs")
    assert result.returncode == 2
    assert site.run_job().returncode == 2
