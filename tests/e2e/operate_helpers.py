"""Helpers of the operating tests (SPEC §9): runs started by another process,
as cron starts them, and the verbs that attach to them."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from pctest import REPO, Site, command, command_env, installed


def cron_env() -> dict[str, str]:
    """cron's bare environment (what ``env -i PATH=/usr/bin:/bin`` leaves),
    plus the checkout on PYTHONPATH when the tests run it."""
    env = {"PATH": "/usr/bin:/bin"}
    if not installed():
        env["PYTHONPATH"] = str(REPO)
    return env


def start_as_cron(site: Site, slug: str, *extra: str) -> subprocess.Popen:
    """``run-job --job SLUG`` started as cron does: bare environment, no
    terminal, its own session, from another folder."""
    return subprocess.Popen(["env", "-i", *(f"{k}={v}" for k, v in cron_env().items()),
                             *command("run-job"), "--config", str(site.config), "--job", slug,
                             *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd="/", start_new_session=True)


def start(site: Site, *args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """``run-job --config SITE ARGS`` in the background (binary pipes)."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(command("run-job") + ["--config", str(site.config), *args],
                            env=command_env(env), stdin=subprocess.DEVNULL, **kwargs)


def run_dir_of(site: Site, slug: str) -> Path | None:
    link = site.output / slug / "latest"
    return link.resolve() if link.is_symlink() else None


def status_of(site: Site, slug: str) -> dict | None:
    folder = run_dir_of(site, slug)
    try:
        return json.loads((folder / "status.json").read_text()) if folder else None
    except (OSError, ValueError):
        return None


def wait_running(site: Site, slug: str, timeout: float = 20.0, previous: str | None = None) -> dict:
    """The status of SLUG's run once it runs (a run other than ``previous``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = status_of(site, slug)
        if status and status.get("outcome") == "running" and status["run_id"] != previous:
            return status
        time.sleep(0.02)
    raise AssertionError(f"{slug} did not start running: {status_of(site, slug)}")


def wait_ended(site: Site, slug: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = status_of(site, slug)
        if status and status.get("outcome") != "running":
            return status
        time.sleep(0.02)
    raise AssertionError(f"{slug} did not end: {status_of(site, slug)}")


def open_files(pid: int) -> list[str]:
    """What process ``pid`` has open (the targets of /proc/PID/fd)."""
    found = []
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for name in names:
        try:
            found.append(os.readlink(f"/proc/{pid}/fd/{name}"))
        except OSError:
            continue
    return found
