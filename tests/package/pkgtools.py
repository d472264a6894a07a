"""Fixtures and helpers of the tests of the INSTALLED Debian package.

The tests in this folder check what ``apt-get install ./process-control_*.deb``
put on the machine: /usr/bin/run-job and friends on /usr/bin/python3 with
Debian's libraries, the conffile /etc/process-control.yaml, the service user,
its folders, man pages, completion, logrotate and tmpfiles.d files, and the
real cron daemon running a generated entry as the service user.

They run as root against the real system paths (/var/lib/process-control,
/etc/cron.d/process-control) and skip, with the reason, when
/usr/bin/run-job is not the packaged one.  ``.ci/package.sh`` builds,
installs and purges the package around them.  Every file a test creates is
named after a unique slug and removed afterwards, and a crontab it changes is
put back as it was.

Each test module imports the fixtures it uses from here (``packaged``, which
skips, is autouse): the folder has no conftest.py, so that nothing here
shadows another folder's ``conftest`` module when tests/package and tests/e2e
run in one pytest session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pctest import session_env

SERVICE_USER = "process-control"
JOB_DIR = Path("/var/lib/process-control")
LOG_DIR = Path("/var/log/process-control")
STATE_DIR = Path("/var/cache/process-control")
RUN_DIR = Path("/run/process-control")
CRONTAB = Path("/etc/cron.d/process-control")
COMMANDS = ("run-job", "cron-generate", "sbatch-service", "check-jobs-icinga",
            "process-control-web")
# A clean environment: no pyenv, no PYTHONPATH, no config override; HOME and
# XDG_* are the session's own folders (no test writes into the user's home).
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", **session_env()}


# Opt-in: these tests rewrite /etc/cron.d/process-control (and put it back),
# drop files into the real job directory and may start cron. On a machine
# where the package is installed for real, a plain `pytest` must not do that.
OPT_IN = "PROCESS_CONTROL_PACKAGE_TESTS"


def packaged_reason() -> str | None:
    """Why these tests cannot run here, or None when they can."""
    if os.environ.get(OPT_IN) != "1":
        return (f"tests of the installed package use the system paths; set {OPT_IN}=1"
                " to run them (.ci/package.sh does)")
    if os.geteuid() != 0:
        return "needs root: the package's tests use the system paths"
    if shutil.which("dpkg") is None:
        return "not a Debian system (no dpkg)"
    owner = subprocess.run(["dpkg", "-S", "/usr/bin/run-job"], capture_output=True, text=True)
    if owner.returncode != 0 or not owner.stdout.startswith("process-control:"):
        return "/usr/bin/run-job is not installed by the process-control package (build and install it with .ci/package.sh)"
    return None


def run(argv: list[str], timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """Run an installed command in a clean environment, cwd /."""
    return subprocess.run(argv, capture_output=True, text=True, env=dict(CLEAN_ENV),
                          cwd="/", timeout=timeout, **kwargs)


def unique_slug(tag: str) -> str:
    return f"pkgtest-{tag}-{uuid.uuid4().hex[:10]}"


def remove_traces(slug: str) -> None:
    """Every file a run of ``slug`` may have left: job file, runs, state, locks."""
    for path in (JOB_DIR / f"{slug}.yaml",):
        path.unlink(missing_ok=True)
    shutil.rmtree(LOG_DIR / slug, ignore_errors=True)
    for folder in (STATE_DIR, RUN_DIR):
        if folder.is_dir():
            for path in folder.glob(f"*{slug}*"):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)


def sweep_leftovers(max_age: float = 600) -> None:
    """Remove what a killed earlier session left: pkgtest-* job files older
    than ``max_age`` seconds (no test here runs that long) and their traces."""
    now = time.time()
    for path in JOB_DIR.glob("pkgtest-*.yaml"):
        try:
            if now - path.stat().st_mtime > max_age:
                remove_traces(path.name[: -len(".yaml")])
        except OSError:
            pass


@pytest.fixture(autouse=True, scope="session")
def packaged() -> None:
    reason = packaged_reason()
    if reason:
        pytest.skip(reason)
    sweep_leftovers()


@pytest.fixture
def job_file() -> Iterator[Callable[[str, str], str]]:
    """Drop job files into the real job directory; removes them and their runs."""
    slugs: list[str] = []

    def make(tag: str, text: str) -> str:
        slug = unique_slug(tag)
        slugs.append(slug)
        path = JOB_DIR / f"{slug}.yaml"
        path.write_text(text)
        path.chmod(0o644)
        return slug

    yield make
    for slug in slugs:
        remove_traces(slug)


@pytest.fixture
def saved_crontab() -> Iterator[None]:
    """Put /etc/cron.d/process-control back as it was (or absent)."""
    before = CRONTAB.read_bytes() if CRONTAB.exists() else None
    yield
    if before is None:
        CRONTAB.unlink(missing_ok=True)
    else:
        tmp = CRONTAB.with_name(".process-control.pkgtest")
        tmp.write_bytes(before)
        tmp.chmod(0o644)
        os.replace(tmp, CRONTAB)
