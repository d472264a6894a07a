"""Operator actions of the web page: run now, kill, pause, resume (SPEC §12).

The caller (``app.py``) has checked the operator and the CSRF token; here
each action is written to the audit log with the operator's name
(``pauses.audit``; a pause and a resume write their own entries through
``operate``) and then done, by the same library functions as the command
line:

* run now: ``run-job --config CONFIG --job SLUG``, the very command cron
  runs (``config.runner_path``), started detached: its own session, stdin,
  stdout and stderr on /dev/null, working folder ``/``, and cron's
  environment (``cron_environment``: PATH, SHELL, HOME, LOGNAME, USER and the
  config's ``cron_environment`` lines, nothing of the web server's). Its lock,
  records and history are run-job's own; a thread of the server reaps it.
  Only an existing, valid job file that is not a service is started.
* kill: ``kill.kill_job``, in a thread; the page waits a few seconds for it.
* pause with a reason (and an optional end), resume: ``operate.pause`` and
  ``operate.resume``, as ``run-job --pause/--resume`` (hooks, metrics file).
"""

from __future__ import annotations

import os
import subprocess
import threading
from datetime import datetime
from typing import Any

from run_job.run import pauses

CRON_PATH = "/usr/bin:/bin"  # Debian cron's PATH for /etc/cron.d entries
KILL_WAIT = 5.0  # seconds the page waits for a kill before saying it goes on


def run_argv(config: Any, slug: str) -> list[str]:
    """The command cron-generate writes for ``slug`` (pure)."""
    config_args = ["--config", os.fspath(config.source)] if config.source is not None else []
    return [config.runner_path, *config_args, "--job", slug]


def cron_environment(config: Any, home: str, user: str) -> dict[str, str]:
    """The environment cron gives an entry of ``user`` (pure): its own few
    variables, then the crontab's ``cron_environment`` lines."""
    env = {"PATH": CRON_PATH, "SHELL": "/bin/sh", "HOME": home, "LOGNAME": user, "USER": user}
    env.update({name: str(value) for name, value in config.cron_environment})
    return env


def load_runnable(config: Any, config_path: str | None, slug: str) -> Any:
    """The validated job ``slug`` if ``run-job --job`` would run it; raises
    ProcessControlError (a missing or invalid file, a service) otherwise."""
    from run_job.config.cache import load_validated
    from run_job.run.controller import check_runnable

    _, job = load_validated(config_path, slug, config=config)
    check_runnable(job)
    return job


def run_now(config: Any, config_path: str | None, slug: str, *, by: str) -> int:
    """Start a run of ``slug`` as cron would; returns run-job's pid."""
    import pwd

    from run_job.errors import ProcessControlError

    load_runnable(config, config_path, slug)
    pauses.audit(config.state_directory, "run", slug, by=by, via="web")
    entry = pwd.getpwuid(os.geteuid())
    argv = run_argv(config, slug)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd="/", start_new_session=True,
                                close_fds=True, env=cron_environment(config, entry.pw_dir, entry.pw_name))
    except OSError as err:
        raise ProcessControlError(f"cannot start {argv[0]}: {err.strerror} (config key runner_path)") from err
    threading.Thread(target=proc.wait, name=f"reap run-job {proc.pid}", daemon=True).start()
    return proc.pid


def kill(config: Any, config_path: str | None, slug: str, *, by: str) -> tuple[int, str] | None:
    """Stop the running run of ``slug`` (``kill.kill_job``): its (status,
    message), or None when it is still being stopped after ``KILL_WAIT``."""
    from run_job.config.cache import load_validated
    from run_job.errors import ProcessControlError
    from run_job.model import Job
    from run_job.run.kill import kill_job

    try:
        _, job = load_validated(config_path, slug, config=config)
    except ProcessControlError:
        # as run-job --kill-job: a broken job file must not make its run unkillable
        from run_job.config.jobs import job_path

        job = Job(slug=slug, path=job_path(config, slug), sha256="", commands=(), command_text=())
    pauses.audit(config.state_directory, "kill", slug, by=by, via="web")
    result: list[Any] = []

    def work() -> None:
        try:
            result.append(kill_job(config, job))
        except Exception as err:  # noqa: BLE001 - reported on the page
            result.append((2, f"{slug}: {err}"))

    worker = threading.Thread(target=work, name=f"kill {slug}", daemon=True)
    worker.start()
    worker.join(KILL_WAIT)
    return result[0] if result else None


def pause(config: Any, config_path: str | None, slug: str, *, by: str, reason: str,
          until: datetime | None) -> dict[str, Any]:
    """As ``run-job --pause`` does it (``operate.pause``): the record and its
    audit line, the ``pause`` hooks, the job's metrics file."""
    from run_job import operate

    return operate.pause(config, slug, reason=reason, until=until, by=by, config_path=config_path)


def resume(config: Any, config_path: str | None, slug: str, *, by: str) -> dict[str, Any] | None:
    """As ``run-job --resume`` does it (``operate.resume``)."""
    from run_job import operate

    return operate.resume(config, slug, by=by, config_path=config_path)
