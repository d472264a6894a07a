"""The one user-facing exception hierarchy and the validation problem record.

Library code raises these; only the command-line front ends catch them, print
one line to stderr and turn them into an exit status.
"""

from __future__ import annotations

from run_job.model import Record
# at import: an error may be worded after the switch to a user who cannot read the code
from run_job.printable import printable


# The exit statuses of every command, in one table (SPEC §4, §6, §7, §11).
EXIT_OK = 0
EXIT_USAGE = 2  # bad arguments, bad config (every command)
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT
EXIT_PIPE = 141  # the reader of stdout went away: 128 + SIGPIPE, as a shell reports it
# run-job (SPEC §4)
EXIT_NOTHING_RUNNING = 1  # --kill-job: no run was running
EXIT_INVALID = 1  # --validate: some file is invalid
EXIT_SKIPPED = 75  # the previous run is still running
EXIT_TIMEOUT = 124
EXIT_CANNOT_RUN = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127
EXIT_SIGNAL_BASE = 128  # + N: killed by signal N
# cron-generate (SPEC §6)
EXIT_DIFFERS = 1  # --check/--diff: the installed crontab differs
EXIT_ERROR = 2  # invalid jobs or any other error
# sbatch-service (SPEC §7)
EXIT_FAILED = 1
EXIT_NOT_RUNNING = 3  # status: a service is not running
EXIT_UNREACHABLE = 4  # Slurm could not be asked: state unknown
# check-jobs-icinga (SPEC §11, the Monitoring Plugins guidelines)
CHECK_OK = 0
CHECK_WARNING = 1
CHECK_CRITICAL = 2
CHECK_UNKNOWN = 3
# process-control-web (SPEC §12): 0 stopped by a signal, EXIT_USAGE for a bad
# command line or config
EXIT_WEB_FAILED = 1  # cannot serve: address refused or in use, wrong user, unusable secret


class Problem(Record):
    """One validation error: where it is and what to do about it (frozen)."""

    file: str
    message: str
    line: int | None = None
    column: int | None = None
    key_path: str = ""

    def render(self) -> str:
        """``file:line: key.path: message`` (line and key path when known), on one
        line: control characters in any part are shown escaped."""

        where = printable(self.file) if self.line is None else f"{printable(self.file)}:{self.line}"
        if self.key_path:
            return f"{where}: {printable(self.key_path)}: {printable(self.message)}"
        return f"{where}: {printable(self.message)}"

    def as_json(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "key_path": self.key_path,
            "message": self.message,
        }


class ProcessControlError(Exception):
    """Base of every error meant for a user. ``str()`` is the whole message."""

    exit_status = EXIT_CANNOT_RUN

    def lines(self) -> list[str]:
        """The message as the command line prints it: one line per problem,
        control characters escaped (a file name cannot split or forge a line)."""
        return [printable(str(self) or type(self).__name__)]


class UsageError(ProcessControlError):
    """Bad command-line arguments."""

    exit_status = EXIT_USAGE


class ConfigError(ProcessControlError):
    """The global config, or a job file, is unusable; carries every problem."""

    def __init__(self, message: str, problems: tuple[Problem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)

    def __str__(self) -> str:
        if not self.problems:
            return super().__str__()
        return "\n".join(p.render() for p in self.problems)

    def lines(self) -> list[str]:
        if not self.problems:
            return super().lines()
        return [p.render() for p in self.problems]


class SecurityError(ProcessControlError):
    """A file or folder fails the ownership/permission or location rules."""


class LimitError(ProcessControlError):
    """A limit of the job cannot be enforced here (SPEC §13): the run does not start."""


class RunRecordError(ProcessControlError):
    """A run record (run folder, status, history, lock) cannot be written."""


class SlurmError(ProcessControlError):
    """Slurm answered with an error (argv, status and stderr tail in the message)."""


class SlurmUnreachable(SlurmError):
    """The Slurm controller could not be asked; never read as "job gone"."""
