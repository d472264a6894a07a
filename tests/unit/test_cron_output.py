"""cron_generate.output: install, compare, diff and lock, on files in tmp_path."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

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
    assert sorted(p.name for p in target.parent.iterdir()) == ["process-control"]  # no lock file


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
    fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another cron-generate holds it
        with pytest.raises(CrontabError, match="another cron-generate holds the lock on"):
            output.install(target, TEXT, lock_timeout=0.2)
    finally:
        os.close(fd)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_output_path_rules(tmp_path, monkeypatch):
    with pytest.raises(CrontabError, match="absolute"):
        output.output_path("relative/pc")
    with pytest.raises(CrontabError, match="does not exist"):
        output.output_path(str(tmp_path / "missing" / "pc"))
    assert output.output_path(str(tmp_path / "pc")) == tmp_path / "pc"
    # cron ignores dotted names in /etc/cron.d only: elsewhere any name goes
    assert output.output_path(str(tmp_path / "crontab.out")) == tmp_path / "crontab.out"
    cron_d = tmp_path / "cron.d"
    cron_d.mkdir()
    (tmp_path / "link").symlink_to(cron_d)
    monkeypatch.setattr(output, "CRON_D", str(cron_d))
    for folder in (cron_d, tmp_path / "link"):
        with pytest.raises(CrontabError, match="letters, digits"):
            output.output_path(str(folder / "pc.cron"))
        assert output.output_path(str(folder / "pc")) == folder / "pc"


def test_real_cron_d_refuses_dotted_names():
    assert output.in_cron_d(Path("/etc/cron.d"))
    with pytest.raises(CrontabError, match="ignored by cron in /etc/cron.d"):
        output.output_path("/etc/cron.d/process-control.cron")  # checks only, writes nothing


@pytest.mark.parametrize("failure", ["replace", "fsync", "interrupt"])
def test_no_temporary_file_is_left_on_any_error(target, monkeypatch, failure):
    def fail(*_args, **_kwargs):
        if failure == "interrupt":
            raise KeyboardInterrupt
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failure if failure != "interrupt" else "fsync", fail)
    with pytest.raises((CrontabError, KeyboardInterrupt)):
        output.install(target, TEXT)
    monkeypatch.undo()
    assert list(target.parent.iterdir()) == []


def test_leftovers_of_a_killed_run_and_old_lock_files_are_removed(target):
    for name in (".process-control.tmp4242", ".process-control.lock"):
        (target.parent / name).write_text("x")
    (target.parent / ".process-control.tmpx").write_text("not ours")
    output.install(target, TEXT)
    assert sorted(p.name for p in target.parent.iterdir()) == [".process-control.tmpx", "process-control"]


def test_a_folder_in_the_way_is_an_error(target):
    target.mkdir()
    with pytest.raises(CrontabError, match="is a folder"):
        output.read_installed(target)
