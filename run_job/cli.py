"""The ``run-job`` command line: argparse front end, one error line, exit status.

``run-job --job NAME`` is what cron starts every minute, so its common forms
(``[--config P] -j|--job NAME [-w] [--if-due]``, or a bare ``NAME``) are parsed by hand
without importing argparse; everything else goes through argparse. Library
code raises ``ProcessControlError``; only ``main`` turns it into one message
on stderr and its ``exit_status`` (a traceback only with ``--debug``).
"""

from __future__ import annotations

import os
import sys

# Loaded at start: errors are worded after the switch to the service user,
# who may not be able to read the code.
from run_job import console
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any

USAGE_EXIT = 2
_ACTIONS = ("job", "kill_job", "list_jobs", "status", "history", "validate", "metrics", "pause",
            "resume", "follow", "wait", "trigger")
_FLAGS = {"kill_job": "--kill-job", "pause": "--pause", "resume": "--resume",
          "follow": "--follow", "wait": "--wait", "trigger": "--trigger", "metrics": "--metrics"}


class Options:
    """Parsed command line (a plain namespace, argparse's or ours)."""

    def __init__(self, **values: Any) -> None:
        # Any, as in argparse's namespace: each action reads its own, once given
        self.job: Any = None
        self.kill_job: Any = None
        self.list_jobs = False
        self.status = False
        self.only_running = False
        self.slow_start = False
        self.if_due = False
        self.config: Any = None
        self.validate: Any = None
        self.history: Any = None
        self.metrics = False
        self.json = False
        self.debug = False
        self.name: Any = None
        self.force = False
        self.tag: list[str] = []
        self.pause: Any = None
        self.resume: Any = None
        self.reason: Any = None
        self.until: Any = None
        self.follow: Any = None
        self.run: Any = None
        self.wait: Any = None
        self.next = False
        self.timeout: Any = None
        self.trigger: Any = None
        self.message: Any = None
        self.__dict__.update(values)


def fast_parse(argv: list[str]) -> Options | None:
    """The cron forms of ``run-job --job``, or None to let argparse decide (pure)."""
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-j", "--job", "--config") and i + 1 < len(argv):
            value = argv[i + 1]
            if value.startswith("-"):
                return None
            if arg == "--config":
                opts.config = value
            elif opts.job is None:
                opts.job = value
            else:
                return None
            i += 2
            continue
        if arg.startswith("--job=") and opts.job is None:
            opts.job = arg[6:]
        elif arg.startswith("--config="):
            opts.config = arg[9:]
        elif arg in ("-w", "--slow-start"):
            opts.slow_start = True
        elif arg == "--if-due":
            opts.if_due = True
        elif arg == "--force":
            opts.force = True
        elif arg == "--debug":
            opts.debug = True
        elif not arg.startswith("-") and arg and opts.job is None:
            opts.job = arg
        else:
            return None
        i += 1
    if not opts.job:
        return None
    return opts


def build_parser():
    from run_job import __version__
    from run_job.console import argument_parser_class

    p = argument_parser_class()(
        prog="run-job",
        description="Run, list, inspect, kill and validate process-control jobs.")
    p.add_argument("name", nargs="?", help="job to run (same as --job NAME)")
    p.add_argument("-j", "--job", metavar="NAME", help="run the job NAME")
    p.add_argument("-k", "--kill-job", metavar="NAME", nargs="?", const="",
                   help="stop the running run of NAME (or of every job with --tag) and its"
                        " whole process tree")
    p.add_argument("-l", "--list-jobs", action="store_true", help="list the jobs")
    p.add_argument("-s", "--status", action="store_true", help="show the status of every job")
    p.add_argument("--tag", metavar="TAG", action="append", default=[],
                   help="with --status, --list-jobs, --kill-job, --pause, --resume: the jobs"
                        " carrying TAG (repeatable: any of them)")
    p.add_argument("--pause", metavar="NAME", nargs="?", const="",
                   help="pause NAME (or every job with --tag): its scheduled runs are skipped"
                        " until --resume or --until; needs --reason")
    p.add_argument("--reason", metavar="TEXT", help="with --pause: why (required)")
    p.add_argument("--until", metavar="WHEN",
                   help="with --pause: end the pause by itself at WHEN (ISO 8601, host time"
                        " zone without an offset, or a duration from now: 2h, 3d)")
    p.add_argument("--resume", metavar="NAME", nargs="?", const="",
                   help="end the pause of NAME (or of every job with --tag)")
    p.add_argument("--force", action="store_true", help="with --job: run it even if paused")
    p.add_argument("--follow", metavar="NAME",
                   help="print the output of NAME's running run (else its newest) from the"
                        " first byte, live, and exit with the run's exit status")
    p.add_argument("--run", metavar="RUN_ID", help="with --follow: that run")
    p.add_argument("--wait", metavar="NAME",
                   help="wait for NAME's running run to end and exit with its exit status"
                        " (none running: the newest run's, at once)")
    p.add_argument("--next", action="store_true",
                   help="with --wait: wait for the next run to start, then for its end")
    p.add_argument("--timeout", metavar="DURATION",
                   help="with --wait: give up after DURATION (seconds, or 90s, 15m, 2h):"
                        " exit 75, the run goes on")
    p.add_argument("--trigger", metavar="EVENT",
                   help="inside a run: signal the job's own EVENT (declared in its events);"
                        " its hooks run while the run goes on")
    p.add_argument("--message", metavar="TEXT",
                   help="with --trigger: a message for the hooks (one line, at most 1 KiB;"
                        " '-' reads it from stdin)")
    p.add_argument("-r", "--only-running", action="store_true",
                   help="with --status or --list-jobs (or alone): only running jobs")
    p.add_argument("-w", "--slow-start", action="store_true",
                   help="run the job's slow_start_command instead of its command")
    p.add_argument("--if-due", action="store_true",
                   help="with --job: run only if a start of the job (in its timezone) falls in"
                        " this minute and has not run yet; else exit 0 silently, leaving no"
                        " record (cron-generate writes it for jobs with a timezone)")
    p.add_argument("--config", metavar="PATH", help="global config file")
    p.add_argument("--validate", nargs="*", metavar="NAME|FILE",
                   help="validate jobs (no argument: the whole job directory and the config)")
    p.add_argument("--history", metavar="NAME", help="show the run history of NAME")
    p.add_argument("--metrics", action="store_true",
                   help="print every job's Prometheus metrics (text exposition format)")
    p.add_argument("--json", action="store_true",
                   help="one JSON document (with --status, --list-jobs, --history, --validate;"
                        " with --wait: the run's final status.json record)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and logging problems")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                   help="show the version and exit")
    return p


def parse(argv: list[str]) -> Options:
    parser = build_parser()
    ns = parser.parse_args(argv)
    opts = Options(**vars(ns))
    if opts.name is not None and opts.validate is not None:
        # `--validate --json FILE`: argparse gives FILE to the positional NAME
        opts.validate = list(opts.validate) + [opts.name]
        opts.name = None
    if opts.name is not None:
        if opts.job is not None:
            parser.error("give the job either as NAME or with --job, not both")
        opts.job = opts.name
    for flag, value in (("--job", opts.job), ("--history", opts.history),
                        ("--follow", opts.follow), ("--wait", opts.wait),
                        ("--trigger", opts.trigger)):
        if value is not None and not value.strip():
            parser.error(f"{flag} needs a {'n event' if flag == '--trigger' else ' job'} name")
    if opts.only_running and not (opts.list_jobs or opts.status):
        opts.status = True
    chosen = [a for a in _ACTIONS if getattr(opts, a) not in (None, False)]
    if len(chosen) > 1:
        parser.error("choose one of --job, --kill-job, --list-jobs, --status, --history,"
                     " --validate, --metrics, --pause, --resume, --follow, --wait, --trigger")
    if not chosen:
        parser.error("nothing to do: give a job NAME, or one of --list-jobs, --status,"
                     " --history NAME, --kill-job NAME, --validate, --metrics, --pause NAME,"
                     " --resume NAME, --follow NAME, --wait NAME, --trigger EVENT")
    action = chosen[0]
    for flag, value in (("--kill-job", opts.kill_job), ("--pause", opts.pause),
                        ("--resume", opts.resume)):
        if value is not None and not value.strip() and not opts.tag:
            parser.error(f"{flag} needs a job NAME or --tag TAG")
    _only(parser, opts.tag, "--tag", action, ("status", "list_jobs", "kill_job", "pause", "resume"))
    _only(parser, opts.slow_start, "--slow-start", action, ("job",))
    _only(parser, opts.if_due, "--if-due", action, ("job",))
    _only(parser, opts.force, "--force", action, ("job",))
    _only(parser, opts.reason is not None, "--reason", action, ("pause",))
    _only(parser, opts.until is not None, "--until", action, ("pause",))
    _only(parser, opts.run is not None, "--run", action, ("follow",))
    _only(parser, opts.next, "--next", action, ("wait",))
    _only(parser, opts.timeout is not None, "--timeout", action, ("wait",))
    _only(parser, opts.message is not None, "--message", action, ("trigger",))
    _only(parser, opts.json, "--json", action, ("status", "list_jobs", "history", "validate",
                                                "wait"))
    if action == "pause" and (opts.reason is None or not opts.reason.strip()):
        parser.error("--pause needs --reason TEXT (why: it is shown to everyone who looks)")
    return opts


def _only(parser: Any, given: Any, flag: str, action: str, allowed: tuple[str, ...]) -> None:
    """Refuse ``flag`` with an action it does not go with (a usage error)."""
    if given and action not in allowed:
        names = {"job": "--job NAME", "status": "--status", "list_jobs": "--list-jobs",
                 "history": "--history", "validate": "--validate", **_FLAGS}
        parser.error(f"{flag} goes with " + ", ".join(names[a] for a in allowed))


def main(argv: list[str] | None = None) -> int:
    from run_job.errors import EXIT_CANNOT_RUN

    argv = list(sys.argv[1:] if argv is None else argv)
    return console.run_main("run-job", lambda: dispatch(fast_parse(argv) or parse(argv)),
                            debug="--debug" in argv, status_of=lambda err: err.exit_status,
                            internal=EXIT_CANNOT_RUN)


def _error(text: str) -> None:
    _error_lines([text])


def _error_lines(lines: list[str]) -> None:
    console.say_error("run-job", lines)


def _print_json(doc: Any) -> None:
    import json

    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def dispatch(opts: Options) -> int:
    if opts.validate is not None:
        from run_job.config.validate import main as validate_main

        from run_job.run.confine import limit_notes

        return validate_main(opts.config, list(opts.validate), opts.json, host_notes=limit_notes)
    if opts.job:
        return _run(opts)
    if opts.trigger is not None:
        return _trigger(opts)  # inside a run, as its user: no config, no switch
    config = _load_config(opts.config)
    _become_if_root(config)  # state is read and written as the service user only
    _configure_logging(config, opts.debug)
    from run_job.monitor import status as status_mod

    if opts.history:
        return _history(config, opts)
    if opts.kill_job is not None:
        return _kill(config, opts)
    if opts.metrics:
        from run_job.monitor.metrics import render

        sys.stdout.write(render(status_mod.load_states(config, opts.config)))
        return 0
    if opts.pause is not None or opts.resume is not None:
        from run_job import operate

        return operate.pause_or_resume(config, opts)
    if opts.follow is not None or opts.wait is not None:
        _ctrl_c_detaches()
    if opts.follow is not None:
        from run_job.run import attach

        return attach.follow(config, opts.follow, opts.run)
    if opts.wait is not None:
        return _wait(config, opts)
    if opts.list_jobs:
        if opts.tag:
            rows = [status_mod.job_row(s.job, s.file, s.spec, list(s.problems)) for s in
                    status_mod.selected(config, opts.config, tags=opts.tag)]
            if opts.only_running:
                running = {r["job"] for r in status_mod.collect_status(
                    config, opts.config, only_running=True)}
                rows = [r for r in rows if r["job"] in running]
        else:
            rows = status_mod.list_jobs(config, opts.config, only_running=opts.only_running)
        if opts.json:
            _print_json(status_mod.document("list", jobs=rows))
        else:
            sys.stdout.write(status_mod.render_list(rows))
        return 0
    states = None
    if opts.tag:
        from run_job.monitor.jobstate import select

        states = select(status_mod.load_states(config, opts.config), tags=opts.tag)
    status_mod.write_status(config, opts.config, sys.stdout, only_running=opts.only_running,
                            as_json=opts.json, states=states)
    return 0


def _trigger(opts: Options) -> int:
    """``--trigger EVENT [--message TEXT]`` from inside a run (SPEC §9)."""
    from run_job.run import jobevents

    message = opts.message or ""
    if message == "-":  # the rest of a long message is never read: it is cut anyway
        message = os.read(0, 1 << 16).decode("utf-8", "replace") if not os.isatty(0) else ""
    jobevents.trigger(dict(os.environ), opts.trigger, message)
    return 0


def _ctrl_c_detaches() -> None:
    """Ctrl-C ends ``--follow`` and ``--wait`` (130), also when SIGINT came
    ignored from the parent (a shell's background job, some CI runners): the
    contract is that the user can always detach, and the run goes on."""
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)


def _wait(config: Any, opts: Options) -> int:
    from run_job.run import attach

    timeout = None
    if opts.timeout is not None:
        timeout = parse_seconds(opts.timeout, "--timeout")
    status, record = attach.wait(config, opts.wait, next_run=opts.next, timeout=timeout)
    if opts.json and record is not None:
        _print_json(record)
    return status


def parse_seconds(text: str, flag: str) -> float:
    """A duration on the command line: seconds as a bare number (as
    timeout(1) has it) or with a unit (90s, 15m, 2h, 1d)."""
    from run_job.config.durations import parse_duration
    from run_job.errors import UsageError

    try:
        seconds = float(text) if text.strip().replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError as err:
        raise UsageError(f"{flag}: {err}") from None
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise UsageError(f"{flag}: {text!r} is not a duration")
    return seconds


def _history(config: Any, opts: Options) -> int:
    from run_job.config.jobs import job_path
    from run_job.errors import UsageError
    from run_job.monitor import status as status_mod
    from run_job.run import history

    path = job_path(config, opts.history)  # refuses what is not a slug
    if not os.path.lexists(path) and not history.exists(config.state_directory, opts.history):
        raise UsageError(f"no job named {opts.history!r}: no job file {path} and no history"
                         f" in {config.state_directory}; see run-job --list-jobs")
    entries = history.read(config.state_directory, opts.history)
    if opts.json:
        _print_json(status_mod.document("history", job=opts.history, history=entries))
    else:
        sys.stdout.write(status_mod.render_history(opts.history, entries))
    return 0


def _kill(config: Any, opts: Options) -> int:
    """``--kill-job NAME`` or ``--kill-job --tag T``: 0 when at least one run
    was stopped, 1 when none was running (SPEC §4, §9)."""
    from run_job.config.jobs import job_path

    slugs = [opts.kill_job] if opts.kill_job else []
    for slug in slugs:
        job_path(config, slug)  # refuses what is not a slug
    if opts.tag:
        from run_job.monitor import status as status_mod

        chosen = status_mod.selected(config, opts.config, names=slugs, tags=opts.tag)
        slugs = [state.job for state in chosen]
    stopped = False
    for slug in slugs:
        code = _kill_one(config, opts, slug)
        stopped = stopped or code == 0
    return 0 if stopped else 1


def _kill_one(config: Any, opts: Options, slug: str) -> int:
    from run_job.config.cache import load_validated
    from run_job.config.jobs import job_path
    from run_job.errors import ProcessControlError
    from run_job.run.kill import kill_job

    try:
        _, job = load_validated(opts.config, slug, config=config)
    except ProcessControlError as err:
        # A job file broken (or removed) while its run goes on must not
        # make that run unkillable: stop it with the defaults of a job.
        from run_job.model import Job

        first = (str(err).splitlines() or [""])[0]
        _error(f"warning: {first}; stopping the run with the default kill_grace")
        job = Job(slug=slug, path=job_path(config, slug), sha256="",
                  commands=(), command_text=())
    code, message = kill_job(config, job)
    sys.stdout.write(message + "\n")
    return code


def _load_config(path: str | None) -> Any:
    from run_job.config.cache import cached_config

    return cached_config(path)


def _become_if_root(config: Any) -> None:
    """Root reads and writes state as the service user (so files stay theirs)."""
    from run_job.privileges import become_if_root

    become_if_root(config.user)


def _configure_logging(config: Any, debug: bool) -> None:
    """After the switch to the service user: run-job's own log files are theirs,
    and nothing of the config's ``logging`` section runs as root."""
    from run_job import logsetup

    problems = logsetup.configure(config.logging, debug=debug)
    if problems and (debug or logsetup.stderr_is_terminal()):
        for problem in problems:
            _error(f"warning: {problem}")


def _run(opts: Options) -> int:
    from run_job.config.cache import load_validated
    from run_job.errors import ProcessControlError
    from run_job.run import controller

    try:
        config, job = load_validated(opts.config, opts.job)
    except ProcessControlError:
        _metrics_of_a_job_that_cannot_run(opts)
        raise
    controller.check_runnable(job)
    due = None
    if opts.if_due:  # before anything is touched: most calls are not due
        from run_job.run.due import due_now

        due = due_now(config, job)
        if due is None:
            return 0
    prepared = controller.prepare(config, job)
    _configure_logging(config, opts.debug)
    return controller.run(config, job, prepared, slow_start=opts.slow_start, due=due,
                          force=opts.force, on_record=_metrics_writer(config, job),
                          launch={"config": opts.config, "debug": opts.debug})


def resume_main(fd: int) -> int:
    """Back from the lean waiter (``run/handoff.py``): go on with the run whose
    state is in ``fd``; run-job's exit status, as ``main``'s."""
    from run_job.errors import EXIT_CANNOT_RUN
    from run_job.run import handoff

    state = handoff.read_state(fd)
    handoff.set_comm(state)
    sys.path[:] = state["path"]
    sys.argv[:] = state["argv"]
    launch = state["saved"]["launch"]
    return console.run_main("run-job", lambda: _resume(state), debug=bool(launch.get("debug")),
                            status_of=lambda err: err.exit_status, internal=EXIT_CANNOT_RUN)


def _resume(state: dict) -> int:
    from run_job.config.cache import decode_records
    from run_job.run import controller, handoff, supervise

    supervise.install_signal_handlers()
    if state["stop"] is not None:
        supervise.note_signal(state["stop"])
    handoff.unblock()
    config, job, confinement = decode_records(state["records"])
    _configure_logging(config, bool(state["saved"]["launch"].get("debug")))
    return controller.resume(config, job, confinement, state["saved"],
                             on_record=_metrics_writer(config, job))


def _metrics_of_a_job_that_cannot_run(opts: Options) -> None:
    """A job file that does not validate is refused (125) on every cron run;
    with ``metrics.textfile_directory`` its textfile says so (health
    ``invalid``), written as the service user. Best effort: the refusal's own
    message is what counts."""
    try:
        from run_job.config.cache import cached_config
        from run_job.config.jobs import is_slug

        config = cached_config(opts.config)
        if config.metrics_directory is None or not is_slug(opts.job):
            return
        from run_job.monitor.textfile import write_job
        from run_job.privileges import become_if_root

        become_if_root(config.user)
        write_job(config, opts.job, config_path=opts.config)
    except Exception:  # noqa: BLE001 - the job's own error is reported by the caller
        return


def _metrics_writer(config: Any, job: Any) -> Any:
    """What refreshes the job's Prometheus textfile when its records change;
    None without ``metrics.textfile_directory`` (then nothing of the monitor
    package is imported on this hot path)."""
    if config.metrics_directory is None:
        return None
    from run_job.monitor.textfile import write_job

    return lambda: write_job(config, job.slug, job=job)
