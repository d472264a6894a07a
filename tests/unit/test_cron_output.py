"""cron_generate.output: install, compare, diff and lock, on files in tmp_path."""

from __future__ import annotations

import os
import stat

import filelock
import pytest

from cron_generate import output
from cron_generate.render import CrontabError

TEXT = "# generated\n*/5 * * * * pc /usr/bin/run-job --job a\n"


@pytest.fixture
def target(tmp_path):
    folder = tmp_path / "cron.d with space %"
    folder.mkdir()
    return folder / "process-control"


def test_install_creates_0644_whatever_the_umask(target):
    old = os.umask(0o077)
    try:
        assert output.install(target, TEXT) is True
    finally:
        os.umask(old)
    assert target.read_text() == TEXT
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == [".process-control.lock", "process-control"]


def test_install_in_sync_writes_nothing(target):
    output.install(target, TEXT)
    os.utime(target, (1_000_000, 1_000_000))
    ino = target.stat().st_ino
    assert output.install(target, TEXT) is False
    st = target.stat()
    assert (st.st_ino, st.st_mtime) == (ino, 1_000_000)


def test_mode_only_difference(target):
    output.install(target, TEXT)
    target.chmod(0o600)
    installed = output.read_installed(target)
    assert not output.in_sync(installed, TEXT)
    assert output.unified_diff(target, installed, TEXT) == f"mode of {target}: 0600, expected 0644\n"
    assert output.install(target, TEXT) is True
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_diff_of_missing_file(target):
    diff = output.unified_diff(target, output.read_installed(target), TEXT)
    assert diff.startswith("--- /dev/null\n")
    assert "+*/5 * * * * pc /usr/bin/run-job --job a\n" in diff


def test_lock_timeout_is_a_crontab_error(target):
    with filelock.FileLock(str(output.lock_path(target))):
        with pytest.raises(CrontabError, match="another cron-generate holds"):
            output.install(target, TEXT, lock_timeout=0.2)
    assert not target.exists()


def test_output_path_rules(tmp_path):
    with pytest.raises(CrontabError, match="absolute"):
        output.output_path("relative/pc")
    with pytest.raises(CrontabError, match="does not exist"):
        output.output_path(str(tmp_path / "missing" / "pc"))
    with pytest.raises(CrontabError, match="letters, digits"):
        output.output_path(str(tmp_path / "pc.cron"))
    assert output.output_path(str(tmp_path / "pc")) == tmp_path / "pc"


def test_a_folder_in_the_way_is_an_error(target):
    target.mkdir()
    with pytest.raises(CrontabError, match="is a folder"):
        output.read_installed(target)
