"""cron-generate end to end: the real command as a subprocess, every folder in tmp_path.

Flags, exit statuses, all-or-nothing, atomic and idempotent writes, mode,
the lock. Folder and path names are adversarial (spaces, quotes, ``%``, ``;``).
"""

from __future__ import annotations

import fcntl
import os
import shlex
import stat
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

import pctest
from pctest import USER, command, command_env

GOOD = "command: /bin/true\nschedule: '{schedule}'\n"


def cron_generate(cfg: Path, *args: str, umask: int | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        command("cron-generate") + ["--config", str(cfg), *args],
        capture_output=True, text=True, env=command_env(), timeout=timeout,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


class Site(pctest.Site):
    """pctest's site with a crontab to write: ``output`` is that crontab (in
    ``out_dir``), ``cfg`` the config, ``runner`` a stand-in run-job."""

    def __init__(self, root: Path, **extra: object) -> None:
        site = root / "site with space; it's 100%"
        # the config pipeline wants a plain path here (no blanks, no '%')
        self.runner = root / "bin" / "run-job"
        self.runner.parent.mkdir()
        self.runner.write_text("#!/bin/sh\nexit 0\n")
        self.runner.chmod(0o755)
        self.out_dir = site / "cron.d"
        self.out_dir.mkdir(parents=True)
        crontab = self.out_dir / "process-control"
        super().__init__(site, output_crontab=str(crontab), runner_path=str(self.runner),
                         service_runner_path="/usr/bin/sbatch-service", **extra)
        self.output = crontab
        self.cfg = self.config
        # how the entries name it: shell-quoted, '%' escaped for cron
        self.config_word = shlex.quote(str(self.cfg)).replace("%", "\\%")

    def job(self, slug: str, text: str | None = None, schedule: str = "*/5 * * * *") -> Path:
        return super().job(slug, text if text is not None else GOOD.format(schedule=schedule))


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = Site(tmp_path)
    s.job("alpha", schedule="*/5 * * * *")
    s.job("beta", schedule="0 3 * * *")
    s.job("off", "command: /bin/true\nschedule: '* * * * *'\ndisabled: true\n")
    return s


def entries(text: str) -> list[str]:
    return [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#") and "=" not in l.split()[0]]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "process-control")


def test_writes_the_crontab_atomically_with_mode_0644_whatever_the_umask(site):
    res = cron_generate(site.cfg, umask=0o077)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == ""
    data = site.output.read_text()
    assert data.endswith("\n")
    assert stat.S_IMODE(site.output.stat().st_mode) == 0o644
    assert leftovers(site.out_dir) == []
    assert entries(data) == [
        f"*/5 * * * * {USER} {site.runner} --config {site.config_word} --job alpha",
        f"0 3 * * * {USER} {site.runner} --config {site.config_word} --job beta",
    ]
    assert "# Skipping disabled job off\n" in data
    assert f"# Generated from {site.jobs}/alpha.yaml\n" in data
    # the same text as --stdout prints
    out = cron_generate(site.cfg, "--stdout")
    assert out.returncode == 0 and out.stdout == data


def test_unchanged_file_is_not_rewritten(site):
    assert cron_generate(site.cfg).returncode == 0
    past = time.time() - 3600
    os.utime(site.output, (past, past))
    before = site.output.stat()
    res = cron_generate(site.cfg)
    assert res.returncode == 0, res.stderr
    after = site.output.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_change_replaces_the_file_with_a_new_inode(site):
    assert cron_generate(site.cfg).returncode == 0
    before = site.output.stat()
    site.job("gamma", schedule="@hourly")
    assert cron_generate(site.cfg).returncode == 0
    after = site.output.stat()
    assert after.st_ino != before.st_ino  # os.replace, never rewritten in place
    assert "@hourly" in site.output.read_text()
    assert leftovers(site.out_dir) == []


def test_wrong_mode_is_repaired(site):
    assert cron_generate(site.cfg).returncode == 0
    site.output.chmod(0o666)
    assert cron_generate(site.cfg, "--check").returncode == 1
    assert cron_generate(site.cfg).returncode == 0
    assert stat.S_IMODE(site.output.stat().st_mode) == 0o644


def test_invalid_job_lists_every_problem_and_leaves_the_file_byte_for_byte(site):
    assert cron_generate(site.cfg).returncode == 0
    site.output.write_bytes(b"# installed by hand\n* * * * * root /bin/true\n")
    past = time.time() - 3600
    os.utime(site.output, (past, past))
    before = site.output.stat()
    site.job("broken_schedule", schedule="61 * * * *")
    site.job("unknown_key", "command: /bin/true\nschedule: '* * * * *'\nfrobnicate: 1\n")
    res = cron_generate(site.cfg)
    assert res.returncode == 2
    assert res.stdout == ""
    assert "broken_schedule.yaml" in res.stderr and "unknown_key.yaml" in res.stderr
    assert "Traceback" not in res.stderr
    assert site.output.read_bytes() == b"# installed by hand\n* * * * * root /bin/true\n"
    after = site.output.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # --stdout prints nothing either
    out = cron_generate(site.cfg, "--stdout")
    assert out.returncode == 2 and out.stdout == ""


def test_badly_named_yaml_file_blocks_the_write(site):
    (site.jobs / "bad name.yaml").write_text(GOOD.format(schedule="* * * * *"))
    res = cron_generate(site.cfg)
    assert res.returncode == 2
    assert "bad name.yaml" in res.stderr
    assert not site.output.exists()


def test_ignored_files_do_not_count(site):
    (site.jobs / "alpha.yaml~").write_text("garbage: [")
    (site.jobs / ".hidden.yaml").write_text("garbage: [")
    (site.jobs / "old.yml").write_text("garbage: [")
    res = cron_generate(site.cfg, "--stdout")
    assert res.returncode == 0, res.stderr
    assert len(entries(res.stdout)) == 2


def test_check(site):
    res = cron_generate(site.cfg, "--check")
    assert res.returncode == 1 and "missing" in res.stderr
    assert not site.output.exists()
    assert cron_generate(site.cfg).returncode == 0
    assert cron_generate(site.cfg, "--check").returncode == 0
    site.job("gamma")
    before = site.output.read_bytes()
    res = cron_generate(site.cfg, "--check")
    assert res.returncode == 1 and "differs" in res.stderr
    assert site.output.read_bytes() == before
    site.job("broken", schedule="@reboot")
    assert cron_generate(site.cfg, "--check").returncode == 2


def test_diff(site):
    res = cron_generate(site.cfg, "--diff")
    assert res.returncode == 1
    assert res.stdout.startswith("--- /dev/null\n")
    assert not site.output.exists()
    assert cron_generate(site.cfg).returncode == 0
    res = cron_generate(site.cfg, "--diff")
    assert (res.returncode, res.stdout) == (0, "")
    site.job("gamma", schedule="15 4 * * *")
    (site.jobs / "beta.yaml").unlink()
    before = site.output.read_bytes()
    res = cron_generate(site.cfg, "--diff")
    assert res.returncode == 1
    plus = [l for l in res.stdout.splitlines() if l.startswith("+") and not l.startswith("+++")]
    minus = [l for l in res.stdout.splitlines() if l.startswith("-") and not l.startswith("---")]
    assert any(l.startswith("+15 4 * * * ") and l.endswith("--job gamma") for l in plus)
    assert any(l.startswith("-0 3 * * * ") and l.endswith("--job beta") for l in minus)
    assert site.output.read_bytes() == before


def test_check_and_diff_need_a_file(site):
    for flag in ("--check", "--diff"):
        res = cron_generate(site.cfg, flag, "--stdout")
        assert res.returncode == 2
    site.write_config(output_crontab="console")
    res = cron_generate(site.cfg, "--check")
    assert res.returncode == 2 and "console" in res.stderr


def test_console_output(site):
    site.write_config(output_crontab="console")
    res = cron_generate(site.cfg)
    assert res.returncode == 0, res.stderr
    assert len(entries(res.stdout)) == 2
    assert not site.output.exists()


@pytest.mark.parametrize("name", ["process-control.cron", "pc~", "pc name", ".pc"])
def test_output_name_must_pass_debian_cron_rule_in_etc_cron_d(site, name):
    # a link to the real /etc/cron.d: the rule follows the resolved folder;
    # --check only reads, and the name is refused before anything is read
    link = site.root / "cron.d link"
    link.symlink_to("/etc/cron.d")
    site.write_config(output_crontab=str(link / name))
    for args in (("--check",), ("--stdout",)):  # neither writes
        res = cron_generate(site.cfg, *args)
        assert res.returncode == 2
        assert "letters, digits" in res.stderr and "/etc/cron.d" in res.stderr
        assert res.stderr.count("\n") == 1


@pytest.mark.parametrize("name", ["crontab.out", "pc~", "pc name", ".pc"])
def test_any_output_name_outside_etc_cron_d(site, name):
    site.write_config(output_crontab=str(site.out_dir / name))
    res = cron_generate(site.cfg)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in site.out_dir.iterdir()) == [name]


def test_missing_output_folder_is_an_error(site):
    site.write_config(output_crontab=str(site.root / "nowhere" / "pc"))
    res = cron_generate(site.cfg)
    assert res.returncode == 2 and "does not exist" in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_config_is_one_error_line(tmp_path):
    res = cron_generate(tmp_path / "no such.yaml")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and res.stderr.strip()


def test_debug_shows_the_traceback(site):
    site.write_config(output_crontab=str(site.out_dir / "missing" / "pc"))
    res = cron_generate(site.cfg, "--debug")
    assert res.returncode != 0 and "Traceback" in res.stderr


@contextmanager
def folder_locked(folder: Path):
    """Hold the lock a cron-generate writing into ``folder`` takes: flock on the folder."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def test_lock_held_elsewhere_times_out_with_a_clear_message(site):
    with folder_locked(site.out_dir):
        res = cron_generate(site.cfg, "--lock-timeout", "0.5")
        assert res.returncode == 2
        assert "another cron-generate" in res.stderr and "Traceback" not in res.stderr
        assert not site.output.exists()
        # read-only modes do not need the lock
        assert cron_generate(site.cfg, "--check").returncode == 1
        assert cron_generate(site.cfg, "--stdout").returncode == 0
    assert cron_generate(site.cfg).returncode == 0
    assert site.output.exists()


def test_concurrent_runs_are_serialized_and_leave_one_whole_file(site):
    for i in range(20):
        site.job(f"job{i:02d}", schedule=f"{i} * * * *")
    procs = [subprocess.Popen(command("cron-generate") + ["--config", str(site.cfg)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=command_env()) for _ in range(6)]
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0] * 6, [p.stderr.read() for p in procs]
    expected = cron_generate(site.cfg, "--stdout").stdout
    assert site.output.read_text() == expected
    assert leftovers(site.out_dir) == []


def test_cron_environment_lines_come_first(site):
    site.write_config(cron_environment={"MAILTO": "", "PATH": "/usr/bin:/bin", "GREETING": "a b"})
    res = cron_generate(site.cfg, "--stdout")
    assert res.returncode == 0, res.stderr
    lines = [l for l in res.stdout.splitlines() if not l.startswith("#")]
    assert lines[:3] == ['MAILTO=""', "PATH=/usr/bin:/bin", "GREETING=a b"]


def test_service_keep_alive_entry(site):
    site.job("web", "command: /usr/bin/sleep infinity\nrunner: slurm\nservice:\n  keep_alive: '*/2 * * * *'\n")
    site.job("quiet", "command: /usr/bin/sleep infinity\nrunner: slurm\nservice: {}\n")
    res = cron_generate(site.cfg, "--stdout")
    assert res.returncode == 0, res.stderr
    assert f"*/2 * * * * {USER} /usr/bin/sbatch-service --config {site.config_word} start web" in entries(res.stdout)
    assert "# Skipping service quiet: no keep_alive schedule" in res.stdout
    assert len(entries(res.stdout)) == 3


def test_a_second_writer_waits_for_the_lock_then_writes(site):
    with folder_locked(site.out_dir):
        proc = subprocess.Popen(command("cron-generate") + ["--config", str(site.cfg),
                                                            "--lock-timeout", "60"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=command_env())
        time.sleep(1.5)
        assert proc.poll() is None  # waiting, not writing
        assert not site.output.exists()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert site.output.exists()


def test_readers_never_see_a_partial_file(site):
    """Rewrite the file over and over while reading it: every read is one whole version."""
    import threading

    for i in range(300):
        site.job(f"bulk{i:03d}", schedule=f"{i % 60} * * * *")
    versions = set()
    assert cron_generate(site.cfg).returncode == 0
    versions.add(site.output.read_bytes())
    seen: set[bytes] = set()
    reads = [0]
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(site.output.read_bytes())
            reads[0] += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(6):
            site.job("toggle", schedule=f"{round_} 1 * * *")
            assert cron_generate(site.cfg).returncode == 0
            versions.add(site.output.read_bytes())
    finally:
        stop.set()
        thread.join()
    assert len(versions) == 7
    assert reads[0] > 10
    assert seen <= versions
