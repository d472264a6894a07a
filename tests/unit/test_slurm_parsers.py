"""Parsers of sbatch, scontrol, squeue and job.status output, against output
recorded from the real cluster (tests/golden/slurm/*.txt, see capture.py),
and the pure decisions: outcome, poll rates (slurm/vocabulary.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from run_job.errors import SlurmError
from run_job.model import ExecResult
from run_job.slurm.vocabulary import (ACTIVE_STATES, JobStatus, SlurmJob, decide_outcome,
                           parse_job_status, parse_sacct, parse_sbatch_parsable,
                           parse_scontrol_job, parse_squeue)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "slurm"


def read(name: str) -> str:
    return (GOLDEN / name).read_text()


def test_sbatch_parsable():
    job_id = parse_sbatch_parsable(read("sbatch_parsable.txt"))
    assert job_id.isdigit()
    assert parse_sbatch_parsable("123;cluster\n") == "123"
    assert parse_sbatch_parsable("sbatch: warning: x\n77\n") == "77"
    for bad in ("", "Submitted batch job 5\n", "12a\n"):
        with pytest.raises(SlurmError):
            parse_sbatch_parsable(bad)


@pytest.mark.parametrize("name,state,code,signal,active", [
    ("scontrol_completed.txt", "COMPLETED", 0, 0, False),
    ("scontrol_failed.txt", "FAILED", 3, 0, False),
    ("scontrol_cancelled.txt", "CANCELLED", 0, 15, False),
    ("scontrol_timeout.txt", "TIMEOUT", 0, 15, False),
    ("scontrol_running.txt", "RUNNING", 0, 0, True),
    ("scontrol_pending.txt", "PENDING", 0, 0, True),
])
def test_scontrol_states(name, state, code, signal, active):
    job = parse_scontrol_job(read(name))
    assert job is not None
    assert (job.state, job.exit_code, job.exit_signal, job.active) == (state, code, signal, active)
    assert job.job_id.isdigit() and job.user == "root"
    assert job.name.endswith(".run-job")


def test_scontrol_free_text_cannot_fake_fields():
    # the completed job has Comment=hello world JobState=FAKE and a WorkDir
    # with spaces, quotes and ';' after the fields read
    job = parse_scontrol_job(read("scontrol_completed.txt"))
    assert job.state == "COMPLETED"
    assert job.partition == "pc-alt" and job.time_limit == "00:05:00"
    assert job.started and not job.active


def test_scontrol_pending_details():
    job = parse_scontrol_job(read("scontrol_pending.txt"))
    assert job.reason == "JobHeldUser" and job.start_time == "Unknown"
    assert not job.started
    assert job.name == "golden|pipe.run-job"


def test_started_or_not():
    assert parse_scontrol_job(read("scontrol_running.txt")).started
    assert parse_scontrol_job(read("scontrol_cancelled.txt")).started
    assert parse_scontrol_job(read("scontrol_failed.txt")).started
    # cancelled while pending: Slurm sets StartTime = EndTime, but no BatchHost
    held = parse_scontrol_job(read("scontrol_cancelled_pending.txt"))
    assert held.state == "CANCELLED" and held.start_time not in (None, "Unknown")
    assert not held.started and not held.active


def test_scontrol_nothing():
    assert parse_scontrol_job("") is None
    assert parse_scontrol_job("No jobs in the system\n") is None


def test_squeue_lines():
    entries = parse_squeue(read("squeue_active.txt"))
    states = {e.name: e.state for e in entries}
    assert states["golden|pipe.run-job"] == "PENDING"  # '|' inside the name survives
    assert states["golden-cancel.run-job"] == "RUNNING"
    assert all(e.user == "root" and e.job_id.isdigit() for e in entries)
    everything = parse_squeue(read("squeue_all.txt"))
    assert {e.state for e in everything} >= {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"}
    assert parse_squeue("") == []
    with pytest.raises(SlurmError):
        parse_squeue("garbage\n")


def test_job_status_file():
    st = parse_job_status("slurm_job_id=12\nhost=n1\npid=99\nstarted_at=2026-01-01T00:00:00.000000Z\n")
    assert not st.ended and st.pid == 99 and st.slurm_job_id == "12"
    st = parse_job_status("started_at=x\nended_at=y\nexit_status=3\nfailed_command=2\nsignal=\nodd=1\n")
    assert (st.exit_status, st.failed_command, st.signal, st.ended) == (3, 2, None, True)
    assert parse_job_status("") is None
    assert parse_job_status("exit_status=abc\n").exit_status is None


def sj(state, code=0, sig=0, reason="None"):
    return SlurmJob(job_id="1", state=state, exit_code=code, exit_signal=sig, reason=reason)


def js(rc, failed=None, sig=None):
    return JobStatus(started_at="s", ended_at="e", exit_status=rc, failed_command=failed, signal=sig)


@pytest.mark.parametrize("status,job,kw,expected", [
    (js(0), sj("COMPLETED"), {}, ("success", 0, 0, None)),
    (js(3, 2), sj("FAILED", 3), {}, ("failed", 3, 3, None)),
    (js(127, 1), sj("FAILED", 127), {}, ("failed", 127, 127, None)),
    (js(125), sj("FAILED", 125), {}, ("failed", 125, 125, None)),
    (js(143, 1, 15), sj("CANCELLED", 0, 15), {}, ("killed", 143, None, 15)),
    (js(143, 1, 15), sj("TIMEOUT", 0, 15), {}, ("timed_out", 124, None, 15)),
    (js(143, 1, 15), sj("CANCELLED"), {"timed_out": True}, ("timed_out", 124, None, None)),
    (None, sj("CANCELLED", 0, 15), {"stop_signal": 2}, ("killed", 130, None, 2)),
    (None, sj("CANCELLED", 0, 15), {}, ("killed", 143, None, 15)),
    (None, sj("CANCELLED", 0, 9), {}, ("killed", 137, None, 9)),
    (None, sj("TIMEOUT", 0, 15), {}, ("timed_out", 124, None, 15)),
    (None, sj("FAILED", 0, 9, "JobLaunchFailure"), {}, ("killed", 137, None, 9)),
    (None, sj("FAILED", 0, 53, "JobLaunchFailure"), {}, ("killed", 181, None, 53)),
    (None, sj("FAILED", 4), {}, ("failed", 4, 4, None)),
    (None, sj("COMPLETED"), {}, ("success", 0, 0, None)),
    (None, sj("OUT_OF_MEMORY", 0, 9), {}, ("killed", 137, None, 9)),
    (None, sj("NODE_FAIL"), {}, ("lost", 125, None, None)),
    (None, None, {}, ("lost", 125, None, None)),
    (JobStatus(started_at="s"), None, {"lost_reason": "gone"}, ("lost", 125, None, None)),
])
def test_decide_outcome(status, job, kw, expected):
    out = decide_outcome(status, job, **kw)
    assert isinstance(out, ExecResult)  # the executor's own result type
    assert (out.outcome, out.exit_status, out.exit_code, out.signal) == expected
    if expected[0] != "success" or status is None:
        assert out.reason or expected[0] == "success"


def test_missing_job_status_is_explained():
    out = decide_outcome(None, sj("COMPLETED"))
    assert "job.status" in out.reason and "shared" in out.reason
    assert decide_outcome(JobStatus(started_at="s"), None, lost_reason="gone").reason == "gone"


def test_active_states():
    assert {"PENDING", "RUNNING", "COMPLETING", "SUSPENDED"} <= ACTIVE_STATES
    assert not {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"} & ACTIVE_STATES


def test_sacct_lines():
    # sacct -X -P -n -o JobID,State,ExitCode, as Slurm 22.05 with slurmdbd prints them
    text = "7|COMPLETED|0:0\n8|CANCELLED by 0|0:15\n9|TIMEOUT|0:0\n10|FAILED|3:0\n"
    assert parse_sacct(text, "8").state == "CANCELLED"
    assert parse_sacct(text, "8").exit_signal == 15
    assert (parse_sacct(text, "10").state, parse_sacct(text, "10").exit_code) == ("FAILED", 3)
    assert parse_sacct(text, "11") is None
    assert parse_sacct("", "7") is None
    assert decide_outcome(None, parse_sacct(text, "9")).outcome == "timed_out"
