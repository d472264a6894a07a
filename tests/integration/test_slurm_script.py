"""The batch script run by bash itself (no Slurm needed): job.status, output,
first-failure semantics, a signal, a hostile PATH. Slurm runs the very same
text with the same bash."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from pctest import wait_for
from run_job.slurm.vocabulary import build_batch_script, parse_job_status


def run_script(tmp_path: Path, commands, exports=(), wd=None, wait=True):
    run_dir = tmp_path / "run ;'x' %j $(id)"
    run_dir.mkdir(exist_ok=True)
    script = build_batch_script(slug="s", run_id="r", commands=commands, exports=list(exports),
                                working_directory=str(wd or run_dir), run_dir=str(run_dir),
                                output_path=str(run_dir / "output.log"))
    path = run_dir / "job.sbatch"
    path.write_text(script)
    env = dict(os.environ, SLURM_JOB_ID="4242")
    proc = subprocess.Popen(["bash", str(path)], env=env, start_new_session=True)
    if wait:
        proc.wait(30)
    return proc, run_dir


def status_of(run_dir: Path):
    return parse_job_status((run_dir / "job.status").read_text())


def test_success(tmp_path):
    proc, run_dir = run_script(tmp_path, [["echo", "a b"], ["printf", "%s|", "x", "$y"]])
    assert proc.returncode == 0
    st = status_of(run_dir)
    assert (st.exit_status, st.failed_command, st.signal, st.slurm_job_id) == (0, None, None, "4242")
    assert st.started_at and st.ended_at and st.pid == proc.pid
    assert (run_dir / "output.log").read_bytes() == b"a b\nx|$y|"
    assert not list(run_dir.glob("job.status.tmp*"))


def test_first_failure_stops(tmp_path):
    proc, run_dir = run_script(tmp_path, [["true"], ["sh", "-c", "exit 7"], ["touch", "never"]])
    assert proc.returncode == 7
    st = status_of(run_dir)
    assert (st.exit_status, st.failed_command) == (7, 2)
    assert not (run_dir / "never").exists()


def test_executables_not_builtins_and_a_hostile_path(tmp_path):
    # 'exit' and 'cd' are bash builtins: a local run would not find them (127);
    # the job's own PATH applies to its commands, not to run-job's helpers
    proc, run_dir = run_script(tmp_path, [["exit", "0"]])
    assert proc.returncode == 127 and status_of(run_dir).exit_status == 127
    proc, run_dir = run_script(tmp_path, [["ls"]], exports=[("PATH", "/nonexistent")])
    assert proc.returncode == 127
    st = status_of(run_dir)
    assert st.exit_status == 127 and st.ended_at


def test_not_executable_126(tmp_path):
    plain = tmp_path / "plain file"
    plain.write_text("echo x\n")
    proc, run_dir = run_script(tmp_path, [[str(plain)]])
    assert proc.returncode == 126


def test_bad_working_directory_125(tmp_path):
    proc, run_dir = run_script(tmp_path, [["true"]], wd=tmp_path / "missing dir")
    assert proc.returncode == 125
    assert status_of(run_dir).exit_status == 125
    assert b"cannot change to the working directory" in (run_dir / "output.log").read_bytes()


def test_term_is_recorded(tmp_path):
    proc, run_dir = run_script(tmp_path, [["sleep", "30"], ["touch", "never"]], wait=False)
    wait_for(lambda: (run_dir / "job.status").exists(), timeout=10, step=0.02)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)  # as Slurm does: the script and its children
    assert proc.wait(10) == 143
    st = status_of(run_dir)
    assert (st.exit_status, st.signal, st.failed_command) == (143, 15, 1)
    assert not (run_dir / "never").exists()
