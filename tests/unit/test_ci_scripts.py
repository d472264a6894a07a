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


# Build and test junk that must never reach the source package.
JUNK = [".venv/bin/python", ".venv-debian/pyvenv.cfg", "build/lib/run_job/cli.py", "dist/x.whl",
        "process_control.egg-info/PKG-INFO", "run_job/__pycache__/cli.cpython-311.pyc",
        ".pybuild/cpython3_3.11/build/x", ".pytest_cache/v/x", "debian/.debhelper/x",
        "debian/process-control/usr/bin/run-job", "debian/files", "debian/process-control.substvars",
        "debian/debhelper-build-stamp", "bench/results/x.json", ".git/HEAD"]
SOURCES = ["run_job/cli.py", "schemas/job.schema.json", "debian/control", "debian/rules",
           "tests/unit/test_x.py", ".ci/run", ".gitignore", "a dir/with space.txt"]


def _tree(root: Path, junk: list[str] = JUNK) -> None:
    for name in junk + SOURCES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)


def _copied(dest: Path) -> set[str]:
    return {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}


def test_source_tree_without_git_leaves_the_junk_out(tmp_path: Path) -> None:
    repo, dest = tmp_path / "repo", tmp_path / "dest"
    _tree(repo)  # .git/HEAD alone is no repository: git rev-parse fails, as without git
    result = subprocess.run([str(CI / "source-tree"), str(repo), str(dest)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert _copied(dest) == set(SOURCES)


def test_source_tree_with_git_takes_tracked_and_new_files(tmp_path: Path) -> None:
    import shutil

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo, dest = tmp_path / "repo", tmp_path / "dest"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    _tree(repo, [name for name in JUNK if not name.startswith(".git/")])
    (repo / ".gitignore").write_text((CI.parent / ".gitignore").read_text())
    assert subprocess.run(["git", "-C", str(repo), "rev-parse", "--git-dir"], capture_output=True).returncode == 0
    result = subprocess.run([str(CI / "source-tree"), str(repo), str(dest)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert _copied(dest) == set(SOURCES)


def test_the_package_stage_sets_the_variable_the_test_helpers_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every NAME=1 that .ci/package.sh sets, set here: the helpers then run the
    installed commands (they once read PC_INSTALLED while it set another name)."""
    import re

    import pctest

    monkeypatch.delenv("PC_INSTALLED", raising=False)
    assert not pctest.installed()
    for name in set(re.findall(r"\b([A-Z][A-Z0-9_]*)=1\b", (CI / "package.sh").read_text())):
        monkeypatch.setenv(name, "1")
    assert pctest.installed()


def _readme_test_section() -> str:
    text = (CI.parent / "README.md").read_text()
    start = text.index("bash .ci/run")
    return " ".join(text[start:text.index("\n## ", start)].split())


def test_the_readme_names_every_package_ci_installs() -> None:
    """What `bash .ci/run` leaves on the machine is in the README, next to it."""
    import re

    readme = _readme_test_section()
    sources = [CI / "run", CI / "package.sh", CI.parent / "tests" / "slurm" / "local-slurm"]
    packages = set()
    for source in sources:
        text = source.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            match = re.search(r"apt-get install (.*)", line)
            if match:
                words = re.split(r"\s+", re.split(r"[>|&;]", match.group(1))[0])
                packages.update(w for w in words if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", w))
    assert {"cron", "slurmd", "lintian", "python3-venv"} <= packages, packages
    missing = sorted(p for p in packages if not re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", readme))
    assert missing == [], f"installed by CI but not named in README.md: {missing}"


def test_the_readme_names_every_user_the_tests_create() -> None:
    import re

    readme = _readme_test_section()
    users = set()
    for path in (CI.parent / "tests").rglob("*.py"):
        text = path.read_text()
        if "useradd" in text:
            users.update(re.findall(r'^SERVICE_USER = "([^"]+)"', text, re.M))
    assert len(users) >= 2, users
    missing = sorted(u for u in users if f"`{u}`" not in readme)
    assert missing == [], f"users created by tests but not named in README.md: {missing}"
