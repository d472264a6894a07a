"""The crontab cron-generate writes works as written, in cron's bare environment.

cron runs each entry's command with ``/bin/sh -c`` and an environment of its
own (``PATH=/usr/bin:/bin`` and little else): a config named by ``--config``
or ``$PROCESS_CONTROL_CONFIG`` when cron-generate ran does not reach the
run-job the entry starts, unless the entry names it. Each entry's command part
is run here as cron would run it (``env -i PATH=/usr/bin:/bin sh -c``, from an
unrelated folder) after undoing cron's ``\\%`` escape.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pctest import REPO, USER, command_env

EXAMPLES = REPO / "examples"


def installed_bin(folder: Path) -> Path:
    """The console scripts as ``pip install`` makes them: a folder holding
    run-job, cron-generate and sbatch-service, each naming its interpreter
    (with PC_INSTALLED=1: the installed ones)."""
    if os.environ.get("PC_INSTALLED") == "1":
        return Path(shutil.which("cron-generate")).parent
    folder.mkdir()
    for name, module in (("run-job", "run_job.cli"), ("cron-generate", "cron_generate.cli"),
                         ("sbatch-service", "run_job.service_cli")):
        script = folder / name
        script.write_text(f"#!{sys.executable}\n"
                          "import sys\n"
                          f"sys.path.insert(0, {str(REPO)!r})\n"
                          f"from {module} import main\n"
                          "sys.exit(main())\n")
        script.chmod(0o755)
    return folder


def cron_generate(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = command_env()
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(bin_dir / "cron-generate"), *args], capture_output=True, text=True, env=env,
                          cwd=str(cwd), timeout=60)


def entry_commands(crontab: str) -> list[str]:
    """The command part of every entry line, as cron hands it to /bin/sh."""
    out = []
    for line in crontab.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or re.match(r"[A-Za-z_][A-Za-z0-9_]*=", line):
            continue
        fields = line.split(None, 1 if line.startswith("@") else 5)
        user_and_command = fields[-1]
        _user, command = user_and_command.split(None, 1)
        assert not re.search(r"(?<!\\)%", command), f"a bare % (cron turns it into a newline): {line!r}"
        out.append(command.replace("\\%", "%"))
    return out


def as_cron_runs(command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["env", "-i", "PATH=/usr/bin:/bin", "sh", "-c", command], capture_output=True,
                          text=True, cwd=str(cwd), timeout=120, stdin=subprocess.DEVNULL)


def test_quickstart_crontab_works_as_written(tmp_path: Path) -> None:
    bin_dir = installed_bin(tmp_path / "venv-bin")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the example itself, named by a relative path: every entry names it, absolute
    res = cron_generate(bin_dir, "--config", "examples/quickstart.yaml", "--stdout", cwd=REPO)
    assert res.returncode == 0, res.stderr
    commands = entry_commands(res.stdout)
    # hello, nightly-report (Berlin time: --if-due entries on the host's clock,
    # one on a host that keeps Berlin's clock) and spread-cleanup; cluster-batch is disabled
    assert sorted(set(c.replace(" --if-due", "").rsplit(" ", 1)[1] for c in commands)) == [
        "hello", "nightly-report", "spread-cleanup"]
    for command in commands:
        assert f"--config {EXAMPLES / 'quickstart.yaml'} --job " in command
    # the same example with its run records moved from /tmp into tmp_path (the
    # only change), run entry by entry as cron would
    copy = tmp_path / "quick start; it's 100%" / "examples"
    shutil.copytree(EXAMPLES / "jobs", copy / "jobs")
    records = tmp_path / "records"
    text = (EXAMPLES / "quickstart.yaml").read_text()
    assert text.count("/tmp/process-control-quickstart") == 3
    (copy / "quickstart.yaml").write_text(text.replace("/tmp/process-control-quickstart", str(records)))
    res = cron_generate(bin_dir, "--config", str(copy / "quickstart.yaml"), "--stdout", cwd=elsewhere)
    assert res.returncode == 0, res.stderr
    commands = entry_commands(res.stdout)
    slugs = [c.replace(" --if-due", "").rsplit(" ", 1)[1] for c in commands]
    assert sorted(set(slugs)) == ["hello", "nightly-report", "spread-cleanup"]
    for command in commands:
        ran = as_cron_runs(command, elsewhere)
        assert ran.returncode == 0, (command, ran.stderr)
    for command in set(commands):  # an --if-due entry runs only when due: run it now
        if command.endswith(" --if-due"):
            ran = as_cron_runs(command[: -len(" --if-due")], elsewhere)
            assert ran.returncode == 0, (command, ran.stderr)
    for slug in ("hello", "nightly-report", "spread-cleanup"):
        status = json.loads((records / "log" / slug / "latest" / "status.json").read_text())
        assert status["outcome"] == "success", status
    assert "hello from process-control" in (records / "log" / "hello" / "latest" / "output.log").read_text()


ODD = "a b; it's 100% $(touch PWNED) `id` \"q\" \\ *"


@pytest.mark.parametrize("via", ["--config", "PROCESS_CONTROL_CONFIG"])
def test_every_entry_names_a_non_default_config_exactly(tmp_path: Path, via: str) -> None:
    root = tmp_path / ODD
    (root / "jobs").mkdir(parents=True)
    recorder = tmp_path / "bin" / "recorder"  # runner paths are plain (the config refuses blanks)
    recorder.parent.mkdir()
    recorder.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$(dirname "$0")/argv"\n')
    recorder.chmod(0o755)
    cfg = root / "pc%.yaml"
    cfg.write_text(json.dumps({
        "job_directory": "jobs", "output_directory": str(tmp_path / "log"),
        "state_directory": str(tmp_path / "state"), "run_directory": str(tmp_path / "run"),
        "output_crontab": "console", "user": USER,
        "runner_path": str(recorder), "service_runner_path": str(recorder)}))
    (root / "jobs" / "nightly.yaml").write_text("command: /bin/true\nschedule: '0 3 * * *'\n")
    (root / "jobs" / "web.yaml").write_text(
        "command: /bin/sleep 1d\nrunner: slurm\nservice:\n  keep_alive: '*/2 * * * *'\n")
    if via == "--config":
        args, env = ["--config", str(cfg)], None
    else:
        args, env = [], {"PROCESS_CONTROL_CONFIG": str(cfg)}
    res = subprocess.run([sys.executable, "-m", "cron_generate", *args], capture_output=True, text=True,
                         env=command_env(env), cwd=str(tmp_path), timeout=60)
    assert res.returncode == 0, res.stderr
    commands = entry_commands(res.stdout)
    expected = [["--config", str(cfg), "--job", "nightly"], ["--config", str(cfg), "start", "web"]]
    assert len(commands) == 2
    for command, argv in zip(commands, expected):
        ran = as_cron_runs(command, tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert (recorder.parent / "argv").read_text().splitlines() == argv
    assert not list(tmp_path.rglob("PWNED"))


def test_default_config_adds_nothing_and_a_newline_in_the_path_is_refused(tmp_path: Path) -> None:
    from cron_generate.render import CrontabError, config_arguments
    from run_job.config.settings import build_config, default_settings
    from run_job.model import replace

    base = build_config(default_settings(), None, "")
    assert config_arguments(base) == ()
    assert config_arguments(replace(base, source=Path("/etc/process-control.yaml"))) == ()
    assert config_arguments(replace(base, source=Path("/srv/pc.yaml"))) == ("--config", "/srv/pc.yaml")
    with pytest.raises(CrontabError, match="contains a newline"):
        config_arguments(replace(base, source=Path("/srv/a\nb/pc.yaml")))
    folder = tmp_path / "new\nline"
    folder.mkdir()
    cfg = folder / "pc.yaml"
    cfg.write_text(f"job_directory: {tmp_path}\noutput_crontab: console\n")
    res = subprocess.run([sys.executable, "-m", "cron_generate", "--config", str(cfg)], capture_output=True,
                         text=True, env=command_env(), timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and "contains a newline" in res.stderr
