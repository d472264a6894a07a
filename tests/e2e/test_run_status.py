"""--status, --list-jobs, --history, --only-running and --json, end to end.

Every --json document is checked against schemas/status.schema.json. Invalid
job files are shown as invalid, never a crash.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import jsonschema
import pytest

from pctest import REPO, command, command_env, config_settings, wait_for
from runjob_helpers import job_yaml, new_site

SCHEMA = json.loads((REPO / "schemas" / "status.schema.json").read_text())


def check(doc: dict, kind: str) -> dict:
    jsonschema.Draft7Validator(SCHEMA).validate(doc)
    assert doc["kind"] == kind
    return doc


def every_key_described(node, path="$"):
    if isinstance(node, dict):
        if "properties" in node:
            for key, sub in node["properties"].items():
                assert "description" in sub, f"{path}.{key} has no description"
        for key, sub in node.items():
            every_key_described(sub, f"{path}.{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            every_key_described(sub, f"{path}[{i}]")


def test_schema_is_draft7_and_described():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"].startswith("http://json-schema.org/draft-07/")
    every_key_described(SCHEMA)


@pytest.fixture
def site(tmp_path):
    return new_site(tmp_path)


def populate(site, valid: int, invalid: int) -> None:
    for i in range(valid):
        site.job(f"job-{i:04d}", job_yaml(
            name=f"Job {i}; 'quoted' %s", description="does things\nover lines",
            tag=["nightly", "x y"], command="/bin/true", schedule=f"{i % 60} * * * *"))
    for i in range(invalid):
        site.job(f"bad-{i:03d}", "command: [unclosed\n")
    (site.jobs / "bad name.yaml").write_text("command: /bin/true\n")
    (site.jobs / ".hidden.yaml").write_text("not: a job\n")
    (site.jobs / "backup.yaml~").write_text("command: /bin/true\n")


def test_status_over_many_jobs_with_invalid_ones(site):
    populate(site, 120, 5)
    assert site.run_job("job-0001").returncode == 0
    assert site.run_job("job-0002").returncode == 0
    site.job("job-0002", job_yaml(command="sh -c 'exit 9'"))
    assert site.run_job("job-0002").returncode == 9
    result = site.run_job("--status")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.count("INVALID") == 6  # 5 broken files and the bad name
    assert "job-0119: Job 119; 'quoted' %s  [nightly, x y]" in result.stdout
    doc = check(json.loads(site.run_job("--status", "--json").stdout), "status")
    rows = {r["job"]: r for r in doc["jobs"]}
    assert len(rows) == 126 and ".hidden" not in rows
    assert rows["bad-000"]["valid"] is False and rows["bad-000"]["problems"]
    assert rows["job-0001"]["last"]["outcome"] == "success"
    assert rows["job-0001"]["consecutive_failures"] == 0
    assert rows["job-0002"]["last"]["exit_code"] == 9
    assert rows["job-0002"]["consecutive_failures"] == 1
    assert rows["job-0005"]["next_run"] is not None
    assert rows["job-0005"]["schedule"] == "5 * * * *"
    assert rows["job-0005"]["tags"] == ["nightly", "x y"]


def test_list_jobs(site):
    populate(site, 3, 1)
    result = site.run_job("--list-jobs")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["bad", "bad-000", "job-0000", "job-0001", "job-0002"]
    doc = check(json.loads(site.run_job("-l", "--json").stdout), "list")
    assert [r["job"] for r in doc["jobs"] if r["valid"]] == ["job-0000", "job-0001", "job-0002"]


def test_only_running_and_running_pid(site):
    site.job("sleeper", job_yaml(command="sleep 30", kill_grace="1s"))
    site.job("idle", job_yaml(command="/bin/true"))
    proc = subprocess.Popen(command("run-job") + ["--config", str(site.config), "sleeper"],
                            env=command_env(), stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: (site.output / "sleeper" / "latest").exists())
        doc = check(json.loads(site.run_job("--status", "--only-running", "--json").stdout), "status")
        assert [r["job"] for r in doc["jobs"]] == ["sleeper"]
        assert doc["jobs"][0]["running"] is True
        assert doc["jobs"][0]["current"]["pid"] == proc.pid
        text = site.run_job("-r").stdout
        assert f"running:  pid {proc.pid}" in text and "idle" not in text
        listed = check(json.loads(site.run_job("-l", "-r", "--json").stdout), "list")
        assert [r["job"] for r in listed["jobs"]] == ["sleeper"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_history(site):
    site.job("hist", job_yaml(command="/bin/true"))
    for _ in range(3):
        site.run_job("hist")
    doc = check(json.loads(site.run_job("--history", "hist", "--json").stdout), "history")
    assert [e["outcome"] for e in doc["history"]] == ["success"] * 3
    text = site.run_job("--history", "hist").stdout
    assert text.count("success") == 3
    assert site.run_job("--history", "../etc").returncode == 125


def test_bad_config_is_one_line_125(tmp_path):
    cfg = tmp_path / "bad config.yaml"
    cfg.write_text("job_directory: [\n")
    from pctest import run

    result = run("run-job", "--config", str(cfg), "--status")
    assert result.returncode == 125
    assert "Traceback" not in result.stderr


def test_reference_example_config_without_syslog(tmp_path):
    """The reference's example config (its syslog logging included) on a host
    without a syslog socket: runs, no traceback, nothing on stderr."""
    import yaml

    data = yaml.safe_load((REPO / "tests" / "data" / "reference" / "process-control.example.yaml").read_text())
    root = tmp_path / "ref site; 'x'"
    data.update(config_settings(root))
    (root / "jobs").mkdir(parents=True)
    root.chmod(0o755)
    (root / "jobs").chmod(0o755)
    data["logging"]["handlers"]["syslog"]["address"] = str(root / "no such" / "dev-log")
    cfg = root / "process-control.yaml"
    cfg.write_text(yaml.safe_dump(data))
    job = root / "jobs" / "hello.yaml"
    job.write_text(job_yaml(command=["echo hello", "sh -c 'exit 0'"]))
    job.chmod(0o644)
    fail = root / "jobs" / "fails.yaml"
    fail.write_text(job_yaml(command="sh -c 'exit 2'"))
    fail.chmod(0o644)
    from pctest import run

    result = run("run-job", "--config", str(cfg), "--job", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert (root / "log" / "hello" / "latest" / "output.log").read_text() == "hello\n"
    result = run("run-job", "--config", str(cfg), "fails")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    status = run("run-job", "--config", str(cfg), "--status")
    assert status.returncode == 0 and "Traceback" not in status.stderr
    assert "hello" in status.stdout
    Path  # noqa: B018


def test_status_cache_follows_changes(site):
    from pctest import command_env
    import subprocess

    cache_home = site.root / "cache home"

    def status():
        result = subprocess.run(command("run-job") + ["--config", str(site.config), "--status", "--json"],
                                env=command_env({"XDG_CACHE_HOME": str(cache_home)}),
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return {r["job"]: r for r in check(json.loads(result.stdout), "status")["jobs"]}

    site.job("a", job_yaml(name="first", command="/bin/true"))
    site.job("b", job_yaml(command="/bin/true"))
    assert status()["a"]["name"] == "first"
    assert status()["a"]["name"] == "first"  # warm
    assert any(p.name.startswith("status-") for p in (cache_home / "process-control").iterdir())
    site.job("a", job_yaml(name="second", command="/bin/true"))
    assert status()["a"]["name"] == "second"
    site.job("b", "command: [broken\n")
    rows = status()
    assert rows["b"]["valid"] is False and rows["a"]["valid"] is True
    (site.jobs / "a.yaml").unlink()
    assert set(status()) == {"b"}
    site.config.write_text(site.config.read_text() + "bogus_key: 1\n")
    result = site.run_job("--status")
    assert result.returncode == 125 and "bogus_key" in result.stderr
