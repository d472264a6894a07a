"""``run-job --job`` with ``runner: slurm`` on the real single-node cluster.

Every folder of the site has spaces, quotes, ';' and '%' in its name; each
test has its own config (``--config``) and job slugs, so tests can share the
cluster. Slurm job ids are checked against ``scontrol``.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

import pctest
from pctest import USER, wait_for

HOSTILE = "slurm site; 'q' \"dq\" %j"


class SlurmSite(pctest.Site):
    """pctest's site for Slurm runs: ``env`` names the cluster, job files are
    written from their fields (``runner: slurm`` unless said otherwise)."""

    def __init__(self, root: Path, env: dict[str, str], **settings: object) -> None:
        super().__init__(root, **settings)
        self.env = pctest.command_env(base=env)

    def job(self, slug: str, **fields: object) -> str:  # (fields, not text)
        fields.setdefault("runner", "slurm")
        super().job(slug, yaml.safe_dump(fields))
        return slug

    def argv(self, *args: str) -> list[str]:
        return pctest.command("run-job") + ["--config", str(self.config), *args]

    def run(self, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), capture_output=True, text=True,
                              env=env or self.env, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env)

    def status(self, slug: str) -> dict:
        return json.loads((self.output / slug / "latest" / "status.json").read_text())

    def history(self, slug: str) -> list[dict]:
        return json.loads((self.state / f"{slug}.history.json").read_text())

    def output_log(self, slug: str) -> bytes:
        return (self.output / slug / "latest" / "output.log").read_bytes()


def slug_of(tag: str) -> str:
    return f"pc-{tag}-{uuid.uuid4().hex[:8]}"


def slurm(env: dict, *argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=60,
                          check=True).stdout


def show(env: dict, job_id: str) -> dict:
    from run_job.slurm.vocabulary import parse_scontrol_job

    job = parse_scontrol_job(slurm(env, "scontrol", "show", "job", job_id))
    assert job is not None
    return job.as_dict()


def queued(env: dict, slug: str, states: str | None = "all") -> list[str]:
    """Job ids named like the slug's runs: ``states`` "all" (finished ones
    included, for MinJobAge) or None (only those not finished)."""
    argv = ["squeue", "-h", "-n", f"{slug}.run-job", "-o", "%i"]
    if states:
        argv += ["-t", states]
    return slurm(env, *argv).split()


def running_job_id(site: SlurmSite, slug: str) -> str | None:
    try:
        return site.status(slug).get("slurm_job_id")
    except (OSError, ValueError):
        return None


@pytest.fixture
def site(tmp_path, slurm_env) -> SlurmSite:
    return SlurmSite(tmp_path / HOSTILE, slurm_env)


def test_success_output_and_real_job_id(site, slurm_env):
    slug = site.job(slug_of("ok"), command=["echo 'hello; world' %j", "sh -c 'echo to stderr >&2'"])
    res = site.run("--job", slug)
    assert res.returncode == 0, res.stderr
    st = site.status(slug)
    assert (st["outcome"], st["runner"], st["exit_code"]) == ("success", "slurm", 0)
    assert site.output_log(slug) == b"hello; world %j\nto stderr\n"
    job = show(slurm_env, st["slurm_job_id"])
    assert job["name"] == f"{slug}.run-job" and job["state"] == "COMPLETED"
    assert job["user"] == USER
    assert site.history(slug)[-1]["slurm_job_id"] == st["slurm_job_id"]


def test_exit_status_3_passed_through(site, slurm_env):
    slug = site.job(slug_of("three"), command=["true", "sh -c 'echo failing; exit 3'", "echo never"])
    res = site.run("--job", slug)
    assert res.returncode == 3, res.stderr
    st = site.status(slug)
    assert (st["outcome"], st["exit_code"]) == ("failed", 3)
    assert site.output_log(slug) == b"failing\n"
    assert show(slurm_env, st["slurm_job_id"])["exit_code"] == 3


def test_partition_from_job_and_from_config(tmp_path, slurm_env):
    site = SlurmSite(tmp_path / HOSTILE, slurm_env, slurm={"partition": "pc-alt"})
    own = site.job(slug_of("part"), command="true", slurm={"partition": "debug"})
    default = site.job(slug_of("part"), command="true")
    assert site.run("--job", own).returncode == 0
    assert site.run("--job", default).returncode == 0
    assert show(slurm_env, site.status(own)["slurm_job_id"])["partition"] == "debug"
    assert show(slurm_env, site.status(default)["slurm_job_id"])["partition"] == "pc-alt"


def test_allowed_options_reach_slurm(site, slurm_env):
    slug = site.job(slug_of("opts"), command="true",
                    slurm={"options": ["--comment=pc test; 'x'", "-c1", "--nice=5"], "time": "7"})
    assert site.run("--job", slug).returncode == 0
    job_id = site.status(slug)["slurm_job_id"]
    text = slurm(slurm_env, "scontrol", "show", "job", job_id)
    assert "Comment=pc test; 'x'" in text and "Nice=5" in text
    assert show(slurm_env, job_id)["time_limit"] == "00:07:00"


def test_refused_options_make_the_job_invalid(site, slurm_env):
    slug = site.job(slug_of("refused"), command="true",
                    slurm={"options": ["--mem=10M", "--wrap=id", "--part=debug", "-Jx"]})
    res = site.run("--job", slug)
    assert res.returncode == 125
    for needle in ("--wrap", "--part (= --partition)", "-J (= --job-name)"):
        assert needle in res.stderr
    assert "--mem" not in res.stderr
    assert queued(slurm_env, slug) == []
    val = site.run("--validate", slug)
    assert val.returncode == 1 and "slurm.options" in (val.stdout + val.stderr)


def test_environment_reaches_the_job(site):
    slug = site.job(slug_of("env"), command="sh -c 'printf \"%s|%s|%s\" \"$GREETING\" \"$RUN_JOB_NAME\" \"$NUMBER\"'",
                    environment={"GREETING": "it's \"quoted\"; $HOME `id`", "NUMBER": 7})
    res = site.run("--job", slug)
    assert res.returncode == 0, res.stderr
    assert site.output_log(slug).decode() == f"it's \"quoted\"; $HOME `id`|{slug}|7"


def test_timeout_ends_the_job_in_slurm(site, slurm_env):
    slug = site.job(slug_of("timeout"), command="sleep 120", timeout="3s", kill_grace="2s")
    t0 = time.monotonic()
    res = site.run("--job", slug)
    took = time.monotonic() - t0
    assert res.returncode == 124, res.stderr
    assert took < 20, took
    st = site.status(slug)
    assert st["outcome"] == "timed_out"
    job = show(slurm_env, st["slurm_job_id"])
    assert job["state"] in ("CANCELLED", "TIMEOUT") and job["time_limit"] == "00:01:00"
    assert queued(slurm_env, slug, states=None) == []


def test_lock_during_the_run_and_kill_job(site, slurm_env):
    slug = site.job(slug_of("kill"), command="sleep 120", kill_grace="2s")
    first = site.start("--job", slug)
    try:
        job_id = wait_for(lambda: running_job_id(site, slug))
        assert job_id, "no slurm_job_id in status.json"
        second = site.run("--job", slug)
        assert second.returncode == 75, second.stderr
        assert queued(slurm_env, slug) == [job_id]  # the second run submitted nothing
        kill = site.run("--kill-job", slug)
        assert kill.returncode == 0, kill.stderr
        assert first.wait(60) == 143
    finally:
        if first.poll() is None:
            first.kill()
            subprocess.run(["scancel", "-n", f"{slug}.run-job"], env=slurm_env)
    st = site.status(slug)
    assert st["outcome"] == "killed" and st["slurm_job_id"] == job_id
    assert show(slurm_env, job_id)["state"] == "CANCELLED"
    assert sorted(e["outcome"] for e in site.history(slug)) == ["killed", "skipped"]


def test_kill_job_exits_0_every_time_it_stopped_the_run(site, slurm_env):
    """The watching run-job records the kill and exits while --kill-job still
    looks: that call did the killing all the same (once 1 in 10 said 1)."""
    slug = site.job(slug_of("kill10"), command="sleep 120", kill_grace="1s")

    def running_now() -> str | None:
        try:
            status = site.status(slug)
        except (OSError, ValueError):
            return None
        return status.get("slurm_job_id") if status.get("outcome") == "running" else None

    for attempt in range(10):
        first = site.start("--job", slug)
        try:
            job_id = wait_for(running_now)
            assert job_id, f"attempt {attempt}: no running Slurm job"
            kill = site.run("--kill-job", slug)
            assert kill.returncode == 0, (attempt, kill.stdout, kill.stderr)
            assert first.wait(60) == 143
        finally:
            if first.poll() is None:
                first.kill()
                subprocess.run(["scancel", "-n", f"{slug}.run-job"], env=slurm_env)
        assert site.status(slug)["outcome"] == "killed"


def test_status_shows_the_slurm_job(site, slurm_env):
    slug = site.job(slug_of("status"), command="sleep 120")
    proc = site.start("--job", slug)
    try:
        job_id = wait_for(lambda: running_job_id(site, slug))
        assert wait_for(lambda: show(slurm_env, job_id)["state"] == "RUNNING")
        res = site.run("--status")
        assert res.returncode == 0, res.stderr
        assert job_id in res.stdout and "RUNNING" in res.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_sigterm_to_run_job_cancels(site, slurm_env):
    slug = site.job(slug_of("term"), command="sleep 120", kill_grace="2s")
    proc = site.start("--job", slug)
    try:
        job_id = wait_for(lambda: running_job_id(site, slug))
        wait_for(lambda: show(slurm_env, job_id)["state"] == "RUNNING")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    assert site.status(slug)["outcome"] == "killed"
    assert wait_for(lambda: show(slurm_env, job_id)["state"] == "CANCELLED", 15)


def test_crashed_run_job_still_blocks_a_new_run(site, slurm_env):
    slug = site.job(slug_of("crash"), command="sleep 120")
    proc = site.start("--job", slug)
    try:
        job_id = wait_for(lambda: running_job_id(site, slug))
        assert job_id
        proc.send_signal(signal.SIGKILL)  # run-job dies; its Slurm job lives on
        proc.wait(10)
        again = site.run("--job", slug)
        assert again.returncode == 75, again.stderr
        skipped = site.history(slug)[-1]
        assert skipped["outcome"] == "skipped" and job_id in skipped["reason"]
        assert queued(slurm_env, slug) == [job_id]
        assert show(slurm_env, job_id)["state"] in ("PENDING", "RUNNING")
    finally:
        subprocess.run(["scancel", "-n", f"{slug}.run-job"], env=slurm_env)


def test_unreachable_controller_submits_nothing(site, slurm_env, dead_slurm_env):
    slug = site.job(slug_of("dead"), command="true")
    env = dict(site.env, SLURM_CONF=dead_slurm_env["SLURM_CONF"])
    res = site.run("--job", slug, env=env)
    assert res.returncode == 125
    assert "unreachable" in res.stderr.lower()
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr  # one line, no traceback
    assert queued(slurm_env, slug) == []


def test_kill_job_after_run_job_crashed(site, slurm_env):
    slug = site.job(slug_of("crashkill"), command="sleep 120", kill_grace="2s")
    proc = site.start("--job", slug)
    try:
        job_id = wait_for(lambda: running_job_id(site, slug))
        assert job_id
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        res = site.run("--kill-job", slug)
        assert res.returncode == 0, res.stderr
        assert wait_for(lambda: show(slurm_env, job_id)["state"] == "CANCELLED", 15)
        assert queued(slurm_env, slug, states=None) == []
    finally:
        subprocess.run(["scancel", "-n", f"{slug}.run-job"], env=slurm_env)


def test_slurm_refusing_the_submission(site, slurm_env):
    slug = site.job(slug_of("badpart"), command="true", slurm={"partition": "no-such-partition"})
    res = site.run("--job", slug)
    assert res.returncode == 125
    st = site.status(slug)
    assert st["outcome"] == "failed" and st["slurm_job_id"] is None
    assert "invalid partition" in st["reason"].lower()
    assert queued(slurm_env, slug) == []



SERVICE_USER = "pc-slurm-svc"


def test_runs_as_the_service_user(slurm_env):
    """Root runs run-job for a config whose user is a plain account: the Slurm
    job, the run folder and the records belong to that user."""
    import tempfile

    from pctest import any_user_command, any_user_env, any_user_skip_reason

    if os.geteuid() != 0:
        pytest.skip("needs root to create and become a service user")
    if subprocess.run(["id", SERVICE_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", SERVICE_USER], check=True)
    reason = any_user_skip_reason()
    if reason:
        pytest.skip(reason)
    top = Path(tempfile.mkdtemp(prefix="pc-slurm-svc-"))  # tmp_path is 0700 root
    try:
        os.chmod(top, 0o755)
        site = SlurmSite(top / HOSTILE, slurm_env, user=SERVICE_USER)
        shutil.chown(site.root, SERVICE_USER)
        slug = site.job(slug_of("svc"), command="sh -c 'id -un; printf %s \"$HOME\"'")
        # run-job drops to the service user, which then imports the Slurm runner:
        # code it can read (the checkout and its venv may be under a 0700 /root)
        argv = any_user_command("run-job") + ["--config", str(site.config), "--job", slug]
        env = any_user_env(site.env)
        res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert res.returncode == 0, res.stderr
        home = pwd.getpwnam(SERVICE_USER).pw_dir
        assert site.output_log(slug).decode() == f"{SERVICE_USER}\n{home}"
        st = site.status(slug)
        assert st["user"] == SERVICE_USER and st["outcome"] == "success"
        assert show(slurm_env, st["slurm_job_id"])["user"] == SERVICE_USER
        latest = (site.output / slug / "latest").resolve()
        for name in ("status.json", "output.log", "job.status", "job.sbatch"):
            assert (latest / name).stat().st_uid == pwd.getpwnam(SERVICE_USER).pw_uid, name
        assert (latest / "job.sbatch").stat().st_mode & 0o777 == 0o600
    finally:
        shutil.rmtree(top, ignore_errors=True)
