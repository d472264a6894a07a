"""Run records, environment, commands and output capture, end to end (SPEC §3-§5)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys

import pytest

from pctest import command, command_env, run_on_terminal
from runjob_helpers import PY, history, job_yaml, latest_status, new_site, q, run_dirs

SPEC_FIELDS = {"job", "run_id", "runner", "host", "user", "pid", "slurm_job_id", "command",
               "started_at", "ended_at", "duration_s", "exit_code", "signal", "outcome",
               "reason", "job_file_sha256"}


@pytest.fixture
def site(tmp_path):
    return new_site(tmp_path)


def test_status_json_has_every_spec_field(site):
    path = site.job("rec", job_yaml(command=["echo one", "echo 'two; %s'"]))
    assert site.run_job("rec").returncode == 0
    status = latest_status(site, "rec")
    assert SPEC_FIELDS <= set(status)
    assert status["command"] == ["echo one", "echo 'two; %s'"]
    assert status["runner"] == "local" and status["slurm_job_id"] is None
    assert status["job_file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert status["started_at"].endswith("Z") and status["ended_at"].endswith("Z")
    assert status["duration_s"] >= 0
    assert status["run_dir"] == str(site.output / "rec" / status["run_id"])
    assert (site.output / "rec" / status["run_id"] / "output.log").read_text() == "one\ntwo; %s\n"
    assert history(site, "rec")[-1] == status


def test_run_ids_sort_by_start_and_latest_points_at_newest(site):
    site.job("many", job_yaml(command="/bin/true"))
    for _ in range(3):
        assert site.run_job("many").returncode == 0
    dirs = run_dirs(site, "many")
    assert len(dirs) == 3
    ids = [json.loads((d / "status.json").read_text())["run_id"] for d in dirs]
    starts = [json.loads((d / "status.json").read_text())["started_at"] for d in dirs]
    assert ids == sorted(ids) and starts == sorted(starts)
    assert os.readlink(site.output / "many" / "latest") == dirs[-1].name


def test_run_folders_not_readable_by_others(site):
    site.job("private", job_yaml(command="echo secret"))
    assert site.run_job("private").returncode == 0
    run_dir = run_dirs(site, "private")[0]
    for path in (run_dir, run_dir / "output.log", run_dir / "status.json",
                 site.state / "private.history.json"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0, path


def test_retention_keep_runs_and_history_length(tmp_path):
    site = new_site(tmp_path, keep_runs=2, history_length=3)
    site.job("keep", job_yaml(command="/bin/true"))
    for _ in range(5):
        assert site.run_job("keep").returncode == 0
    assert len(run_dirs(site, "keep")) == 2
    entries = history(site, "keep")
    assert len(entries) == 3
    assert entries[-1]["run_id"] == latest_status(site, "keep")["run_id"]


def test_damaged_history_never_stops_a_run(site):
    site.job("dmg", job_yaml(command="/bin/true"))
    site.state.mkdir(parents=True, exist_ok=True)
    (site.state / "dmg.history.json").write_text("{not json")
    assert site.run_job("dmg").returncode == 0
    assert [e["outcome"] for e in history(site, "dmg")] == ["success"]
    assert any(p.name.startswith("dmg.history.json.damaged-") for p in site.state.iterdir())


def test_environment_and_run_job_variables(site):
    path = site.job("env", job_yaml(
        command=f"{PY} -c 'import json, os; print(json.dumps(dict(os.environ)))'",
        environment={"GREETING": "hello; 'world' %s", "FLAG": True, "NUM": 3}))
    result = subprocess.run(command("run-job") + ["--config", str(site.config), "env"],
                            env=command_env({"INHERITED_X": "from parent"}),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    env = json.loads((site.output / "env" / "latest" / "output.log").read_text())
    status = latest_status(site, "env")
    assert env["GREETING"] == "hello; 'world' %s"
    assert env["FLAG"] == "True" and env["NUM"] == "3"  # str() as in the reference
    assert env["INHERITED_X"] == "from parent"
    assert env["RUN_JOB_NAME"] == "env"
    assert env["RUN_JOB_RUN_ID"] == status["run_id"]
    assert env["RUN_JOB_RUN_DIR"] == status["run_dir"]
    assert env["RUN_JOB_FILE"] == str(path)


def test_working_directory(site):
    folder = site.root / "work dir; 'x'"
    folder.mkdir()
    site.job("cwd", job_yaml(command="pwd", working_directory=str(folder)))
    assert site.run_job("cwd").returncode == 0
    assert (site.output / "cwd" / "latest" / "output.log").read_text() == f"{folder}\n"


def test_default_working_directory_is_home(site):
    site.job("home", job_yaml(command="pwd"))
    home = site.root / "home dir"
    home.mkdir()
    result = subprocess.run(command("run-job") + ["--config", str(site.config), "home"],
                            env=command_env({"HOME": str(home)}), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    import pwd

    expected = pwd.getpwuid(os.geteuid()).pw_dir
    expected = expected if os.path.isdir(expected) else "/"
    assert (site.output / "home" / "latest" / "output.log").read_text() == f"{expected}\n"


def test_command_list_stops_at_first_failure(site):
    marker = site.root / "third ran"
    site.job("list", job_yaml(command=["echo first", "sh -c 'echo second; exit 4'",
                                       f"touch {q(marker)}"]))
    assert site.run_job("list").returncode == 4
    assert (site.output / "list" / "latest" / "output.log").read_text() == "first\nsecond\n"
    assert not marker.exists()
    assert "command 2" in latest_status(site, "list")["reason"]


def test_quoting_rules_no_shell(site):
    site.job("quote", job_yaml(command="printf '%s|' 'a b' \"c'd\" $HOME ';' '*'"))
    assert site.run_job("quote").returncode == 0
    assert (site.output / "quote" / "latest" / "output.log").read_text() == "a b|c'd|$HOME|;|*|"


def test_slow_start(site):
    site.job("slow", job_yaml(command="echo normal", slow_start_command="echo slow start"))
    assert site.run_job("--slow-start", "--job", "slow").returncode == 0
    assert (site.output / "slow" / "latest" / "output.log").read_text() == "slow start\n"
    assert latest_status(site, "slow")["command"] == ["echo slow start"]
    assert site.run_job("-j", "slow").returncode == 0
    assert (site.output / "slow" / "latest" / "output.log").read_text() == "normal\n"


def test_100_mb_without_newline_byte_for_byte(site):
    size = 100 * 1024 * 1024
    code = ("import os,sys; b=bytes(range(256))*4096; n=%d\n"
            "while n>0:\n  c=b[:n]; sys.stdout.buffer.write(c); n-=len(c)\n" % size)
    script = site.root / "gen.py"
    script.write_text(code)
    site.job("big", job_yaml(command=f"{PY} {q(script)}"))
    assert site.run_job("big").returncode == 0
    out = site.output / "big" / "latest" / "output.log"
    assert out.stat().st_size == size
    expected = hashlib.sha256()
    block = bytes(range(256)) * 4096
    left = size
    while left:
        chunk = block[:left]
        expected.update(chunk)
        left -= len(chunk)
    got = hashlib.sha256()
    with open(out, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            got.update(chunk)
    assert got.hexdigest() == expected.hexdigest()


def test_stdout_and_stderr_interleave_in_one_log(site):
    site.job("both", job_yaml(command="sh -c 'echo out; echo err >&2; printf \"\\0\\377\"'"))
    assert site.run_job("both").returncode == 0
    assert (site.output / "both" / "latest" / "output.log").read_bytes() == b"out\nerr\n\0\xff"


def test_max_output_caps_the_log_and_the_job_completes(tmp_path):
    site = new_site(tmp_path, max_output="1K")
    site.job("cap", job_yaml(command=f"{PY} -c 'import sys; sys.stdout.write(\"x\" * 100000)'"))
    assert site.run_job("cap").returncode == 0
    assert (site.output / "cap" / "latest" / "output.log").read_bytes() == b"x" * 1024
    assert "max_output" in latest_status(site, "cap")["reason"]


def test_output_is_teed_to_a_terminal(site):
    site.job("tty", job_yaml(command="sh -c 'echo on the terminal; echo too >&2'"))
    argv = command("run-job") + ["--config", str(site.config), "tty"]
    status, seen = run_on_terminal(argv)
    assert status == 0
    assert b"on the terminal" in seen and b"too" in seen
    assert (site.output / "tty" / "latest" / "output.log").read_text() == "on the terminal\ntoo\n"


def _imports(site, cache_home, slug):
    """Modules imported by one ``run-job --job`` (python -X importtime)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "run_job",
                             "--config", str(site.config), slug],
                            env=command_env({"XDG_CACHE_HOME": str(cache_home)}),
                            capture_output=True, text=True)
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines()
               if line.startswith("import time:")}
    return result.returncode, modules


def test_validation_cache_hot_path_and_invalidation(site):
    cache_home = site.root / "cache home"
    site.job("cached", job_yaml(command="echo first"))
    code, cold = _imports(site, cache_home, "cached")
    assert code == 0 and "yaml" in cold
    code, warm = _imports(site, cache_home, "cached")
    assert code == 0
    assert not {"yaml", "jsonschema", "croniter", "argparse", "subprocess"} & warm
    entries = list((cache_home / "process-control").iterdir())
    assert len(entries) == 1 and stat.S_IMODE(entries[0].stat().st_mode) == 0o600
    # any change of the job file is a miss: new content runs, bad content fails
    site.job("cached", job_yaml(command="echo second"))
    code, modules = _imports(site, cache_home, "cached")
    assert code == 0 and "yaml" in modules
    assert (site.output / "cached" / "latest" / "output.log").read_text() == "second\n"
    site.job("cached", job_yaml(command="echo third", bogus_key=1))
    assert _imports(site, cache_home, "cached")[0] == 125
    # and so is a change of the config
    site.job("cached", job_yaml(command="echo fourth"))
    assert _imports(site, cache_home, "cached")[0] == 0
    site.config.write_text(site.config.read_text() + "keep_runs: 1\n")
    code, modules = _imports(site, cache_home, "cached")
    assert code == 0 and "yaml" in modules
    assert len(run_dirs(site, "cached")) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="the ownership rules apply as root")
def test_cache_does_not_outlive_a_config_made_writable(site):
    cache_home = site.root / "cache home"
    site.job("ok", job_yaml(command="/bin/true"))
    assert _imports(site, cache_home, "ok")[0] == 0
    assert _imports(site, cache_home, "ok")[0] == 0  # warm
    site.config.chmod(0o666)
    code, _ = _imports(site, cache_home, "ok")
    assert code == 125


def test_retention_keep_days(tmp_path):
    site = new_site(tmp_path, keep_days=2)
    site.job("old", job_yaml(command="/bin/true"))
    folder = site.output / "old"
    folder.mkdir(parents=True)
    ancient = folder / "20200101T000000.000000Z-1"  # a run folder from long ago
    ancient.mkdir()
    (ancient / "output.log").write_text("x")
    (ancient / "nested").mkdir()
    (ancient / "nested" / "f").write_text("y")
    other = folder / "notes from the operator"  # not a run folder: left alone
    other.mkdir()
    assert site.run_job("old").returncode == 0
    assert not ancient.exists()
    assert other.exists()
    assert len(run_dirs(site, "old")) == 2  # the new run and the operator's folder
