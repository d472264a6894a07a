"""The Slurm batch executor's pure parts (slurm/batch.py): a run's Slurm job in words."""

from __future__ import annotations

from run_job.slurm.batch import describe_job
from run_job.slurm.vocabulary import SlurmJob


def sj(state, code=0, sig=0, reason="None"):
    return SlurmJob(job_id="1", state=state, exit_code=code, exit_signal=sig, reason=reason)


def test_describe_job():
    assert describe_job("7", sj("RUNNING")) == "slurm job 7: RUNNING"
    pending = SlurmJob(job_id="7", state="PENDING", reason="Resources", partition="debug")
    assert describe_job("7", pending) == "slurm job 7: PENDING (Resources) on debug"
    assert describe_job("7", None) == "slurm job 7: no longer known to Slurm"
    assert "unreachable" in describe_job("7", None, unreachable="x")
