"""The ``check-jobs-icinga`` command line (SPEC §11): an Icinga/Nagios check.

``check-jobs-icinga [--config PATH] [--job NAME ...] [--tag TAG ...] [--json]``

Reads every job's state once (``monitor.status.load_states``, strict: a state
that is there but cannot be read is an error, never "no runs"), asks Slurm
about the services that sbatch-service last started (one squeue, none when no
service is started), and prints what ``monitor.check.decide`` says.

Exit status as the Monitoring Plugins guidelines have it: 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN. Anything that keeps the check from telling, a bad
argument included (the guidelines make usage errors UNKNOWN, unlike run-job's
exit 2), prints ``JOBS UNKNOWN: why`` on stdout (Icinga shows stdout) and
exits 3, never 0 and never with a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any, Sequence

from run_job.errors import CHECK_UNKNOWN, UsageError

PROG = "check-jobs-icinga"
SLURM_TIMEOUT = 10.0  # seconds per Slurm command: well within Icinga's 60 s check_timeout


def build_parser():
    from run_job import __version__
    from run_job.console import argument_parser_class

    class _Parser(argument_parser_class()):  # type: ignore[misc]  # a class made at run time
        def error(self, message: str):  # argparse would exit 2: a plugin says UNKNOWN (3)
            raise UsageError(f"{message} (see {PROG} --help)")

    parser = _Parser(
        prog=PROG,
        description="Icinga/Nagios check of process-control jobs: failing, late and invalid "
                    "jobs, services Slurm no longer has, pauses; perfdata.",
        epilog="Exit status: 0 OK (JOBS OK), 1 WARNING (late or invalid jobs), 2 CRITICAL "
               "(FAILING JOBS, SERVICES DOWN), 3 UNKNOWN (the state cannot be read, Slurm "
               "could not tell a service's state, a bad argument).")
    parser.add_argument("--config", metavar="PATH", help="global config file (default: "
                        "$PROCESS_CONTROL_CONFIG, then /etc/process-control.yaml)")
    parser.add_argument("-j", "--job", action="append", default=[], metavar="NAME",
                        help="check only this job (repeatable); with one job, its age, "
                        "duration and consecutive failures are in the perfdata")
    parser.add_argument("--tag", action="append", default=[], metavar="TAG",
                        help="check only the jobs carrying this tag (repeatable: any of them)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document (every job's state and the verdict); "
                        "the exit status is the same")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}",
                        help="show the version and exit")
    return parser


def run(argv: Sequence[str]) -> int:
    from run_job import clock
    from run_job.config.cache import cached_config
    from run_job.monitor import check, jobstate, status
    from run_job.privileges import become_if_root

    args = build_parser().parse_args(list(argv))
    for name in args.job:
        if not name.strip():
            raise UsageError("--job needs a job name")
    config = cached_config(args.config)
    become_if_root(config.user, program=PROG)  # as run-job --status does
    now = clock.now()
    states = status.load_states(config, args.config, now=now, strict=True)
    states = jobstate.select(states, names=args.job, tags=args.tag)
    services = _services(config, states)
    result = check.decide(states, services, now=now, single=len(args.job) == 1 and not args.tag)
    if args.json:
        _print_json(_document(result, states, services))
    else:
        sys.stdout.write(check.render(result))
    return result.status


def _services(config: Any, states: list) -> dict[str, tuple[str, str]]:
    jobs = [s.spec for s in states if s.spec is not None and s.spec.is_service]
    if not jobs:
        return {}
    from run_job.slurm.client import SlurmClient
    from run_job.slurm.service import watch_started

    return watch_started(config, jobs, SlurmClient(timeout=SLURM_TIMEOUT))


def _document(result: Any, states: list, services: dict[str, tuple[str, str]]) -> dict:
    """The --json document (schemas/status.schema.json, kind ``check``)."""
    from run_job.monitor import status

    rows = []
    for state in states:
        row = status.status_row(state)
        row["slurm"] = None  # the check does not ask Slurm about batch runs
        if state.job in services:
            row["service_state"] = services[state.job][0]
        rows.append(row)
    perf = {}
    for item in result.perfdata:
        label, _, rest = item.partition("=")
        value = rest.split(";", 1)[0].rstrip("s")
        perf[label] = float(value) if "." in value else int(value)
    return status.document("check", status=result.status, state=result.state,
                           summary=result.summary, lines=list(result.lines),
                           groups=result.groups, perfdata=perf, jobs=rows)


def _print_json(doc: Any) -> None:
    import json

    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def _say_unknown(prog: str | None, lines: Sequence[str]) -> None:
    """An error as a plugin says it: ``JOBS UNKNOWN: why`` on stdout."""
    from run_job.console import stdout_closed
    from run_job.monitor.check import unknown

    try:
        sys.stdout.write(unknown(list(lines)))
        sys.stdout.flush()
    except (OSError, ValueError):
        stdout_closed()


def main(argv: Sequence[str] | None = None) -> int:
    from run_job.console import run_main

    args = list(sys.argv[1:] if argv is None else argv)
    return run_main(PROG, lambda: run(args), debug="--debug" in args,
                    status_of=lambda _err: CHECK_UNKNOWN, internal=CHECK_UNKNOWN,
                    say=_say_unknown)


if __name__ == "__main__":
    sys.exit(main())
