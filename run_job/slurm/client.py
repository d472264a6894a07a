"""The only place that runs Slurm's commands (sbatch, squeue, scontrol, scancel).

Every command is an argv list (never a shell), run with a timeout, with an
environment cleaned of the variables that would change what the commands do
or print (``SBATCH_*``, ``SQUEUE_*``, ``SLURM_TIME_FORMAT``, ...).
``SLURM_CONF`` is passed on exactly as the caller's environment has it.

Errors, both ``ProcessControlError`` children from ``run_job.errors``:

* ``SlurmUnreachable``: the controller could not be asked (connection refused,
  socket timeout, no configuration source, the command timed out or is not
  installed). Never read it as "the job is gone".
* ``SlurmError``: Slurm answered and refused (bad option, invalid partition...).

Both carry ``argv``, ``status`` (None on a timeout) and ``stderr`` (the tail)
as attributes, and name them in the message.
"Job unknown" is not an error: ``show_job`` returns None and ``queue`` [].

Stable API (also used by ``sbatch-service``)::

    client = SlurmClient()                 # or SlurmClient(environ=..., timeout=...)
    job_id = client.submit(argv)           # argv from vocabulary.build_sbatch_argv -> "123"
    job_id = client.submit(argv, env=env)  # in an environment of its own (services)
    job = client.show_job("123")           # vocabulary.SlurmJob, or None when unknown
    job = client.accounting_job("123")     # from sacct; None without accounting
    jobs = client.queue(names=["x.run-job"], user="svc")   # [vocabulary.QueueEntry]
    jobs = client.queue(job_ids=["123"], states="all", fields=SERVICE_FIELDS)  # [] when unknown
    client.cancel("123")                   # scancel; signal=, batch=, full=
    client.ping()                          # True when the controller answers
    client.calls                           # commands run so far (benchmarks)

Nothing else runs a Slurm command or reads Slurm's stderr: which answer means
"unreachable" and which "unknown job" is decided here only.
"""

from __future__ import annotations

import os
import subprocess
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost, see model.py)
    from typing import Mapping, Sequence

from run_job.errors import SlurmError, SlurmUnreachable
from run_job.slurm.vocabulary import (BATCH_FIELDS, SACCT_FIELDS, QueueEntry, SlurmJob, squeue_format,
                           parse_sacct, parse_sbatch_parsable, parse_scontrol_job,
                           parse_squeue)

DEFAULT_TIMEOUT = 30.0  # seconds per command; a dead controller costs a client ~9-18 s
SUBMIT_TIMEOUT = 60.0

# Variables that change what Slurm's commands do or how they print.
_DROP_PREFIXES = ("SBATCH_", "SQUEUE_", "SCONTROL_", "SCANCEL_", "SINFO_", "SACCT_",
                  "SALLOC_", "SRUN_")
_DROP_NAMES = frozenset({"SLURM_TIME_FORMAT", "SQUEUE_FORMAT", "SQUEUE_FORMAT2",
                         "SLURM_CLUSTERS", "SLURM_EXPORT_ENV"})

# stderr texts meaning "the controller could not be asked" (Slurm is not localised).
_UNREACHABLE_MARKS = (
    "unable to contact slurm controller",
    "socket timed out",
    "zero bytes were transmitted or received",
    "could not establish a configuration source",
    "communication connection failure",
    "connection refused",
    "unable to establish control machine address",
    "backup controller in standby mode",
    "transport endpoint is not connected",
    "slurmctld is not responding",
    "unable to resolve",
)
_UNKNOWN_JOB_MARKS = ("invalid job id specified", "invalid job id")


def client_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for Slurm's commands (pure): ``environ`` less the
    variables that would change their options or output format."""
    return {name: value for name, value in environ.items()
            if name not in _DROP_NAMES and not name.startswith(_DROP_PREFIXES)}


def is_unreachable(stderr: str) -> bool:
    text = stderr.lower()
    return any(mark in text for mark in _UNREACHABLE_MARKS)


def is_unknown_job(stderr: str) -> bool:
    text = stderr.lower()
    return any(mark in text for mark in _UNKNOWN_JOB_MARKS)


def _tail(text: str, limit: int = 400) -> str:
    text = " ".join(text.strip().split())
    return text if len(text) <= limit else "..." + text[-limit:]


def _error(cls: type, message: str, argv: Sequence[str], status: int | None,
           stderr: str) -> SlurmError:
    err = cls(message)
    err.argv = list(argv)
    err.status = status
    err.stderr = _tail(stderr)
    return err


class SlurmClient:
    """Runs Slurm's client commands; see the module docstring for the API."""

    def __init__(self, *, environ: Mapping[str, str] | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.env = client_environment(os.environ if environ is None else environ)
        self.timeout = timeout
        self.calls = 0

    def _run(self, argv: Sequence[str], *, timeout: float | None = None,
            check: bool = True, env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        """Run one Slurm command; raise SlurmUnreachable/SlurmError on failure
        (with ``check``), else return the CompletedProcess (text)."""
        argv = [str(word) for word in argv]
        limit = self.timeout if timeout is None else timeout
        self.calls += 1
        shown = " ".join(argv)
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, errors="replace", timeout=limit,
                                  env=self.env if env is None else dict(env))
        except subprocess.TimeoutExpired as err:
            stderr = err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else (err.stderr or "")
            raise _error(SlurmUnreachable,
                         f"Slurm did not answer within {limit:g} s: {shown}",
                         argv, None, stderr) from err
        except OSError as err:
            raise _error(SlurmUnreachable,
                         f"cannot run {argv[0]} ({err.strerror}): is Slurm's client installed?",
                         argv, None, "") from err
        if check and proc.returncode != 0:
            raise self._error_for(argv, proc.returncode, proc.stderr)
        return proc

    @staticmethod
    def _error_for(argv: Sequence[str], status: int, stderr: str) -> SlurmError:
        """The exception for a failed command (SlurmUnreachable when the
        controller could not be asked)."""
        shown = " ".join(argv)
        tail = _tail(stderr)
        if is_unreachable(stderr):
            return _error(SlurmUnreachable,
                          f"Slurm controller unreachable ({argv[0]} exited {status}: {tail}); "
                          f"SLURM_CONF={os.environ.get('SLURM_CONF', '(unset)')}",
                          argv, status, stderr)
        return _error(SlurmError, f"{shown} exited {status}: {tail or '(no message)'}",
                      argv, status, stderr)

    def submit(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
               timeout: float = SUBMIT_TIMEOUT) -> str:
        """Run ``sbatch --parsable ...`` (argv from the vocabulary's builders),
        in ``env`` (cleaned like every Slurm command's) when given; return the
        job id."""
        proc = self._run(argv, timeout=timeout,
                        env=client_environment(env) if env is not None else None)
        return parse_sbatch_parsable(proc.stdout)

    def show_job(self, job_id: str) -> SlurmJob | None:
        """``scontrol show job ID``; None when Slurm does not know the job
        (never submitted, or finished more than MinJobAge ago)."""
        argv = ["scontrol", "show", "job", str(job_id)]
        proc = self._run(argv, check=False)
        if proc.returncode != 0:
            if is_unknown_job(proc.stderr) and not is_unreachable(proc.stderr):
                return None
            raise self._error_for(argv, proc.returncode, proc.stderr)
        return parse_scontrol_job(proc.stdout)

    def accounting_job(self, job_id: str) -> SlurmJob | None:
        """The job as Slurm's accounting (``sacct``) remembers it, for a job
        ``scontrol`` has forgotten; None without accounting or without a
        record. Raises SlurmUnreachable when slurmdbd cannot be asked."""
        argv = ["sacct", "-j", str(job_id), "-X", "-P", "-n", "-o", SACCT_FIELDS]
        proc = self._run(argv, check=False)
        if proc.returncode != 0:
            if "accounting storage is disabled" in proc.stderr.lower():
                return None
            raise self._error_for(argv, proc.returncode, proc.stderr)
        return parse_sacct(proc.stdout, str(job_id))

    def queue(self, *, names: Sequence[str] = (), user: str | None = None,
              job_ids: Sequence[str] = (), states: str | None = None,
              fields: Sequence[str] = BATCH_FIELDS) -> list[QueueEntry]:
        """``squeue`` filtered by job names, user and ids (filters combine with
        AND). ``states`` is squeue's ``-t`` (default: jobs not yet finished;
        ``"all"`` includes those finished less than MinJobAge ago). ``fields``:
        what each entry holds (``BATCH_FIELDS``, ``SERVICE_FIELDS``). Job ids
        Slurm no longer knows give []."""
        argv = ["squeue", "-h", "-o", squeue_format(fields)]
        if names:
            argv += ["-n", ",".join(names)]
        if user:
            argv += ["-u", user]
        if job_ids:
            argv += ["-j", ",".join(str(j) for j in job_ids)]
        if states:
            argv += ["-t", states]
        proc = self._run(argv, check=False)
        if proc.returncode != 0:
            if job_ids and is_unknown_job(proc.stderr) and not is_unreachable(proc.stderr):
                return []
            raise self._error_for(argv, proc.returncode, proc.stderr)
        return parse_squeue(proc.stdout, fields)

    def cancel(self, job_id: str, *, signal: str | int | None = None,
               batch: bool = False, full: bool = False) -> bool:
        """``scancel [--signal=S] [--batch|--full] ID``. Plain scancel sends
        TERM to the script and its children, then KILL after KillWait; with
        ``signal`` alone the batch script is NOT reached (use full=True).
        False when Slurm no longer knows the job (it ended meanwhile: plain
        scancel says nothing then, ``--signal`` says "Invalid job id")."""
        argv = ["scancel"]
        if signal is not None:
            argv.append(f"--signal={signal}")
        if batch:
            argv.append("--batch")
        if full:
            argv.append("--full")
        argv.append(str(job_id))
        proc = self._run(argv, check=False)
        if proc.returncode != 0:
            if is_unknown_job(proc.stderr) and not is_unreachable(proc.stderr):
                return False
            raise self._error_for(argv, proc.returncode, proc.stderr)
        return True

    def ping(self) -> bool:
        """True when ``scontrol ping`` finds the controller up."""
        try:
            proc = self._run(["scontrol", "ping"], check=False)
        except SlurmUnreachable:
            return False
        return proc.returncode == 0 and " is UP" in proc.stdout
