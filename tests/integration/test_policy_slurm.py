"""Retries of a ``runner: slurm`` job on the real single-node cluster (SPEC §10):
one run folder, one Slurm job per attempt, each attempt's job.status kept."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from test_slurm_run_job import HOSTILE, SlurmSite, slug_of

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

COUNTER = r'''
import sys
path = sys.argv[1]
try:
    n = int(open(path).read()) + 1
except FileNotFoundError:
    n = 1
open(path, "w").write(str(n))
print(f"slurm call {n}")
sys.exit(0 if n >= 3 else 5)
'''


def test_a_slurm_job_that_fails_twice_then_succeeds_is_one_run_with_three_attempts(slurm_env, tmp_path):
    site = SlurmSite(tmp_path / HOSTILE, slurm_env)
    script = site.root / "counter.py"
    script.write_text(COUNTER)
    count = site.root / "count"
    slug = site.job(slug_of("retry"), command=f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
                                              f" {shlex.quote(str(count))}",
                    retry={"maximum_retries": 2, "initial_delay": "0.5s"})
    res = site.run(*["--job", slug], timeout=300)
    assert res.returncode == 0, res.stderr
    status = site.status(slug)
    assert status["outcome"] == "success" and status["reason"].endswith("succeeded at attempt 3 of 3")
    attempts = status["attempts"]
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "success"]
    assert [a["exit_code"] for a in attempts] == [5, 5, 0]
    ids = [a["slurm_job_id"] for a in attempts]
    assert len(set(ids)) == 3 and status["slurm_job_id"] == ids[-1]
    run_dir = Path(status["run_dir"])
    assert sorted(p.name for p in run_dir.glob("job.status*")) == ["job.status", "job.status.1",
                                                                   "job.status.2"]
    log = site.output_log(slug)
    for attempt in attempts:
        assert log[attempt["output_offset"]:].startswith(f"slurm call {attempt['attempt']}\n".encode())
    assert log.count(b"--- run-job: attempt") == 2
    assert len(site.history(slug)) == 1
