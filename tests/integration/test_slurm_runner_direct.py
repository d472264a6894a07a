"""slurm_runner.execute/precheck/kill on the real cluster, with a RunContext
built here (the controller's part stubbed by a dict): the executor's own
contract, independent of the run-job command line."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from pctest import config_record, wait_for
from run_job.errors import SlurmUnreachable
from run_job.model import Config, Job, JobSlurm, SlurmConfig
from run_job.model import RunContext
from run_job.slurm import batch as slurm_runner
from run_job.slurm.client import SlurmClient

SLUG = "pc-direct"


def make_config(tmp_path: Path, **slurm) -> Config:
    config = config_record(tmp_path / "pc root; 'x' %j", user="root", slurm=SlurmConfig(**slurm))
    for folder in (config.job_directory, config.output_directory, config.state_directory,
                   config.run_directory):
        folder.mkdir(parents=True, exist_ok=True)
    return config


def make_job(config: Config, commands, *, slug=SLUG, **kw) -> Job:
    return Job(slug=slug, path=config.job_directory / f"{slug}.yaml", sha256="0" * 64,
               commands=tuple(tuple(c) for c in commands),
               command_text=tuple(" ".join(c) for c in commands), runner="slurm", **kw)


class Run:
    """A run folder and the controller's side of the context."""

    def __init__(self, config: Config, job: Job, *, stop_after: float | None = None,
                 environment: dict | None = None):
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns()}"
        self.run_dir = config.output_directory / job.slug / self.run_id
        self.run_dir.mkdir(parents=True)
        self.status: dict = {}
        self.updates: list[dict] = []
        self.stop_at = None if stop_after is None else time.monotonic() + stop_after
        env = dict(os.environ)
        env.update(dict(job.environment))
        env.update({"RUN_JOB_NAME": job.slug, "RUN_JOB_RUN_ID": self.run_id,
                    "RUN_JOB_RUN_DIR": str(self.run_dir), "RUN_JOB_FILE": str(job.path)})
        env.update(environment or {})
        self.ctx = RunContext(
            config=config, job=job, run_id=self.run_id, run_dir=self.run_dir,
            output_path=self.run_dir / "output.log", commands=job.commands,
            command_text=job.command_text, environment=env,
            working_directory=job.working_directory or self.run_dir,
            update_status=self.update, stop_requested=self.stop)

    def update(self, **fields):
        self.updates.append(dict(fields))
        self.status.update(fields)

    def stop(self):
        if self.stop_at is not None and time.monotonic() >= self.stop_at:
            return 15
        return None

    @property
    def output(self) -> bytes:
        return (self.run_dir / "output.log").read_bytes()


@pytest.fixture
def client(slurm_env, monkeypatch):
    # the runner's own SlurmClient() reads os.environ
    monkeypatch.setenv("SLURM_CONF", slurm_env["SLURM_CONF"])
    return SlurmClient(environ=slurm_env)


def test_success_output_and_job_id(tmp_path, client):
    config = make_config(tmp_path)
    job = make_job(config, [["echo", "hello; 'world' %j"], ["sh", "-c", "echo second >&2"]])
    run = Run(config, job)
    res = slurm_runner.execute(run.ctx, client=client)
    assert (res.outcome, res.exit_status, res.exit_code) == ("success", 0, 0), res.reason
    assert run.output == b"hello; 'world' %j\nsecond\n"
    assert run.updates[0] == {"slurm_job_id": res.slurm_job_id}
    found = client.show_job(res.slurm_job_id)
    assert found is not None and found.state == "COMPLETED"
    assert found.name == f"{SLUG}.run-job"


def test_first_failure_exit_3(tmp_path, client):
    config = make_config(tmp_path)
    job = make_job(config, [["sh", "-c", "echo one; exit 3"], ["echo", "never"]])
    run = Run(config, job)
    res = slurm_runner.execute(run.ctx, client=client)
    assert (res.outcome, res.exit_status, res.exit_code) == ("failed", 3, 3)
    assert "command 1" in res.reason
    assert run.output == b"one\n"
    assert client.show_job(res.slurm_job_id).exit_code == 3


def test_not_found_127(tmp_path, client):
    config = make_config(tmp_path)
    job = make_job(config, [["/nonexistent/cmd x"]])
    res = slurm_runner.execute(Run(config, job).ctx, client=client)
    assert (res.outcome, res.exit_status) == ("failed", 127)


def test_environment_and_working_directory(tmp_path, client):
    config = make_config(tmp_path)
    wd = tmp_path / "work dir; $(x)"
    wd.mkdir()
    job = make_job(config, [["sh", "-c", 'printf "%s|%s|%s|%s" "$GREETING" "$RUN_JOB_NAME" "$PWD" "$ODD"']],
                   environment=(("GREETING", "it's \"quoted\" $HOME ;"), ("ODD", "a\nb")),
                   working_directory=wd)
    run = Run(config, job)
    res = slurm_runner.execute(run.ctx, client=client)
    assert res.outcome == "success", res.reason
    assert run.output.decode() == f"it's \"quoted\" $HOME ;|{SLUG}|{wd}|a\nb"


def test_partition(tmp_path, client):
    config = make_config(tmp_path, partition="debug")
    job = make_job(config, [["true"]], slurm=JobSlurm(partition="pc-alt", options=("--comment=a b",)))
    res = slurm_runner.execute(Run(config, job).ctx, client=client)
    assert client.show_job(res.slurm_job_id).partition == "pc-alt"
    job = make_job(config, [["true"]])
    res = slurm_runner.execute(Run(config, job).ctx, client=client)
    assert client.show_job(res.slurm_job_id).partition == "debug"


def test_timeout_cancels_in_slurm(tmp_path, client):
    config = make_config(tmp_path)
    job = make_job(config, [["sleep", "60"]], timeout=2.0, kill_grace=2.0)
    run = Run(config, job)
    t0 = time.monotonic()
    res = slurm_runner.execute(run.ctx, client=client)
    took = time.monotonic() - t0
    assert (res.outcome, res.exit_status) == ("timed_out", 124), res.reason
    assert took < 15, took
    found = client.show_job(res.slurm_job_id)
    assert found.state == "CANCELLED" and not found.active
    assert found.time_limit == "00:01:00"
    assert "slurm_pending_s" in run.status


def test_stop_requested_cancels(tmp_path, client):
    config = make_config(tmp_path)
    job = make_job(config, [["sleep", "60"]], kill_grace=2.0)
    run = Run(config, job, stop_after=1.5)
    res = slurm_runner.execute(run.ctx, client=client)
    assert (res.outcome, res.exit_status, res.signal) == ("killed", 143, 15)
    assert not client.show_job(res.slurm_job_id).active


def test_precheck_and_kill(tmp_path, client):
    config = make_config(tmp_path)
    job = make_job(config, [["sleep", "60"]], slug="pc-direct-kill", kill_grace=2.0)
    run = Run(config, job)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("res", slurm_runner.execute(run.ctx, client=client)))
    thread.start()
    try:
        wait_for(lambda: "slurm_job_id" in run.status, timeout=10)
        reason = slurm_runner.precheck(config, job, client=client)
        assert reason and run.status["slurm_job_id"] in reason
        assert run.status["slurm_job_id"] in slurm_runner.describe(run.status, client=client)
        # a history entry written at the start has no slurm_job_id: the run
        # folder's status.json supplies it
        entry = {"run_dir": str(run.run_dir), "slurm_job_id": None}
        (run.run_dir / "status.json").write_text(json.dumps(run.status))
        assert run.status["slurm_job_id"] in slurm_runner.describe(entry, client=client)
        assert slurm_runner.kill(config, job, entry, client=client) is True
    finally:
        thread.join(30)
    res = box["res"]
    assert (res.outcome, res.exit_status, res.signal) == ("killed", 143, 15), res.reason
    assert slurm_runner.precheck(config, job, client=client) is None
    assert slurm_runner.kill(config, job, dict(run.status), client=client) is False


def test_unreachable_precheck(tmp_path, dead_slurm_env):
    config = make_config(tmp_path)
    job = make_job(config, [["true"]])
    with pytest.raises(SlurmUnreachable):
        slurm_runner.precheck(config, job, client=SlurmClient(environ=dead_slurm_env, timeout=30))


class FlakyClient(SlurmClient):
    """A real client whose controller becomes unreachable right after the
    submission (SLURM_CONF pointed at a dead port) for ``dead_for`` seconds."""

    def __init__(self, env, dead_env, dead_for: float):
        super().__init__(environ=env, timeout=2.0)
        self.live = self.env
        self.dead = SlurmClient(environ=dead_env).env
        self.dead_for = dead_for
        self.dead_until: float | None = None
        self.failures = 0

    def submit(self, argv, **kw):
        job_id = super().submit(argv, **kw)
        self.dead_until = time.monotonic() + self.dead_for
        return job_id

    def _run(self, argv, **kw):  # every Slurm command of the client goes through it
        dead = self.dead_until is not None and time.monotonic() < self.dead_until
        self.env = self.dead if dead else self.live
        try:
            return super()._run(argv, **kw)
        except SlurmUnreachable:
            self.failures += 1
            raise
        finally:
            self.env = self.live


def test_unreachable_after_submission_is_lost(tmp_path, client, slurm_env, dead_slurm_env):
    config = make_config(tmp_path, unreachable_timeout=3.0)
    job = make_job(config, [["sleep", "60"]], slug="pc-direct-lost")
    run = Run(config, job)
    flaky = FlakyClient(slurm_env, dead_slurm_env, dead_for=1e9)
    try:
        res = slurm_runner.execute(run.ctx, client=flaky)
        assert (res.outcome, res.exit_status) == ("lost", 125)
        assert "unreachable" in res.reason.lower() and "slurm.unreachable_timeout" in res.reason
        assert flaky.failures >= 2
        assert client.show_job(res.slurm_job_id).active  # never read as "job gone"
    finally:
        client.cancel(run.status["slurm_job_id"])


def test_short_unreachability_is_waited_out(tmp_path, client, slurm_env, dead_slurm_env):
    config = make_config(tmp_path, unreachable_timeout=60.0)
    job = make_job(config, [["sleep", "4"], ["echo", "done"]], slug="pc-direct-flaky")
    run = Run(config, job)
    flaky = FlakyClient(slurm_env, dead_slurm_env, dead_for=3.0)
    res = slurm_runner.execute(run.ctx, client=flaky)
    assert (res.outcome, res.exit_status) == ("success", 0), res.reason
    assert flaky.failures >= 1
    assert run.output == b"done\n"


class HoldingClient(SlurmClient):
    """A real client that submits the job held (``--hold`` is refused in job
    files): the job stays PENDING until cancelled."""

    def submit(self, argv, **kw):
        argv = list(argv)
        return super().submit(argv[:-1] + ["--hold", argv[-1]], **kw)


def test_stop_while_pending(tmp_path, client, slurm_env):
    config = make_config(tmp_path)
    job = make_job(config, [["true"]], slug="pc-direct-held", timeout=1.0)
    run = Run(config, job, stop_after=2.0)
    t0 = time.monotonic()
    res = slurm_runner.execute(run.ctx, client=HoldingClient(environ=slurm_env))
    took = time.monotonic() - t0
    assert (res.outcome, res.exit_status, res.signal) == ("killed", 143, 15), res.reason
    assert took < 5, took  # the 1 s timeout never started: the job never ran
    found = client.show_job(res.slurm_job_id)
    assert found.state == "CANCELLED" and not found.started
    assert not (run.run_dir / "job.status").exists()
    assert "slurm_pending_s" not in run.status


def test_accounting_fallback_answers(tmp_path, client):
    """sacct: None without accounting (the default local cluster), else the
    same end as scontrol."""
    config = make_config(tmp_path)
    res = slurm_runner.execute(Run(config, make_job(config, [["sh", "-c", "exit 4"]])).ctx,
                               client=client)
    assert res.exit_status == 4
    found = client.accounting_job(res.slurm_job_id)
    if found is not None:
        assert (found.state, found.exit_code) == ("FAILED", 4)


def test_a_cancel_of_a_job_that_ended_meanwhile_is_no_error(tmp_path, client):
    """--kill-job sends TERM, then KILL after kill_grace: a job the TERM ended
    is gone by then (scancel --signal=KILL --full says "Invalid job id" and
    exits 1); that is not a failure of the kill."""
    job_id = client.submit(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "true"])
    wait_for(lambda: (found := client.show_job(job_id)) is not None and not found.active,
             timeout=30, what=f"Slurm job {job_id} ended")
    assert client.cancel(job_id, signal="KILL", full=True) is False
    assert client.cancel("999999", signal="KILL", full=True) is False
    # a live job is cancelled: True
    live = client.submit(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "sleep 60"])
    assert client.cancel(live) is True
    wait_for(lambda: (found := client.show_job(live)) is None or not found.active,
             timeout=30, what=f"Slurm job {live} cancelled")
