"""What the controller of one run hands to an executor, and what it gets back.

Two executors exist: local supervision (``supervise.py``) and Slurm batch
(``slurm/runner.py``). The controller (``controller.py``) owns the lock, the
run folder, ``status.json``, history, alerts and retries (it calls the
executor once per attempt); executors only run commands, appending to
``output.log``.
"""

from __future__ import annotations

from pathlib import Path
TYPE_CHECKING = False

from run_job.model import Config, Job, Record

if TYPE_CHECKING:  # typing is not imported at run time: see model.py on start-up cost
    from typing import Callable


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
    # Which attempt of the run this is (1 unless the job retries, SPEC §10):
    # the executor is called once per attempt, in the same run folder.
    attempt: int = 1


class ExecResult(Record):
    outcome: str  # success, failed, timed_out, killed, lost
    exit_status: int  # what run-job exits with (SPEC §4)
    exit_code: int | None = None  # the failing command's own status
    signal: int | None = None  # the signal that ended the job, if any
    reason: str = ""
    slurm_job_id: str | None = None
