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
"""

from __future__ import annotations

import math
import re
import shlex
import signal as signals
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost, see model.py)
    from typing import Iterable, Mapping, Sequence

    from run_job.model import Job

from run_job.errors import EXIT_TIMEOUT, SlurmError
from run_job.model import ExecResult

JOB_NAME_SUFFIX = ".run-job"
SERVICE_SUFFIX = "-service"
STATUS_FILE = "job.status"
SCRIPT_FILE = "job.sbatch"

# Slurm job states in which the job still holds (or will hold) resources: an
# earlier run in one of these blocks a new run, and run-job keeps waiting.
ACTIVE_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
    "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT",
    "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT", "POWER_UP_NODE",
})
# The states in which the main process exists and can take a signal.
SIGNALABLE_STATES = frozenset({"RUNNING", "SUSPENDED", "STOPPED"})
# States meaning the batch script has started (for the run-job deadline).
STARTED_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "SIGNALING",
                            "STAGE_OUT", "STOPPED"})

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JOB_ID = re.compile(r"[0-9]+")


def job_name(slug: str) -> str:
    """The Slurm job name of every batch run of ``slug``."""
    return slug + JOB_NAME_SUFFIX


def service_job_name(slug: str) -> str:
    """The Slurm job name of service ``slug`` (a slug holds no dot, so a batch
    run ``<slug>.run-job`` can never be taken for a service)."""
    return slug + SERVICE_SUFFIX


def check_env_names(names: Iterable[str], what: str = "a Slurm job") -> None:
    """Refuse a variable name a batch script cannot export (SlurmError)."""
    for name in names:
        if not _ENV_NAME.fullmatch(name):
            raise SlurmError(
                f"environment variable {name!r} cannot be passed to {what}: "
                "a name must be letters, digits and underscores, not starting with a digit")


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


def service_environment(job: Job) -> dict[str, str]:
    """The job's ``environment`` plus the service's own variables."""
    env = dict(job.environment)
    env["SBATCH_SERVICE_NAME"] = job.slug
    env["SBATCH_SERVICE_JOB_NAME"] = service_job_name(job.slug)
    return env


SUBMIT_PATH = "/usr/local/bin:/usr/bin:/bin"
# Variables of the caller that sbatch and the job keep; everything else of the
# caller's environment is left out (see submit_environment).
_SUBMIT_KEEP = ("SLURM_CONF", "LANG", "LANGUAGE", "TZ")


def submit_environment(environ: Mapping[str, str], *, user: str, home: str) -> dict[str, str]:
    """The environment sbatch runs in, and so (``--export=ALL``) the base of
    the service's: the same whether an operator's shell or cron's keep-alive
    entry started it. Only ``SLURM_CONF``, the locale and ``TZ`` come from the
    caller; PATH is the system's (set PATH in the job's ``environment`` for
    more); HOME, USER, LOGNAME, SHELL are the service user's."""
    env = {name: environ[name] for name in _SUBMIT_KEEP if name in environ}
    env.update({name: value for name, value in environ.items() if name.startswith("LC_")})
    env.update(PATH=SUBMIT_PATH, HOME=home, USER=user, LOGNAME=user, SHELL="/bin/sh")
    return env


def build_batch_script(*, slug: str, run_id: str, commands: Sequence[Sequence[str]],
                       exports: Sequence[tuple[str, str]], working_directory: str,
                       run_dir: str, output_path: str) -> str:
    """The batch script of one run (bash); pure, golden-file tested.

    ``job.status`` lines are ``key=value``: ``slurm_job_id``, ``host``,
    ``pid``, ``started_at``, then at the end ``ended_at``, ``exit_status``
    (the script's own exit status), ``failed_command`` (1-based, when one
    failed) and ``signal`` (when a signal stopped the script).
    """
    check_env_names([name for name, _value in exports])
    for name, _value in exports:
        if name.startswith("_pc_"):
            raise SlurmError(f"environment variable {name!r} cannot be passed to a Slurm job: "
                             "names starting with _pc_ are the batch script's own")
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
    # for the type checker (the slots hold them; annotations cost nothing at run time)
    job_id: str
    name: str | None
    user: str | None
    state: str | None
    reason: str | None
    exit_code: int | None
    exit_signal: int | None
    partition: str | None
    time_limit: str | None
    submit_time: str | None
    start_time: str | None
    end_time: str | None
    run_time: str | None
    batch_host: str | None

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
    user = found.pop("user", "").split("(", 1)[0] or None
    return SlurmJob(exit_code=code, exit_signal=signal, user=user, **found)


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


# squeue's fields by name, and the two formats run-job and sbatch-service ask
# for. The job name is always last: it may hold the separator.
SQUEUE_CODES = {"job_id": "%i", "state": "%T", "user": "%u", "partition": "%P", "nodes": "%N",
                "start_time": "%S", "submit_time": "%V", "reason": "%r", "name": "%j"}
BATCH_FIELDS = ("job_id", "state", "user", "partition", "name")
SERVICE_FIELDS = ("job_id", "state", "user", "partition", "nodes", "start_time", "submit_time",
                  "reason", "name")


def squeue_format(fields: Sequence[str]) -> str:
    """The ``-o`` format of ``fields`` (pure)."""
    return "|".join(SQUEUE_CODES[field] for field in fields)


SQUEUE_FORMAT = squeue_format(BATCH_FIELDS)


class QueueEntry:
    """One line of squeue: the fields asked for, the others None."""

    __slots__ = tuple(SQUEUE_CODES)
    # for the type checker; job_id is the first field of every format
    job_id: str
    state: str | None
    user: str | None
    partition: str | None
    nodes: str | None
    start_time: str | None
    submit_time: str | None
    reason: str | None
    name: str | None

    def __init__(self, **values: str | None) -> None:
        for slot in self.__slots__:
            setattr(self, slot, values.get(slot))

    @property
    def since(self) -> str | None:
        """Start time when it runs, submit time while it waits."""
        if self.state == "PENDING" or self.start_time in (None, "", "N/A", "Unknown", "None"):
            return self.submit_time
        return self.start_time

    def describe(self) -> str:
        """``RUNNING on node1`` / ``PENDING (Resources)``."""
        if self.state == "PENDING":
            return f"PENDING ({self.reason})" if self.reason and self.reason != "None" else "PENDING"
        if self.nodes and self.nodes not in ("", "(null)"):
            return f"{self.state} on {self.nodes}"
        return str(self.state)

    def _values(self) -> tuple:
        return tuple(getattr(self, slot) for slot in self.__slots__)

    def __repr__(self) -> str:
        shown = ", ".join(f"{s}={getattr(self, s)!r}" for s in self.__slots__
                          if getattr(self, s) is not None)
        return f"QueueEntry({shown})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QueueEntry) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())


def parse_squeue(text: str, fields: Sequence[str] = BATCH_FIELDS) -> list[QueueEntry]:
    """Lines of ``squeue -h -o squeue_format(fields)``; the last field may hold ``|``."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|", len(fields) - 1)
        if len(parts) != len(fields) or not parts[0].strip():
            raise SlurmError(f"unexpected squeue line: {line[:200]!r}")
        values = {field: part.strip() for field, part in zip(fields[:-1], parts, strict=False)}  # not the last
        values[fields[-1]] = parts[-1]
        entries.append(QueueEntry(**values))
    return entries


def build_service_script(*, slug: str, commands: Sequence[Sequence[str]],
                         environment: Mapping[str, str], workdir: str, log: str) -> str:
    """The batch script of a service (bash; pure, golden-file tested).

    Every command but the last runs in order and stops the script at the first
    failure; the last is ``exec``ed, so the service's main process is the batch
    script's own process, which ``scancel --batch --signal`` reaches.
    """
    if not commands:
        raise SlurmError(f"service {slug} has no command")
    check_env_names(environment, f"service {slug}")
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        f"# Service {slug} (Slurm job {service_job_name(slug)}); written by sbatch-service.",
        "# Every option is on sbatch's command line: no #SBATCH lines here.",
        "# The last command is exec'd: it is this script's own process, the one",
        "# `scancel --batch --signal=SIG` reaches (stop and reload signals).",
        f"exec >>{q(log)} 2>&1 </dev/null",
        f"printf '%s\\n' \"sbatch-service: {slug} starts as Slurm job ${{SLURM_JOB_ID:-?}}"
        " on ${HOSTNAME:-?} at $(date -u +%Y-%m-%dT%H:%M:%SZ)\"",
        f"cd -- {q(workdir)} || {{ echo {q('sbatch-service: cannot change to ' + workdir)}; exit 125; }}",
    ]
    for name in sorted(environment):
        lines.append(f"export {name}={q(environment[name])}")
    for argv in commands[:-1]:
        words = " ".join(q(word) for word in argv)
        lines.append(f"{words} || exit $?")
    lines.append("exec " + " ".join(q(word) for word in commands[-1]))
    return "\n".join(lines) + "\n"


def build_service_sbatch_argv(*, script: str, name: str, log: str, partition: str,
                              time_limit: str | None, workdir: str,
                              options: Sequence[str] = ()) -> list[str]:
    """``sbatch --parsable`` for a service; allowlisted options (job file, then
    stage) after sbatch-service's own, the script path last."""
    out = output_option(log)
    argv = ["sbatch", "--parsable", f"--job-name={name}", f"--output={out}", f"--error={out}",
            "--open-mode=append", "--input=/dev/null", "--export=ALL", f"--chdir={workdir}",
            f"--partition={partition}"]
    if time_limit:
        argv.append(f"--time={time_limit}")
    argv.extend(options)
    argv.append(script)
    return argv


def parse_stage_start(stdout: str) -> tuple[list[str], list[str]]:
    """The sbatch options of a stage's ``start`` output, and the problems.

    Every non-empty line must be ``#SBATCH`` followed by options (shell-quoted
    words, each checked against the allowlist). Any other line is a problem.
    """
    from run_job.slurm.options import check_option

    options: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(stdout.splitlines(), 1):
        if not line.strip():
            continue
        head, _, rest = line.partition(" ")
        if head != "#SBATCH" and not line.startswith("#SBATCH\t"):
            problems.append(f"line {number} {line[:120]!r}: every line must start with '#SBATCH '")
            continue
        rest = line[len("#SBATCH"):]
        try:
            words = shlex.split(rest, comments=False)
        except ValueError as err:
            problems.append(f"line {number} {line[:120]!r}: {err}")
            continue
        if not words:
            problems.append(f"line {number}: '#SBATCH' without an option")
        for word in words:
            why = check_option(word)
            if why is not None:
                problems.append(f"line {number} {word!r}: {why}")
            else:
                options.append(word)
    return options, problems


def signal_number(text: str) -> int:
    """``TERM``, ``SIGTERM``, ``term`` or ``15`` -> 15; ValueError otherwise."""
    word = text.strip()
    if word.isdigit():
        number = int(word)
        try:
            return int(signals.Signals(number))
        except ValueError:
            raise ValueError(f"{word} is not a signal number on this system") from None
    name = word.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signals.Signals[name])
    except KeyError:
        raise ValueError(f"unknown signal {word!r}") from None


def parse_stage_signal(stdout: str) -> int | None:
    """The signal a ``stop``/``reload`` stage names (one word on one line), or
    None when it prints nothing; ValueError for anything else."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    if len(lines) > 1 or len(lines[0].split()) > 1:
        raise ValueError(f"expected one signal name or number, got {stdout.strip()[:120]!r}")
    return signal_number(lines[0])


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name[3:]
    except ValueError:
        return str(number)


def entries_of(entries: Iterable[QueueEntry], slug: str, user: str) -> list[QueueEntry]:
    """The present jobs of service ``slug``: exact name and user, oldest first."""
    name = service_job_name(slug)
    found = [e for e in entries if e.name == name and e.user == user and e.state in ACTIVE_STATES]
    return sorted(found, key=lambda e: int(e.job_id) if e.job_id.isdigit() else 0)


class JobStatus:
    """The run's own ``job.status``, written by the batch script."""

    __slots__ = ("slurm_job_id", "host", "pid", "started_at", "ended_at",
                 "exit_status", "failed_command", "signal")
    # for the type checker (parse_job_status makes the numbers ints)
    slurm_job_id: str | None
    host: str | None
    pid: int | None
    started_at: str | None
    ended_at: str | None
    exit_status: int | None
    failed_command: int | None
    signal: int | None

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


def decide_outcome(status: JobStatus | None, job: SlurmJob | None, *,
                   timed_out: bool = False, stop_signal: int | None = None,
                   timeout_text: str = "", lost_reason: str = "") -> ExecResult:
    """The outcome of a finished (or abandoned) run.

    Order: run-job's own decisions (its deadline passed -> timed_out, 124;
    run-job was told to stop by signal N -> killed, 128+N), then the job's own
    ``job.status``, then Slurm's record, else lost.
    """
    if timed_out:
        return ExecResult("timed_out", EXIT_TIMEOUT, None, None,
                       f"timed out{timeout_text}; run-job cancelled the Slurm job")
    if stop_signal is not None:
        return ExecResult("killed", 128 + stop_signal, None, stop_signal,
                       f"run-job received signal {stop_signal} and cancelled the Slurm job")
    state = job.state if job is not None else None
    if status is not None and status.ended:
        rc = status.exit_status
        if rc == 0:
            return ExecResult("success", 0, 0)
        if status.signal:
            if state == "TIMEOUT":
                return ExecResult("timed_out", EXIT_TIMEOUT, None, status.signal,
                               "Slurm's time limit ended the job")
            who = "cancelled in Slurm" if state == "CANCELLED" else "stopped"
            return ExecResult("killed", 128 + status.signal, None, status.signal,
                           f"the job was {who} by signal {status.signal}")
        reason = ""
        if status.failed_command:
            reason = f"command {status.failed_command} exited with status {rc}"
        if rc == 125 and not status.failed_command:
            reason = "the batch script could not change to the working directory"
        return ExecResult("failed", rc, rc, None, reason)
    if job is None or state is None:
        return ExecResult("lost", 125, None, None, lost_reason or
                       "the job ended without writing job.status and Slurm no longer knows it")
    code, sig = job.exit_code, job.exit_signal
    missing = ("; job.status was not written (is the run folder on a filesystem shared "
               "with the compute node?)")
    if state == "COMPLETED":
        return ExecResult("success", 0, 0, None, "Slurm says COMPLETED" + missing)
    if state == "TIMEOUT":
        return ExecResult("timed_out", EXIT_TIMEOUT, None, sig or None, "Slurm's time limit ended the job")
    if state in ("CANCELLED", "PREEMPTED", "DEADLINE"):
        signal = sig or 15
        return ExecResult("killed", 128 + signal, None, signal, f"Slurm job {state}")
    if state == "OUT_OF_MEMORY":
        return ExecResult("killed", 128 + 9, None, 9, "Slurm job OUT_OF_MEMORY")
    if state == "FAILED":
        if sig:
            return ExecResult("killed", 128 + sig, None, sig,
                           f"Slurm job FAILED by signal {sig} (reason {job.reason})" + missing)
        if code:
            return ExecResult("failed", code, code, None, f"Slurm job FAILED with {code}" + missing)
        return ExecResult("failed", 125, None, None, f"Slurm job FAILED (reason {job.reason})" + missing)
    if state in ("NODE_FAIL", "BOOT_FAIL"):
        return ExecResult("lost", 125, None, None, f"Slurm job {state}")
    return ExecResult("lost", 125, None, None, lost_reason or f"Slurm job in state {state}")
