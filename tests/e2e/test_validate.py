"""``run-job --validate`` end to end: the real command, every folder in tmp_path."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from pctest import DATA, REPO, Site, run
from run_job.config.schema import load_schema

BAD_KINDS = {
    "schedule": ('command: /bin/true\nschedule: "61 * * * *"\n', 2, "schedule"),
    "unknown": ("command: /bin/true\nretries: 3\n", 2, "retries"),
    "type": ("command: /bin/true\ndisabled: sometimes\n", 2, "disabled"),
    "timeout": ("command: /bin/true\ntimeout: soon\n", 2, "timeout"),
    "alias": ("command: /bin/true\nschedule: */5 * * * *\n", 2, ""),
    "env": ("command: /bin/true\nenvironment:\n  A: [1]\n", 3, "environment.A"),
}


def test_two_hundred_mixed_files_every_bad_one_reported(site: Site) -> None:
    expected_bad = {}
    for i in range(200):
        slug = f"job-{i:03d}"
        if i % 2:
            kind = list(BAD_KINDS)[i % len(BAD_KINDS)]
            text, line, key = BAD_KINDS[kind]
            site.job(slug, text)
            expected_bad[slug] = (line, key)
        else:
            site.job(slug, f'command: /bin/echo {i}\nschedule: "{i % 60} * * * *"\n')
    result = site.run_job("--validate")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for slug, (line, key) in expected_bad.items():
        prefix = f"{site.jobs / slug}.yaml:{line}: {key}" if key else f"{site.jobs / slug}.yaml:{line}: "
        assert any(l.startswith(prefix) for l in lines), f"{slug}: no line starting {prefix!r}"
    for i in range(0, 200, 2):
        assert f"job-{i:03d}.yaml" not in result.stdout
    assert lines[-1] == "FAILED: 100 of 200 job files invalid, 100 errors"  # the config is counted apart


def test_examples_are_valid() -> None:
    result = run("run-job", "--config", str(REPO / "examples" / "quickstart.yaml"), "--validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("OK:")


def test_named_files_and_folders_and_json(site: Site, tmp_path: Path) -> None:
    repo = tmp_path / "config repo"
    (repo / "jobs").mkdir(parents=True)
    good = repo / "jobs" / "good.yaml"
    good.write_text("command: /bin/true\n")
    bad = repo / "jobs" / "bad.yaml"
    bad.write_text("command: /bin/true\nschedule: '@reboot'\n")
    (repo / "jobs" / "notes.yml").write_text("x")
    (repo / "jobs" / ".hidden.yaml").write_text("x")
    result = site.run_job("--validate", str(good))
    assert result.returncode == 0, result.stdout
    result = site.run_job("--validate", "--json", str(repo / "jobs"))
    assert result.returncode == 1
    document = json.loads(result.stdout)
    Draft7Validator(load_schema("validate")).validate(document)
    by_file = {Path(f["file"]).name: f for f in document["files"]}
    assert by_file["good.yaml"]["valid"] and not by_file["bad.yaml"]["valid"]
    error = by_file["bad.yaml"]["errors"][0]
    assert error["line"] == 2 and error["key_path"] == "schedule" and "@reboot" in error["message"]
    assert sorted(Path(p).name for p in document["ignored"]) == [".hidden.yaml", "notes.yml"]
    assert document["summary"]["invalid"] == 1


def test_job_by_name_and_ignored_files_are_mentioned(site: Site) -> None:
    site.job("ok", "command: /bin/true\n")
    (site.jobs / "ok.yaml.dpkg-old").write_text("command: [\n")
    (site.jobs / "draft.yml").write_text("command: /bin/true\n")
    result = site.run_job("--validate", "ok")
    assert result.returncode == 0
    result = site.run_job("--validate")
    assert result.returncode == 0, result.stdout
    assert "ok.yaml.dpkg-old: ignored" in result.stdout and "draft.yml: ignored" in result.stdout
    site.job("bad name", "command: /bin/true\n")
    result = site.run_job("--validate")
    assert result.returncode == 1 and "'bad name.yaml' is not a valid job file name" in result.stdout


def test_no_traceback_for_any_negative_file(site: Site) -> None:
    files = sorted((DATA / "jobs" / "bad").glob("*.yaml"))
    result = site.run_job("--validate", *map(str, files), timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    for path in files:
        assert str(path) in result.stdout


def test_reference_jobs_accepted_and_refused_as_its_readme_says(site: Site) -> None:
    ref = DATA / "reference"
    refused = {"schedule_assign.yaml", "schedule_atsign.yaml", "schedule_invalid.yaml"}
    jobs = [p for p in sorted(ref.glob("*.yaml")) if p.name != "process-control.example.yaml"]
    for path in jobs + sorted((ref / "scheduled").glob("*.yaml")):
        result = site.run_job("--validate", str(path))
        if path.name in refused and path.parent == ref:
            assert result.returncode == 1, path.name
            assert f"{path}:3: schedule: " in result.stdout
        else:
            assert result.returncode == 0, (path.name, result.stdout)
    result = site.run_job("--validate", str(ref / "process-control.example.yaml"))
    assert result.returncode == 0, result.stdout


def test_missing_config_and_bad_config_are_reported(site: Site, tmp_path: Path) -> None:
    result = run("run-job", "--config", str(tmp_path / "missing.yaml"), "--validate")
    assert result.returncode == 1 and "does not exist" in result.stdout
    site.config.write_text(site.config.read_text() + "colour: blue\n")
    result = site.run_job("--validate")
    assert result.returncode == 1
    assert f"{site.config}:" in result.stdout and "unknown key 'colour'" in result.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership and permission rules apply only when run as root")
class TestRootSecurity:
    def test_group_writable_job_file_is_refused(self, site: Site) -> None:
        path = site.job("writable", "command: /bin/true\n")
        path.chmod(0o664)
        result = site.run_job("--validate")
        assert result.returncode == 1 and "group- or world-writable" in result.stdout
        result = site.run_job("--job", "writable")
        assert result.returncode == 125 and "group- or world-writable" in result.stderr
        assert "Traceback" not in result.stderr

    def test_job_file_owned_by_another_user_is_refused(self, site: Site) -> None:
        try:
            nobody = pwd.getpwnam("nobody").pw_uid
        except KeyError:
            pytest.skip("no user 'nobody' on this host")
        path = site.job("foreign", "command: /bin/true\n")
        os.chown(path, nobody, -1)
        result = site.run_job("--job", "foreign")
        assert result.returncode == 125 and "owned by uid" in result.stderr

    def test_world_writable_job_directory_is_refused(self, site: Site) -> None:
        site.job("ok", "command: /bin/true\n")
        site.jobs.chmod(0o777)
        result = site.run_job("--job", "ok")
        assert result.returncode == 125 and "job directory" in result.stderr

    def test_group_writable_config_is_refused(self, site: Site) -> None:
        site.job("ok", "command: /bin/true\n")
        site.config.chmod(0o666)
        result = site.run_job("--job", "ok")
        assert result.returncode == 125 and "config file" in result.stderr


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "x.yaml", "..", "", "-rf"])
def test_job_names_outside_the_directory_are_refused(site: Site, name: str) -> None:
    result = site.run_job("--job", name) if name != "-rf" else site.run_job("--job=-rf")
    assert result.returncode in (2, 125), result.stderr
    assert "Traceback" not in result.stderr


def test_symlink_leaving_the_job_directory_is_refused(site: Site, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("command: /bin/true\n")
    (site.jobs / "escape.yaml").symlink_to(outside)
    result = site.run_job("--job", "escape")
    assert result.returncode == 125 and "outside the job directory" in result.stderr
    result = site.run_job("--validate")
    assert result.returncode == 1 and "outside the job directory" in result.stdout
