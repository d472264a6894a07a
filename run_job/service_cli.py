"""The ``sbatch-service`` command line (SPEC §7): arguments, one error line, exit status.

``sbatch-service [--config PATH] [--debug] VERB [SERVICE ...]``. The decisions
and effects live in ``run_job/service.py``; this module resolves the services,
asks Slurm once (exit 4 when it cannot be asked: nothing is submitted or
cancelled), takes each service's lock and runs the verb.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from run_job.errors import (EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, ConfigError,
                            ProcessControlError, SlurmUnreachable, UsageError)

VERBS = ("init", "deploy", "start", "stop", "restart", "reload", "status", "purge")


def build_parser() -> argparse.ArgumentParser:
    from run_job import __version__
    from run_job.console import argument_parser_class

    class _Parser(argument_parser_class()):  # type: ignore[misc]  # a class made at run time
        def error(self, message: str):  # argparse would exit 2 with the usage; keep one line
            raise UsageError(f"{message} (see sbatch-service --help)")

    parser = _Parser(
        prog="sbatch-service",
        description="Lifecycle of persistent Slurm service jobs (job files with runner: slurm "
                    "and a service section).",
        epilog="Exit status: 0 success, 1 failure, 2 usage or config error, 3 not running "
               "(status), 4 state unknown: Slurm unreachable.")
    parser.add_argument("--config", metavar="PATH", help="global config file")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="show the version and exit")
    # Optional for argparse, required by run(): argparse would otherwise say
    # that SERVICE is required too, which --help rightly says it is not.
    parser.add_argument("verb", nargs="?", metavar="{" + "|".join(VERBS) + "}")
    parser.add_argument("services", nargs="*", metavar="SERVICE",
                        help="service slugs (default: every service; init needs names)")
    return parser


def _exit_of(err: BaseException) -> int:
    if isinstance(err, SlurmUnreachable):
        return EXIT_UNREACHABLE
    if isinstance(err, (UsageError, ConfigError)):
        return EXIT_USAGE
    return EXIT_FAILED


def _guarded(debug: bool, manager, slug: str, action) -> int:
    """Run ``action`` under the service's lock: its exit status, errors as one line."""
    from run_job.slurm import service as svc

    try:
        with manager.locked(slug):
            action()
        return svc.EXIT_OK
    except ProcessControlError as err:
        if debug:
            raise
        _error(err)
        return _exit_of(err)


def _purge_orphan(manager, slug: str) -> None:
    """State and logs of a service whose job file is gone: stop its job, remove its files."""
    found = manager.present(slug)
    if found:
        manager.stop_jobs(slug, found, 15, 10.0)
    manager.purge_files(slug)


def _error(message: str | ProcessControlError) -> None:
    """One line per problem on stderr (console.py: the policy)."""
    from run_job.console import say_error

    say_error("sbatch-service", message.lines() if isinstance(message, ProcessControlError) else [message])


def resolve_services(config, verb: str, names: Sequence[str]):
    """The Job of each named service, or every service of the job directory."""
    from run_job.config.jobs import SLUG_MAX, is_slug, load_job, scan_job_directory

    if not names:
        if verb == "init":
            raise UsageError("init needs the SERVICE names (init is never applied to every service)")
        scan = scan_job_directory(config)
        if scan.problems and verb != "status":
            raise ConfigError("invalid job files", tuple(scan.problems))
        for problem in scan.problems if verb == "status" else ():
            _error(f"warning: {problem.render()}")
        return [job for job in scan.jobs if job.is_service]
    jobs = []
    seen = set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        if not is_slug(name):
            raise UsageError(f"{name[:60]!r}{'…' if len(name) > 60 else ''} is not a service name: a slug is "
                             f"letters, digits, '_' and '-', starting with a letter or digit, at most "
                             f"{SLUG_MAX} characters")
        job = load_job(config, name)
        if not job.is_service:
            raise ConfigError(f"{job.path}: {name} is a job, not a service: a service has "
                              "runner: slurm and a service section (run it with run-job --job)")
        jobs.append(job)
    return jobs


def run(args: argparse.Namespace) -> int:
    from run_job.config.settings import load_config
    from run_job.security import require_secure_config
    from run_job.slurm import service as svc

    if args.verb is None:
        raise UsageError(f"give a verb: sbatch-service {{{'|'.join(VERBS)}}} [SERVICE ...]; without SERVICE, "
                         "every verb but init applies to all services (see sbatch-service --help)")
    if args.verb not in VERBS:
        raise UsageError(f"unknown verb {args.verb!r}: use one of {', '.join(VERBS)}")
    config = load_config(args.config)
    require_secure_config(config)
    # Job files are read (and validated) before the switch to the service user,
    # as are the modules used later: a root-only Python installation (pyenv in
    # /root) cannot be read once the process runs as the service user.
    jobs = resolve_services(config, args.verb, args.services)
    svc.preload()
    svc.become_service_user(config.user)
    # Off a terminal (cron's keep-alive entries), start of a present service
    # says nothing: no mail every period; a real (re)start is always reported.
    manager = svc.ServiceManager(config, say=_say, quiet_noop=not sys.stdout.isatty())
    slugs = [job.slug for job in jobs]

    if args.verb == "status":
        try:
            entries = manager.query(slugs)
        except SlurmUnreachable as err:
            rows: list[tuple[str | None, ...]] = [(slug, "-", svc.UNREACHABLE_STATE, "-", "-") for slug in slugs]
            sys.stdout.write(svc.render_status_table(rows))
            _error(str(err))
            return svc.EXIT_UNREACHABLE
        if not jobs:
            _say(f"no services in {config.job_directory}")
            return svc.EXIT_OK
        rows, status = manager.status_rows(jobs, entries)
        sys.stdout.write(svc.render_status_table(rows))
        return status

    orphans = manager.orphans(slugs) if args.verb == "purge" and not args.services else []
    # Every verb's first step, under the service's lock, asks Slurm about the
    # service (ServiceManager.present): unreachable raises there, before any
    # submit, cancel, init or purge, and stops the loop for the other services.
    if not jobs and not orphans:
        _say(f"no services in {config.job_directory}")
        return svc.EXIT_OK

    statuses = []
    for job in jobs:
        status = _guarded(args.debug, manager, job.slug, lambda job=job: _verb(manager, args.verb, job))
        statuses.append(status)
        if status == svc.EXIT_UNREACHABLE:
            break  # every other service would wait as long for the same answer
    for slug in orphans:
        if svc.EXIT_UNREACHABLE in statuses:
            break
        statuses.append(_guarded(args.debug, manager, slug, lambda slug=slug: _purge_orphan(manager, slug)))
    if args.verb == "purge" and not args.services and not [s for s in statuses if s]:
        folder = svc.service_dir(config)
        try:
            folder.rmdir()
        except OSError:
            pass
    return svc.combine_exit(statuses)


def _verb(manager, verb: str, job) -> None:
    if verb == "start":
        manager.start(job)
    elif verb == "stop":
        manager.stop(job)
    elif verb == "restart":
        manager.stop(job)
        manager.start(job)
    elif verb == "reload":
        manager.reload(job)
    elif verb == "init":
        manager.init(job)
    elif verb == "deploy":
        manager.init(job)  # init stops first
        manager.start(job)
    elif verb == "purge":
        manager.stop(job)
        manager.purge_files(job.slug)


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    from run_job.console import run_main

    args = list(sys.argv[1:] if argv is None else argv)
    return run_main("sbatch-service", lambda: run(build_parser().parse_args(args)),
                    debug="--debug" in args, status_of=_exit_of, internal=EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
