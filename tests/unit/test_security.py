"""run_job/security.py: bounded reads, ownership rules, trusted folders (real files, no root needed
except where marked)."""

from __future__ import annotations

import os
import stat

import pytest

from run_job import security


def test_read_bounded_refuses_what_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "FIFO"), ("/dev/zero", "character device"), (tmp_path, "folder")):
        with pytest.raises(security.NotRegularFile, match=kind):
            security.read_bounded(path, 100)


def test_read_bounded_limits_and_links(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    with pytest.raises(security.FileTooLarge):
        security.read_bounded(big, 100)
    assert security.read_bounded(big, 101) == b"x" * 101
    link = tmp_path / "link"
    link.symlink_to(big)
    assert security.read_bounded(link, 200) == b"x" * 101
    with pytest.raises(OSError):
        security.read_bounded(link, 200, nofollow=True)


def test_ownership_problem_table(tmp_path):
    path = tmp_path / "f"
    path.write_text("")
    st = os.stat(path)
    for mode, expected in ((0o644, None), (0o664, "group- or world-writable"),
                           (0o646, "group- or world-writable"), (0o600, None)):
        os.chmod(path, mode)
        found = security.ownership_problem(os.stat(path), path, "config file", {st.st_uid}, "root")
        assert (found is None) if expected is None else (expected in found)
    found = security.ownership_problem(os.stat(path), path, "config file", {st.st_uid + 1}, "root")
    assert "owned by uid" in found and "chown root" in found


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: folders owned by root and by others")
def test_trusted_folders_and_make_dir_for(tmp_path):
    base = tmp_path / "base"
    base.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    made = base / "made"
    assert security.make_dir_for(made, 65534, 65534, 0o750) is True
    st = os.lstat(made)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (65534, 0o750)
    assert security.make_dir_for(made, 65534, 65534) is False  # there already: untouched
    # under a folder someone else owns, or others may write: never
    os.chown(made, 65534, 65534)
    with pytest.raises(security.UntrustedPath):
        security.make_dir_for(made / "x", 65534, 65534)
    writable = base / "w"
    writable.mkdir()
    os.chmod(writable, 0o777)
    with pytest.raises(security.UntrustedPath):
        security.make_dir_for(writable / "x", 65534, 65534)
    # a link root put in a root folder is followed; its target obeys the same rules
    (base / "to-made").symlink_to(made)
    with pytest.raises(security.UntrustedPath):
        security.make_dir_for(base / "to-made" / "x", 65534, 65534)
    good = base / "good"
    good.mkdir(mode=0o755)
    (base / "to-good").symlink_to(good)
    assert security.make_dir_for(base / "to-good" / "x", 65534, 65534) is True
    assert os.lstat(good / "x").st_uid == 65534
