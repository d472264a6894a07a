"""The one user-facing exception hierarchy and the validation problem record.

Library code raises these; only the command-line front ends catch them, print
one line to stderr and turn them into an exit status.
"""

from __future__ import annotations

from run_job.model import Record


# Exit statuses shared by the commands (SPEC §4, §6, §7).
EXIT_USAGE = 2
EXIT_SKIPPED = 75
EXIT_TIMEOUT = 124
EXIT_CANNOT_RUN = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class Problem(Record):
    """One validation error: where it is and what to do about it (frozen)."""

    file: str
    message: str
    line: int | None = None
    column: int | None = None
    key_path: str = ""

    def render(self) -> str:
        """``file:line: key.path: message`` (line and key path when known)."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.key_path:
            return f"{where}: {self.key_path}: {self.message}"
        return f"{where}: {self.message}"

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
