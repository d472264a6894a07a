"""How the three commands speak: error lines on stderr, and closed pipes.

The one owner of the command-line error policy of run-job, cron-generate and
sbatch-service:

- an error is printed as ``PROG: <line>`` on stderr, one line per problem,
  control characters escaped (``printable``);
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
    from typing import Iterable

from run_job.printable import printable

EXIT_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a process killed by it


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
