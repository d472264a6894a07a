"""Pause, resume and --tag selection, end to end (SPEC §9).

Every job and folder name is adversarial; runs are started as cron starts
them (a bare environment, no terminal) or on a real terminal (``pty``).
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from operate_helpers import cron_env, start_as_cron
from pctest import command, run_on_terminal
from runjob_helpers import PY, history, job_yaml, new_site, run_dirs


@pytest.fixture
def site(tmp_path):
    site = new_site(tmp_path, hooks_directory=str(tmp_path / "hooks"))
    site.job("web-a", job_yaml(command="echo a", tag=["web", "night"], schedule="*/5 * * * *"))
    site.job("web-b", job_yaml(command="echo b", tag="web"))
    site.job("db", job_yaml(command="echo db", tag=["db"]))
    return site


def hook(site, event: str) -> None:
    """A hook of ``event`` that appends its RUN_JOB_* environment (JSON) to a file."""
    folder = site.root.parent / "hooks" / event
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "dump"
    script.write_text(f"#!{sys.executable}\nimport json, os\n"
                      f"with open({str(site.root / (event + '.jsonl'))!r}, 'a') as f:\n"
                      "    f.write(json.dumps({k: v for k, v in os.environ.items()"
                      " if k.startswith('RUN_JOB_')}) + '\\n')\n")
    script.chmod(0o755)


def hook_calls(site, event: str) -> list[dict]:
    path = site.root / (event + ".jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def cron_run(site, slug: str, *extra: str):
    proc = start_as_cron(site, slug, *extra)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_paused_job_is_skipped_quietly_off_a_terminal(site):
    hook(site, "pause")
    reason = "disk swap; $(rm -rf /) `id` 'q' \"dq\""
    res = site.run_job("--pause", "web-a", "--reason", reason, env={"SUDO_USER": "alice"})
    assert res.returncode == 0, res.stderr
    assert "web-a: paused by alice" in res.stdout and reason in res.stdout
    code, out, err = cron_run(site, "web-a")
    assert (code, out, err) == (0, b"", b"")  # cron mails any output: none
    assert run_dirs(site, "web-a") == []  # no run folder
    entry = history(site, "web-a")[-1]
    assert entry["outcome"] == "skipped" and entry["run_dir"] is None
    assert entry["reason"].startswith("paused by alice since ") and reason in entry["reason"]
    assert "(until resumed)" in entry["reason"]
    assert entry["alerts"]["counts_as"] == "neutral" and entry["alerts"]["mail"] is None
    [call] = hook_calls(site, "pause")
    assert call["RUN_JOB_NAME"] == "web-a" and call["RUN_JOB_EVENT"] == "pause"
    assert call["RUN_JOB_PAUSED_BY"] == "alice" and call["RUN_JOB_PAUSE_REASON"] == reason
    assert call["RUN_JOB_PAUSE_UNTIL"] == "" and call["RUN_JOB_PAUSE_SOURCE"] == "manual"


def test_paused_skip_says_why_on_a_terminal(site):
    assert site.run_job("--pause", "web-b", "--reason", "maintenance").returncode == 0
    argv = command("run-job") + ["--config", str(site.config), "web-b"]
    status, seen = run_on_terminal(argv)
    assert status == 0
    assert b"web-b not run: paused by" in seen and b"maintenance" in seen
    assert b"--resume web-b" in seen and b"--force" in seen
    assert run_dirs(site, "web-b") == []


def test_force_runs_a_paused_job_and_its_record_says_so(site):
    assert site.run_job("--pause", "db", "--reason", "hold").returncode == 0
    res = site.run_job("db", "--force", env={"SUDO_USER": "bob"})
    assert res.returncode == 0, res.stderr
    [folder] = run_dirs(site, "db")
    status = json.loads((folder / "status.json").read_text())
    assert status["outcome"] == "success"
    assert "run although paused by" in status["reason"] and "(--force by bob)" in status["reason"]
    assert "hold" in status["reason"]
    assert (folder / "output.log").read_text() == "db\n"


def test_pause_with_until_ends_by_itself(site):
    hook(site, "resume")
    res = site.run_job("--pause", "web-b", "--reason", "short", "--until", "2s")
    assert res.returncode == 0, res.stderr
    assert cron_run(site, "web-b")[0] == 0 and run_dirs(site, "web-b") == []
    status = json.loads(site.run_job("--status", "--json").stdout)
    row = next(r for r in status["jobs"] if r["job"] == "web-b")
    assert row["paused"]["reason"] == "short" and row["health"] == "paused"
    time.sleep(2.2)
    code, out, err = cron_run(site, "web-b")
    assert code == 0 and err == b""
    assert len(run_dirs(site, "web-b")) == 1  # the pause had ended: it ran
    audit = [json.loads(line) for line in (site.state / "audit.log").read_text().splitlines()]
    assert [a["action"] for a in audit] == ["pause", "expire"]
    assert hook_calls(site, "resume") == []  # an expiry is audit-logged, no hook (no daemon)
    row = next(r for r in json.loads(site.run_job("--status", "--json").stdout)["jobs"]
               if r["job"] == "web-b")
    assert row["paused"] is None


def test_until_forms_and_errors(site):
    res = site.run_job("--pause", "db", "--reason", "r", "--until", "2099-01-02T03:04")
    assert res.returncode == 0, res.stderr
    pause = json.loads((site.state / "db.pause.json").read_text())
    from datetime import datetime

    expected = datetime(2099, 1, 2, 3, 4).astimezone()  # the host's zone
    assert datetime.fromisoformat(pause["until"].replace("Z", "+00:00")) == expected
    for bad in ("2001-01-01T00:00", "-2h", "tomorrow", "0s"):
        res = site.run_job("--pause", "db", "--reason", "r", "--until", bad)
        assert res.returncode == 2 and "--until" in res.stderr and "\n" == res.stderr[-1], bad
    res = site.run_job("--pause", "db")
    assert res.returncode == 2 and "--reason" in res.stderr
    res = site.run_job("--pause", "db", "--reason", "   ")
    assert res.returncode == 2


def test_tag_selection_and_its_errors(site):
    res = site.run_job("--pause", "--tag", "web", "--reason", "deploy", "--until", "3d")
    assert res.returncode == 0, res.stderr
    assert sorted(line.split(":")[0] for line in res.stdout.splitlines()) == ["web-a", "web-b"]
    assert not (site.state / "db.pause.json").exists()
    text = site.run_job("--status", "--tag", "web").stdout
    assert text.count("  paused:   by ") == 2 and "deploy" in text and "db" not in text
    listed = json.loads(site.run_job("--list-jobs", "--tag", "db", "--tag", "night",
                                     "--json").stdout)
    assert sorted(row["job"] for row in listed["jobs"]) == ["db", "web-a"]
    for argv in (["--status", "--tag", "nope"], ["--list-jobs", "--tag", "nope"],
                 ["--pause", "--tag", "nope", "--reason", "x"], ["--resume", "--tag", "nope"],
                 ["--kill-job", "--tag", "nope"]):
        res = site.run_job(*argv)
        assert res.returncode == 2, argv
        assert "no job carries the tag 'nope'" in res.stderr and "db, night, web" in res.stderr
    assert site.run_job("--pause", "--reason", "x").returncode == 2  # neither NAME nor --tag
    assert site.run_job("--pause", "nosuch", "--reason", "x").returncode == 2
    assert site.run_job("--history", "db", "--tag", "web").returncode == 2
    res = site.run_job("--resume", "--tag", "web")
    assert res.returncode == 0 and res.stdout.count("resumed (it was paused by") == 2
    res = site.run_job("--resume", "--tag", "web")  # nothing paused: still 0
    assert res.returncode == 0 and res.stdout.count("was not paused") == 2


def test_resume_hooks_audit_and_json(site):
    hook(site, "resume")
    site.run_job("--pause", "db", "--reason", "why\nsecond line\x1b[31m", env={"SUDO_USER": "carol"})
    res = site.run_job("--status")
    assert "why second line" in res.stdout and "\x1b" not in res.stdout  # one line, printable
    doc = json.loads(site.run_job("--status", "--json").stdout)
    from jsonschema import Draft7Validator

    from run_job.config.schema import load_schema

    Draft7Validator(load_schema("status")).validate(doc)
    row = next(r for r in doc["jobs"] if r["job"] == "db")
    assert row["paused"]["by"] == "carol" and row["paused"]["source"] == "manual"
    res = site.run_job("--resume", "db", env={"SUDO_USER": "dave"})
    assert res.returncode == 0 and "db: resumed" in res.stdout
    [call] = hook_calls(site, "resume")
    assert call["RUN_JOB_RESUMED_BY"] == "dave" and call["RUN_JOB_PAUSED_BY"] == "carol"
    audit = [json.loads(line) for line in (site.state / "audit.log").read_text().splitlines()]
    assert [(a["action"], a["by"]) for a in audit] == [("pause", "carol"), ("resume", "dave")]
    assert site.run_job("--resume", "db").returncode == 0  # nothing paused: 0


def test_kill_job_by_tag(site):
    site.job("slow-1", job_yaml(command=f"{PY} -c 'import time; time.sleep(60)'", tag="slow",
                                kill_grace="1s"))
    site.job("slow-2", job_yaml(command=f"{PY} -c 'import time; time.sleep(60)'", tag="slow",
                                kill_grace="1s"))
    res = site.run_job("--kill-job", "--tag", "slow")
    assert res.returncode == 1 and res.stdout.count("no run is running") == 2
    runs = [start_as_cron(site, "slow-1"), start_as_cron(site, "slow-2")]
    from operate_helpers import wait_running

    wait_running(site, "slow-1")
    wait_running(site, "slow-2")
    res = site.run_job("--kill-job", "--tag", "slow")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("killed") == 2
    for proc in runs:
        proc.communicate(timeout=30)
        assert proc.returncode == 128 + 15


def test_bare_cron_environment_pause_reader_is_cheap(site):
    """The pause is read before the lock: a paused job's cron run never
    touches the lock, even while a run of it holds the lock."""
    site.job("long", job_yaml(command=f"{PY} -c 'import time; time.sleep(3)'"))
    first = start_as_cron(site, "long")
    from operate_helpers import wait_running

    running = wait_running(site, "long")
    assert site.run_job("--pause", "long", "--reason", "enough").returncode == 0
    code, out, err = cron_run(site, "long")
    assert (code, out, err) == (0, b"", b"")  # not 75: the pause, not the lock, decided
    first.communicate(timeout=30)
    assert first.returncode == 0
    outcomes = [(e["run_id"] == running["run_id"], e["outcome"]) for e in history(site, "long")]
    assert outcomes == [(True, "success"), (False, "skipped")]
    assert cron_env()["PATH"] == "/usr/bin:/bin"


def test_pause_and_resume_rewrite_the_textfile(tmp_path):
    folder = tmp_path / "metrics; 'q' 100%"
    folder.mkdir()
    site = new_site(tmp_path, metrics={"textfile_directory": str(folder)})
    site.job("meter", job_yaml(command="echo m", tag="m"))
    prom = folder / "process_control_meter.prom"

    def paused() -> str:
        return next(line for line in prom.read_text().splitlines()
                    if line.startswith("process_control_job_paused{"))

    assert site.run_job("--pause", "--tag", "m", "--reason", "r").returncode == 0
    assert paused().endswith(" 1")
    assert site.run_job("--resume", "meter").returncode == 0
    assert paused().endswith(" 0")
