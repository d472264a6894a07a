"""What the controller of one run hands to an executor, and what it gets back.

Two executors exist: local supervision (``supervise.py``) and Slurm batch
(``slurm_runner.py``). The controller (``controller.py``) owns the lock, the
run folder, ``status.json``, history and alerts; executors only run commands.
"""

from __future__ import annotations

from pathlib import Path
TYPE_CHECKING = False

from run_job.model import Config, Job, Limits, Record

if TYPE_CHECKING:  # typing is not imported at run time: see model.py on start-up cost
    from typing import Callable


class Confinement(Record):
    """What the executor needs of a run's limits (made by ``confine.prepare``)."""

    limits: Limits
    # (python, shim file, settings) of limits.shim_argv, or () for no shim.
    shim: tuple[str, ...] = ()
    # The run's cgroup (None without memory/tasks): its cgroup.procs (every
    # process of the run, run-job included) and the counters read at the end,
    # (absolute file, key) for the OOM kills and the refused forks.
    procs: str | None = None
    oom_counter: tuple[str, str] | None = None
    fork_counter: tuple[str, str] | None = None


class RunContext(Record):
    config: Config
    job: Job
    run_id: str
    run_dir: Path
    output_path: Path  # <run_dir>/output.log
    commands: tuple[tuple[str, ...], ...]  # argv lists (slow start already chosen)
    command_text: tuple[str, ...]
    environment: dict[str, str]  # the job's whole environment, RUN_JOB_* included
    working_directory: Path
    # Merge fields into status.json and rewrite it atomically (e.g. slurm_job_id).
    update_status: Callable[..., None]
    # The signal number run-job received (TERM, INT, HUP), or None.
    stop_requested: Callable[[], int | None]
    confinement: Confinement | None = None  # the run's limits; None: no limits


class ExecResult(Record):
    outcome: str  # success, failed, timed_out, killed, lost
    exit_status: int  # what run-job exits with (SPEC §4)
    exit_code: int | None = None  # the failing command's own status
    signal: int | None = None  # the signal that ended the job, if any
    reason: str = ""
    slurm_job_id: str | None = None
