"""Helpers shared by the tests of the installed package (see conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

SERVICE_USER = "process-control"
JOB_DIR = Path("/var/lib/process-control")
LOG_DIR = Path("/var/log/process-control")
STATE_DIR = Path("/var/cache/process-control")
RUN_DIR = Path("/run/process-control")
CRONTAB = Path("/etc/cron.d/process-control")
COMMANDS = ("run-job", "cron-generate", "sbatch-service")
# A clean environment: no pyenv, no PYTHONPATH, no config override.
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}


def packaged_reason() -> str | None:
    """Why these tests cannot run here, or None when they can."""
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


def wait_for(predicate: Callable[[], object], timeout: float, step: float = 0.5) -> object:
    """Poll ``predicate`` until it returns something true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)
