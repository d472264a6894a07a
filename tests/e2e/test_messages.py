"""Messages a new user meets, through the real commands: one line each, what
is wrong, where, and what to write instead; a defined exit status."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pctest import Site, command, command_env, run

TIMEOUT = 60
TIMEOUT_HINT = "is not a timeout: write minutes as a number (30) or a duration such as '90s', '15m', '2h'"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")


# ---------------------------------------------------------------- durations and bad values


@pytest.mark.parametrize("value, shown", [("abc", "'abc'"), ("-5", "-5"), ('"5 minutes"', "'5 minutes'")])
def test_bad_timeout_is_one_short_line_everywhere(site: Site, value: str, shown: str) -> None:
    site.job("slow", f"command: /bin/true\ntimeout: {value}\n")
    expected = f"{site.jobs / 'slow.yaml'}:2: timeout: {shown} {TIMEOUT_HINT}"
    res = site.run_job("--validate")
    assert res.returncode == 1
    assert expected in res.stdout.splitlines()
    res = site.run_job("--job", "slow")
    assert res.returncode == 125
    assert res.stderr.splitlines() == [f"run-job: {expected}"]
    res = site.run_job("--status")
    assert f"  INVALID: {expected}" in res.stdout.splitlines()
    for out in (res.stdout, site.run_job("--validate").stdout):
        assert "On expiry" not in out and out.count(TIMEOUT_HINT) == 1  # not the schema's description


def test_bare_number_durations_say_what_to_write(site: Site) -> None:
    site.config.write_text(site.config.read_text() + "slurm:\n  unreachable_timeout: 600\n"
                                                      "default_job_config:\n  kill_grace: 5\n")
    res = site.run_job("--validate")
    assert res.returncode == 1
    assert ("slurm.unreachable_timeout: 600 is not a duration: write '600s' or '600m': a bare number is "
            "ambiguous here") in res.stdout
    site.config.write_text(site.config.read_text().replace("unreachable_timeout: 600", "unreachable_timeout: 10m"))
    res = site.run_job("--validate")
    assert ("default_job_config.kill_grace: 5 is not a duration: write '5s' or '5m': a bare number is "
            "ambiguous here") in res.stdout
    site.job("grace", "command: /bin/true\nkill_grace: 2.5\n")
    res = site.run_job("--validate", str(site.jobs / "grace.yaml"))
    assert "kill_grace: 2.5 is not a duration: write '2.5s' or '2.5m'" in res.stdout


def test_mail_timeout_in_seconds(site: Site) -> None:
    site.config.write_text(site.config.read_text() + "mail:\n  timeout: 10\n")
    site.job("ok", "command: /bin/true\n")
    res = site.run_job("--validate")
    assert res.returncode == 0, res.stdout
    assert site.run_job("--job", "ok").returncode == 0


# ---------------------------------------------------------------- mail.password_file


@pytest.mark.parametrize("case", ["world-readable", "missing", "fifo", "symlink", "empty", "no-file-named"])
def test_password_file_problems_are_reported_by_validate(site: Site, tmp_path: Path, case: str) -> None:
    secret = tmp_path / "smtp password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    named = secret
    expected = {"world-readable": "mode 0644 lets others read or change it; run: chmod 600",
                "missing": "does not exist", "fifo": "not a regular file (a FIFO)",
                "symlink": "is a symbolic link", "empty": "empty",
                "no-file-named": "mail: username is set but password_file is not"}[case]
    if case == "world-readable":
        secret.chmod(0o644)
    elif case == "missing":
        named = tmp_path / "nothing"
    elif case == "fifo":
        named = tmp_path / "fifo"
        os.mkfifo(named, 0o600)
    elif case == "symlink":
        named = tmp_path / "link"
        named.symlink_to(secret)
    elif case == "empty":
        secret.write_text("")
    mail = "mail:\n  username: pc\n" + ("" if case == "no-file-named" else f"  password_file: '{named}'\n")
    site.config.write_text(site.config.read_text() + mail)
    site.job("ok", "command: /bin/true\n")
    res = site.run_job("--validate", timeout=TIMEOUT)
    assert res.returncode == 1, res.stdout
    line = next(l for l in res.stdout.splitlines() if expected in l)
    assert line.startswith(f"{site.config}: mail")
    assert "s3cret" not in res.stdout
    doc = json.loads(site.run_job("--validate", "--json", timeout=TIMEOUT).stdout)
    config_entry = next(f for f in doc["files"] if f["kind"] == "config")
    assert config_entry["valid"] is False
    # the same config still runs jobs: the problem is the mail's, found early
    assert site.run_job("--job", "ok").returncode == 0


def test_a_good_password_file_passes(site: Site, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    site.config.write_text(site.config.read_text() + f"mail:\n  username: pc\n  password_file: '{secret}'\n")
    res = site.run_job("--validate")
    assert res.returncode == 0, res.stdout
