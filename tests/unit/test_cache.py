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


# ---------------------------------------------------------------- the --status bundle


def _site(tmp_path, monkeypatch, count=5):
    import yaml

    from pctest import config_settings
    from run_job.config.settings import load_config

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    for i in range(count):
        (jobs / f"j{i}.yaml").write_text(f"command: /bin/true {i}\nschedule: '{i} * * * *'\n")
    (jobs / "bad.yaml").write_text("command: [unclosed\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config_settings(tmp_path)))
    return load_config(str(cfg)), str(cfg), jobs


def _status_jobs(config, cfg, jobs):
    from run_job.config import cache

    slugs = sorted(p.name[:-5] for p in jobs.iterdir())
    got = dict(cache.iter_validated(config, cfg, slugs))
    return {slug: (found if not isinstance(found, Exception) else str(found)) for slug, found in got.items()}


def _bundle(tmp_path):
    found = list((tmp_path / "cache" / "process-control").glob("status-*.bundle"))
    assert len(found) == 1
    return found[0]


def test_status_bundle_is_read_and_left_alone_when_nothing_changed(tmp_path, monkeypatch):
    config, cfg, jobs = _site(tmp_path, monkeypatch)
    first = _status_jobs(config, cfg, jobs)
    assert "YAML syntax error" in first["bad"] and first["j0"].schedule == "0 * * * *"
    bundle = _bundle(tmp_path)
    assert bundle.stat().st_mode & 0o777 == 0o600
    before = bundle.stat()
    with monkeypatch.context() as patch:
        patch.setattr("run_job.config.jobs.check_job_file", _refuse_but_bad(patch))
        assert _status_jobs(config, cfg, jobs) == first  # rebuilt jobs equal the validated ones
    after = bundle.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten


def _refuse_but_bad(patch):
    """check_job_file for the invalid file only (never cached, so always validated)."""
    from run_job.config import jobs

    real = jobs.check_job_file

    def check(config, path, raw=None):
        if path.name != "bad.yaml":
            raise AssertionError(f"{path} validated although the bundle holds it")
        return real(config, path, raw=raw)
    return check


def test_status_bundle_follows_changed_added_and_removed_files(tmp_path, monkeypatch):
    config, cfg, jobs = _site(tmp_path, monkeypatch)
    _status_jobs(config, cfg, jobs)
    (jobs / "j1.yaml").write_text("command: /bin/false\n")
    (jobs / "j3.yaml").unlink()
    (jobs / "j22.yaml").write_text("command: /bin/true 22\n")
    (jobs / "j4.yaml").chmod(0o600)  # the mode is part of the key
    got = _status_jobs(config, cfg, jobs)
    assert got["j1"].commands == (("/bin/false",),) and "j3" not in got and got["j22"].slug == "j22"
    with monkeypatch.context() as patch:
        patch.setattr("run_job.config.jobs.check_job_file", _refuse_but_bad(patch))
        assert _status_jobs(config, cfg, jobs) == got


@pytest.mark.parametrize("damage", ["truncated", "garbage", "huge-length", "format", "foreign-class",
                                    "short-record", "group-writable", "symlink", "fifo", "empty", "folder"])
def test_damaged_or_planted_status_bundle_is_a_miss(tmp_path, monkeypatch, damage):
    """The cache folder is the user's own (root's, or the service user's):
    whatever is found at the bundle's name is used only if it is a regular
    file of this user that no one else may write, and then only as far as it
    is well formed; anything else is a miss and a fresh bundle replaces it."""
    import marshal
    import os

    config, cfg, jobs = _site(tmp_path, monkeypatch)
    expected = _status_jobs(config, cfg, jobs)
    bundle = _bundle(tmp_path)
    data = bundle.read_bytes()
    head = data.index(b"\n") + 1
    if damage == "truncated":
        bundle.write_bytes(data[:len(data) - 7])
    elif damage == "garbage":
        bundle.write_bytes(data[:head] + os.urandom(5000))
    elif damage == "huge-length":
        bundle.write_bytes(data[:head] + (2 ** 31).to_bytes(4, "little") + b"x" * 100)
    elif damage == "format":
        bundle.write_bytes(b"run-job-cache-0\n" + data[head:])
    elif damage in ("foreign-class", "short-record"):
        value = ("R", "Path", (("P", "/etc/shadow"),)) if damage == "foreign-class" else ("x",)
        record = marshal.dumps(("j0", "k", value))
        bundle.write_bytes(data + len(record).to_bytes(4, "little") + record)
    elif damage == "group-writable":
        bundle.chmod(0o620)
    elif damage == "symlink":
        copy = tmp_path / "copy.bundle"
        copy.write_bytes(data)
        copy.chmod(0o600)
        bundle.unlink()
        bundle.symlink_to(copy)
    elif damage == "fifo":
        bundle.unlink()
        os.mkfifo(bundle, 0o600)
    elif damage == "empty":
        bundle.write_bytes(b"")
    elif damage == "folder":
        bundle.unlink()
        bundle.mkdir()
    assert _status_jobs(config, cfg, jobs) == expected
    if damage != "folder":  # a folder is not replaced by a file: just a miss each time
        assert bundle.is_file() and not bundle.is_symlink() and bundle.stat().st_mode & 0o777 == 0o600
        with monkeypatch.context() as patch:
            patch.setattr("run_job.config.jobs.check_job_file", _refuse_but_bad(patch))
            assert _status_jobs(config, cfg, jobs) == expected


def test_cached_config_keeps_its_record_first(tmp_path, monkeypatch):
    """cached_config writes the config's record; the job pass keeps it in front."""
    from run_job.config import cache

    config, cfg, jobs = _site(tmp_path, monkeypatch)
    loaded = cache.cached_config(cfg)
    _status_jobs(loaded, cfg, jobs)
    reader = cache._BundleReader(str(_bundle(tmp_path)))
    first = reader.next()
    slugs = []
    while (record := reader.next()) is not None:
        slugs.append(record[0])
    reader.close()
    assert first[0] == "" and slugs == ["j0", "j1", "j2", "j3", "j4"]
    with monkeypatch.context() as patch:
        patch.setattr("run_job.config.settings.load_config", lambda *a: pytest.fail("config loaded again"))
        assert cache.cached_config(cfg) == loaded


def test_status_lists_jobs_in_file_name_order_through_the_slug_ordered_cache(tmp_path, monkeypatch):
    """'a-b.yaml' sorts before 'a.yaml' (as ls does) though the slug 'a' sorts first."""
    from run_job.monitor.status import iter_all

    config, cfg, jobs = _site(tmp_path, monkeypatch, count=0)
    for slug in ("a", "a-b", "a-c", "b", "a_"):
        (jobs / f"{slug}.yaml").write_text("command: /bin/true\n")
    for _ in range(2):
        assert [slug for slug, *_ in iter_all(config, cfg)] == ["a-b", "a-c", "a", "a_", "b", "bad"]
