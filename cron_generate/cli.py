"""The ``cron-generate`` command line: arguments, one error line, exit status.

Validate every job file, then act, all or nothing: with any problem, every
problem is listed on stderr and the installed file is left as it was.
With ``metrics.textfile_directory`` set, writing the crontab also removes
the Prometheus textfiles of jobs that no longer exist (``--stdout``,
``--check`` and ``--diff`` change nothing).
Exit status as ``diff`` does it (SPEC §6): 0 written or already in sync,
1 with ``--check``/``--diff`` when the installed file differs or is missing,
2 invalid jobs or any other error.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from typing import Sequence

from cron_generate import output
from cron_generate.render import Crontab, CrontabError
from run_job.console import say_error
from run_job.errors import EXIT_DIFFERS, EXIT_ERROR, EXIT_OK

PROG = "cron-generate"


def build_parser() -> argparse.ArgumentParser:
    from run_job import __version__
    from run_job.console import argument_parser_class

    parser = argument_parser_class()(
        prog=PROG,
        description="Validate every job file and write the cron.d file for all scheduled jobs and services.",
        epilog="Exit status: 0 written or in sync; 1 (--check, --diff) the installed file differs or is "
               "missing; 2 invalid job files or any other error.")
    parser.add_argument("--config", metavar="PATH", help="global config file (default: $PROCESS_CONTROL_CONFIG, "
                        "then /etc/process-control.yaml, then the built-in defaults)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--stdout", action="store_true", help="print the crontab instead of writing it "
                      "(as output_crontab: console)")
    mode.add_argument("--check", action="store_true", help="write nothing; exit 1 if the installed file "
                      "differs from what would be written")
    mode.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of the change, "
                      "exit 1 if there is one")
    parser.add_argument("--lock-timeout", type=float, default=output.DEFAULT_LOCK_TIMEOUT, metavar="SECONDS",
                        help="how long to wait for another cron-generate writing the same file "
                        f"(default {output.DEFAULT_LOCK_TIMEOUT:g})")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="show the version and exit")
    return parser


def _error(message: str) -> None:
    say_error(PROG, [message])


def _problems(problems) -> None:
    """Every problem on its own line, ``file:line: key.path: message``."""
    say_error(None, [problem.render() for problem in problems])


def run(args: argparse.Namespace) -> int:
    from run_job.config.settings import load_config

    config = load_config(args.config)
    path = None
    if config.output_crontab == "console":
        if args.check or args.diff:
            raise CrontabError("--check and --diff need an output file, but output_crontab is 'console'")
    else:
        # checked with --stdout too: a config cron would ignore is an error to see early
        path = output.output_path(config.output_crontab)
        if args.stdout:
            path = None

    with _render(config) as (problems, slugs, spool):
        if problems:
            _problems(problems)
            where = "nothing printed" if path is None else f"{path} left unchanged"
            count = len(problems)
            _error(f"{count} problem{'s' if count != 1 else ''} in the job files; {where}")
            return EXIT_ERROR
        if path is None:
            while True:
                chunk = spool.read(1 << 16)
                if not chunk:
                    break
                sys.stdout.write(chunk)
            sys.stdout.flush()
            if not args.stdout:
                _remove_stale_metrics(config, slugs)
            return EXIT_OK
        text = spool.read()
    if args.check or args.diff:
        installed = output.read_installed(path)
        if output.in_sync(installed, text):
            return EXIT_OK
        if args.diff:
            sys.stdout.write(output.unified_diff(path, installed, text))
            sys.stdout.flush()
        else:
            state = "is missing" if installed.data is None else "differs from the job files"
            _error(f"{path} {state}; run cron-generate to update it")
        return EXIT_DIFFERS
    output.install(path, text, lock_timeout=args.lock_timeout)
    _remove_stale_metrics(config, slugs)
    return EXIT_OK


@contextmanager
def _render(config):
    """Validate every job file and render the valid ones as they stream
    through (in slug order), into a temporary file rather than memory: yields
    (every problem, in the order of the file names; the slugs, when the
    metrics need them; the crontab, at its start). A crontab that cannot be
    rendered is raised only when no job file has a problem (as before: the
    problems come first)."""
    import tempfile

    from run_job.config.jobs import iter_job_directory

    error: CrontabError | None = None
    crontab: Crontab | None = None
    try:
        crontab = Crontab(config)
    except CrontabError as err:
        error = err
    found: list[tuple[str, list]] = []
    slugs: list[str] | None = [] if config.metrics_directory is not None else None
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as spool:
        if crontab is not None:
            spool.write(crontab.checked(crontab.head))
        for file, kind, job, problems in iter_job_directory(config, by_slug=True):
            if kind == "ignored":
                continue
            if problems or job is None:
                found.append(("" if kind == "folder" else file.name, problems))
                continue
            if slugs is not None:
                slugs.append(job.slug)
            if crontab is not None and error is None and not found:
                try:
                    spool.write(crontab.checked(crontab.block(job)))
                except CrontabError as err:
                    error = err
        found.sort(key=lambda item: item[0])
        problems = [problem for _name, problems in found for problem in problems]
        if not problems and error is not None:
            raise error
        spool.seek(0)
        yield problems, slugs or [], spool


def _remove_stale_metrics(config, slugs) -> None:
    """The Prometheus textfiles of jobs that no longer exist go (SPEC §11);
    what cannot be removed is a warning, never a failed crontab."""
    if config.metrics_directory is None:
        return
    from run_job.monitor.textfile import remove_stale

    _, problems = remove_stale(config.metrics_directory, slugs)
    for problem in problems:
        _error(f"warning: stale metrics file not removed: {problem}")


def _terminated(signum: int, _frame: object) -> None:
    # An exception, not the default death: the atomic write then removes its
    # temporary file before the process exits (128 + N, as a shell reports it).
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    import signal

    from run_job.console import run_main

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminated)
    args = list(sys.argv[1:] if argv is None else argv)
    return run_main(PROG, lambda: run(build_parser().parse_args(args)), debug="--debug" in args,
                    status_of=lambda _err: EXIT_ERROR, internal=EXIT_ERROR, report=_report)


def _report(err: BaseException) -> list[str]:
    """A ConfigError carries every problem of every file: one line each, as
    ``file:line: key.path: message`` without the command's prefix."""
    problems = getattr(err, "problems", ())
    if problems:
        _problems(problems)
        return []
    return err.lines()  # type: ignore[attr-defined]
