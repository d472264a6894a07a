"""The CI scripts themselves (.ci/run, .ci/package.sh): the parts that can be
run without installing anything, run on stand-ins in tmp_path.

They are not shipped: a copy of the tests without ``.ci/`` next to it (the
package stage runs one) skips them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

CI = Path(__file__).resolve().parents[2] / ".ci"

pytestmark = pytest.mark.skipif(not (CI / "run").is_file(),
                                reason="no .ci/ next to these tests (a copy of the tests)")


def _snippet(script: Path, first: str, last: str) -> str:
    """The lines of ``script`` from the one containing ``first`` to the one containing ``last``."""
    lines = script.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if first in line)
    end = next(i for i, line in enumerate(lines) if i > start and last in line)
    return "\n".join(lines[start:end + 1])


def test_ci_stops_at_once_when_slurm_does_not_start(tmp_path: Path) -> None:
    """.ci/run's Slurm step, with a local-slurm that fails: CI stops there, with
    its error, instead of running the suite against no cluster (52 errors)."""
    fake = tmp_path / "tests" / "slurm" / "local-slurm"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 'local-slurm: slurmctld did not start' >&2\nexit 1\n")
    fake.chmod(0o755)
    step = _snippet(CI / "run", 'say "Slurm', "slurm_started=1")
    script = f"set -euo pipefail\nsay() {{ :; }}\n{step}\necho 'went on to the tests'\n"
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "went on to the tests" not in result.stdout
    assert "slurmctld did not start" in result.stderr


def test_ci_takes_the_exports_of_a_started_slurm(tmp_path: Path) -> None:
    fake = tmp_path / "tests" / "slurm" / "local-slurm"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\nprintf 'export SLURM_CONF=%s\\n' '/x/slurm.conf'\n")
    fake.chmod(0o755)
    step = _snippet(CI / "run", 'say "Slurm', "slurm_started=1")
    script = f"set -euo pipefail\nsay() {{ :; }}\n{step}\necho \"conf=$SLURM_CONF started=$slurm_started\"\n"
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "conf=/x/slurm.conf started=1"


@pytest.mark.parametrize("name", ["run", "package.sh"])
def test_no_eval_of_a_command_substitution(name: str) -> None:
    """``eval "$(cmd)"`` hides cmd's failure from set -e; nowhere in CI."""
    for number, line in enumerate((CI / name).read_text().splitlines(), 1):
        code = line.split("#", 1)[0]
        assert 'eval "$(' not in code and "eval $(" not in code, f".ci/{name}:{number}: {line}"
