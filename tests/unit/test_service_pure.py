"""sbatch-service, the pure part of slurm/service.py: names, paths, partition and
working directory, exit statuses, the status table; and the lock's timeout.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pctest import config_record
from run_job.model import Config, Job, JobSlurm, Service
from run_job.slurm import service as svc
from run_job.slurm import vocabulary as voc


def make_config(root: Path) -> Config:
    return config_record(root, user="svc")


def make_job(**changes) -> Job:
    values = dict(slug="web", path=Path("/jobs/web.yaml"), sha256="", commands=(("/bin/true",),),
                  command_text=("/bin/true",), runner="slurm", service=Service())
    values.update(changes)
    return Job(**values)


def test_names_and_paths(tmp_path):
    config = make_config(tmp_path)
    assert voc.service_job_name("web") == "web-service"
    assert svc.state_path(config, "web") == tmp_path / "state" / "services" / "web.json"
    assert svc.log_path(config, "web") == tmp_path / "log" / "web" / "service.log"
    assert svc.lock_path(config, "web") == tmp_path / "run" / "web.service.lock"


def test_partition_default_and_override(tmp_path):
    config = make_config(tmp_path)
    assert svc.service_partition(config, make_job()) == "service-pool"
    assert svc.service_partition(config, make_job(slurm=JobSlurm(partition="gpu"))) == "gpu"


def test_working_directory(tmp_path):
    assert svc.working_directory(make_job(working_directory=Path("/srv/x")), str(tmp_path)) == "/srv/x"
    assert svc.working_directory(make_job(), str(tmp_path)) == str(tmp_path)
    assert svc.working_directory(make_job(), str(tmp_path / "missing")) == "/"
    assert svc.working_directory(make_job(), None) == "/"


@pytest.mark.parametrize("statuses, result", [
    ([], 0), ([0, 0], 0), ([0, 3], 3), ([3, 1], 1), ([1, 2], 2), ([2, 4, 1, 3], 4),
])
def test_combine_exit(statuses, result):
    assert svc.combine_exit(statuses) == result


def test_status_table():
    text = svc.render_status_table([("web", "12", "RUNNING", "node1", "2026-11-22T04:00:00"),
                                    ("database", "-", "not running", "-", "-")])
    lines = text.splitlines()
    assert lines[0].split() == ["SERVICE", "JOB", "STATE", "NODE", "SINCE"]
    assert lines[1].split() == ["web", "12", "RUNNING", "node1", "2026-11-22T04:00:00"]
    assert lines[2].startswith("database  -    not running")
    assert lines[0].index("JOB") == lines[1].index("12")


def test_lock_timeout_is_a_clear_failure(tmp_path):
    """A second command on the same service waits, then fails with one line (exit 1)."""
    config = make_config(tmp_path)
    path = svc.lock_path(config, "web")
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import filelock, sys, time; l = filelock.FileLock(sys.argv[1]); l.acquire(); "
         "print('held', flush=True); time.sleep(30)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        manager = svc.ServiceManager(config, client=object(), lock_timeout=0.3)
        began = time.monotonic()
        with pytest.raises(svc.ServiceError) as caught:
            with manager.locked("web"):
                pass
        assert time.monotonic() - began >= 0.3
        assert caught.value.exit_status == 1
        assert "held the lock" in str(caught.value) and str(path) in str(caught.value)
    finally:
        holder.kill()
        holder.wait()
    with manager.locked("web"):  # free again once the holder is gone
        pass
    assert path.exists()  # lock files are never unlinked
