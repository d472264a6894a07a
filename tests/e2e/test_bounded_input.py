"""Bounded input: every file the tools read is opened without blocking, used
only if it is a regular file, and read up to a size limit.

FIFOs are real (``os.mkfifo``) and nothing ever writes to them: a read that
blocks would hang forever, so every command runs with a subprocess timeout and
a regression fails instead of hanging the suite. ``/dev/zero`` stands for a
file that never ends.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pctest import REPO, Site, command, command_env

TIMEOUT = 30  # a hang fails here (each command takes well under a second)


def run(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command(name) + list(args), capture_output=True, text=True,
                          env=command_env(env), timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (with the checkout on sys.path)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=command_env(env), timeout=TIMEOUT, cwd=str(REPO))


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = Site(tmp_path / "site")
    s.job("good", "command: /bin/true\nschedule: '*/5 * * * *'\n")
    return s


@pytest.fixture
def cache_env(tmp_path: Path) -> dict:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache")}


# ---------------------------------------------------------------- --validate


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_validate_refuses_what_is_not_a_regular_file(site: Site, tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        target, expected = tmp_path / "pipe.yaml", "not a regular file (a FIFO)"
        os.mkfifo(target)
    else:
        target, expected = Path("/dev/zero"), "not a regular file (a character device)"
    res = site.run_job("--validate", str(target), timeout=TIMEOUT)
    assert res.returncode == 1, res.stderr
    assert f"{target}: {expected}" in res.stdout and "Traceback" not in res.stderr
    doc = json.loads(site.run_job("--validate", "--json", str(target), timeout=TIMEOUT).stdout)
    assert doc["files"][-1]["file"] == str(target) and doc["files"][-1]["valid"] is False


def test_fifo_in_the_job_folder_is_one_problem_for_validate_status_and_list(site: Site, cache_env: dict) -> None:
    os.mkfifo(site.jobs / "x.yaml")
    (site.jobs / "dir.yaml").mkdir()
    res = site.run_job("--validate", timeout=TIMEOUT)
    assert res.returncode == 1
    assert f"{site.jobs / 'x.yaml'}: not a regular file (a FIFO)" in res.stdout
    assert f"{site.jobs / 'dir.yaml'}: not a regular file (a folder)" in res.stdout
    assert "good" not in res.stdout.replace("job files", "")  # the other job is fine
    for flag in ("--status", "--list-jobs"):
        for _ in range(2):  # the second run reads the status bundle of the cache
            res = run("run-job", "--config", str(site.config), flag, "--json", env=cache_env)
            assert res.returncode == 0, res.stderr
            rows = {row["job"]: row for row in json.loads(res.stdout)["jobs"]}
            assert rows["good"]["valid"] is True
            assert rows["x"]["valid"] is False
            assert "not a regular file (a FIFO)" in rows["x"]["problems"][0]
    res = run("run-job", "--config", str(site.config), "--job", "x", env=cache_env)
    assert res.returncode == 125 and "not a regular file (a FIFO)" in res.stderr
    assert run("run-job", "--config", str(site.config), "--job", "good", env=cache_env).returncode == 0


@pytest.mark.parametrize("special", ["fifo", "dev-zero"])
def test_config_that_is_not_a_regular_file_is_one_line(site: Site, tmp_path: Path, cache_env: dict,
                                                      special: str) -> None:
    if special == "fifo":
        config, kind = tmp_path / "pc.yaml", "a FIFO"
        os.mkfifo(config)
    else:
        config, kind = Path("/dev/zero"), "a character device"
    for args in (["--status"], ["--list-jobs"], ["--job", "good"], ["--validate"]):
        res = run("run-job", "--config", str(config), *args, env=cache_env)
        assert res.returncode in (1, 125), (args, res.stderr)
        assert f"is not a regular file ({kind})" in res.stderr + res.stdout, args
        assert "Traceback" not in res.stderr
    res = run("cron-generate", "--config", str(config), "--stdout")
    assert res.returncode == 2 and f"is not a regular file ({kind})" in res.stderr
    res = run("run-job", "--validate", str(config), env={"PROCESS_CONTROL_CONFIG": str(site.config)})
    assert res.returncode == 1 and f"not a regular file ({kind})" in res.stdout


def test_config_through_the_variable_and_default_location_is_read_bounded(site: Site, tmp_path: Path,
                                                                         cache_env: dict) -> None:
    config = tmp_path / "big.yaml"
    config.write_bytes(b"# padding\n" * 200_000)  # 2 MB: over the 1 MiB limit
    res = run("run-job", "--status", env={"PROCESS_CONTROL_CONFIG": str(config), **cache_env})
    assert res.returncode == 125
    assert "more than 1,048,576 is refused" in res.stderr and "Traceback" not in res.stderr


# ---------------------------------------------------------------- the validation cache


def test_cache_entry_or_bundle_replaced_by_a_fifo_is_a_miss(site: Site, cache_env: dict) -> None:
    folder = Path(cache_env["XDG_CACHE_HOME"]) / "process-control"
    assert run("run-job", "--config", str(site.config), "--job", "good", env=cache_env).returncode == 0
    assert run("run-job", "--config", str(site.config), "--status", env=cache_env).returncode == 0
    planted = sorted(folder.iterdir())
    assert any(p.suffix == ".entry" for p in planted) and any(p.suffix == ".bundle" for p in planted)
    for path in planted:
        path.unlink()
        os.mkfifo(path, 0o600)
    res = run("run-job", "--config", str(site.config), "--job", "good", env=cache_env)
    assert res.returncode == 0, res.stderr
    res = run("run-job", "--config", str(site.config), "--status", env=cache_env)
    assert res.returncode == 0, res.stderr


def test_cache_reads_are_bounded(tmp_path: Path) -> None:
    res = python(f"""
        import os
        from run_job.config import cache
        os.mkfifo({str(tmp_path / 'fifo')!r})
        assert cache._read({str(tmp_path / 'fifo')!r}) == b"<unreadable>"
        assert cache._read("/dev/zero") == b"<unreadable>"
        assert cache._read_own({str(tmp_path / 'fifo')!r}) is None
        assert cache._read_own("/dev/zero") is None
        print("ok")
    """)
    assert res.stdout == "ok\n", res.stderr


# ---------------------------------------------------------------- cron-generate


def cron_site(tmp_path: Path) -> tuple[Site, Path]:
    out = tmp_path / "cron.d"
    out.mkdir()
    s = Site(tmp_path / "site", output_crontab=str(out / "process-control"),
             runner_path="/usr/bin/run-job", service_runner_path="/usr/bin/sbatch-service")
    s.job("good", "command: /bin/true\nschedule: '*/5 * * * *'\n")
    return s, out / "process-control"


@pytest.mark.parametrize("flag", [[], ["--check"], ["--diff"]])
def test_fifo_as_output_crontab_is_refused_and_kept(tmp_path: Path, flag: list) -> None:
    site, crontab = cron_site(tmp_path)
    os.mkfifo(crontab)
    res = run("cron-generate", "--config", str(site.config), *flag)
    assert res.returncode == 2, res.stderr
    assert "is a FIFO, not a regular file" in res.stderr
    assert len(res.stderr.splitlines()) == 1 and res.stdout == ""
    assert stat.S_ISFIFO(os.lstat(crontab).st_mode)  # never replaced silently


def test_fifo_job_file_blocks_cron_generate_with_one_problem(tmp_path: Path) -> None:
    site, crontab = cron_site(tmp_path)
    os.mkfifo(site.jobs / "x.yaml")
    res = run("cron-generate", "--config", str(site.config))
    assert res.returncode == 2
    assert "x.yaml: not a regular file (a FIFO)" in res.stderr
    assert not crontab.exists()


# ---------------------------------------------------------------- mail, Slurm runner, sbatch-service


def test_mail_reads_never_block(tmp_path: Path) -> None:
    fifo = tmp_path / "output.log"
    os.mkfifo(fifo)
    secret = tmp_path / "password"
    os.mkfifo(secret, 0o600)
    res = python(f"""
        from pathlib import Path
        from run_job.alerts import mail
        try:
            mail.read_tail(Path({str(fifo)!r}))
        except OSError as err:
            print("tail:", type(err).__name__)
        try:
            mail.read_password(Path({str(secret)!r}))
        except mail.MailError as err:
            print("password:", err)
    """)
    assert res.returncode == 0, res.stderr
    assert "tail: NotRegularFile" in res.stdout
    assert "password: mail.password_file" in res.stdout and "not a regular file (a FIFO)" in res.stdout


def test_slurm_runner_and_service_state_reads_never_block(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.mkfifo(run_dir / "job.status")
    os.mkfifo(run_dir / "status.json")
    state = tmp_path / "state"
    res = python(f"""
        from pathlib import Path
        from run_job.model import Config
        from run_job.config.settings import build_config, default_settings
        from run_job.slurm import batch, service
        print("status:", batch._read_status(Path({str(run_dir / 'job.status')!r})))
        print("zero:", batch._read_status(Path("/dev/zero")))
        print("job id:", batch.job_id_of({{"run_dir": {str(run_dir)!r}}}))
        config = build_config(dict(default_settings(), state_directory={str(state)!r}), None, "")
        path = service.state_path(config, "web")
        path.parent.mkdir(parents=True)
        import os
        os.mkfifo(path)
        manager = service.ServiceManager(config, say=print)
        print("state:", manager.read_state("web"))
        print("tail:", repr(service.tail_lines(Path({str(run_dir / 'status.json')!r}))))
    """)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["status: None", "zero: None", "job id: None", "state: {}", "tail: ''"]
