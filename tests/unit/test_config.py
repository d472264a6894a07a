"""The global config pipeline: lookup order, defaults, merge, relative paths, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from run_job.config.settings import default_settings, load_config, locate_config
from run_job.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o644)
    return path


def test_lookup_order_flag_then_variable_then_system(tmp_path: Path) -> None:
    flag = write(tmp_path / "a.yaml", "keep_runs: 1\n")
    var = write(tmp_path / "b.yaml", "keep_runs: 2\n")
    assert locate_config(str(flag), {"PROCESS_CONTROL_CONFIG": str(var)}) == flag
    assert locate_config(None, {"PROCESS_CONTROL_CONFIG": str(var)}) == var
    assert load_config(None, {"PROCESS_CONTROL_CONFIG": str(var)}).keep_runs == 2


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_named_config_that_is_missing_is_an_error(tmp_path: Path, how: str) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        if how == "flag":
            load_config(missing, {})
        else:
            load_config(None, {"PROCESS_CONTROL_CONFIG": missing})


def test_root_defaults() -> None:
    d = default_settings(uid=0, environ={})
    assert d["job_directory"] == "/var/lib/process-control"
    assert d["output_directory"] == "/var/log/process-control"
    assert d["state_directory"] == "/var/cache/process-control"
    assert d["run_directory"] == "/run/process-control"
    assert d["output_crontab"] == "/etc/cron.d/process-control"
    assert d["user"] == "root"
    assert os.path.isabs(d["runner_path"]) and d["runner_path"].endswith("run-job")
    assert d["service_runner_path"].endswith("sbatch-service")


def test_user_defaults_follow_xdg() -> None:
    env = {"HOME": "/home/ann", "XDG_CONFIG_HOME": "/cfg", "XDG_STATE_HOME": "/st", "XDG_RUNTIME_DIR": "/run/user/7"}
    d = default_settings(uid=4242, environ=env)
    assert d["job_directory"] == "/cfg/process-control/jobs"
    assert d["output_directory"] == "/st/process-control/log"
    assert d["state_directory"] == "/st/process-control/state"
    assert d["run_directory"] == "/run/user/7/process-control"
    assert d["output_crontab"] == "console"
    d = default_settings(uid=4242, environ={"HOME": "/home/ann"})
    assert d["job_directory"] == "/home/ann/.config/process-control/jobs"
    assert d["run_directory"] == "/home/ann/.local/state/process-control/run"


def test_partial_file_gets_defaults_and_relative_paths_resolve_to_its_folder(tmp_path: Path) -> None:
    cfg = write(tmp_path / "etc dir" / "pc.yaml", "job_directory: jobs\nkeep_runs: 5\nmax_output: 1G\n"
                                                 "slurm: {unreachable_timeout: 2m}\nmail: {timeout: 5s}\n")
    config = load_config(str(cfg), {})
    assert config.job_directory == tmp_path / "etc dir" / "jobs"
    assert config.keep_runs == 5 and config.history_length == 100
    assert config.max_output == 1024 ** 3
    assert config.slurm.unreachable_timeout == 120 and config.slurm.service_partition == "service-pool"
    assert config.mail.timeout == 5 and config.mail.smtp_port == 25
    assert config.output_directory == Path(default_settings(environ={})["output_directory"])


@pytest.mark.parametrize("value, seconds", [("10", 10.0), ("2.5", 2.5), ("1m", 60.0), ("'45s'", 45.0)])
def test_mail_timeout_is_seconds_as_smtplib_has_it(tmp_path: Path, value: str, seconds: float) -> None:
    cfg = write(tmp_path / "pc.yaml", f"mail:\n  timeout: {value}\n")
    assert load_config(str(cfg), {}).mail.timeout == seconds


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    cfg = write(tmp_path / "pc.yaml", "# nothing set\n")
    assert load_config(str(cfg), {}).keep_runs == 100


def test_reference_example_config_loads() -> None:
    ref = Path(__file__).resolve().parents[1] / "data" / "reference" / "process-control.example.yaml"
    config = load_config(str(ref), {})
    assert config.user == "process-control"
    assert config.runner_path == "/usr/bin/run-job"
    assert config.default_job_config["timeout"] == 10
    assert config.logging["handlers"]["syslog"]["address"] == "/dev/log"


@pytest.mark.parametrize("text,expected", [
    ("job_directry: /x\n", "unknown key 'job_directry'; did you mean 'job_directory'?"),
    ("keep_runs: 0\n", "keep_runs"),
    ("keep_runs: many\n", "expected a whole number"),
    ("default_job_config:\n  timout: 5\n", "unknown key 'timout'; did you mean 'timeout'?"),
    ("default_job_config:\n  timeout: forever\n", "default_job_config.timeout"),
    ("cron_template: '{schedule} {user} {cmd}'\n", "cron_template"),
    ("cron_template: '{schedule} {user}'\n", "must contain {schedule} and {command}"),
    ("runner_path: /usr/bin/run job\n", "runner_path must be a plain absolute path"),
    ("cron_environment:\n  MAILTO: \"a\\nb\"\n", "must be one line"),
    ("cron_environment:\n  1BAD: x\n", "cron_environment"),
    ("mail: {ssl: true, starttls: true}\n", "choose ssl or starttls"),
    ("mail: {timeout: 0}\n", "mail.timeout"),
    ("mail: {timeout: 0s}\n", "mail.timeout must be more than 0 seconds"),
    ("mail: {timeout: -3}\n", "mail.timeout"),
    ("mail: {timeout: ten}\n", "write seconds as a number (10) or a duration"),
    ("slurm: {unreachable_timeout: 10}\n", "slurm.unreachable_timeout"),
    ("user: 'root; rm -rf /'\n", "user"),
    ("- a list\n", "must be a YAML mapping"),
    ("logging: {handlers: {}}\n", "version: 1"),
])
def test_bad_config_gets_clear_message_with_line(tmp_path: Path, text: str, expected: str) -> None:
    cfg = write(tmp_path / "pc.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(str(cfg), {})
    assert expected in str(info.value)
    assert str(cfg) in str(info.value)


@pytest.mark.parametrize("text,expected", [
    ('user: "root\\n"\n', "user must be one line"),
    ('cron_environment:\n  "A\\n": x\n', "cron_environment"),
    ('job_directory: "/x\\n* * * * * root evil"\n', "job_directory must be one line"),
    ('slurm: {partition: "debug\\n"}\n', "slurm.partition must be one line"),
])
def test_values_that_reach_the_crontab_or_argv_must_be_one_line(tmp_path: Path, text: str, expected: str) -> None:
    cfg = write(tmp_path / "pc.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(str(cfg), {})
    assert expected in str(info.value)


def test_equal_records_hash_equal():
    """Record.__hash__ agrees with __eq__, also for records holding mappings and lists."""
    from run_job.config.settings import build_config, default_settings

    one = build_config(default_settings(), None, "")
    two = build_config(default_settings(), None, "")
    assert one == two and one is not two
    assert hash(one) == hash(two)
    assert len({one, two}) == 1
