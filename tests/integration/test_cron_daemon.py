"""The real proof: Debian's cron daemon runs a job from a file cron-generate wrote.

As root: install Debian's ``cron`` with apt if it is missing, let cron-generate
write a file into /etc/cron.d, start the daemon (or use the one already
running), and see a ``* * * * *`` job run through run-job within 75 seconds.
cron gives its children PATH=/usr/bin:/bin and little else, so the entry must
work with nothing from this test's environment: the runner is a wrapper that
names the interpreter and the source tree itself. Afterwards the test removes
its files from /etc/cron.d and stops only a daemon it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from pctest import REPO, config_settings, session_env, wait_for

CRON_D = Path("/etc/cron.d")
WAIT = 75.0

pytestmark = [
    pytest.mark.cron,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="writes /etc/cron.d and starts cron: needs root"),
]


def cron_binary() -> str:
    found = shutil.which("cron") or ("/usr/sbin/cron" if os.access("/usr/sbin/cron", os.X_OK) else None)
    if found:
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "cron"]
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600, check=True)
        subprocess.run(install, env=env, capture_output=True, timeout=600, check=True)
    return shutil.which("cron") or "/usr/sbin/cron"


def running_cron_pids() -> list[int]:
    """Pids of cron daemons already running (found by their executable, not by name matching)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        if os.path.basename(exe) == "cron":
            pids.append(int(entry.name))
    return pids


def runner_wrapper(folder: Path) -> Path:
    """A run-job usable from cron's bare environment."""
    installed = shutil.which("run-job")
    if installed and Path(installed).resolve().parent == Path(sys.executable).resolve().parent:
        probe = subprocess.run([installed, "--help"], capture_output=True, timeout=60,
                               env={"PATH": "/usr/bin:/bin"})
        if probe.returncode == 0 and str(REPO) in subprocess.run(
                [sys.executable, "-c", "import run_job; print(run_job.__file__)"],
                capture_output=True, text=True, timeout=60).stdout:
            return Path(installed)
    wrapper = folder / "run-job"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# run-job from the source tree under test, for cron's bare environment\n"
        f"PYTHONPATH='{REPO}'\n"
        "export PYTHONPATH\n"
        f"exec '{sys.executable}' -m run_job \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def cron_file():
    name = f"pc-test-{uuid.uuid4().hex[:12]}"
    path = CRON_D / name
    yield path
    for leftover in (path, CRON_D / f".{name}.lock"):
        try:
            leftover.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def cron_running():
    """A cron daemon runs inside the block: the one already running, or one started (and stopped) here."""
    binary = cron_binary()
    if running_cron_pids():
        print(f"using the cron daemon already running: {running_cron_pids()}")
        yield None  # use it, never stop it
        return
    # -f: stay in the foreground as our child, so that we stop exactly this one
    proc = subprocess.Popen([binary, "-f"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    time.sleep(0.5)
    if proc.poll() is not None:
        pytest.fail(f"{binary} -f exited at once with {proc.returncode}: {proc.stderr.read()!r}")
    print(f"started {binary} -f as pid {proc.pid}")
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_real_cron_runs_a_generated_entry_through_run_job(tmp_path, cron_file):
    root = tmp_path / "site"
    jobs = root / "jobs"
    jobs.mkdir(parents=True)
    marker = root / "marker"
    runner = runner_wrapper(root)
    (jobs / "cron-proof.yaml").write_text(
        "name: cron proof\n"
        f"command: /bin/sh -c 'echo \"ran as $(id -un) with PATH=$PATH GREETING=$GREETING\" > {marker}'\n"
        "schedule: '* * * * *'\n", encoding="utf-8")
    (jobs / "never.yaml").write_text("command: /bin/false\nschedule: '0 0 1 1 *'\ndisabled: true\n")
    cfg = root / "process-control.yaml"
    # cron passes the crontab's environment lines to the job, and nothing else
    # from here; the entry itself names this config (--config). cron gives
    # root's HOME: run-job's cache goes to the session's folder instead.
    environment = {"MAILTO": "", "XDG_CACHE_HOME": session_env()["XDG_CACHE_HOME"],
                   "GREETING": "hello from cron.d"}
    settings = config_settings(root, output_crontab=str(cron_file), user="root", runner_path=str(runner),
                               service_runner_path="/usr/bin/sbatch-service", cron_environment=environment)
    cfg.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-m", "cron_generate", "--config", str(cfg)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    text = cron_file.read_text()
    assert f"* * * * * root {runner} --config {cfg} --job cron-proof\n" in text
    assert not (CRON_D / f".{cron_file.name}.lock").exists()  # nothing beside the crontab
    assert 'MAILTO=""\n' in text
    st = cron_file.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o644)
    # the run-job the entry names works in cron's environment
    probe = subprocess.run([str(runner), "--help"], env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                           text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr

    with cron_running() as proc:
        if not wait_for_run(root, marker):
            by_hand = subprocess.run([str(runner), "--config", str(cfg), "--job", "cron-proof"],
                                     capture_output=True, text=True, timeout=120, cwd="/",
                                     env={"PATH": "/usr/bin:/bin", **session_env()})
            pytest.fail(f"cron did not run the job through run-job within {WAIT:.0f}s "
                        f"(marker {'present' if marker.exists() else 'missing'}); the same entry by hand "
                        f"exits {by_hand.returncode}: {by_hand.stderr[-1500:]!r}")
    if proc is not None:
        assert proc.poll() is not None  # the daemon we started is gone

    status = latest_status(root)
    assert status["job"] == "cron-proof"
    assert status["outcome"] == "success", status
    assert status["exit_code"] == 0
    line = marker.read_text()
    assert line.startswith("ran as root with PATH=")
    assert "GREETING=hello from cron.d" in line


def latest_status(root: Path) -> dict:
    found = sorted((root / "log" / "cron-proof").glob("*/status.json"))
    assert found, f"no run folder under {root / 'log' / 'cron-proof'}"
    return json.loads(found[-1].read_text())


def wait_for_run(root: Path, marker: Path) -> bool:
    """True once cron's run of the job has finished (marker written, status final)."""
    def finished() -> bool:
        found = sorted((root / "log" / "cron-proof").glob("*/status.json"))
        if marker.exists() and found:
            status = json.loads(found[-1].read_text())
            return status.get("outcome") not in (None, "running")
        return False

    return wait_for(finished, timeout=WAIT, step=0.5)
