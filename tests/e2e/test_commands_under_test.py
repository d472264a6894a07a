"""Which commands this tier runs: the checkout's, or the installed ones.

The package stage (.ci/package.sh, ``PROCESS_CONTROL_PACKAGE_TESTS=1``) runs
this tier against the installed package: a wrong or missing ``PC_INSTALLED``
must fail it, not quietly test a checkout again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pctest
from pctest import MODULES, command, command_env


def test_the_package_stage_runs_the_installed_commands() -> None:
    if os.environ.get("PROCESS_CONTROL_PACKAGE_TESTS") != "1":
        pytest.skip("not the package stage (PROCESS_CONTROL_PACKAGE_TESTS is not 1)")
    assert pctest.installed(), ("PROCESS_CONTROL_PACKAGE_TESTS=1 but PC_INSTALLED is not 1: "
                                "the end-to-end tests would run a checkout, not the package")
    for name in MODULES:
        assert command(name) == [f"/usr/bin/{name}"]
    import run_job

    assert run_job.__file__.startswith("/usr/lib/python3/dist-packages/"), run_job.__file__


def test_the_commands_import_the_run_job_under_test() -> None:
    """What a command started by the helpers imports: the installed package
    with PC_INSTALLED=1, else this checkout."""
    probe = "import run_job, cron_generate; print(run_job.__file__); print(cron_generate.__file__)"
    if pctest.installed():
        shebang = Path(command("run-job")[0]).read_text().splitlines()[0]
        python = shebang[2:].split()[0]
        argv = [python, "-P", "-c", probe]
    else:
        argv = [sys.executable, "-c", probe]
    result = subprocess.run(argv, capture_output=True, text=True, env=command_env(), cwd="/", timeout=60)
    assert result.returncode == 0, result.stderr
    where = "/usr/lib/python3/dist-packages" if pctest.installed() else str(pctest.REPO)
    for path in result.stdout.split():
        assert path.startswith(where + "/"), path
