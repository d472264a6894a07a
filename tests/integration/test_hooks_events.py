"""Event hooks as real executables: events, variables, order, bounds, permissions.

Hooks are small Python scripts written into ``tmp_path``; each one dumps its
``RUN_JOB_*`` environment as JSON into a folder named by ``HOOK_OUT``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from pctest import config_record, wait_for
from run_job.alerts import notify as alerts, hooks
from run_job.model import Config, Job, replace

ODD = "ho'oks; 100% \"dir\""
REASON = "exited with status 3; 'quoted' \"double\" 100%\nsecond line"

DUMP = f"""#!{sys.executable}
import json, os, sys
out = os.environ["HOOK_OUT"]
name = os.environ["RUN_JOB_EVENT"] + "." + os.path.basename(sys.argv[0])
env = {{k: v for k, v in os.environ.items() if k.startswith("RUN_JOB_")}}
with open(os.path.join(out, name), "w") as fh:
    json.dump(env, fh)
with open(os.path.join(out, "order"), "a") as fh:
    fh.write(name + "\\n")
"""


def write_hook(folder: Path, name: str, text: str = DUMP, mode: int = 0o755) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def out(tmp_path, monkeypatch):
    folder = tmp_path / "out"
    folder.mkdir()
    monkeypatch.setenv("HOOK_OUT", str(folder))
    return folder


def config_for(tmp_path: Path, hooks_directory: Path | None) -> Config:
    return config_record(tmp_path / "state", user="root", hooks_directory=hooks_directory)


JOB = Job(slug="hooked_job-1", path=Path("/jobs/hooked_job-1.yaml"), sha256="0",
          commands=(("/bin/false",),), command_text=("/bin/false",),
          failure_threshold_for_mail=5)  # no failmail: hooks only


def record(outcome: str, run_id: str = "20260101T000000.000000Z-1", **extra) -> dict:
    rec = {"job": JOB.slug, "run_id": run_id, "run_dir": f"/log dir/{ODD}/{run_id}",
           "outcome": outcome, "exit_code": 0 if outcome == "success" else 3,
           "reason": "" if outcome == "success" else REASON}
    rec.update(extra)
    return rec


def fired(out: Path) -> list[str]:
    order = out / "order"
    return order.read_text().split() if order.exists() else []


def env_of(out: Path, event: str, hook: str = "10-dump") -> dict:
    return json.loads((out / f"{event}.{hook}").read_text())


@pytest.fixture
def hooks_dir(tmp_path):
    root = tmp_path / ODD
    for event in hooks.EVENTS:
        write_hook(root / event, "10-dump")
    return root


def test_start_hook_variables(tmp_path, out, hooks_dir):
    alerts.on_start(config_for(tmp_path, hooks_dir), JOB,
                    record("running", exit_code=None, reason=""))
    assert fired(out) == ["start.10-dump"]
    env = env_of(out, "start")
    assert env == {
        "RUN_JOB_EVENT": "start", "RUN_JOB_NAME": "hooked_job-1",
        "RUN_JOB_RUN_ID": "20260101T000000.000000Z-1",
        "RUN_JOB_RUN_DIR": f"/log dir/{ODD}/20260101T000000.000000Z-1",
        "RUN_JOB_OUTCOME": "running", "RUN_JOB_EXIT_CODE": "", "RUN_JOB_REASON": ""}


@pytest.mark.parametrize("outcome, event", [
    ("failed", "failure"), ("killed", "failure"), ("lost", "failure"),
    ("timed_out", "timeout"), ("skipped", "skipped"), ("success", "success"),
])
def test_final_event_and_variables(tmp_path, out, hooks_dir, outcome, event):
    result = alerts.on_end(config_for(tmp_path, hooks_dir), JOB, record(outcome), [])
    assert fired(out) == [f"{event}.10-dump"]
    env = env_of(out, event)
    assert env["RUN_JOB_EVENT"] == event and env["RUN_JOB_OUTCOME"] == outcome
    assert env["RUN_JOB_EXIT_CODE"] == ("0" if outcome == "success" else "3")
    assert env["RUN_JOB_REASON"] == ("" if outcome == "success" else REASON)
    assert result["hooks"] == [{"event": event, "hook": "10-dump", "exit_code": 0,
                                "signal": None, "timed_out": False,
                                "duration_s": result["hooks"][0]["duration_s"], "error": None}]


def test_recovery_fires_after_success_below_any_mail_threshold(tmp_path, out, hooks_dir):
    previous = [dict(record("failed"), alerts={"counts_as": "failure"})]
    result = alerts.on_end(config_for(tmp_path, hooks_dir), JOB, record("success", "r2"), previous)
    assert fired(out) == ["success.10-dump", "recovery.10-dump"]
    assert env_of(out, "recovery")["RUN_JOB_OUTCOME"] == "success"
    assert result["events"] == ["success", "recovery"] and result["mail"] is None
    # And not again on the next success.
    (out / "order").unlink()
    previous.append(dict(record("success", "r2"), alerts=result))
    alerts.on_end(config_for(tmp_path, hooks_dir), JOB, record("success", "r3"), previous)
    assert fired(out) == ["success.10-dump"]


def test_order_and_names_that_are_not_hooks(tmp_path, out):
    root = tmp_path / "hooks"
    folder = root / "failure"
    for name in ("20-second", "10-first", "30 third; 'x'", ".hidden", "40-backup~",
                 "50-old.dpkg-old", "60-x.bak", "70-x.swp"):
        write_hook(folder, name)
    write_hook(folder, "15-not-executable", mode=0o644)
    (folder / "25-a-folder").mkdir()
    alerts.on_end(config_for(tmp_path, root), JOB, record("failed"), [])
    assert (out / "order").read_text().splitlines() == [
        "failure.10-first", "failure.20-second", "failure.30 third; 'x'"]


def test_failing_hook_is_recorded_and_the_next_still_runs(tmp_path, out, capfd, caplog):
    root = tmp_path / "hooks"
    write_hook(root / "failure", "10-fails", "#!/bin/sh\necho 'boom on stderr' >&2\nexit 3\n")
    write_hook(root / "failure", "20-dump")
    result = alerts.on_end(config_for(tmp_path, root), JOB, record("failed"), [])
    assert [h["exit_code"] for h in result["hooks"]] == [3, 0]
    assert fired(out) == ["failure.20-dump"]
    # logsetup: stderr without a logging config, else the process-control logger
    logged = capfd.readouterr().err + caplog.text
    assert any("10-fails" in line and "boom on stderr" in line for line in logged.splitlines())
    assert result["counts_as"] == "failure" and "error" not in result


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_hanging_hook_is_stopped_with_its_group(tmp_path, out, monkeypatch):
    monkeypatch.setattr(hooks, "HOOK_TIMEOUT", 1.0)
    monkeypatch.setattr(hooks, "HOOK_KILL_GRACE", 0.5)
    root = tmp_path / "hooks"
    # Ignores TERM and leaves a child behind that ignores it too.
    write_hook(root / "success", "10-hangs",
               "#!/bin/sh\ntrap '' TERM\nsleep 300 &\necho $! > \"$HOOK_OUT/child\"\n"
               "while :; do sleep 1; done\n")
    write_hook(root / "success", "20-dump")
    started = time.monotonic()
    result = alerts.on_end(config_for(tmp_path, root), JOB, record("success"), [])
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 0.5 + 2.0, elapsed
    hang = result["hooks"][0]
    assert hang["timed_out"] is True and hang["signal"] == 9 and hang["exit_code"] is None
    assert result["hooks"][1]["exit_code"] == 0  # the next hook still ran
    child = int((out / "child").read_text())
    wait_for(lambda: not pid_alive(child), timeout=2)
    assert not pid_alive(child), "the hook's background child survived"


def test_hook_that_exits_on_term_reports_the_signal(tmp_path, out, monkeypatch):
    monkeypatch.setattr(hooks, "HOOK_TIMEOUT", 0.5)
    root = tmp_path / "hooks"
    write_hook(root / "timeout", "10-sleeps", "#!/bin/sh\nexec sleep 300\n")
    started = time.monotonic()
    result = alerts.on_end(config_for(tmp_path, root), JOB, record("timed_out"), [])
    assert time.monotonic() - started < 2.0
    assert result["hooks"][0]["timed_out"] and result["hooks"][0]["signal"] == 15


def test_hook_that_cannot_start_is_recorded(tmp_path, out):
    root = tmp_path / "hooks"
    write_hook(root / "failure", "10-bad-interpreter", "#!/nonexistent/interpreter\n")
    result = alerts.on_end(config_for(tmp_path, root), JOB, record("failed"), [])
    assert "cannot start" in result["hooks"][0]["error"]


def test_no_hooks_directory_or_missing_event_folder(tmp_path, out):
    assert alerts.on_end(config_for(tmp_path, None), JOB, record("failed"), [])["hooks"] == []
    missing = tmp_path / "nowhere"
    assert alerts.on_end(config_for(tmp_path, missing), JOB, record("failed"), [])["hooks"] == []


# --------------------------------------------------------------------------
# Ownership and permission rules (those of the job directory)
# --------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777])
def test_writable_hook_file_refused(tmp_path, out, mode):
    root = tmp_path / "hooks"
    write_hook(root / "failure", "10-writable", mode=mode)
    os.chmod(root / "failure" / "10-writable", mode)  # whatever the umask
    write_hook(root / "failure", "20-dump")
    result = alerts.on_end(config_for(tmp_path, root), JOB, record("failed"), [])
    assert fired(out) == ["failure.20-dump"]
    assert result["hooks"][0]["hook"] == "10-writable"
    assert "writable" in result["hooks"][0]["error"]


@pytest.mark.parametrize("which", ["root", "event"])
def test_writable_hooks_folder_refused(tmp_path, out, which):
    root = tmp_path / "hooks"
    write_hook(root / "failure", "10-dump")
    os.chmod(root if which == "root" else root / "failure", 0o777)
    result = alerts.on_end(config_for(tmp_path, root), JOB, record("failed"), [])
    assert fired(out) == []
    assert "refused" in result["hooks"][0]["error"]


@needs_root
def test_hook_owned_by_another_user_refused(tmp_path, out):
    root = tmp_path / "hooks"
    write_hook(root / "failure", "10-foreign")
    os.chown(root / "failure" / "10-foreign", 65534, 65534)
    result = alerts.on_end(config_for(tmp_path, root), JOB, record("failed"), [])
    assert fired(out) == [] and "owned by uid 65534" in result["hooks"][0]["error"]


@needs_root
def test_hook_owned_by_the_service_user_allowed(tmp_path, out):
    import pwd
    try:
        nobody = pwd.getpwuid(65534).pw_name
    except KeyError:
        pytest.skip("no user with uid 65534")
    root = tmp_path / "hooks"
    hook = write_hook(root / "failure", "10-dump")
    os.chown(hook, 65534, 65534)
    config = replace(config_for(tmp_path, root), user=nobody)
    alerts.on_end(config, JOB, record("failed"), [])
    assert fired(out) == ["failure.10-dump"]
