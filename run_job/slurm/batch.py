"""Slurm batch runs, the pure part: builders, parsers and decisions.

Nothing here runs a command or touches a file. ``slurm_client.py`` executes
what is built here; ``slurm_runner.py`` wires one run.

* ``job_name(slug)``: ``<slug>.run-job``. A slug never contains a dot, so a
  batch run can never be named like a service's ``<slug>-service`` job.
* ``build_batch_script``: the bash script of one run. It appends its output to
  the run's ``output.log``, writes ``job.status`` into the run folder
  (``started_at``, then ``ended_at``/``exit_status``/``signal``, each time
  atomically through a temp file and ``mv``), cds to the working directory,
  exports the job's environment and runs the commands in order, stopping at
  the first failure. Each command runs through ``env`` (an executable looked
  up on PATH, as a local run does it, never a bash builtin or function).
  Every value is quoted with ``shlex.quote``.
* ``build_sbatch_argv``: ``sbatch --parsable ...`` for that script.
* ``parse_sbatch_parsable``, ``parse_scontrol_job``, ``parse_squeue``,
  ``parse_sacct``, ``parse_job_status``: readers of sbatch, scontrol, squeue,
  sacct and job.status.
* ``decide_outcome``: the run's outcome from job.status and Slurm's record.
* ``slurm_poll_interval``: how often a waiting run asks Slurm.
"""

from __future__ import annotations

import math
import re
import shlex
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost, see model.py)
    from typing import Iterable, Mapping, Sequence

from run_job.errors import EXIT_TIMEOUT, SlurmError

JOB_NAME_SUFFIX = ".run-job"
STATUS_FILE = "job.status"
SCRIPT_FILE = "job.sbatch"

# Slurm job states in which the job still holds (or will hold) resources: an
# earlier run in one of these blocks a new run, and run-job keeps waiting.
ACTIVE_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
    "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT",
    "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT", "POWER_UP_NODE",
})
# States meaning the batch script has started (for the run-job deadline).
STARTED_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "SIGNALING",
                            "STAGE_OUT", "STOPPED"})

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JOB_ID = re.compile(r"[0-9]+")


def job_name(slug: str) -> str:
    """The Slurm job name of every batch run of ``slug``."""
    return slug + JOB_NAME_SUFFIX


def time_limit(slurm_time: str | None, timeout: float | None) -> str | None:
    """The ``--time`` value: ``slurm.time`` as written, else the timeout in
    whole minutes rounded up (Slurm's unit), else None (the partition's)."""
    if slurm_time:
        return slurm_time
    if timeout:
        return str(max(1, math.ceil(timeout / 60.0)))
    return None


def output_option(path: str) -> str:
    """``path`` as a value for ``--output``/``--error``.

    sbatch expands ``%j`` and friends in these names unless the name holds a
    backslash; it then drops every backslash. So a ``%`` is protected with a
    backslash, and a path that holds a backslash itself cannot be named at all:
    Slurm's own messages then go to /dev/null, while the script still appends
    everything the commands write to ``output.log`` (it redirects itself).
    """
    if "\\" in path:
        return "/dev/null"
    if "%" in path:
        return path.replace("%", "\\%")
    return path


def script_exports(environment: Mapping[str, str], base: Mapping[str, str],
                   always: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The variables the script must export: those of ``environment`` that
    ``base`` (the environment sbatch passes with ``--export=ALL``) lacks or
    holds with another value, plus every name in ``always``; sorted."""
    keep = set(always)
    out = []
    for name in sorted(environment):
        value = environment[name]
        if name in keep or base.get(name) != value:
            out.append((name, value))
    return out


def build_batch_script(*, slug: str, run_id: str, commands: Sequence[Sequence[str]],
                       exports: Sequence[tuple[str, str]], working_directory: str,
                       run_dir: str, output_path: str) -> str:
    """The batch script of one run (bash); pure, golden-file tested.

    ``job.status`` lines are ``key=value``: ``slurm_job_id``, ``host``,
    ``pid``, ``started_at``, then at the end ``ended_at``, ``exit_status``
    (the script's own exit status), ``failed_command`` (1-based, when one
    failed) and ``signal`` (when a signal stopped the script).
    """
    for name, _value in exports:
        if name.startswith("_pc_"):
            raise SlurmError(f"environment variable {name!r} cannot be passed to a Slurm job: "
                             "names starting with _pc_ are the batch script's own")
        if not _ENV_NAME.fullmatch(name):
            raise SlurmError(
                f"environment variable {name!r} cannot be passed to a Slurm job: "
                "a name must be letters, digits and underscores, not starting with a digit")
    if not commands:
        raise SlurmError("a Slurm run needs at least one command")
    q = shlex.quote
    status = q(f"{run_dir}/{STATUS_FILE}")
    lines = [
        "#!/bin/bash",
        f"# Batch script of job {slug}, run {run_id}; written by run-job.",
        "# Every option is on sbatch's command line: no #SBATCH lines here.",
        f"exec >>{q(output_path)} 2>&1 </dev/null",
        "# run-job's own helpers use the PATH sbatch gave, whatever the job exports",
        "_pc_path=$PATH",
        "_pc_env=$(command -v env) || _pc_env=/usr/bin/env",
        f"_pc_status={status}",
        "_pc_started=''",
        "_pc_write() {",
        '    printf \'%s\\n\' "$@" >"$_pc_status.tmp.$$" &&',
        '        PATH=$_pc_path mv -f -- "$_pc_status.tmp.$$" "$_pc_status"',
        "}",
        "_pc_now() { PATH=$_pc_path date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }",
        "_pc_end() {",
        "    # $1 exit status, $2 failed command (or empty), $3 signal (or empty)",
        '    _pc_write "slurm_job_id=${SLURM_JOB_ID:-}" "host=${HOSTNAME:-}" "pid=$$" \\',
        '        "started_at=$_pc_started" "ended_at=$(_pc_now)" "exit_status=$1" \\',
        '        "failed_command=$2" "signal=$3"',
        "}",
        "_pc_signal() {",
        '    trap - TERM INT HUP',
        '    _pc_end "$((128 + $1))" "${_pc_current:-}" "$1"',
        '    exit "$((128 + $1))"',
        "}",
        "trap '_pc_signal 15' TERM",
        "trap '_pc_signal 2' INT",
        "trap '_pc_signal 1' HUP",
        "_pc_started=$(_pc_now)",
        '_pc_write "slurm_job_id=${SLURM_JOB_ID:-}" "host=${HOSTNAME:-}" "pid=$$" "started_at=$_pc_started"',
    ]
    for name, value in exports:
        lines.append(f"export {name}={q(value)}")
    lines.append(f"cd -- {q(working_directory)} || "
                 "{ echo \"run-job: cannot change to the working directory\" >&2; "
                 "_pc_end 125 '' ''; exit 125; }")
    for index, argv in enumerate(commands, start=1):
        # through env: an executable found on PATH, as a local run finds it,
        # never a shell builtin, keyword or function of the same name
        words = '"$_pc_env" -- ' + " ".join(q(word) for word in argv)
        lines.append(f"_pc_current={index}")
        lines.append(words)
        lines.append(f'_pc_rc=$?; if [ "$_pc_rc" -ne 0 ]; then _pc_end "$_pc_rc" {index} \'\'; '
                     'exit "$_pc_rc"; fi')
    lines.append("_pc_end 0 '' ''")
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def build_sbatch_argv(*, script_path: str, name: str, output_path: str, run_dir: str,
                      partition: str | None, time: str | None,
                      options: Sequence[str] = (), sbatch: str = "sbatch") -> list[str]:
    """``sbatch --parsable`` for one run; the job's allowlisted options come
    after run-job's own, the script path last (nothing follows it)."""
    out = output_option(output_path)
    argv = [sbatch, "--parsable", f"--job-name={name}", f"--output={out}",
            f"--error={out}", "--open-mode=append", "--input=/dev/null",
            "--export=ALL", "--no-requeue", f"--chdir={run_dir}"]
    if partition:
        argv.append(f"--partition={partition}")
    if time:
        argv.append(f"--time={time}")
    argv.extend(options)
    argv.append(script_path)
    return argv


def parse_sbatch_parsable(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` (``ID`` or ``ID;CLUSTER``)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if lines:
        job_id = lines[-1].split(";", 1)[0]
        if _JOB_ID.fullmatch(job_id):
            return job_id
    raise SlurmError(f"sbatch answered without a job id: {stdout.strip()[-200:]!r}")


class SlurmJob:
    """What ``scontrol show job`` tells about one job."""

    __slots__ = ("job_id", "name", "user", "state", "reason", "exit_code",
                 "exit_signal", "partition", "time_limit", "submit_time",
                 "start_time", "end_time", "run_time", "batch_host")

    def __init__(self, **fields: object) -> None:
        for slot in self.__slots__:
            setattr(self, slot, fields.get(slot))

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def started(self) -> bool:
        """The batch script was launched. A job cancelled while pending gets a
        StartTime (= its EndTime) but never a BatchHost."""
        if self.state in ACTIVE_STATES:
            return self.state in STARTED_STATES
        return bool(self.batch_host) and self.batch_host != "(null)"

    def as_dict(self) -> dict:
        return {slot: getattr(self, slot) for slot in self.__slots__}

    def __repr__(self) -> str:
        return f"SlurmJob({self.as_dict()!r})"


_SCONTROL_KEYS = {
    "JobId": "job_id", "JobName": "name", "UserId": "user", "JobState": "state",
    "Reason": "reason", "ExitCode": "exit", "Partition": "partition",
    "TimeLimit": "time_limit", "SubmitTime": "submit_time",
    "StartTime": "start_time", "EndTime": "end_time", "RunTime": "run_time",
    "BatchHost": "batch_host",
}
_FIELD = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z/:_]*)=")


def parse_scontrol_job(text: str) -> SlurmJob | None:
    """The first job of ``scontrol show job ID`` output (multi-line form).

    Only the first occurrence of each key counts, and a value ends at the next
    `` Key=``: the fields read here all come before the free-text ones
    (``Comment``, ``WorkDir``, ``StdOut``) that could imitate them.
    Returns None when the text holds no job.
    """
    found: dict[str, str] = {}
    for line in text.splitlines():
        if found and line.startswith("JobId="):
            break  # a second job (an array or het job): ignore
        marks = list(_FIELD.finditer(line))
        for i, mark in enumerate(marks):
            key = mark.group(1)
            end = marks[i + 1].start() if i + 1 < len(marks) else len(line)
            value = line[mark.end():end].strip()
            if key in _SCONTROL_KEYS and _SCONTROL_KEYS[key] not in found:
                found[_SCONTROL_KEYS[key]] = value
    if "job_id" not in found:
        return None
    code, signal = _split_exit(found.pop("exit", ""))
    user = found.get("user") or ""
    found["user"] = user.split("(", 1)[0] or None
    return SlurmJob(exit_code=code, exit_signal=signal, **found)


def _split_exit(text: str) -> tuple[int | None, int | None]:
    match = re.fullmatch(r"(\d+):(\d+)", text)
    if not match:
        return None, None
    return int(match.group(1)), int(match.group(2))


SACCT_FIELDS = "JobID,State,ExitCode"


def parse_sacct(text: str, job_id: str) -> SlurmJob | None:
    """The job's line of ``sacct -j ID -X -P -n -o JobID,State,ExitCode``
    (``CANCELLED by 0`` is read as CANCELLED); None when it is not there."""
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 3 or parts[0] != str(job_id):
            continue
        state = parts[1].split()[0].rstrip("+") if parts[1].strip() else None
        code, signal = _split_exit(parts[2].strip())
        return SlurmJob(job_id=parts[0], state=state, exit_code=code, exit_signal=signal,
                        reason="from accounting (sacct)")
    return None


SQUEUE_FORMAT = "%i|%T|%u|%P|%j"


class QueueEntry:
    """One line of ``squeue -h -o SQUEUE_FORMAT``."""

    __slots__ = ("job_id", "state", "user", "partition", "name")

    def __init__(self, job_id: str, state: str, user: str, partition: str, name: str) -> None:
        self.job_id, self.state, self.user, self.partition, self.name = (
            job_id, state, user, partition, name)

    def __repr__(self) -> str:
        return (f"QueueEntry({self.job_id!r}, {self.state!r}, {self.user!r}, "
                f"{self.partition!r}, {self.name!r})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QueueEntry) and repr(self) == repr(other)


def parse_squeue(text: str) -> list[QueueEntry]:
    """Lines of ``squeue -h -o '%i|%T|%u|%P|%j'`` (the name last: it may hold ``|``)."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|", 4)
        if len(parts) != 5 or not parts[0].strip():
            raise SlurmError(f"unexpected squeue line: {line[:200]!r}")
        entries.append(QueueEntry(parts[0].strip(), parts[1].strip(), parts[2].strip(),
                                  parts[3].strip(), parts[4]))
    return entries


class JobStatus:
    """The run's own ``job.status``, written by the batch script."""

    __slots__ = ("slurm_job_id", "host", "pid", "started_at", "ended_at",
                 "exit_status", "failed_command", "signal")

    def __init__(self, **fields: object) -> None:
        for slot in self.__slots__:
            setattr(self, slot, fields.get(slot))

    @property
    def ended(self) -> bool:
        return self.exit_status is not None

    def as_dict(self) -> dict:
        return {slot: getattr(self, slot) for slot in self.__slots__}

    def __repr__(self) -> str:
        return f"JobStatus({self.as_dict()!r})"


def parse_job_status(text: str) -> JobStatus | None:
    """Read job.status; None when empty. Unknown keys are ignored."""
    values: dict[str, object] = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if not eq or key not in JobStatus.__slots__:
            continue
        values[key] = value or None
    if not values:
        return None
    for key in ("exit_status", "failed_command", "signal", "pid"):
        raw = values.get(key)
        if raw is not None:
            try:
                values[key] = int(str(raw))
            except ValueError:
                values[key] = None
    return JobStatus(**values)


class Outcome:
    """The decided end of a run: fields as in ``ExecResult``."""

    __slots__ = ("outcome", "exit_status", "exit_code", "signal", "reason")

    def __init__(self, outcome: str, exit_status: int, exit_code: int | None = None,
                 signal: int | None = None, reason: str = "") -> None:
        self.outcome, self.exit_status, self.exit_code, self.signal, self.reason = (
            outcome, exit_status, exit_code, signal, reason)

    def as_tuple(self) -> tuple:
        return (self.outcome, self.exit_status, self.exit_code, self.signal, self.reason)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outcome) and self.as_tuple() == other.as_tuple()

    def __repr__(self) -> str:
        return f"Outcome{self.as_tuple()!r}"


def decide_outcome(status: JobStatus | None, job: SlurmJob | None, *,
                   timed_out: bool = False, stop_signal: int | None = None,
                   timeout_text: str = "", lost_reason: str = "") -> Outcome:
    """The outcome of a finished (or abandoned) run.

    Order: run-job's own decisions (its deadline passed -> timed_out, 124;
    run-job was told to stop by signal N -> killed, 128+N), then the job's own
    ``job.status``, then Slurm's record, else lost.
    """
    if timed_out:
        return Outcome("timed_out", EXIT_TIMEOUT, None, None,
                       f"timed out{timeout_text}; run-job cancelled the Slurm job")
    if stop_signal is not None:
        return Outcome("killed", 128 + stop_signal, None, stop_signal,
                       f"run-job received signal {stop_signal} and cancelled the Slurm job")
    state = job.state if job is not None else None
    if status is not None and status.ended:
        rc = status.exit_status
        if rc == 0:
            return Outcome("success", 0, 0)
        if status.signal:
            if state == "TIMEOUT":
                return Outcome("timed_out", EXIT_TIMEOUT, None, status.signal,
                               "Slurm's time limit ended the job")
            who = "cancelled in Slurm" if state == "CANCELLED" else "stopped"
            return Outcome("killed", 128 + status.signal, None, status.signal,
                           f"the job was {who} by signal {status.signal}")
        reason = ""
        if status.failed_command:
            reason = f"command {status.failed_command} exited with status {rc}"
        if rc == 125 and not status.failed_command:
            reason = "the batch script could not change to the working directory"
        return Outcome("failed", rc, rc, None, reason)
    if job is None or state is None:
        return Outcome("lost", 125, None, None, lost_reason or
                       "the job ended without writing job.status and Slurm no longer knows it")
    code, sig = job.exit_code, job.exit_signal
    missing = ("; job.status was not written (is the run folder on a filesystem shared "
               "with the compute node?)")
    if state == "COMPLETED":
        return Outcome("success", 0, 0, None, "Slurm says COMPLETED" + missing)
    if state == "TIMEOUT":
        return Outcome("timed_out", EXIT_TIMEOUT, None, sig or None, "Slurm's time limit ended the job")
    if state in ("CANCELLED", "PREEMPTED", "DEADLINE"):
        signal = sig or 15
        return Outcome("killed", 128 + signal, None, signal, f"Slurm job {state}")
    if state == "OUT_OF_MEMORY":
        return Outcome("killed", 128 + 9, None, 9, "Slurm job OUT_OF_MEMORY")
    if state == "FAILED":
        if sig:
            return Outcome("killed", 128 + sig, None, sig,
                           f"Slurm job FAILED by signal {sig} (reason {job.reason})" + missing)
        if code:
            return Outcome("failed", code, code, None, f"Slurm job FAILED with {code}" + missing)
        return Outcome("failed", 125, None, None, f"Slurm job FAILED (reason {job.reason})" + missing)
    if state in ("NODE_FAIL", "BOOT_FAIL"):
        return Outcome("lost", 125, None, None, f"Slurm job {state}")
    return Outcome("lost", 125, None, None, lost_reason or f"Slurm job in state {state}")


def slurm_poll_interval(waited: float) -> float:
    """Seconds between two questions to Slurm after ``waited`` seconds.

    1 s for the first minute, then a twelfth of the time waited, at most 30 s:
    60 calls in the first minute, 9 in the second, 3 in the fifth, and 2 a
    minute from the seventh on. job.status is read far more often
    (``STATUS_POLL``).
    """
    if waited < 60.0:
        return 1.0
    return min(30.0, waited / 12.0)


STATUS_POLL = 0.1  # seconds between two reads of job.status (a stat and a small read)
