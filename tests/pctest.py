"""Shared test helpers: how to call the commands, and a site in tmp_path.

Imported as ``pctest`` (a unique name: several folders have a conftest.py).

The commands run as real subprocesses. By default they run from this checkout
(``python -m run_job``); with ``PC_INSTALLED=1`` the installed console scripts
on PATH are used instead (the Debian package's CI run tests those too).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
USER = pwd.getpwuid(os.geteuid()).pw_name


def command(name: str) -> list[str]:
    """argv prefix of ``run-job``, ``cron-generate`` or ``sbatch-service``."""
    if os.environ.get("PC_INSTALLED") == "1":
        found = shutil.which(name)
        if not found:
            pytest.fail(f"PC_INSTALLED=1 but {name} is not on PATH")
        return [found]
    module = {"run-job": "run_job", "cron-generate": "cron_generate", "sbatch-service": "run_job.service_cli"}[name]
    return [sys.executable, "-m", module]


def command_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.pop("PROCESS_CONTROL_CONFIG", None)
    if os.environ.get("PC_INSTALLED") != "1":
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if extra:
        env.update(extra)
    return env


def run(name: str, *args: str, env: dict | None = None, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command(name) + list(args), capture_output=True, text=True,
                          env=command_env(env), timeout=timeout, **kwargs)


class Site:
    """A config file and every folder it names, under one tmp folder."""

    def __init__(self, root: Path, **settings: object) -> None:
        import yaml

        self.root = root
        self.jobs = root / "jobs"
        self.output = root / "log"
        self.state = root / "state"
        self.rundir = root / "run"
        self.jobs.mkdir(parents=True, exist_ok=True)
        self.config = root / "process-control.yaml"
        base = {
            "job_directory": str(self.jobs),
            "output_directory": str(self.output),
            "state_directory": str(self.state),
            "run_directory": str(self.rundir),
            "output_crontab": "console",
            "user": USER,
        }
        base.update(settings)
        self.config.write_text(yaml.safe_dump(base))
        os.chmod(root, 0o755)
        os.chmod(self.jobs, 0o755)

    def job(self, slug: str, text: str) -> Path:
        path = self.jobs / f"{slug}.yaml"
        path.write_text(text)
        path.chmod(0o644)
        return path

    def run_job(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run("run-job", "--config", str(self.config), *args, **kwargs)
