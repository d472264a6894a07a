"""Fixtures for the integration tier: a real single-node Slurm.

``slurm_env`` is the environment of a usable cluster: the one ``$SLURM_CONF``
names when it is set (CI starts it with ``tests/slurm/local-slurm start``),
else one this session starts with that script (root only: slurmd must start
jobs as any user). A cluster this session started is left running for the next
session; ``tests/slurm/local-slurm stop`` stops it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from pctest import free_port

REPO = Path(__file__).resolve().parents[2]
LOCAL_SLURM = REPO / "tests" / "slurm" / "local-slurm"


def _ping(env: dict[str, str]) -> tuple[bool, str]:
    try:
        proc = subprocess.run(["scontrol", "ping"], env=env, capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, str(err)
    return proc.returncode == 0 and " is UP" in proc.stdout, (proc.stdout + proc.stderr).strip()


def parse_exports(text: str) -> dict[str, str]:
    """``export NAME=value`` lines (values quoted by printf %q) -> dict."""
    found = {}
    for line in text.splitlines():
        if not line.startswith("export "):
            continue
        name, _, value = line[len("export "):].partition("=")
        words = shlex.split(value) if value else [""]
        found[name] = words[0] if words else ""
    return found


@pytest.fixture(scope="session")
def slurm_env() -> dict[str, str]:
    env = dict(os.environ)
    if env.get("SLURM_CONF"):
        ok, said = _ping(env)
        if not ok:
            pytest.fail(f"SLURM_CONF={env['SLURM_CONF']} is set but its controller does not "
                        f"answer ({said}); start it with {LOCAL_SLURM} start")
        return env
    if os.geteuid() != 0:
        pytest.skip("no $SLURM_CONF and not root: cannot start tests/slurm/local-slurm "
                    "(slurmd must run as root)")
    proc = subprocess.run([str(LOCAL_SLURM), "start"], capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        pytest.fail(f"{LOCAL_SLURM} start failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    env.update(parse_exports(proc.stdout))
    ok, said = _ping(env)
    if not ok:
        pytest.fail(f"local-slurm started but scontrol ping says: {said}")
    return env


@pytest.fixture
def slurm_client(slurm_env):
    from run_job.slurm.client import SlurmClient
    return SlurmClient(environ=slurm_env)


@pytest.fixture
def dead_slurm_env(slurm_env, tmp_path) -> dict[str, str]:
    """``slurm_env`` with SLURM_CONF pointing at a copy of the config whose
    controller port nobody listens on: every Slurm command finds it unreachable."""
    conf = Path(slurm_env["SLURM_CONF"]).read_text()
    port = free_port()
    lines = [f"SlurmctldPort={port}" if line.startswith("SlurmctldPort=") else line
             for line in conf.splitlines()]
    dead = tmp_path / "dead slurm.conf"
    dead.write_text("\n".join(lines) + "\n")
    env = dict(slurm_env)
    env["SLURM_CONF"] = str(dead)
    return env
