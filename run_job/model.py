"""Frozen dataclasses: the validated global config and job files.

The config pipeline (``config.py``, ``jobs.py``) is the only producer of these;
everything else consumes them and never reads raw YAML dicts.
Durations are seconds (float); absent optional values are ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

DEFAULT_CRON_TEMPLATE = "# Generated from {source}\n{schedule} {user} {command}\n"


@dataclass(frozen=True)
class SlurmConfig:
    """Global ``slurm`` section."""

    partition: str | None = None
    service_partition: str = "service-pool"
    unreachable_timeout: float = 600.0


@dataclass(frozen=True)
class MailConfig:
    """Global ``mail`` section (SMTP settings)."""

    smtp_host: str = "localhost"
    smtp_port: int = 25
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_file: Path | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class Config:
    """The global config, defaults merged, paths absolute."""

    source: Path | None  # the file it came from; None = embedded defaults only
    job_directory: Path
    output_directory: Path
    state_directory: Path
    run_directory: Path
    output_crontab: str  # an absolute path, or "console" for stdout
    user: str
    runner_path: str
    service_runner_path: str
    cron_template: str = DEFAULT_CRON_TEMPLATE
    # Raw defaults for job keys; merged into each job before its validation.
    default_job_config: Mapping[str, Any] = field(default_factory=dict)
    logging: Mapping[str, Any] | None = None
    keep_runs: int = 100
    keep_days: float | None = None
    history_length: int = 100
    max_output: int | None = None  # bytes
    mail: MailConfig = field(default_factory=MailConfig)
    hooks_directory: Path | None = None
    cron_environment: tuple[tuple[str, str], ...] = ()
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    sha256: str = ""  # of the config file's bytes ("" without a file)


@dataclass(frozen=True)
class FailMail:
    from_address: str
    to_addresses: tuple[str, ...]


@dataclass(frozen=True)
class JobSlurm:
    """A job's ``slurm`` section."""

    partition: str | None = None
    time: str | None = None  # Slurm's own time syntax, passed to --time
    options: tuple[str, ...] = ()  # allowlisted sbatch options, one argv word each


@dataclass(frozen=True)
class Service:
    """A job's ``service`` section: the job is a persistent Slurm service."""

    stop_signal: int = 15
    reload_signal: int = 1
    init_command: tuple[tuple[str, ...], ...] = ()  # argv lists, run in order
    keep_alive: str | None = None  # cron schedule of the watchdog entry
    stages: Path | None = None  # sbatch-service style stage executable


@dataclass(frozen=True)
class Job:
    """One validated job file."""

    slug: str
    path: Path
    sha256: str
    commands: tuple[tuple[str, ...], ...]  # argv of each command, in order
    command_text: tuple[str, ...]  # each command as written (for records)
    name: str | None = None
    description: str | None = None
    slow_start_commands: tuple[tuple[str, ...], ...] | None = None
    slow_start_text: tuple[str, ...] | None = None
    schedule: str | None = None
    disabled: bool = False
    timeout: float | None = None  # seconds; None = no limit
    environment: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()
    allow_overtime: bool = False
    failure_threshold_for_mail: int = 1
    failmail: FailMail | None = None
    runner: str = "local"  # "local" or "slurm"
    slurm: JobSlurm = field(default_factory=JobSlurm)
    service: Service | None = None
    kill_grace: float = 10.0
    working_directory: Path | None = None

    @property
    def is_service(self) -> bool:
        return self.service is not None

    @property
    def display_name(self) -> str:
        return self.name or self.slug
