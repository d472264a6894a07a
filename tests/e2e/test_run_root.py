"""run-job as root with a service user: the run happens as that user, every
file it creates is that user's, and the next run, as that user, works.

Needs root (to create the user and to drop to it). The site lives in a fresh
``tempfile.mkdtemp`` folder, because pytest's tmp_path sits under a 0700
folder the service user cannot enter; for the same reason the commands run
from ``pctest.readable_checkout()`` with Debian's python3 (or as installed),
as the checkout and its venv may sit under a 0700 home such as /root.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import pctest
from pctest import any_user_command, any_user_env, any_user_skip_reason, config_settings
from runjob_helpers import HOSTILE, job_yaml

SERVICE_USER = "pc-run-test"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to a service user")


@pytest.fixture(scope="module", autouse=True)
def any_user_python():
    reason = any_user_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def service_user():
    return pctest.ensure_service_user()


@pytest.fixture
def site(service_user):
    import yaml

    top = Path(tempfile.mkdtemp(prefix="pc-root-test-"))
    root = top / HOSTILE
    jobs = root / "jobs"
    var = root / "var"
    jobs.mkdir(parents=True)
    var.mkdir()
    for folder in (top, root, jobs):
        folder.chmod(0o755)
    os.chown(var, service_user.pw_uid, service_user.pw_gid)
    config = root / "process-control.yaml"
    config.write_text(yaml.safe_dump(config_settings(root, var=var, user=SERVICE_USER)))
    config.chmod(0o644)
    yield {"root": root, "jobs": jobs, "var": var, "config": config}
    shutil.rmtree(top, ignore_errors=True)


def run_job(site, *args, as_user=None):
    # as deployed: code and python the service user can read, for root too (it drops)
    env = any_user_env()
    kwargs = {}
    if as_user is not None:
        env.update(HOME=as_user.pw_dir, USER=as_user.pw_name, LOGNAME=as_user.pw_name)
        kwargs = {"user": as_user.pw_uid, "group": as_user.pw_gid, "extra_groups": [],
                  "cwd": "/"}
    return subprocess.run(any_user_command("run-job") + ["--config", str(site["config"]), *args],
                          capture_output=True, text=True, env=env, timeout=60, **kwargs)


def test_root_drops_to_the_service_user_and_the_next_run_works(site, service_user):
    job = site["jobs"] / "who.yaml"
    job.write_text(job_yaml(command="sh -c 'id -un; id -u; echo \"$HOME|$USER|$LOGNAME\"; pwd'"))
    job.chmod(0o644)
    first = run_job(site, "who")
    assert first.returncode == 0, first.stderr
    run_dir = site["var"] / "log" / "who" / "latest"
    lines = (run_dir / "output.log").read_text().splitlines()
    user = service_user
    assert lines == [user.pw_name, str(user.pw_uid), f"{user.pw_dir}|{user.pw_name}|{user.pw_name}",
                     user.pw_dir]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["user"] == user.pw_name
    # everything the run created belongs to the service user, never root
    for path in [site["var"] / "log", site["var"] / "log" / "who", run_dir.resolve(),
                 run_dir.resolve() / "output.log", run_dir.resolve() / "status.json",
                 site["var"] / "state" / "who.history.json", site["var"] / "run" / "who.lock"]:
        assert path.stat().st_uid == user.pw_uid, path
    # the next run, as the service user itself, can use all of it
    second = run_job(site, "who", as_user=user)
    assert second.returncode == 0, second.stderr
    history = json.loads((site["var"] / "state" / "who.history.json").read_text())
    assert [e["outcome"] for e in history] == ["success", "success"]
    assert json.loads((site["var"] / "log" / "who" / "latest" / "status.json").read_text())[
        "run_id"] == history[-1]["run_id"]
    # and root's --status (run as the service user too) sees both
    status = run_job(site, "--status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["jobs"][0]["last"]["run_id"] == history[-1]["run_id"]


def test_another_user_is_refused(site, service_user):
    job = site["jobs"] / "who.yaml"
    job.write_text(job_yaml(command="/bin/true"))
    job.chmod(0o644)
    nobody = pwd.getpwnam("nobody")
    result = run_job(site, "who", as_user=nobody)
    assert result.returncode == 125
    assert "Traceback" not in result.stderr
    assert SERVICE_USER in result.stderr


def test_root_recreates_a_missing_run_directory_for_the_service_user(site, service_user):
    """/run is a tmpfs: after a reboot /run/process-control may be missing, and
    the service user cannot create it; run-job started by root does."""
    import yaml

    parent = site["root"] / "tmpfs run"
    parent.mkdir()
    parent.chmod(0o755)  # root's: the service user cannot create anything here
    config = yaml.safe_load(site["config"].read_text())
    config["run_directory"] = str(parent / "process-control")
    site["config"].write_text(yaml.safe_dump(config))
    (site["jobs"] / "after-reboot.yaml").write_text("command: /bin/true\n")
    (site["jobs"] / "after-reboot.yaml").chmod(0o644)
    result = run_job(site, "--job", "after-reboot")
    assert result.returncode == 0, result.stderr
    made = parent / "process-control"
    assert made.is_dir() and made.stat().st_uid == service_user.pw_uid
    assert (made / "after-reboot.lock").stat().st_uid == service_user.pw_uid
