"""--follow, --wait and --trigger with Slurm runs on the real single-node cluster (SPEC §9).

Each test has its own config and job slugs under a folder with spaces,
quotes, ';' and '%' in its name, so tests share the cluster with others.
Jobs wait on a gate file named after their run id: the tests decide when a
run ends.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
USER = __import__("pwd").getpwuid(os.geteuid()).pw_name
HOSTILE = "slurm ops; 'q' \"dq\" %j"
PY = shlex.quote(sys.executable)
GATE = r'''
import os, sys, time
gate = os.path.join(os.environ["GATE_DIR"], os.environ["RUN_JOB_RUN_ID"])
sys.stdout.buffer.write(b"started\n"); sys.stdout.flush()
while not os.path.exists(gate):
    time.sleep(0.05)
with open(gate, "rb") as f:
    sys.stdout.buffer.write(f.read()); sys.stdout.flush()
sys.exit(int(os.environ.get("EXIT", "0")))
'''


def run_job_argv() -> list[str]:
    if os.environ.get("PC_INSTALLED") == "1":
        return ["run-job"]
    return [sys.executable, "-m", "run_job"]


class Site:
    def __init__(self, root: Path, env: dict[str, str], **settings: object) -> None:
        self.root, self.jobs, self.output = root, root / "jobs", root / "log"
        self.gates = root / "gates"
        for folder in (self.jobs, self.gates):
            folder.mkdir(parents=True)
        os.chmod(root, 0o755)
        os.chmod(self.jobs, 0o755)
        (root / "gate.py").write_text(GATE)
        self.config = root / "process-control.yaml"
        base = {"job_directory": str(self.jobs), "output_directory": str(self.output),
                "state_directory": str(root / "state"), "run_directory": str(root / "run"),
                "output_crontab": "console", "user": USER}
        base.update(settings)
        self.config.write_text(yaml.safe_dump(base))
        self.env = dict(env)
        self.env.pop("PROCESS_CONTROL_CONFIG", None)
        if os.environ.get("PC_INSTALLED") != "1":
            self.env["PYTHONPATH"] = str(REPO)

    def gated_job(self, tag: str, exit_code: int = 0, **fields: object) -> str:
        slug = f"pc-ops-{tag}-{uuid.uuid4().hex[:8]}"
        fields.setdefault("command", f"{PY} {shlex.quote(str(self.root / 'gate.py'))}")
        fields.setdefault("environment", {"GATE_DIR": str(self.gates), "EXIT": exit_code})
        path = self.jobs / f"{slug}.yaml"
        path.write_text(yaml.safe_dump({"runner": "slurm", **fields}))
        path.chmod(0o644)
        return slug

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(run_job_argv() + ["--config", str(self.config), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=self.env)

    def status(self, slug: str) -> dict | None:
        try:
            return json.loads((self.output / slug / "latest" / "status.json").read_text())
        except (OSError, ValueError):
            return None

    def wait_slurm_running(self, slug: str, timeout: float = 60) -> dict:
        """The run's status once its Slurm job has started (the job wrote its
        first line)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(slug)
            if status and status.get("slurm_job_id") and status["outcome"] == "running":
                log = self.output / slug / status["run_id"] / "output.log"
                if log.exists() and log.read_bytes().startswith(b"started\n"):
                    return status
            time.sleep(0.05)
        raise AssertionError(f"{slug}: no running Slurm job: {self.status(slug)}")

    def open_gate(self, run_id: str, data: bytes = b"") -> None:
        tmp = self.gates / (run_id + ".tmp")
        tmp.write_bytes(data)
        tmp.rename(self.gates / run_id)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, bytes, bytes]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture
def site(tmp_path, slurm_env) -> Site:
    return Site(tmp_path / HOSTILE, slurm_env)


def test_follow_and_wait_a_slurm_run(site):
    slug = site.gated_job("fw", exit_code=6)
    run = site.start("--job", slug)
    try:
        status = site.wait_slurm_running(slug)
        follower = site.start("--follow", slug)
        waiter = site.start("--wait", slug, "--json")
        time.sleep(1.5)
        assert follower.poll() is None and waiter.poll() is None
        payload = bytes(range(256)) * 64 + b"no newline"
        site.open_gate(status["run_id"], payload)
        code, out, err = finish(follower)
        assert code == 6, err
        assert out == b"started\n" + payload
        code, out, err = finish(waiter)
        assert code == 6, err
        record = json.loads(out)
        assert record["runner"] == "slurm" and record["outcome"] == "failed"
        assert record["slurm_job_id"] == status["slurm_job_id"]
        assert finish(run)[0] == 6
    finally:
        if run.poll() is None:
            run.kill()


def test_wait_next_and_timeout_on_slurm(site):
    slug = site.gated_job("next")
    waiter = site.start("--wait", slug, "--next")
    time.sleep(1.0)
    run = site.start("--job", slug)
    try:
        status = site.wait_slurm_running(slug)
        short = site.start("--wait", slug, "--timeout", "1")
        assert finish(short)[0] == 75
        assert waiter.poll() is None
        site.open_gate(status["run_id"])
        assert finish(waiter)[0] == 0
        assert finish(run)[0] == 0
    finally:
        for proc in (run, waiter):
            if proc.poll() is None:
                proc.kill()


def test_trigger_from_inside_a_slurm_run_fires_its_hooks(tmp_path, slurm_env):
    hooks = tmp_path / "hooks"
    site = Site(tmp_path / HOSTILE, slurm_env, hooks_directory=str(hooks))
    (hooks / "stage").mkdir(parents=True)
    dump = hooks / "stage" / "dump"
    dump.write_text(f"#!{sys.executable}\nimport json, os\n"
                    f"with open({str(site.root / 'hook.json')!r}, 'w') as f:\n"
                    "    json.dump({k: v for k, v in os.environ.items()"
                    " if k.startswith('RUN_JOB_')}, f)\n")
    dump.chmod(0o755)
    trigger = " ".join(shlex.quote(w) for w in run_job_argv())
    job = site.root / "job.sh"
    job.write_text(f"{trigger} --trigger stage --message \"$(printf 'on the node\\nline 2')\"\n"
                   f"{trigger} --trigger stagee; echo typo=$?\n")
    slug = site.gated_job("trig", command=f"/bin/sh {shlex.quote(str(job))}",
                          events=["stage"], environment={})
    run = site.start("--job", slug)
    code, out, err = finish(run)
    assert code == 0, err
    status = site.status(slug)
    [event] = status["events"]
    assert event["event"] == "stage" and event["message"] == "on the node line 2"
    assert event["hooks"][0]["exit_code"] == 0
    seen = json.loads((site.root / "hook.json").read_text())
    assert seen["RUN_JOB_EVENT"] == "stage" and seen["RUN_JOB_EVENT_MESSAGE"] == "on the node line 2"
    assert seen["RUN_JOB_RUN_ID"] == status["run_id"]
    log = (site.output / slug / status["run_id"] / "output.log").read_text()
    assert "did you mean 'stage'?" in log and "typo=2" in log


def test_waiter_of_a_slurm_run_whose_run_job_died(site):
    """run-job is SIGKILLed while its Slurm job goes on: the waiter keeps
    waiting while Slurm has the job (asked at most every 10 s, job.status
    read in between), then the run is settled lost: 125."""
    slug = site.gated_job("dead")
    run = site.start("--job", slug)
    status = site.wait_slurm_running(slug)
    waiter = site.start("--wait", slug)
    time.sleep(1.0)
    os.kill(run.pid, signal.SIGKILL)
    run.communicate()
    time.sleep(2.0)
    assert waiter.poll() is None  # the Slurm job still runs
    site.open_gate(status["run_id"])
    code, _, err = finish(waiter, timeout=60)
    assert code == 125, err
    final = site.status(slug)
    assert final["outcome"] == "lost" and "supervision lost" in final["reason"]
