"""What the package put on the machine: commands, libraries, conffile, user,
folders, schemas, man pages, completion, logrotate and tmpfiles.d."""

from __future__ import annotations

import grp
import gzip
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from pkgtools import packaged  # noqa: F401  (fixtures)
from pkgtools import (CLEAN_ENV, COMMANDS, JOB_DIR, LOG_DIR, RUN_DIR, SERVICE_USER,
                      STATE_DIR, run)

DIST_PACKAGES = "/usr/lib/python3/dist-packages/"


@pytest.mark.parametrize("command", COMMANDS)
def test_command_is_a_console_script_on_debian_python(command: str) -> None:
    path = Path("/usr/bin") / command
    assert path.read_text().splitlines()[0] == "#!/usr/bin/python3"
    assert os.access(path, os.X_OK)
    owner = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True)
    assert owner.stdout.startswith("process-control:"), owner


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_runs(command: str) -> None:
    result = run([f"/usr/bin/{command}", "--help"])
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    assert "Traceback" not in result.stderr


def test_modules_and_libraries_are_debians() -> None:
    """The installed code on /usr/bin/python3 with python3-yaml & co, not PyPI copies."""
    probe = ("import run_job, cron_generate, yaml, jsonschema, croniter, filelock\n"
             "for m in (run_job, cron_generate, yaml, jsonschema, croniter, filelock):\n"
             "    print(m.__name__, m.__file__)\n")
    result = subprocess.run(["/usr/bin/python3", "-P", "-c", probe], capture_output=True,
                            text=True, env=dict(CLEAN_ENV), cwd="/", timeout=60)
    assert result.returncode == 0, result.stderr
    places = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert set(places) == {"run_job", "cron_generate", "yaml", "jsonschema", "croniter", "filelock"}
    for module, where in places.items():
        assert where.startswith(DIST_PACKAGES), (module, where)
    for module, package in (("yaml", "python3-yaml"), ("jsonschema", "python3-jsonschema"),
                            ("croniter", "python3-croniter"), ("filelock", "python3-filelock")):
        owner = subprocess.run(["dpkg", "-S", places[module]], capture_output=True, text=True)
        assert owner.stdout.split(":")[0] == package, (module, owner.stdout, owner.stderr)


def test_depends_on_debians_libraries() -> None:
    depends = subprocess.run(["dpkg-query", "-W", "-f=${Depends}", "process-control"],
                             capture_output=True, text=True, check=True).stdout
    for package in ("python3-yaml", "python3-jsonschema", "python3-croniter", "python3-filelock"):
        assert package in depends


def test_config_is_a_conffile_with_working_defaults() -> None:
    conffiles = subprocess.run(["dpkg-query", "-W", "-f=${Conffiles}", "process-control"],
                               capture_output=True, text=True, check=True).stdout
    names = [line.split()[0] for line in conffiles.splitlines() if line.strip()]
    assert "/etc/process-control.yaml" in names
    assert "/etc/logrotate.d/process-control" in names
    config = yaml.safe_load(Path("/etc/process-control.yaml").read_text())
    assert config["user"] == SERVICE_USER
    assert config["runner_path"] == "/usr/bin/run-job"
    assert config["service_runner_path"] == "/usr/bin/sbatch-service"
    assert config["job_directory"] == str(JOB_DIR)
    assert config["output_crontab"] == "/etc/cron.d/process-control"


def test_no_crontab_shipped() -> None:
    listing = subprocess.run(["dpkg", "-L", "process-control"], capture_output=True,
                             text=True, check=True).stdout.splitlines()
    assert "/etc/cron.d/process-control" not in listing
    assert not any(p.startswith("/run") for p in listing)


def test_service_user_and_group() -> None:
    user = pwd.getpwnam(SERVICE_USER)
    group = grp.getgrnam(SERVICE_USER)
    assert 0 < user.pw_uid < 1000, "a system user"
    assert user.pw_gid == group.gr_gid
    assert user.pw_dir == str(STATE_DIR)
    assert user.pw_shell in ("/usr/sbin/nologin", "/bin/false")


def _owner(path: Path) -> tuple[str, str, int]:
    st = path.stat()
    return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
            stat.S_IMODE(st.st_mode))


def test_job_directory_is_roots_and_not_writable_by_the_service_user() -> None:
    user, group, mode = _owner(JOB_DIR)
    assert (user, group) == ("root", "root")
    assert mode & 0o022 == 0, oct(mode)
    probe = subprocess.run(["setpriv", f"--reuid={SERVICE_USER}", f"--regid={SERVICE_USER}",
                            "--init-groups", "/usr/bin/test", "-w", str(JOB_DIR)])
    assert probe.returncode == 1, "the service user can write the job directory"


@pytest.mark.parametrize("folder", [LOG_DIR, STATE_DIR, RUN_DIR])
def test_service_folders_belong_to_the_service_user(folder: Path) -> None:
    user, group, mode = _owner(folder)
    assert (user, group) == (SERVICE_USER, SERVICE_USER)
    assert mode & 0o700 == 0o700
    assert mode & 0o002 == 0, oct(mode)


def test_tmpfiles_entry_recreates_the_run_directory() -> None:
    entry = Path("/usr/lib/tmpfiles.d/process-control.conf").read_text()
    lines = [line.split() for line in entry.splitlines() if line.strip() and not line.startswith("#")]
    assert ["d", str(RUN_DIR), "0755", SERVICE_USER, SERVICE_USER, "-"] in lines
    if shutil.which("systemd-tmpfiles") is None:
        pytest.skip("no systemd-tmpfiles on this machine")
    result = run(["systemd-tmpfiles", "--create", "process-control.conf"])
    assert result.returncode == 0, result.stderr
    assert _owner(RUN_DIR)[:2] == (SERVICE_USER, SERVICE_USER)


def test_schemas_are_shipped_twice_and_identical() -> None:
    shared = Path("/usr/share/process-control/schemas")
    job_schema = shared / "job.schema.json"
    assert job_schema.is_file()
    for path in sorted(shared.glob("*.json")):
        document = json.loads(path.read_text())
        assert isinstance(document, dict) and document, path
        packaged = Path(DIST_PACKAGES) / "run_job" / "schemas" / path.name
        assert packaged.read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize("command", COMMANDS)
def test_man_page(command: str) -> None:
    page = Path(f"/usr/share/man/man1/{command}.1.gz")
    text = gzip.decompress(page.read_bytes()).decode()
    assert text.count(".TH ") == 1 and command.upper() in text
    assert ".SH EXIT STATUS" in text
    if shutil.which("man") is None:
        pytest.skip("man-db not installed")
    result = run(["man", "--warnings", "-l", str(page)])
    assert result.returncode == 0
    assert result.stderr == "", result.stderr
    assert "SYNOPSIS" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_man_page_and_completion_know_every_option(command: str) -> None:
    """No drift: each long option of --help is in the man page and the completion."""
    helptext = run([f"/usr/bin/{command}", "--help"]).stdout
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", helptext)) - {"--help"}
    assert options, helptext
    page = gzip.decompress(Path(f"/usr/share/man/man1/{command}.1.gz").read_bytes()).decode()
    page = page.replace("\\-", "-")
    completion = Path(f"/usr/share/bash-completion/completions/{command}").read_text()
    assert sorted(o for o in options if o not in page) == []
    assert sorted(o for o in options if o not in completion) == []


def test_logrotate_snippet_parses() -> None:
    snippet = Path("/etc/logrotate.d/process-control").read_text()
    assert "/var/log/process-control/*/service.log" in snippet
    assert "copytruncate" in snippet
    if shutil.which("logrotate") is None:
        pytest.skip("logrotate not installed")
    result = subprocess.run(["logrotate", "--debug", "/etc/logrotate.d/process-control"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr


def test_examples_are_shipped() -> None:
    examples = Path("/usr/share/doc/process-control/examples")
    assert examples.is_dir() and any(examples.iterdir())
