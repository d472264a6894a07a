"""Prometheus textfiles end to end: run-job writes them at a run's start and
end, atomically, mode 0644, through no planted link; a failure never fails
the run; a job without metrics.textfile_directory imports nothing of the
monitor package; run-job --metrics prints every job; cron-generate removes
the files of jobs that are gone and nothing else.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import pctest
from pctest import Site

ODD = "metrics dir; 'q' 100%"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    (tmp_path / ODD).mkdir()
    return Site(tmp_path / "site", metrics={"textfile_directory": str(tmp_path / ODD)})


def prom(site: Site) -> Path:
    return Path(site.root).parent / ODD


def samples(text: str) -> dict[str, str]:
    return {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1]
            for line in text.splitlines() if line and not line.startswith("#")}


def test_a_run_writes_its_file_at_start_and_end(site):
    site.job("sleepy", "command: /bin/sleep 2\nschedule: '0 * * * *'\n")
    target = prom(site) / "process_control_sleepy.prom"
    proc = subprocess.Popen(pctest.command("run-job") + ["--config", str(site.config), "sleepy"],
                            env=pctest.command_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pctest.wait_for(target.exists, timeout=10)
    during = samples(target.read_text())
    assert during['process_control_job_running{job="sleepy"}'] == "1"
    assert 'process_control_job_last_end_timestamp_seconds{job="sleepy"}' not in during
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    after = samples(target.read_text())
    assert after['process_control_job_running{job="sleepy"}'] == "0"
    assert after['process_control_job_last_outcome{job="sleepy",outcome="success"}'] == "1"
    assert after['process_control_job_last_exit_code{job="sleepy"}'] == "0"
    assert float(after['process_control_job_last_duration_seconds{job="sleepy"}']) >= 1.9
    assert 'process_control_job_next_run_timestamp_seconds{job="sleepy"}' in after
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in prom(site).iterdir()) == ["process_control_sleepy.prom"]


def test_a_failed_run_and_a_link_planted_at_the_name(site, tmp_path):
    site.job("bad", "command: /bin/false\n")
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    link = prom(site) / "process_control_bad.prom"
    link.symlink_to(victim)
    result = site.run_job("bad")
    assert result.returncode == 1
    assert victim.read_text() == "untouched\n"
    assert not link.is_symlink()  # the rename replaced the link itself
    values = samples(link.read_text())
    assert values['process_control_job_last_outcome{job="bad",outcome="failed"}'] == "1"
    assert values['process_control_job_consecutive_failures{job="bad"}'] == "1"


def test_the_temporary_name_is_never_written_through(tmp_path):
    from run_job.atomic import write_atomic

    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    target = tmp_path / "process_control_x.prom"
    (tmp_path / f".{target.name}.tmp{os.getpid()}").symlink_to(victim)
    write_atomic(target, b"new\n", 0o644)
    assert victim.read_text() == "untouched\n" and target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["process_control_x.prom", "victim"]


def test_a_write_failure_never_fails_the_run(tmp_path):
    site = Site(tmp_path / "site", metrics={"textfile_directory": str(tmp_path / "missing folder")})
    site.job("ok", "command: /bin/true\n")
    result = site.run_job("ok")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert pctest.run("run-job", "--config", str(site.config), "--history", "ok").stdout.count("success") == 1


def test_without_the_setting_run_job_imports_nothing_of_the_monitor(tmp_path):
    site = Site(tmp_path / "site")
    site.job("plain", "command: /bin/true\n")
    probe = ("import sys\nfrom run_job.cli import main\n"
             f"code = main(['--config', {str(site.config)!r}, 'plain'])\n"
             "print(code, sorted(m for m in sys.modules if m.startswith('run_job.monitor')))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env=pctest.command_env(), timeout=60)
    assert result.stdout.strip() == "0 []", result.stdout + result.stderr


def test_run_job_metrics_prints_every_job(site):
    site.job("one", "command: /bin/true\n")
    site.job("two", "command: /bin/false\n")
    site.job("broken", "command: [unclosed\n")
    site.run_job("one")
    site.run_job("two")
    result = site.run_job("--metrics")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.count("# TYPE process_control_job_running gauge") == 1
    values = samples(text)
    assert values['process_control_job_last_outcome{job="one",outcome="success"}'] == "1"
    assert values['process_control_job_last_outcome{job="two",outcome="failed"}'] == "1"
    assert values['process_control_job_paused{job="broken"}'] == "0"
    bad = site.run_job("--metrics", "--json")
    assert bad.returncode == 2 and "--json goes with" in bad.stderr


def test_cron_generate_removes_the_files_of_jobs_that_are_gone_and_nothing_else(site):
    site.job("kept", "command: /bin/true\n")
    folder = prom(site)
    for name in ("process_control_kept.prom", "process_control_gone.prom", "process_control_gone2.prom",
                 "other.prom", "process_control_x.y.prom", ".process_control_gone.prom.tmp12",
                 "process_control_gone.prom.bak"):
        (folder / name).write_text("# x\n")
    (folder / "process_control_adir.prom").mkdir()
    for args in (["--stdout"], ["--check"], ["--diff"]):
        pctest.run("cron-generate", "--config", str(site.config), *args)
    assert (folder / "process_control_gone.prom").exists()  # those modes change nothing
    result = pctest.run("cron-generate", "--config", str(site.config))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == [
        ".process_control_gone.prom.tmp12", "other.prom", "process_control_adir.prom",
        "process_control_gone.prom.bak", "process_control_kept.prom", "process_control_x.y.prom"]
    assert "process_control_adir.prom: not a regular file, left alone" in result.stderr


def test_an_automatic_pause_is_in_the_file_and_the_check_lists_it(site):
    site.job("flaky", "command: /bin/false\npause_after_failures: 1\n")
    assert site.run_job("flaky").returncode == 1
    values = samples((prom(site) / "process_control_flaky.prom").read_text())
    assert values['process_control_job_paused{job="flaky"}'] == "1"
    assert values['process_control_job_consecutive_failures{job="flaky"}'] == "1"
    assert site.run_job("flaky").returncode == 0  # skipped while paused: the file stays right
    assert samples((prom(site) / "process_control_flaky.prom").read_text())[
        'process_control_job_paused{job="flaky"}'] == "1"
    check = pctest.run("check-jobs-icinga", "--config", str(site.config))
    assert check.returncode == 0, check.stdout + check.stderr  # paused: never failing
    assert check.stdout.startswith("JOBS OK | ")
    assert check.stdout.splitlines()[1].startswith("flaky: paused: by run-job since ")
