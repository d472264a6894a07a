"""Trust, as root with a real second user (issue "trust", items 1-3 and 6).

Nothing the service user can change makes root act: a config it owns is
refused by all three commands; run-job's logging starts after the switch to
it; a missing run_directory is created only under a folder root alone
controls (a symlink swapped in meanwhile, as the service user would, never
gets another folder chowned); ``--history`` reads as the service user. And
a full disk never ends supervision (a real small tmpfs).

Needs root (second user, chown, mount). The sites live in fresh
``tempfile.mkdtemp`` folders that the service user can enter; the service
user's side runs Debian's /usr/bin/python3 on a world-readable copy of the code.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import pctest
from pctest import wait_for
from runjob_helpers import RootSite, ensure_service_user, job_yaml

SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a second user, chown, mount"),
    pytest.mark.skipif(pctest.any_user_skip_reason() is not None,
                       reason=str(pctest.any_user_skip_reason())),
]


@pytest.fixture(scope="module")
def service_user():
    return ensure_service_user()


@pytest.fixture
def top():
    folder = Path(tempfile.mkdtemp(prefix="pc-trust-root-"))
    folder.chmod(0o755)
    yield folder
    # every tmpfs a test mounted in a site under it (_tmpfs), deepest first
    with open("/proc/self/mounts") as mounts:
        points = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[1])
                  for line in mounts]
    for point in sorted((p for p in points if p.startswith(f"{folder}/")), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def site(top, service_user):
    return RootSite(top / "site; 'q' %s", service_user)


# -- item 1: the config decides what root does: root's alone ----------------------

@pytest.mark.parametrize("how", ["owned by the service user", "group-writable", "world-writable"])
def test_a_config_the_service_user_could_change_is_refused_by_every_command(site, how):
    site.job("j", job_yaml(command="/bin/true", schedule="* * * * *"))
    if how == "owned by the service user":
        os.chown(site.config, site.user.pw_uid, site.user.pw_gid)
    else:
        site.config.chmod(0o664 if how == "group-writable" else 0o646)
    for name, args, status in (("run-job", ["--job", "j"], 125), ("run-job", ["--status"], 125),
                               ("cron-generate", ["--stdout"], 2),
                               ("sbatch-service", ["status"], 2)):
        res = site.run(name, *args)
        assert res.returncode == status, (name, res.stdout, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert str(site.config) in res.stderr and "Traceback" not in res.stderr
    assert not (site.var / "log").exists()


def test_logging_is_set_up_after_the_switch_to_the_service_user(site):
    log = site.var / "logs" / "run-job.log"
    (site.var / "logs").mkdir()
    os.chown(site.var / "logs", site.user.pw_uid, site.user.pw_gid)
    import yaml

    config = yaml.safe_load(site.config.read_text())
    config["logging"] = {"version": 1, "handlers": {"f": {"class": "logging.FileHandler",
                                                          "filename": str(log)}},
                         "loggers": {"process-control": {"handlers": ["f"], "level": "INFO"}}}
    site.config.write_text(yaml.safe_dump(config))
    site.job("j", job_yaml(command="/bin/true"))
    res = site.run("run-job", "j")
    assert res.returncode == 0, res.stderr
    assert log.stat().st_uid == site.user.pw_uid and "run" in log.read_text()
    # a log file root alone may write is out of the service user's reach: left out, no traceback
    config["logging"]["handlers"]["f"]["filename"] = str(site.top / "root-only.log")
    site.config.write_text(yaml.safe_dump(config))
    res = site.run("run-job", "j")
    assert res.returncode == 0, res.stderr
    assert not (site.top / "root-only.log").exists()


# -- item 2: a missing run_directory, made safely ---------------------------------

def test_run_directory_is_made_for_the_service_user_under_a_root_folder(top, service_user):
    parent = top / "run"
    parent.mkdir(mode=0o755)
    site = RootSite(top / "s", service_user, run_directory=str(parent / "pc"))
    site.job("j", job_yaml(command="/bin/true"))
    res = site.run("run-job", "j")
    assert res.returncode == 0, res.stderr
    st = (parent / "pc").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (service_user.pw_uid, 0o755)


def test_run_directory_is_never_made_by_root_under_a_folder_others_control(top, service_user):
    """A parent root does not control: root makes nothing there (the service
    user may, where it can write); one clear line when nobody can."""
    parent = top / "nobodys"
    parent.mkdir(mode=0o755)
    os.chown(parent, pwd.getpwnam("nobody").pw_uid, -1)
    site = RootSite(top / "s", service_user, run_directory=str(parent / "pc"))
    site.job("j", job_yaml(command="/bin/true"))
    res = site.run("run-job", "j")
    assert res.returncode == 125
    assert not (parent / "pc").exists()
    assert "run_directory" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_symlink_swapped_in_never_gets_a_folder_chowned(top, service_user):
    """The service user owns the parent and races run-job: it swaps a link to a
    root folder in and out where run_directory belongs, as fast as it can."""
    parent = top / "svc-owned"
    parent.mkdir()
    os.chown(parent, service_user.pw_uid, service_user.pw_gid)
    victim = top / "victim"
    victim.mkdir(mode=0o755)
    target = parent / "run"
    site = RootSite(top / "s", service_user, run_directory=str(target))
    site.job("j", job_yaml(command="/bin/true"))
    swapper = subprocess.Popen(
        [SYSTEM_PYTHON, "-c", (
            "import os, sys\n"
            "target, victim = sys.argv[1], sys.argv[2]\n"
            "while True:\n"
            "    try:\n"
            "        os.symlink(victim, target)\n"
            "    except OSError:\n"
            "        pass\n"
            "    try:\n"
            "        os.unlink(target)\n"
            "    except OSError:\n"
            "        try:\n"
            "            os.rmdir(target)\n"
            "        except OSError:\n"
            "            pass\n"), str(target), str(victim)],
        user=service_user.pw_uid, group=service_user.pw_gid, extra_groups=[])
    try:
        for _ in range(30):
            site.run("run-job", "j")
            assert victim.stat().st_uid == 0, "root chowned a folder through a swapped-in link"
    finally:
        swapper.kill()
        swapper.wait()


# -- item 3: --history reads as the service user --------------------------------

def test_history_as_root_never_reads_through_a_planted_symlink(site):
    site.job("j", job_yaml(command="/bin/true"))
    assert site.run("run-job", "j").returncode == 0
    secret = site.top / "root-only.json"
    secret.write_text(json.dumps([{"run_id": "20260101T000000.000000Z-1", "outcome": "success",
                                   "reason": "TOP-SECRET-VALUE"}]))
    secret.chmod(0o600)
    history = site.var / "state" / "j.history.json"
    # the service user plants the link in its own state folder
    subprocess.run(["runuser", "-u", site.user.pw_name, "--", "ln", "-sf", str(secret),
                    str(history)], check=True)
    res = site.run("run-job", "--history", "j")
    assert "TOP-SECRET-VALUE" not in res.stdout + res.stderr
    res = site.run("run-job", "--history", "j", "--json")
    assert "TOP-SECRET-VALUE" not in res.stdout + res.stderr


# -- item 6: a full disk never ends supervision ----------------------------------

def _tmpfs(path: Path, size: str, owner: pwd.struct_passwd) -> None:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                          str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    os.chown(path, owner.pw_uid, owner.pw_gid)


FILL_THEN_SLEEP = ("import os, sys, time\n"
                   "sys.stdout.write('x' * 4_000_000); sys.stdout.flush()\n"
                   "time.sleep(60)\n")


@pytest.mark.parametrize("tee_setting", [{"max_output": "1G"}])
def test_a_full_output_folder_never_ends_supervision(top, service_user, tee_setting):
    site = RootSite(top / "s", service_user, **tee_setting)
    _tmpfs(site.var / "log", "512k", service_user)
    script = site.top / "fill.py"
    script.write_text(FILL_THEN_SLEEP)
    script.chmod(0o644)
    site.job("full", job_yaml(command=f"{SYSTEM_PYTHON} {script}", timeout="3s", kill_grace="1s"))
    started = time.monotonic()
    res = site.run("run-job", "full")
    assert res.returncode == 124, res.stderr  # the timeout still ended it
    assert time.monotonic() - started < 30
    entries = json.loads((site.var / "state" / "full.history.json").read_text())
    assert entries[-1]["outcome"] == "timed_out"
    assert "could not be written" in entries[-1]["reason"]
    assert "free space" in entries[-1]["reason"]
    assert not _processes_with(str(script))


def test_a_full_output_folder_at_the_end_still_records_the_outcome(top, service_user):
    """The job fills the output folder itself and fails: status.json cannot be
    written any more; the history (elsewhere) still gets the real outcome."""
    site = RootSite(top / "s", service_user)
    _tmpfs(site.var / "log", "256k", service_user)
    filler = site.top / "filler.py"
    filler.write_text(
        "import os, sys\n"
        "try:\n"
        "    with open(os.path.join(os.environ['RUN_JOB_RUN_DIR'], 'ballast'), 'wb') as f:\n"
        "        while True:\n"
        "            f.write(b'x' * 65536)\n"
        "except OSError:\n"
        "    pass\n"
        "sys.exit(3)\n")
    filler.chmod(0o644)
    site.job("fill", job_yaml(command=f"{SYSTEM_PYTHON} {filler}"))
    res = site.run("run-job", "fill")
    assert res.returncode == 3, res.stderr
    entries = json.loads((site.var / "state" / "fill.history.json").read_text())
    assert (entries[-1]["outcome"], entries[-1]["exit_code"]) == ("failed", 3)


def test_a_full_state_folder_leaves_no_run_at_running(top, service_user):
    site = RootSite(top / "s", service_user)
    _tmpfs(site.var / "state", "64k", service_user)
    site.job("j", job_yaml(command="/bin/true"))
    ballast = site.var / "state" / "ballast"
    subprocess.run(["dd", "if=/dev/zero", f"of={ballast}", "bs=4k", "count=100"],
                   capture_output=True)
    res = site.run("run-job", "j")
    assert res.returncode == 125, res.stderr
    assert "Traceback" not in res.stderr
    for folder in (site.var / "log" / "j").glob("2*"):
        assert json.loads((folder / "status.json").read_text())["outcome"] != "running"
    ballast.unlink()
    res = site.run("run-job", "j")
    assert res.returncode == 0, res.stderr


def _processes_with(text: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if text.encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                    found.append(int(name))
            except OSError:
                pass
    return found


def test_the_service_user_side_can_read_the_code(site):
    """A self-check of this module's set-up: the run really happens as the service user."""
    site.job("who", job_yaml(command="/usr/bin/id -un"))
    res = site.run("run-job", "who")
    assert res.returncode == 0, res.stderr
    out = next((site.var / "log" / "who").glob("2*")) / "output.log"
    assert wait_for(lambda: out.exists())
    assert out.read_text().strip() == site.user.pw_name


def test_code_the_service_user_cannot_read_is_named_before_the_run(site):
    """A root-only installation (a pyenv under /root): one line naming the
    folder and what to do, exit 125, before anything runs."""
    import cron_generate
    import run_job

    private = site.top / "private"
    private.mkdir(mode=0o700)
    # the code under test, wherever it is (a checkout, or the installed package)
    for module in (run_job, cron_generate):
        source = Path(module.__file__).parent
        shutil.copytree(source, private / source.name, ignore=shutil.ignore_patterns("__pycache__"))
    if (Path(run_job.__file__).parent.parent / "schemas").is_dir():  # a checkout
        shutil.copytree(Path(run_job.__file__).parent.parent / "schemas", private / "schemas")
    site.job("j", job_yaml(command="/bin/true", runner="local"))
    site.job("s", job_yaml(command="/bin/true", runner="slurm"))
    for slug in ("j", "s"):
        res = site.run("run-job", slug, env={"PYTHONPATH": str(private)})
        assert res.returncode == 125, res.stderr
        assert "cannot read" in res.stderr and str(private) in res.stderr, res.stderr
        assert "not available in this installation" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert not (site.var / "log").exists()
