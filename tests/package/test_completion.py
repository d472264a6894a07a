"""bash completion of the installed commands, driven by a real bash.

Job and service names come from the job directory that the config file
names; the folder and config names here are adversarial."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from pkgtools import packaged, job_file  # noqa: F401  (fixtures)
from pkgtools import CLEAN_ENV

COMPLETIONS = Path("/usr/share/bash-completion/completions")
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")


def complete(words: list[str], env: dict[str, str] | None = None) -> list[str]:
    """Completions bash offers for the last word of ``words`` (words as typed)."""
    line = " ".join(words)
    command = words[0]
    function = {"run-job": "_run_job", "cron-generate": "_cron_generate",
                "sbatch-service": "_sbatch_service"}[command]
    script = "\n".join([
        f"[[ -r {BASH_COMPLETION} ]] && . {BASH_COMPLETION}",
        f". {shlex.quote(str(COMPLETIONS / command))}",
        "COMP_WORDS=(" + " ".join(shlex.quote(w) for w in words) + ")",
        f"COMP_CWORD={len(words) - 1}",
        f"COMP_LINE={shlex.quote(line)}",
        f"COMP_POINT={len(line)}",
        f"{function} {command} {shlex.quote(words[-1])} {shlex.quote(words[-2])}",
        'printf "%s\\n" "${COMPREPLY[@]}"',
    ])
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                            text=True, env=dict(CLEAN_ENV, **(env or {})), timeout=30)
    assert result.returncode == 0, result.stderr
    return sorted(w for w in result.stdout.splitlines() if w)


def typed(path: Path) -> str:
    """``path`` as readline's filename completion types it: backslash escapes."""
    return re.sub(r"([^A-Za-z0-9_./-])", r"\\\1", str(path))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A config naming an adversarial job directory with jobs, a service and non-jobs."""
    root = tmp_path / "site; it's 100% $(odd)"
    jobs = root / "jobs dir"
    jobs.mkdir(parents=True)
    (jobs / "nightly.yaml").write_text("command: /bin/true\nschedule: '@daily'\n")
    (jobs / "report_2-b.yaml").write_text("command: /bin/true\n")
    (jobs / "queue.yaml").write_text(
        "runner: slurm\ncommand: /bin/sleep 1d\nservice:\n  keep_alive: '*/5 * * * *'\n")
    for ignored in (".hidden.yaml", "old.yml", "nightly.yaml~", "bad name.yaml", "x.yaml.dpkg-old"):
        (jobs / ignored).write_text("command: /bin/true\n")
    config = root / "process-control.yaml"
    config.write_text(f'# comment\nuser: nobody\njob_directory: "{jobs}"  # the jobs\n')
    return config


def test_job_names_after_job(site: Path) -> None:
    config = typed(site)
    assert complete(["run-job", "--config", config, "--job", ""]) == ["nightly", "report_2-b"]
    assert complete(["run-job", "--config", config, "-j", "n"]) == ["nightly"]
    # a bare NAME runs the job too
    assert complete(["run-job", f"--config={config}", "re"]) == ["report_2-b"]
    # --history and --kill-job take services too
    assert complete(["run-job", "--config", config, "--history", ""]) == [
        "nightly", "queue", "report_2-b"]


def test_relative_job_directory_and_service_names(site: Path) -> None:
    site.write_text("job_directory: jobs dir\n")
    config = typed(site)
    assert complete(["sbatch-service", "--config", config, "start", ""]) == ["queue"]
    assert complete(["sbatch-service", "--config", config, "st"]) == ["start", "status", "stop"]
    assert complete(["sbatch-service", "re"]) == ["reload", "restart"]


def test_config_from_the_environment(site: Path) -> None:
    site.write_text("job_directory: 'jobs dir'\n")
    assert complete(["run-job", "--job", ""], env={"PROCESS_CONTROL_CONFIG": str(site)}) == [
        "nightly", "report_2-b"]


def test_default_config_names_the_packaged_job_directory(job_file) -> None:
    slug = job_file("completion", "command: /bin/true\n")
    assert slug in complete(["run-job", "--job", "pkgtest-completion"])


def test_options() -> None:
    assert "--validate" in complete(["run-job", "--va"])
    assert complete(["run-job", "--job", "x", "--if"]) == ["--if-due"]
    assert complete(["cron-generate", "--c"]) == ["--check", "--config"]
    assert complete(["cron-generate", "--s"]) == ["--stdout"]
