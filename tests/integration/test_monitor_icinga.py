"""check-jobs-icinga run by a real Icinga 2 (Debian's icinga2) as a CheckCommand.

One daemon per test, started here as a foreground child with a config in
tmp_path (its own constants, a host, one service per site, checks every
second, the API on a free loopback port). For each state the SPEC names,
Icinga's ``last_check_result`` must carry the exit status and output we
expect, and Icinga's own perfdata parser (``parse_performance_data``, through
its console API) must read every perfdata value; its log has no warning.

States: ok, failing, late, invalid, unknown (a state folder the service user
cannot read), and, on the real Slurm: a service started with sbatch-service
then cancelled with scancel (service down) and a Slurm that cannot be asked
(unknown).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import pctest
from monitor_consumers import Icinga
from pctest import Site

UTC = timezone.utc
REPO = Path(__file__).resolve().parents[2]


def check_argv(site: Site) -> list[str]:
    """The check as Icinga runs it: a command any user can run (the check,
    started as root, becomes the site's service user)."""
    return pctest.any_user_command("check-jobs-icinga") + ["--config", str(site.config)]


def plugin_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = pctest.any_user_env(extra)
    keep = ("PATH", "PYTHONPATH", "HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME",
            "SLURM_CONF", "LC_ALL", "TZ")
    return {key: value for key, value in env.items() if key in keep}


def write_history(site: Site, slug: str, started: datetime, outcome: str) -> None:
    site.state.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    (site.state / f"{slug}.history.json").write_text(json.dumps([{
        "job": slug, "run_id": started.strftime("%Y%m%dT%H%M%S.%fZ-1"), "runner": "local",
        "host": "h", "user": pctest.USER, "pid": 1, "slurm_job_id": None, "command": ["/bin/true"],
        "started_at": stamp, "ended_at": stamp, "duration_s": 0.5, "exit_code": 0,
        "signal": None, "outcome": outcome, "reason": "", "job_file_sha256": "", "run_dir": None}]))


def summary(result: dict) -> str:
    """The status line Icinga kept (it takes the perfdata out of the output)."""
    return result["output"].splitlines()[0].split(" |")[0].strip()


def readable_site(name: str, **settings) -> Site:
    """A site every user can traverse (the session folder, not tmp_path)."""
    return Site(pctest.session_folder() / f"icinga {name} {uuid.uuid4().hex[:6]}", **settings)


def assert_parsed(icinga: Icinga, result: dict, expected: dict[str, float]) -> None:
    """Icinga's parser reads every perfdata value, with the values we expect."""
    labels = {}
    assert result["performance_data"], result
    for item in result["performance_data"]:
        parsed = icinga.parse_perfdata(item)
        labels[parsed["label"]] = parsed
        assert parsed["min"] == 0, parsed
    for label, value in expected.items():
        assert labels[label]["value"] == value, (label, labels[label])
    for label in ("age", "duration"):
        if label in labels:
            assert labels[label]["unit"] == "seconds", labels[label]
    assert labels["failing"]["crit"] == 0 and labels["late"]["warn"] == 0


@pytest.fixture
def cleanup_sites():
    made: list[Site] = []
    yield made
    for site in made:
        shutil.rmtree(site.root, ignore_errors=True)


def test_icinga_sees_ok_failing_late_invalid_and_unknown(tmp_path, cleanup_sites):
    if pctest.any_user_skip_reason():
        pytest.skip(pctest.any_user_skip_reason())
    now = datetime.now(UTC)
    sites = {}
    sites["ok"] = readable_site("ok")
    sites["ok"].job("fine", "command: /bin/true\nschedule: '0 * * * *'\n")
    sites["failing"] = readable_site("failing")
    sites["failing"].job("b-job", "command: /bin/false\n")
    sites["failing"].job("a-job", "command: /bin/false\n")
    sites["late"] = readable_site("late")
    sites["late"].job("hourly", "command: /bin/true\nschedule: '0 * * * *'\n")
    write_history(sites["late"], "hourly", now - timedelta(hours=3), "success")
    sites["invalid"] = readable_site("invalid")
    sites["invalid"].job("broken", "command: [unclosed\n")
    if os.geteuid() == 0:
        sites["unknown"] = readable_site("unknown", user="nobody")
        sites["unknown"].job("any", "command: /bin/true\n")
        sites["unknown"].state.mkdir(mode=0o700)  # root's: the service user cannot read it
    cleanup_sites.extend(sites.values())
    for slug in ("fine",):
        assert sites["ok"].run_job(slug).returncode == 0
    for slug in ("a-job", "b-job"):
        assert sites["failing"].run_job(slug).returncode == 1
    for site in sites.values():
        os.chmod(site.root, 0o755)

    icinga = Icinga(tmp_path / "icinga", {name: (check_argv(site), plugin_env())
                                          for name, site in sites.items()}).start()
    try:
        expected = {
            "ok": (0, "JOBS OK", {"jobs": 1, "failing": 0}),
            "failing": (2, "FAILING JOBS: a-job, b-job", {"jobs": 2, "failing": 2}),
            "late": (1, "LATE JOBS: hourly", {"late": 1}),
            "invalid": (1, "INVALID JOBS: broken", {"invalid": 1}),
        }
        for name, (status, words, values) in expected.items():
            result = icinga.result(name)
            assert result["exit_status"] == status, (name, result)
            assert result["state"] == status, (name, result)
            assert summary(result) == words, (name, result["output"])
            assert_parsed(icinga, result, values)
        failing = icinga.result("failing")["output"].splitlines()
        assert failing[1].startswith("a-job: failing: failed at ") and "(exit 1)" in failing[1]
        if "unknown" in sites:
            result = icinga.result("unknown")
            assert (result["exit_status"], result["state"]) == (3, 3), result
            assert result["output"].startswith("JOBS UNKNOWN: cannot read state_directory "), result
            assert "Traceback" not in result["output"]
        # a failing job that is fixed: Icinga sees OK on the next check
        sites["failing"].job("a-job", "command: /bin/true\n")
        sites["failing"].job("b-job", "command: /bin/true\n")
        sites["failing"].run_job("a-job")
        sites["failing"].run_job("b-job")
        recovered = icinga.result("failing", after=time.time())
        assert (recovered["exit_status"], summary(recovered)) == (0, "JOBS OK")
        assert icinga.complaints() == []
    finally:
        icinga.stop()


# ------------------------------------------------------------------ Slurm services

@pytest.mark.slurm
def test_icinga_sees_a_cancelled_service_as_down_and_a_dead_slurm_as_unknown(
        tmp_path, slurm_env, dead_slurm_env, cleanup_sites):
    if pctest.any_user_skip_reason():
        pytest.skip(pctest.any_user_skip_reason())
    slug = f"t{uuid.uuid4().hex[:8]}-mon"
    site = readable_site("service")
    cleanup_sites.append(site)
    os.chmod(site.root, 0o755)
    site.job(slug, "runner: slurm\ncommand: /bin/sleep 600\nservice: {}\nkill_grace: 2s\n")
    site.job("quiet", "command: /bin/true\n")
    service = [sys.executable, "-m", "run_job.service_cli", "--config", str(site.config)]
    env = dict(slurm_env, PYTHONPATH=str(REPO))
    env.pop("PROCESS_CONTROL_CONFIG", None)
    try:
        started = subprocess.run(service + ["start", slug], capture_output=True, text=True, env=env,
                                 timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        icinga = Icinga(tmp_path / "icinga", {
            "services": (check_argv(site), plugin_env({"SLURM_CONF": slurm_env["SLURM_CONF"]})),
            "dead-slurm": (check_argv(site), plugin_env({"SLURM_CONF": dead_slurm_env["SLURM_CONF"]})),
        }).start()
        try:
            up = icinga.result("services")
            assert (up["exit_status"], summary(up)) == (0, "JOBS OK"), up
            dead = icinga.result("dead-slurm", timeout=120)
            assert dead["exit_status"] == 3, dead["output"]
            assert summary(dead) == f"SERVICES UNKNOWN: {slug}"
            assert f"{slug}: service state unknown: " in dead["output"]
            assert_parsed(icinga, dead, {"jobs": 2})
            # the service's Slurm job goes away behind sbatch-service's back
            subprocess.run(["scancel", "-n", f"{slug}-service"], env=slurm_env, check=True,
                           timeout=30)
            pctest.wait_for(lambda: not subprocess.run(
                ["squeue", "-h", "-n", f"{slug}-service"], env=slurm_env, capture_output=True,
                text=True, timeout=30).stdout.strip(), timeout=60, step=0.2)
            down = icinga.result("services", after=time.time())
            assert down["exit_status"] == 2, down
            assert summary(down) == f"SERVICES DOWN: {slug}"
            assert "Slurm no longer has it" in down["output"]
            assert_parsed(icinga, down, {"jobs": 2, "failing": 0})
            assert icinga.complaints() == []
        finally:
            icinga.stop()
    finally:
        subprocess.run(["scancel", "-n", f"{slug}-service"], env=slurm_env, capture_output=True,
                       timeout=30)
