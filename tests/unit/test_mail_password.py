"""alerts.mail.password_file_problem: the password file checked without sending."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from run_job.alerts.mail import password_file_problem
from run_job.model import MailConfig


def mail(path: Path | None, username: str | None = "pc") -> MailConfig:
    return MailConfig(username=username, password_file=path)


def secret(tmp_path: Path, mode: int = 0o600, text: str = "pw\n") -> Path:
    path = tmp_path / "password"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_no_login_no_problem(tmp_path: Path) -> None:
    assert password_file_problem(mail(None, None)) is None
    assert password_file_problem(mail(secret(tmp_path))) is None


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660, 0o644, 0o700 | 0o004])
def test_others_may_not_read_or_change_it(tmp_path: Path, mode: int) -> None:
    path = secret(tmp_path, mode)
    assert password_file_problem(mail(path)) == (
        f"mail.password_file {path}: mode {mode:04o} lets others read or change it; run: chmod 600 {path}")


def test_missing_fifo_folder_link_empty_binary(tmp_path: Path) -> None:
    assert "does not exist" in password_file_problem(mail(tmp_path / "none"))
    os.mkfifo(tmp_path / "fifo", 0o600)
    assert password_file_problem(mail(tmp_path / "fifo")).endswith("not a regular file (a FIFO)")
    assert password_file_problem(mail(tmp_path)).endswith("not a regular file (a folder)")
    (tmp_path / "link").symlink_to(secret(tmp_path))
    assert "is a symbolic link" in password_file_problem(mail(tmp_path / "link"))
    assert password_file_problem(mail(secret(tmp_path, text=""))).endswith(": empty")
    path = tmp_path / "password"
    path.write_bytes(b"\xff\xfe\n")
    assert "not valid UTF-8" in password_file_problem(mail(path))
    assert password_file_problem(mail(None)) == "mail: username is set but password_file is not"


@pytest.mark.skipif(os.geteuid() != 0, reason="who owns the file matters when run-job starts as root")
def test_as_root_the_service_user_must_own_it(tmp_path: Path) -> None:
    path = secret(tmp_path)  # owned by root, 0600
    nobody = pwd.getpwnam("nobody")
    assert password_file_problem(mail(path), "root") is None
    assert f"mail is sent as nobody, who cannot read it with mode 0600: chown nobody {path}" in \
        password_file_problem(mail(path), "nobody")
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    assert password_file_problem(mail(path), "nobody") is None
