"""How the three commands speak: error lines on stderr, and closed pipes.

The one owner of the command-line error policy of run-job, cron-generate and
sbatch-service:

- an error is printed as ``PROG: <line>`` on stderr, one line per problem,
  control characters escaped (``printable``); check-jobs-icinga, a plugin,
  says it on stdout as ``JOBS UNKNOWN: <line>`` instead (``run_main(say=)``);
- an error keeps its exit status even when stderr is gone (a closed pipe, a
  closed descriptor): the message is dropped, never the status;
- when the reader of stdout goes away while a command prints its normal
  output (``run-job --status | head -1``), the command stops and exits 141,
  as a program killed by SIGPIPE does (128 + 13), without a traceback.

argparse is imported only by the commands that parse with it (``run-job
--job`` parses its cron forms by hand).
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Callable, Iterable

    from run_job.errors import ProcessControlError

from run_job.printable import printable

from run_job.errors import EXIT_INTERRUPTED, EXIT_PIPE


def say_error(prog: str | None, lines: Iterable[str]) -> None:
    """``PROG: line`` on stderr for each line (no prefix when ``prog`` is None,
    as for cron-generate's list of problems); a closed stderr is ignored."""
    prefix = f"{prog}: " if prog else ""
    text = "".join(f"{prefix}{printable(line)}\n" for line in lines)
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, AttributeError, ValueError):  # closed pipe, fd 2 closed, stream closed
        _silence(2)


def stdout_closed() -> int:
    """The reader of stdout went away: quiet the final flush, exit 141."""
    _silence(1)
    return EXIT_PIPE


def _silence(fd: int) -> None:
    """Point ``fd`` at /dev/null, so that the interpreter's final flush of
    whatever is still buffered does not fail (and print a traceback) at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, fd)
    except OSError:
        pass
    finally:
        os.close(devnull)


def run_main(prog: str, body: Callable[[], int], *, debug: bool,
             status_of: Callable[[ProcessControlError], int], internal: int,
             report: Callable[[ProcessControlError], list[str]] | None = None,
             say: Callable[[str | None, list[str]], None] | None = None) -> int:
    """The one way a command's ``main`` turns what happened into an exit status.

    ``body()`` returns the status. A ``ProcessControlError`` prints one line
    per problem (``report`` words them, default ``err.lines()``) and exits
    with ``status_of(err)``; an ``OSError`` that escaped prints the file and
    why and exits ``internal``; a closed stdout exits 141 and Ctrl-C 130,
    quietly; anything else is a bug: one line naming it and ``internal``. A
    traceback only with ``--debug``. ``say`` replaces ``say_error`` for the
    error lines (check-jobs-icinga says them on stdout, as a plugin does).
    """
    from run_job.errors import ProcessControlError

    say = say or say_error
    try:
        status = body()
        sys.stdout.flush()  # here, not at exit: a closed stdout is handled below
        return status
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return stdout_closed()
    except ProcessControlError as err:
        if debug:
            _traceback()
        say(prog, report(err) if report is not None else err.lines())
        return status_of(err)
    except OSError as err:
        if debug:
            _traceback()
        where = f"{err.filename}: " if err.filename else ""
        say(prog, [f"{where}{err.strerror or err}"])
        return internal
    except Exception as err:  # noqa: BLE001 - the one place bugs become one line
        if debug:
            _traceback()
        say(prog, [f"internal error: {type(err).__name__}: {err}"
                         + ("" if debug else " (run with --debug for the traceback)")])
        return internal


def _traceback() -> None:
    import traceback

    try:
        traceback.print_exc()
    except (OSError, ValueError):
        _silence(2)


def argument_parser_class():
    """``argparse.ArgumentParser`` that follows this policy: a usage error or
    ``--help`` keeps its exit status when stderr is gone, and ``--help`` or
    ``--version`` to a closed stdout exits 141 (some Python releases let the
    ``BrokenPipeError`` of argparse's own write escape, others drop it)."""
    import argparse

    class ArgumentParser(argparse.ArgumentParser):
        def _print_message(self, message: str, file=None) -> None:
            if not message:
                return
            file = file if file is not None else sys.stderr
            try:
                file.write(message)
                file.flush()
            except (OSError, AttributeError, ValueError):
                if file is sys.stdout:
                    raise BrokenPipeError(32, "stdout closed") from None
                _silence(2)

    return ArgumentParser
