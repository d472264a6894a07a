"""The global config pipeline: find, read, validate, merge defaults -> ``Config``.

Lookup order (SPEC §2): ``--config PATH``, then ``$PROCESS_CONTROL_CONFIG``,
then ``/etc/process-control.yaml``; a named file that is missing is an error;
with no file at all the embedded defaults apply (root's or the invoking
user's). YAML, JSON Schema and croniter are imported only when a file is
actually validated, so that a cached ``run-job --job`` starts fast.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Mapping

from run_job.errors import ConfigError, Problem
from run_job.security import check_file_security
from run_job.model import DEFAULT_CRON_TEMPLATE, Config, MailConfig, SlurmConfig, WebConfig

SYSTEM_CONFIG = "/etc/process-control.yaml"
ENV_VAR = "PROCESS_CONTROL_CONFIG"
_PATH_KEYS = ("job_directory", "output_directory", "state_directory", "run_directory", "hooks_directory")


def locate_config(path: str | None = None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The config file to use, or None for the embedded defaults."""
    environ = os.environ if environ is None else environ
    if path:
        named, origin = path, "--config"
    elif environ.get(ENV_VAR):
        named, origin = environ[ENV_VAR], f"${ENV_VAR}"
    else:
        return Path(SYSTEM_CONFIG) if os.path.exists(SYSTEM_CONFIG) else None
    candidate = Path(named)
    try:
        mode = os.stat(candidate).st_mode
    except OSError as err:
        what = "does not exist" if err.errno == errno.ENOENT else f"cannot be examined: {err.strerror}"
        raise ConfigError(f"{named}: the config file named by {origin} {what}") from None
    if not stat.S_ISREG(mode):
        from run_job.security import kind_of

        raise ConfigError(f"{named}: the config file named by {origin} is not a regular file ({kind_of(mode)})")
    return candidate.absolute()


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _installed_command(name: str) -> str:
    """Absolute path of an installed console script ``name`` (run-job, sbatch-service)."""
    import sys

    candidates = []
    if sys.argv and sys.argv[0]:
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), name))
    candidates.append(os.path.join(os.path.dirname(sys.executable), name))
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    import shutil

    found = shutil.which(name)
    return os.path.abspath(found) if found else f"/usr/bin/{name}"


def default_settings(uid: int | None = None, environ: Mapping[str, str] | None = None) -> dict:
    """The embedded defaults, as a raw mapping, for root or for another user."""
    environ = os.environ if environ is None else environ
    uid = os.geteuid() if uid is None else uid
    common = {
        "runner_path": _installed_command("run-job"),
        "service_runner_path": _installed_command("sbatch-service"),
        "cron_template": DEFAULT_CRON_TEMPLATE,
    }
    if uid == 0:
        return {
            **common,
            "job_directory": "/var/lib/process-control",
            "output_directory": "/var/log/process-control",
            "state_directory": "/var/cache/process-control",
            "run_directory": "/run/process-control",
            "output_crontab": "/etc/cron.d/process-control",
            "user": "root",
        }
    home = environ.get("HOME") or os.path.expanduser("~")
    config_home = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    state_home = environ.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state")
    state = os.path.join(state_home, "process-control")
    runtime = environ.get("XDG_RUNTIME_DIR")
    return {
        **common,
        "job_directory": os.path.join(config_home, "process-control", "jobs"),
        "output_directory": os.path.join(state, "log"),
        "state_directory": os.path.join(state, "state"),
        "run_directory": os.path.join(runtime, "process-control") if runtime else os.path.join(state, "run"),
        "output_crontab": "console",
        "user": _user_name(uid),
    }


def load_config(path: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Find and load the global config; raises ConfigError with every problem."""
    source = locate_config(path, environ)
    if source is None:
        return build_config(default_settings(environ=environ), None, "")
    raw_config, problems = read_config(source, environ)
    if problems:
        raise ConfigError(f"{source}: invalid config", tuple(problems))
    return raw_config  # type: ignore[return-value]


def read_config(source: Path, environ: Mapping[str, str] | None = None,
                raw: bytes | None = None) -> tuple[Config | None, list[Problem]]:
    """Validate the config file ``source`` (``raw``: its bytes, already read);
    the Config, or every problem."""
    import hashlib

    from run_job.config import yamlfile
    from run_job.config.schema import problems_from_schema

    name = str(source)
    if raw is None:
        raw, problem = yamlfile.read_input(source, "config file")
        if problem is not None:
            return None, [problem]
    loaded = yamlfile.load_bytes(raw, name, "config file")
    problems = list(loaded.problems)
    data = loaded.data
    if problems:
        return None, problems
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [Problem(name, f"the config file must be a YAML mapping of keys, not a {type(data).__name__}", 1)]
    problems.extend(problems_from_schema("config", data, loaded, name))
    if problems:
        return None, problems
    settings = default_settings(environ=environ)
    base = source.parent
    for key, value in data.items():
        if key in _PATH_KEYS or key in ("runner_path", "service_runner_path") or (
                key == "output_crontab" and value != "console"):
            value = str(base / value)
        settings[key] = value
    problems.extend(_cross_checks(settings, loaded, name, base))
    security = check_file_security(source, "config file", settings.get("user"), root_only=True)
    if security:
        problems.append(Problem(name, security))
    if problems:
        return None, problems
    try:
        config = build_config(settings, source, hashlib.sha256(raw).hexdigest())
    except ValueError as err:
        return None, [Problem(name, str(err))]
    return config, []


def _cross_checks(settings: dict, loaded, name: str, base: Path) -> list[Problem]:
    """Rules the schema cannot say: template placeholders, defaults, one-line values."""
    problems = []

    def at(*path: object) -> tuple:
        return loaded.position(path)

    template = settings.get("cron_template", DEFAULT_CRON_TEMPLATE)
    try:
        template.format(source="s", schedule="* * * * *", user="u", command="c")
    except (KeyError, IndexError, ValueError) as err:
        problems.append(Problem(name, f"cron_template: unknown or broken placeholder {err}; use {{source}}, "
                                      "{schedule}, {user} and {command}", *at("cron_template"), "cron_template"))
    else:
        if "{command}" not in template or "{schedule}" not in template:
            problems.append(Problem(name, "cron_template must contain {schedule} and {command}",
                                    *at("cron_template"), "cron_template"))
        if "\r" in template or "\0" in template:
            problems.append(Problem(name, "cron_template contains a carriage return or NUL byte",
                                    *at("cron_template"), "cron_template"))
    for key in ("runner_path", "service_runner_path"):
        value = settings.get(key, "")
        if any(c in value for c in "\n\r\0%") or any(c.isspace() for c in value):
            problems.append(Problem(name, f"{key} must be a plain absolute path without spaces, newlines or '%'",
                                    *at(key), key))
    for key in ("user", "output_crontab", *_PATH_KEYS):
        value = settings.get(key)
        if isinstance(value, str) and any(c in value for c in "\r\n\0"):
            problems.append(Problem(name, f"{key} must be one line (no CR, LF or NUL)", *at(key), key))
    for key in ("partition", "service_partition"):
        value = (settings.get("slurm") or {}).get(key)
        if isinstance(value, str) and any(c in value for c in "\r\n\0"):
            problems.append(Problem(name, f"slurm.{key} must be one line", *at("slurm", key), f"slurm.{key}"))
    env = settings.get("cron_environment") or {}
    for env_name, value in env.items():
        if any(c in env_name for c in "\r\n\0"):
            problems.append(Problem(name, "a cron_environment name must be one line",
                                    *at("cron_environment", env_name), "cron_environment"))
        text = str(value)
        if any(c in text for c in "\n\r\0"):
            problems.append(Problem(name, "a cron_environment value must be one line",
                                    *at("cron_environment", env_name), f"cron_environment.{env_name}"))
    defaults = settings.get("default_job_config") or {}
    if defaults:
        from run_job.config.jobs import check_partial_job

        problems.extend(check_partial_job(defaults, loaded, name, ("default_job_config",)))
    mail = settings.get("mail") or {}
    if "timeout" in mail:
        try:
            mail_timeout(mail["timeout"])
        except ValueError as err:
            problems.append(Problem(name, str(err), *at("mail", "timeout"), "mail.timeout"))
    if mail.get("ssl") and mail.get("starttls"):
        problems.append(Problem(name, "mail: choose ssl or starttls, not both", *at("mail"), "mail"))
    if settings.get("logging") is not None and settings["logging"].get("version") != 1:
        problems.append(Problem(name, "logging must be a logging.config.dictConfig mapping with 'version: 1'",
                                *at("logging"), "logging"))
    return problems


def build_config(settings: dict, source: Path | None, sha256: str) -> Config:
    """Raw settings (defaults already merged, paths absolute) -> Config."""
    from run_job.config.durations import parse_duration, parse_size

    mail = settings.get("mail") or {}
    slurm = settings.get("slurm") or {}
    password_file = mail.get("password_file")
    if password_file and source is not None:
        password_file = str(source.parent / password_file)
    max_output = settings.get("max_output")
    return Config(
        source=source,
        job_directory=Path(settings["job_directory"]),
        output_directory=Path(settings["output_directory"]),
        state_directory=Path(settings["state_directory"]),
        run_directory=Path(settings["run_directory"]),
        output_crontab=settings["output_crontab"],
        user=settings["user"],
        runner_path=settings["runner_path"],
        service_runner_path=settings["service_runner_path"],
        cron_template=settings.get("cron_template") or DEFAULT_CRON_TEMPLATE,
        default_job_config=dict(settings.get("default_job_config") or {}),
        logging=settings.get("logging"),
        keep_runs=int(settings.get("keep_runs", 100)),
        keep_days=float(settings["keep_days"]) if settings.get("keep_days") is not None else None,
        history_length=int(settings.get("history_length", 100)),
        max_output=parse_size(max_output) if max_output is not None else None,
        mail=MailConfig(
            smtp_host=mail.get("smtp_host", "localhost"),
            smtp_port=int(mail.get("smtp_port", 465 if mail.get("ssl") else 25)),
            starttls=bool(mail.get("starttls", False)),
            ssl=bool(mail.get("ssl", False)),
            username=mail.get("username"),
            password_file=Path(password_file) if password_file else None,
            timeout=mail_timeout(mail["timeout"]) if "timeout" in mail else 30.0,
        ),
        hooks_directory=Path(settings["hooks_directory"]) if settings.get("hooks_directory") else None,
        cron_environment=tuple((str(k), _env_text(v)) for k, v in (settings.get("cron_environment") or {}).items()),
        slurm=SlurmConfig(
            partition=slurm.get("partition"),
            service_partition=slurm.get("service_partition", "service-pool"),
            unreachable_timeout=parse_duration(slurm["unreachable_timeout"]) if "unreachable_timeout" in slurm
            else 600.0,
        ),
        sha256=sha256,
        hash_seed=settings.get("hash_seed"),
        metrics_directory=_path_in(settings.get("metrics") or {}, "textfile_directory", source),
        web=_web(settings.get("web") or {}),
    )


def _path_in(section: dict, key: str, source: Path | None) -> Path | None:
    """A path of a nested section, resolved against the config file's folder."""
    value = section.get(key)
    if not value:
        return None
    return source.parent / value if source is not None else Path(value)


def _web(web: dict) -> WebConfig:
    return WebConfig(listen=web.get("listen", "127.0.0.1:8950"),
                     operators=tuple(web.get("operators") or ()),
                     hosts=tuple(web.get("hosts") or ()),
                     show_output=bool(web.get("show_output", True)),
                     allow_remote=bool(web.get("allow_remote", False)))


def mail_timeout(value: object) -> float:
    """``mail.timeout`` in seconds: a bare number is seconds (as smtplib, and
    every mail client, have it), else a duration string; more than 0."""
    from run_job.config.durations import parse_duration

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = parse_duration(value)  # type: ignore[arg-type]
    if not seconds > 0:
        raise ValueError("mail.timeout must be more than 0 seconds: write seconds as a number (10) or a "
                         "duration such as '10s' or '1m'")
    return seconds


def _env_text(value: object) -> str:
    return str(value)
