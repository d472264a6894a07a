"""Messages a new user meets, through the real commands: one line each, what
is wrong, where, and what to write instead; a defined exit status."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pctest import Site, command, command_env, run

TIMEOUT = 60
TIMEOUT_HINT = "is not a timeout: write minutes as a number (30) or a duration such as '90s', '15m', '2h'"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")


# ---------------------------------------------------------------- durations and bad values


@pytest.mark.parametrize("value, shown", [("abc", "'abc'"), ("-5", "-5"), ('"5 minutes"', "'5 minutes'")])
def test_bad_timeout_is_one_short_line_everywhere(site: Site, value: str, shown: str) -> None:
    site.job("slow", f"command: /bin/true\ntimeout: {value}\n")
    expected = f"{site.jobs / 'slow.yaml'}:2: timeout: {shown} {TIMEOUT_HINT}"
    res = site.run_job("--validate")
    assert res.returncode == 1
    assert expected in res.stdout.splitlines()
    res = site.run_job("--job", "slow")
    assert res.returncode == 125
    assert res.stderr.splitlines() == [f"run-job: {expected}"]
    res = site.run_job("--status")
    assert f"  INVALID: {expected}" in res.stdout.splitlines()
    for out in (res.stdout, site.run_job("--validate").stdout):
        assert "On expiry" not in out and out.count(TIMEOUT_HINT) == 1  # not the schema's description


def test_bare_number_durations_say_what_to_write(site: Site) -> None:
    site.config.write_text(site.config.read_text() + "slurm:\n  unreachable_timeout: 600\n"
                                                      "default_job_config:\n  kill_grace: 5\n")
    res = site.run_job("--validate")
    assert res.returncode == 1
    assert ("slurm.unreachable_timeout: 600 is not a duration: write '600s' or '600m': a bare number is "
            "ambiguous here") in res.stdout
    site.config.write_text(site.config.read_text().replace("unreachable_timeout: 600", "unreachable_timeout: 10m"))
    res = site.run_job("--validate")
    assert ("default_job_config.kill_grace: 5 is not a duration: write '5s' or '5m': a bare number is "
            "ambiguous here") in res.stdout
    site.job("grace", "command: /bin/true\nkill_grace: 2.5\n")
    res = site.run_job("--validate", str(site.jobs / "grace.yaml"))
    assert "kill_grace: 2.5 is not a duration: write '2.5s' or '2.5m'" in res.stdout


def test_mail_timeout_in_seconds(site: Site) -> None:
    site.config.write_text(site.config.read_text() + "mail:\n  timeout: 10\n")
    site.job("ok", "command: /bin/true\n")
    res = site.run_job("--validate")
    assert res.returncode == 0, res.stdout
    assert site.run_job("--job", "ok").returncode == 0


# ---------------------------------------------------------------- mail.password_file


@pytest.mark.parametrize("case", ["world-readable", "missing", "fifo", "symlink", "empty", "no-file-named"])
def test_password_file_problems_are_reported_by_validate(site: Site, tmp_path: Path, case: str) -> None:
    secret = tmp_path / "smtp password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    named = secret
    expected = {"world-readable": "mode 0644 lets others read or change it; run: chmod 600",
                "missing": "does not exist", "fifo": "not a regular file (a FIFO)",
                "symlink": "is a symbolic link", "empty": "empty",
                "no-file-named": "mail: username is set but password_file is not"}[case]
    if case == "world-readable":
        secret.chmod(0o644)
    elif case == "missing":
        named = tmp_path / "nothing"
    elif case == "fifo":
        named = tmp_path / "fifo"
        os.mkfifo(named, 0o600)
    elif case == "symlink":
        named = tmp_path / "link"
        named.symlink_to(secret)
    elif case == "empty":
        secret.write_text("")
    mail = "mail:\n  username: pc\n" + ("" if case == "no-file-named" else f"  password_file: '{named}'\n")
    site.config.write_text(site.config.read_text() + mail)
    site.job("ok", "command: /bin/true\n")
    res = site.run_job("--validate", timeout=TIMEOUT)
    assert res.returncode == 1, res.stdout
    line = next(l for l in res.stdout.splitlines() if expected in l)
    assert line.startswith(f"{site.config}: mail")
    assert "s3cret" not in res.stdout
    doc = json.loads(site.run_job("--validate", "--json", timeout=TIMEOUT).stdout)
    config_entry = next(f for f in doc["files"] if f["kind"] == "config")
    assert config_entry["valid"] is False
    # the same config still runs jobs: the problem is the mail's, found early
    assert site.run_job("--job", "ok").returncode == 0


def test_a_good_password_file_passes(site: Site, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    site.config.write_text(site.config.read_text() + f"mail:\n  username: pc\n  password_file: '{secret}'\n")
    res = site.run_job("--validate")
    assert res.returncode == 0, res.stdout


# ---------------------------------------------------------------- closed pipes


def closed_pipe_run(name: str, *args: str, which: str, env: dict | None = None) -> int:
    """Exit status of the command with its stdout or stderr a pipe nobody reads."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        streams = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, which: write_end}
        proc = subprocess.run(command(name) + list(args), env=command_env(env), timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL, **streams)
    finally:
        os.close(write_end)
    return proc.returncode


@pytest.mark.parametrize("name, args, status", [
    ("run-job", ["--bogus"], 2),
    ("run-job", [], 2),
    ("run-job", ["--job", "../x", "--config", "{config}"], 125),
    ("run-job", ["--config", "/nonexistent/pc.yaml", "--status"], 125),
    ("cron-generate", ["--bogus"], 2),
    ("cron-generate", ["--config", "/nonexistent/pc.yaml"], 2),
    ("sbatch-service", ["--bogus"], 2),
    ("sbatch-service", [], 2),
    ("sbatch-service", ["--config", "/nonexistent/pc.yaml", "status"], 2),
])
def test_an_error_keeps_its_status_when_stderr_is_a_closed_pipe(site: Site, name: str, args: list,
                                                                status: int) -> None:
    args = [a.replace("{config}", str(site.config)) for a in args]
    assert closed_pipe_run(name, *args, which="stderr") == status


@pytest.mark.parametrize("name, args", [
    ("run-job", ["--status"]), ("run-job", ["--list-jobs", "--json"]), ("run-job", ["--help"]),
    ("run-job", ["--version"]), ("cron-generate", ["--stdout"]), ("cron-generate", ["--help"]),
    ("sbatch-service", ["--help"]), ("sbatch-service", ["--version"]),
])
def test_a_closed_stdout_exits_141_as_sigpipe_would(site: Site, name: str, args: list) -> None:
    for i in range(50):
        site.job(f"job-{i:02d}", "command: /bin/true\nschedule: '*/5 * * * *'\n")
    config = [] if "--help" in args or "--version" in args else ["--config", str(site.config)]
    assert closed_pipe_run(name, *config, *args, which="stdout") == 141


def test_a_closed_pipe_prints_no_traceback(site: Site) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(command("run-job") + ["--config", str(site.config), "--status"],
                              env=command_env(), stdout=write_end, stderr=subprocess.PIPE, timeout=TIMEOUT)
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == b""


# ---------------------------------------------------------------- one line, escaped


def test_environment_name_with_a_newline_is_one_line(site: Site) -> None:
    site.job("env", 'command: /bin/true\nenvironment:\n  "A\\nB": 1\n')
    res = site.run_job("--validate")
    assert res.returncode == 1
    line = f"{site.jobs / 'env.yaml'}:3: environment.A\\nB: an environment name cannot hold control characters"
    assert any(l.startswith(line) for l in res.stdout.splitlines()), res.stdout
    assert res.stdout.count("\n") == 2  # the problem and the summary
    res = site.run_job("--job", "env")
    assert res.returncode == 125 and len(res.stderr.splitlines()) == 1


def test_status_list_and_history_show_control_characters_escaped(site: Site) -> None:
    site.job("esc", 'name: "\\e[31mRED\\e[0m"\ndescription: "x\\e]0;pwned\\ay"\ntag: ["\\e[2J"]\n'
                    "command: /bin/false\n")
    site.job("fine", "command: /bin/true\n")
    (site.jobs / "bad\x1b[2Jname.yaml").write_text("command: /bin/true\n")
    assert site.run_job("--job", "esc").returncode == 1
    for args in (["--status"], ["--list-jobs"], ["--history", "esc"], ["--validate"]):
        res = site.run_job(*args)
        assert "\x1b" not in res.stdout and "\x07" not in res.stdout, args
    status = site.run_job("--status").stdout
    assert "esc: \\x1b[31mRED\\x1b[0m  [\\x1b[2J]" in status
    assert "  x\\x1b]0;pwned\\x07y" in status
    assert "bad\\x1b[2Jname" in status
    doc = json.loads(site.run_job("--status", "--json").stdout)  # JSON stays exact
    row = next(r for r in doc["jobs"] if r["job"] == "esc")
    assert row["name"] == "\x1b[31mRED\x1b[0m" and row["tags"] == ["\x1b[2J"]


# ---------------------------------------------------------------- --version, sbatch-service usage


@pytest.mark.parametrize("name", ["run-job", "cron-generate", "sbatch-service"])
def test_version_in_every_command_its_help_man_page_and_completion(name: str) -> None:
    from run_job import __version__

    res = run(name, "--version")
    assert res.returncode == 0 and res.stdout == f"{name} {__version__}\n", res.stderr
    assert "--version" in run(name, "--help").stdout
    repo = Path(__file__).resolve().parents[2]
    assert "\\-\\-version" in (repo / "docs" / "man" / f"{name}.1").read_text()
    function = "_" + name.replace("-", "_")
    script = (f". {repo / 'contrib' / 'bash-completion' / name}\n"
              f"COMP_WORDS=({name} --ver); COMP_CWORD=1; {function} {name} --ver {name}\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.stdout.split() == ["--version"], done.stderr


def test_sbatch_service_without_a_verb_agrees_with_its_help() -> None:
    res = run("sbatch-service")
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        "sbatch-service: give a verb: sbatch-service {init|deploy|start|stop|restart|reload|status|purge} "
        "[SERVICE ...]; without SERVICE, every verb but init applies to all services (see sbatch-service --help)"]
    assert "default: every service" in run("sbatch-service", "--help").stdout
    res = run("sbatch-service", "bogus")
    assert res.returncode == 2 and "unknown verb 'bogus'" in res.stderr


# ---------------------------------------------------------------- --validate: config apart, typos


def test_validate_counts_the_config_apart_from_the_job_files(site: Site) -> None:
    for i in range(3):
        site.job(f"ok-{i}", "command: /bin/true\n")
    res = site.run_job("--validate")
    assert res.returncode == 0 and res.stdout.splitlines()[-1] == "OK: config and 3 job files valid"
    site.job("bad", "command: /bin/true\ntimeout: soon\n")
    site.config.write_text(site.config.read_text() + "colour: blue\n")
    res = site.run_job("--validate")
    assert res.stdout.splitlines()[-1] == "FAILED: 1 of 4 job files invalid, config invalid, 2 errors"
    summary = json.loads(site.run_job("--validate", "--json").stdout)["summary"]
    assert summary == {"checked": 5, "invalid": 2, "errors": 2, "job_files": 4, "invalid_job_files": 1,
                       "configs": 1, "invalid_configs": 1, "job_files_skipped": False}
    # the config named again among the targets (as a config repo's CI does) is checked once
    res = site.run_job("--validate", str(site.config), str(site.jobs))
    assert res.stdout.splitlines()[-1] == "FAILED: 1 of 4 job files invalid, config invalid, 2 errors"


def test_a_config_typo_does_not_make_validate_look_elsewhere(site: Site) -> None:
    site.job("ok", "command: /bin/true\n")
    site.config.write_text(site.config.read_text() + "job_directry: /elsewhere\n")
    res = site.run_job("--validate")
    assert res.returncode == 1
    assert "unknown key 'job_directry'; did you mean 'job_directory'?" in res.stdout
    assert "/var/lib/process-control" not in res.stdout and "does not exist" not in res.stdout
    assert res.stdout.splitlines()[-1] == "FAILED: 0 of 1 job file invalid, config invalid, 1 error"
    # a config that cannot even be read as YAML: job files not checked, and said so
    site.config.write_text("job_directory: [unclosed\n")
    res = site.run_job("--validate")
    assert res.returncode == 1 and "/var/lib/process-control" not in res.stdout
    assert "job files not checked: the config is invalid" in res.stdout
    assert res.stdout.splitlines()[-1] == "FAILED: job files not checked, config invalid, 1 error"
    doc = json.loads(site.run_job("--validate", "--json").stdout)
    assert doc["valid"] is False and doc["summary"]["job_files_skipped"] is True


# ---------------------------------------------------------------- job name length


def test_a_too_long_job_name_is_one_clear_line(site: Site, tmp_path: Path) -> None:
    site.job("ok", "command: /bin/true\n")
    for length in (201, 300):
        name = "a" * length
        for args in (["--job", name], [name], ["--history", name], ["--kill-job", name], ["--validate", name]):
            res = site.run_job(*args)
            out = res.stdout + res.stderr
            assert res.returncode in (1, 125), (args, out)
            assert "internal error" not in out and "Traceback" not in out
            assert f"{length} characters, more than the 200 a job name may have" in out, (args, out)
            assert len(res.stderr.splitlines()) <= 1
    res = run("sbatch-service", "--config", str(site.config), "status", "s" * 300)
    assert res.returncode == 2 and "at most 200 characters" in res.stderr and "internal" not in res.stderr
    # a file in the job folder whose slug is too long (250 + ".yaml" fits a 255-byte file name)
    (site.jobs / ("b" * 250 + ".yaml")).write_text("command: /bin/true\n")
    res = site.run_job("--validate")
    assert res.returncode == 1 and "250 characters, more than the 200 a job name may have" in res.stdout
    res = site.run_job("--status")
    assert res.returncode == 0 and "INVALID" in res.stdout
    assert site.run_job("--job", "b" * 250).returncode == 125
    # a path longer than a file name may be
    res = site.run_job("--validate", str(tmp_path / ("c" * 300 + ".yaml")))
    assert res.returncode == 1 and "File name too long" in res.stdout and "internal" not in res.stderr


def test_a_200_character_name_works(site: Site) -> None:
    name = "n" * 200
    site.job(name, "command: /bin/true\n")
    assert site.run_job("--validate").returncode == 0
    res = site.run_job("--job", name)
    assert res.returncode == 0, res.stderr
    assert site.run_job("--history", name).returncode == 0


# ---------------------------------------------------------------- a machine without a job directory


def test_a_config_whose_job_directory_is_missing_says_what_to_do(tmp_path: Path) -> None:
    config = tmp_path / "pc.yaml"
    missing = tmp_path / "no jobs here"
    config.write_text(json.dumps({"job_directory": str(missing), "output_directory": str(tmp_path / "log"),
                                  "state_directory": str(tmp_path / "state"),
                                  "run_directory": str(tmp_path / "run"), "output_crontab": "console"}))
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    expected = (f"no job directory {missing} (job_directory of {config}): create it and put job files there, "
                f"or set job_directory in {config}")
    for args in (["hello"], ["--list-jobs"], ["--status"]):
        res = run("run-job", "--config", str(config), *args, env=env)
        assert res.returncode == 125, (args, res.stderr)
        assert res.stderr.splitlines() == [f"run-job: {expected}"], args
    assert not missing.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the embedded defaults name /var/lib/process-control only for root")
@pytest.mark.skipif(os.path.exists("/etc/process-control.yaml") or os.path.exists("/var/lib/process-control"),
                    reason="this machine has a config or a job directory")
def test_a_machine_without_a_config_says_what_to_do(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path / "state")}
    expected = ("run-job: no job directory /var/lib/process-control: create it and put job files there, or "
                "name a config with --config or $PROCESS_CONTROL_CONFIG")
    for args in (["hello"], ["--job", "hello"], ["--list-jobs"], ["--status"]):
        res = run("run-job", *args, env=env)  # PROCESS_CONTROL_CONFIG is unset by command_env
        assert res.returncode == 125, (args, res.stderr)
        assert res.stderr.splitlines() == [expected], args
    assert not os.path.exists("/var/lib/process-control")
