"""The Slurm client's pure parts (slurm/client.py): which stderr means
"unreachable" or "unknown job" (output recorded from the real cluster,
tests/golden/slurm/), the environment its commands get."""

from __future__ import annotations

from pathlib import Path

from run_job.slurm.client import client_environment, is_unknown_job, is_unreachable

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "slurm"


def read(name: str) -> str:
    return (GOLDEN / name).read_text()


def test_error_classification():
    assert is_unknown_job(read("scontrol_unknown_stderr.txt"))
    assert not is_unreachable(read("scontrol_unknown_stderr.txt"))
    for name in ("squeue_unreachable_stderr.txt", "sbatch_unreachable_stderr.txt"):
        assert is_unreachable(read(name)), name
        assert not is_unknown_job(read(name))
    assert not is_unreachable(read("sbatch_bad_partition_stderr.txt"))
    # scancel --signal=KILL --full of a job that ended meanwhile: gone, not an error
    assert is_unknown_job(read("scancel_kill_gone_stderr.txt"))
    assert not is_unreachable(read("scancel_kill_gone_stderr.txt"))


def test_client_environment_drops_what_changes_slurm_output():
    env = client_environment({"SLURM_CONF": "/c", "SQUEUE_FORMAT": "%i", "SBATCH_PARTITION": "x",
                              "SLURM_TIME_FORMAT": "relative", "PATH": "/bin", "SLURM_JOB_ID": "3"})
    assert env == {"SLURM_CONF": "/c", "PATH": "/bin", "SLURM_JOB_ID": "3"}
