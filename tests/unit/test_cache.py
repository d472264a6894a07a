"""The validation cache of run-job --job (config/cache.py): slugs, keys, entries,
the program stamp."""

from __future__ import annotations

import pytest

from pctest import config_record
from run_job.config.cache import _plain_slug, make_key


def test_plain_slug():
    assert _plain_slug("a-b_1")
    for bad in ("", "-a", "a/b", "..", "a.yaml", "é", "a b"):
        assert not _plain_slug(bad)


def test_cache_key_changes_with_every_input(tmp_path):
    job = tmp_path / "j.yaml"
    job.write_text("command: x\n")
    base = dict(config_path="/c", config_bytes=b"c", job_path=str(job), job_bytes=b"j",
                stamp=b"s", env={"HOME": "/h"}, euid=0)
    key = make_key(**base)
    assert key == make_key(**base)
    for change in (dict(config_path="/d"), dict(config_bytes=b"C"), dict(job_bytes=b"J"),
                   dict(stamp=b"S"), dict(env={"HOME": "/i"}), dict(euid=1)):
        assert make_key(**{**base, **change}) != key
    job.chmod(0o600)
    assert make_key(**base) != key  # mode is part of the key


def test_cache_entry_round_trip(tmp_path):
    from pathlib import Path

    from run_job.config import cache
    from run_job.model import FailMail, Job

    config = config_record(tmp_path, user="u", default_job_config={"timeout": 10, "environment": {"A": "1"}})
    job = Job(slug="j", path=Path(tmp_path / "j.yaml"), sha256="s", commands=(("a", "b c"),),
              command_text=("a 'b c'",), environment=(("K", "v; %"),), tags=("t",),
              failmail=FailMail(from_address="f@x", to_addresses=("a@x",)))
    key, config2, job2 = cache.decode(cache.encode("k", config, job))
    assert (key, config2, job2) == ("k", config, job)
    assert isinstance(job2.path, Path) and isinstance(job2.commands[0], tuple)
    with pytest.raises(ValueError):
        cache.decode(b"something else\n")


def test_cache_key_follows_the_config_files_mode(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("user: x\n")
    job = tmp_path / "j.yaml"
    job.write_text("command: x\n")
    base = dict(config_path=str(cfg), config_bytes=b"c", job_path=str(job), job_bytes=b"j",
                stamp=b"s", env={}, euid=0)
    key = make_key(**base)
    cfg.chmod(0o666)  # now refused as root: a cached "valid" must not survive
    assert make_key(**base) != key


def test_cache_stamp_follows_the_modules_themselves(tmp_path, monkeypatch):
    """A module added, changed, moved or removed changes the program stamp
    (no list of file names to keep up to date by hand)."""
    import shutil

    from run_job.config import cache

    package = tmp_path / "run_job"
    shutil.copytree(cache._PKG, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "_PKG", str(package))
    first = cache._program_stamp()
    assert cache._program_stamp() == first
    (package / "config" / "jobs.py").rename(package / "config" / "job_files.py")  # a move
    moved = cache._program_stamp()
    assert moved != first
    (package / "run" / "new.py").write_text("x = 1\n")  # a module added anywhere
    assert cache._program_stamp() != moved
