"""The operating flags (SPEC §9) in --help, the man page, the README and the
guides, and their bash completion (this checkout's
``contrib/bash-completion/run-job``, driven by a real bash)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from pctest import REPO

SCRIPT = REPO / "contrib" / "bash-completion" / "run-job"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


def complete(words: list[str], env: dict[str, str] | None = None) -> list[str]:
    line = " ".join(words)
    script = "\n".join([
        f". {shlex.quote(str(SCRIPT))}",
        "COMP_WORDS=(" + " ".join(shlex.quote(w) for w in words) + ")",
        f"COMP_CWORD={len(words) - 1}", f"COMP_LINE={shlex.quote(line)}",
        f"COMP_POINT={len(line)}",
        f"_run_job run-job {shlex.quote(words[-1])} {shlex.quote(words[-2])}",
        'printf "%s\\n" "${COMPREPLY[@]}"',
    ])
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", **(env or {})}, timeout=30)
    assert result.returncode == 0, result.stderr
    return sorted(w for w in result.stdout.splitlines() if w)


@pytest.fixture
def config(tmp_path: Path) -> str:
    jobs = tmp_path / "jobs; 'x' 100%"
    jobs.mkdir()
    (jobs / "a.yaml").write_text("command: true\ntag: solo\n")
    (jobs / "b.yaml").write_text("command: true\ntag: [web, 'db']  # two\n")
    (jobs / "c.yaml").write_text("command: true\ntag:\n  - \"with space\"\n  - web\nevents: [x]\n")
    path = tmp_path / "pc.yaml"
    path.write_text(f'job_directory: "{jobs}"\n')
    return str(path)


def test_flags_tags_and_names(config: str) -> None:
    for flag in ("--tag", "--pause", "--resume", "--follow", "--wait", "--trigger", "--next",
                 "--timeout", "--until", "--reason", "--force", "--run", "--message"):
        assert flag in complete(["run-job", flag[:4]]) or flag in complete(["run-job", flag])
    assert complete(["run-job", "--config", config, "--tag", ""]) == [
        "db", "solo", "web", "with space"]
    for flag in ("--pause", "--resume", "--follow", "--wait"):
        assert complete(["run-job", "--config", config, flag, ""]) == ["a", "b", "c"]
    assert complete(["run-job", "--trigger", ""], env={"RUN_JOB_EVENTS": "done,half_way"}) == [
        "done", "half_way"]
    assert complete(["run-job", "--config", config, "--reason", ""]) == []


FLAGS = ("--tag", "--pause", "--reason", "--until", "--resume", "--force", "--follow", "--run",
         "--wait", "--next", "--timeout", "--trigger", "--message")


def test_every_operating_flag_is_documented() -> None:
    from pctest import run

    help_text = run("run-job", "--help").stdout
    man = (REPO / "docs" / "man" / "run-job.1").read_text().replace("\\-", "-")
    readme = (REPO / "README.md").read_text()
    guide = (REPO / "docs" / "run-job.md").read_text()
    for flag in FLAGS:
        assert flag in help_text, flag
        assert flag in man, flag
        assert flag in readme, flag
        assert flag in guide or flag in (REPO / "docs" / "alerts.md").read_text(), flag
