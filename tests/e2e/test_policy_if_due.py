"""run-job --job NAME --if-due and cron-generate for jobs with a timezone,
end to end at the real time (the decision itself is tested at fixed clocks
in tests/unit/test_policy_zones.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo


from pctest import command, command_env, run
from runjob_helpers import history, job_yaml, new_site, q, run_dirs

KOLKATA = ZoneInfo("Asia/Kolkata")  # +05:30, no clock changes: its wall minute is now's


def fresh_minute() -> datetime:
    """Now, at least 15 seconds before the minute ends (so that a test's runs
    stay in one minute)."""
    now = datetime.now(timezone.utc)
    if now.second >= 45:
        time.sleep(61 - now.second)
        now = datetime.now(timezone.utc)
    return now


def this_minute_in(zone, now) -> str:
    wall = now.astimezone(zone)
    return f"{wall.minute} {wall.hour} * * *"


def other_minute_in(zone, now) -> str:
    wall = (now + timedelta(minutes=7)).astimezone(zone)
    return f"{wall.minute} {wall.hour} * * *"


def test_if_due_runs_a_start_of_this_minute_once(tmp_path):
    site = new_site(tmp_path)
    now = fresh_minute()
    site.job("kolkata", job_yaml(command="/bin/echo ran", schedule=this_minute_in(KOLKATA, now),
                                 timezone="Asia/Kolkata"))
    first = site.run_job("--job", "kolkata", "--if-due")
    assert (first.returncode, first.stderr) == (0, "")
    assert [e["outcome"] for e in history(site, "kolkata")] == ["success"]
    # a second entry of the same minute (cron's catch-up after a clock change): nothing more
    again = site.run_job("--if-due", "--job", "kolkata")
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert len(history(site, "kolkata")) == 1
    # without --if-due it is a run by hand, as always
    assert site.run_job("--job", "kolkata").returncode == 0
    assert len(history(site, "kolkata")) == 2


def test_if_due_not_due_exits_0_silently_leaving_no_record(tmp_path):
    site = new_site(tmp_path)
    now = fresh_minute()
    site.job("later", job_yaml(command="/bin/echo ran", schedule=other_minute_in(KOLKATA, now),
                               timezone="Asia/Kolkata"))
    res = site.run_job("--job", "later", "--if-due")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert not (site.state / "later.history.json").exists()
    assert run_dirs(site, "later") == []
    assert not site.rundir.exists() or not list(site.rundir.iterdir())
    # a job without a schedule is never due
    site.job("manual", job_yaml(command="/bin/echo ran", timezone="Asia/Kolkata"))
    assert site.run_job("--job", "manual", "--if-due").returncode == 0
    assert not (site.state / "manual.history.json").exists()


def test_two_entries_firing_together_run_the_job_once(tmp_path):
    site = new_site(tmp_path)
    now = fresh_minute()
    site.job("twice", job_yaml(command=f"{q(sys.executable)} -c 'import time; time.sleep(1)'",
                               schedule=this_minute_in(KOLKATA, now), timezone="Asia/Kolkata"))
    argv = command("run-job") + ["--config", str(site.config), "--job", "twice", "--if-due"]
    procs = [subprocess.Popen(argv, env=command_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    entries = history(site, "twice")
    assert [e["outcome"] for e in entries] == ["success"], entries


def test_if_due_is_a_job_option(tmp_path):
    site = new_site(tmp_path)
    res = site.run_job("--status", "--if-due")
    assert res.returncode == 2 and "--if-due goes with --job NAME" in res.stderr


def test_cron_generate_writes_host_entries_with_if_due(tmp_path):
    site = new_site(tmp_path, hash_seed="fixed seed")
    site.job("berlin", job_yaml(command="/bin/true", schedule="0 9 * * *", timezone="Europe/Berlin"))
    site.job("hashed", job_yaml(command="/bin/true", schedule="H H(9-10) * * *", timezone="Europe/Berlin"))
    res = run("cron-generate", "--config", str(site.config), "--stdout",
              env={"TZ": "America/New_York"})
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stdout.splitlines() if line and not line.startswith("#")]
    assert lines[0].startswith("0 3,4 * * * ") and lines[0].endswith("--job berlin --if-due")
    minute, hours = lines[1].split()[:2]
    assert minute.isdigit() and hours in ("3,4", "4,5") and lines[1].endswith("--job hashed --if-due")
    valid = site.run_job("--validate", env={"TZ": "America/New_York"})
    assert valid.returncode == 0
    assert 'schedule "0 9 * * *" in Europe/Berlin runs on this host\'s clock at "0 3,4 * * *"' \
           " through run-job --if-due" in valid.stdout
    assert "note: schedule \"H H(9-10) * * *\" runs at " in valid.stdout


def test_a_zone_prefix_in_the_schedule_is_refused_with_a_hint(tmp_path):
    site = new_site(tmp_path)
    site.job("prefixed", 'command: /bin/true\nschedule: "CRON_TZ=Europe/Berlin 0 9 * * *"\n')
    res = site.run_job("--validate")
    assert res.returncode == 1
    assert "prefixed.yaml:2: schedule: a schedule cannot start with CRON_TZ=" in res.stdout
    assert "'timezone: Europe/Berlin'" in res.stdout
    gen = run("cron-generate", "--config", str(site.config), "--stdout")
    assert gen.returncode == 2 and gen.stdout == ""


def test_status_shows_the_next_run_in_the_jobs_zone_with_hashed_fields_expanded(tmp_path):
    from run_job.config.schedule import expand

    site = new_site(tmp_path, hash_seed="status seed")
    site.job("spread", job_yaml(command="/bin/true", schedule="H H * * *", timezone="Europe/Berlin"))
    res = site.run_job("--status", "--json")
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout)["jobs"][0]
    minute, hour = (int(f) for f in expand("H H * * *", "status seed", "spread").split()[:2])
    when = datetime.fromisoformat(row["next_run"])
    assert when.utcoffset() == when.astimezone(ZoneInfo("Europe/Berlin")).utcoffset()
    assert (when.hour, when.minute) == (hour, minute)
    text = site.run_job("--status").stdout
    assert f"next run {when.strftime('%Y-%m-%d %H:%M:%S')} CE" in text and "(Europe/Berlin)" in text
