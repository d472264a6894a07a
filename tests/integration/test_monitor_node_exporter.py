"""The jobs' textfiles read by a real prometheus-node-exporter (Debian's, the
textfile collector alone, started here as a child on a free loopback port),
and checked by a real ``promtool check metrics`` (Debian's prometheus).

States seen by node_exporter: ok, failing (two in a row) and running, written
by run-job's runs; late (a history three hours old) and paused, written by
the writer those runs and ``--pause`` call (``textfile.write_job``);
``node_textfile_scrape_error`` stays 0.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import pctest
from monitor_consumers import NodeExporter, promtool_check
from pctest import Site

UTC = timezone.utc


def values(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


@pytest.fixture
def site(tmp_path: Path) -> Site:
    folder = tmp_path / "textfiles 'q' 100%"
    folder.mkdir()
    return Site(tmp_path / "site", metrics={"textfile_directory": str(folder)})


def test_node_exporter_reads_every_jobs_file(site, tmp_path):
    folder = Path(site.root).parent / "textfiles 'q' 100%"
    now = datetime.now(UTC)
    site.job("ok", "command: /bin/true\nschedule: '0 * * * *'\n")
    site.job("failing", "command: /bin/false\n")
    site.job("late", "command: /bin/true\nschedule: '0 * * * *'\n")
    site.job("held", "command: /bin/true\n")
    site.job("slow", "command: /bin/sleep 4\n")
    site.job("broken", "command: /bin/true\nschedule: 'every day'\n")
    assert site.run_job("broken").returncode == 125  # refused, and its textfile says why
    assert site.run_job("ok").returncode == 0
    for _ in range(2):
        assert site.run_job("failing").returncode == 1
    assert site.run_job("held").returncode == 0
    # late: its last run three hours ago (as run-job records it), file rewritten by run-job's writer
    history = site.state / "late.history.json"
    started = (now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    history.write_text(json.dumps([{"job": "late", "run_id": "20000101T000000.000000Z-1",
                                    "runner": "local", "outcome": "success", "started_at": started,
                                    "ended_at": started, "duration_s": 0.1, "exit_code": 0}]))
    from run_job.config.settings import load_config
    from run_job.monitor.textfile import write_job
    from run_job.run import pauses

    config = load_config(str(site.config))
    assert write_job(config, "late", config_path=str(site.config))
    pauses.pause(site.state, "held", reason="maintenance", by="ops")
    assert write_job(config, "held", config_path=str(site.config))  # what --pause calls
    slow = subprocess.Popen(pctest.command("run-job") + ["--config", str(site.config), "slow"],
                            env=pctest.command_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        target = folder / "process_control_slow.prom"
        pctest.wait_for(target.exists, timeout=10)
        exporter = NodeExporter(folder, tmp_path / "node_exporter.log")
        try:
            seen = values(exporter.scrape())
        finally:
            exporter.stop()
    finally:
        slow.wait(timeout=30)
    p = "process_control_job_"
    assert seen["node_textfile_scrape_error"] == 0
    for slug in ("ok", "failing", "late", "held", "slow", "broken"):
        assert any(key.startswith("node_textfile_mtime_seconds") and f"process_control_{slug}.prom" in key
                   for key in seen), slug
    assert seen[f'{p}last_outcome{{job="ok",outcome="success"}}'] == 1
    assert seen[f'{p}last_exit_code{{job="ok"}}'] == 0
    assert seen[f'{p}last_outcome{{job="failing",outcome="failed"}}'] == 1
    assert seen[f'{p}last_outcome{{job="failing",outcome="success"}}'] == 0
    assert seen[f'{p}consecutive_failures{{job="failing"}}'] == 2
    assert seen[f'{p}last_exit_code{{job="failing"}}'] == 1
    assert seen[f'{p}late{{job="late"}}'] == 1 and seen[f'{p}late{{job="ok"}}'] == 0
    assert seen[f'{p}paused{{job="held"}}'] == 1 and seen[f'{p}paused{{job="ok"}}'] == 0
    assert seen[f'{p}running{{job="slow"}}'] == 1 and seen[f'{p}running{{job="ok"}}'] == 0
    assert seen[f'{p}valid{{job="broken"}}'] == 0 and seen[f'{p}valid{{job="ok"}}'] == 1
    for slug, health in (("ok", "ok"), ("failing", "failing"), ("late", "late"), ("held", "paused"),
                         ("slow", "running"), ("broken", "invalid")):
        assert seen[f'{p}health{{health="{health}",job="{slug}"}}'] == 1, slug  # labels sorted
    assert abs(seen[f'{p}next_run_timestamp_seconds{{job="ok"}}'] - time.time()) <= 3600
    assert abs(seen[f'{p}last_start_timestamp_seconds{{job="ok"}}'] - time.time()) < 300


def test_promtool_accepts_every_file_and_run_job_metrics(site):
    folder = Path(site.root).parent / "textfiles 'q' 100%"
    site.job("ok", "command: /bin/true\nschedule: '*/5 * * * *'\n")
    site.job("bad", "command: /bin/false\n")
    site.job("broken", "command: [unclosed\n")
    site.run_job("ok")
    site.run_job("bad")
    files = sorted(folder.glob("process_control_*.prom"))
    assert [f.name for f in files] == ["process_control_bad.prom", "process_control_ok.prom"]
    for path in files:
        checked = promtool_check(path.read_text())
        assert (checked.returncode, checked.stdout + checked.stderr) == (0, ""), path
    printed = site.run_job("--metrics")
    assert printed.returncode == 0, printed.stderr
    checked = promtool_check(printed.stdout)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")
