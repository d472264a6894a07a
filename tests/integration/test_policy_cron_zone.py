"""A job with its own timezone, run by Debian's real cron daemon (SPEC §10).

cron-generate writes the host-zone entry (``--if-due``) for a job whose
schedule, in Asia/Kolkata (+05:30, this host's clock being another zone),
names a minute two or three minutes ahead; the daemon fires it and run-job
runs the job once, in that minute. Files in /etc/cron.d are removed
afterwards; a daemon this test started is stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import yaml

from pctest import REPO, config_settings, session_env, wait_for
from test_cron_daemon import cron_file, cron_running, runner_wrapper  # noqa: F401 - fixture

pytestmark = [
    pytest.mark.cron,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="writes /etc/cron.d and starts cron: needs root"),
]

KOLKATA = ZoneInfo("Asia/Kolkata")


def test_real_cron_runs_a_kolkata_job_at_its_kolkata_time(tmp_path, cron_file):
    from run_job.config.schedule import host_zone

    host = host_zone()
    now = datetime.now(timezone.utc)
    if now.astimezone(host).utcoffset() == now.astimezone(KOLKATA).utcoffset():
        pytest.skip("this host keeps Kolkata's clock: nothing to translate")
    target = now.replace(second=0, microsecond=0) + timedelta(minutes=2 if now.second < 40 else 3)
    local = target.astimezone(KOLKATA)
    host_wall = target.astimezone(host)
    root = tmp_path / "zone-site"
    jobs = root / "jobs"
    jobs.mkdir(parents=True)
    runner = runner_wrapper(root)
    (jobs / "kolkata.yaml").write_text(
        "command: /bin/echo ran\n"
        f"schedule: '{local.minute} {local.hour} * * *'\n"
        "timezone: Asia/Kolkata\n", encoding="utf-8")
    cfg = root / "process-control.yaml"
    environment = {"MAILTO": "", "PROCESS_CONTROL_CONFIG": str(cfg),
                   "XDG_CACHE_HOME": session_env()["XDG_CACHE_HOME"]}
    settings = config_settings(root, output_crontab=str(cron_file), user="root", runner_path=str(runner),
                               cron_environment=environment)
    cfg.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-m", "cron_generate", "--config", str(cfg)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    entries = [line for line in cron_file.read_text().splitlines()
               if line and not line.startswith(("#", "MAILTO", "PROCESS", "XDG"))]
    assert entries == [f"{host_wall.minute} {host_wall.hour} * * * root {runner} --config {cfg}"
                       " --job kolkata --if-due"]

    history = root / "state" / "kolkata.history.json"
    def finished() -> bool:
        return history.exists() and any(e.get("outcome") != "running"
                                        for e in json.loads(history.read_text()))

    with cron_running():
        wait = (target - datetime.now(timezone.utc)).total_seconds() + 75
        if not wait_for(finished, timeout=wait, step=0.5):
            pytest.fail(f"cron did not run the job by {target + timedelta(seconds=75)}"
                        f" (entry {entries[0]!r})")
        time.sleep(2)  # a second firing would show by now
    runs = json.loads(history.read_text())
    assert [e["outcome"] for e in runs] == ["success"], runs
    started = datetime.fromisoformat(runs[0]["started_at"].replace("Z", "+00:00"))
    assert target <= started < target + timedelta(seconds=60), (target, started)
