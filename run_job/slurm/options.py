"""The sbatch option allowlist (pure): which options a job file may pass to sbatch.

Used for a job's ``slurm.options`` (batch runner) and for the ``#SBATCH`` lines
of a service's stages. ``check_options`` returns one message per refused item;
an empty list means every item is allowed.

Spelling rules (one option per list item, each item is exactly one argv word):

* ``--name=value`` for a long option that takes a value; ``--name`` for a flag
  (and for an option whose value is optional, such as ``--exclusive``).
  Unambiguous abbreviations are read as sbatch (getopt_long) reads them:
  ``--part=x`` is ``--partition=x``, an exact name always wins (``--time``),
  and an abbreviation matching several options (``--par``, ``--mail``) is
  refused as sbatch refuses it.
* ``-Xvalue`` for a short option with a value (``-N2``, ``-c4``); ``-X`` for a
  short flag; flags may be bundled as getopt allows (``-kO``).
* The two-word forms (``["--nodes", "2"]`` or ``"-N 2"`` in one item) are
  refused with a hint: a lone value would become sbatch's next argument (the
  script path) and a value inside the item would carry a space into the value.
* No item may contain a newline or another control character (stage files
  turn items into ``#SBATCH`` lines).

The options run-job sets itself, and those that would break its supervision,
are refused in every spelling: see ``REFUSED`` (name -> why). Everything in
``ALLOWED`` is accepted: resources, placement, account, QOS, reservation,
constraints, comment, mail, signal, nice, licenses and the like.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost, see model.py)
    from typing import Sequence

# Every long option sbatch 22.05 knows (man page, --help, and the hidden
# aliases found by trying them), mapped to how it takes a value:
# "req" required, "opt" optional (only as --name=value), "no" flag.
LONG_OPTIONS: dict[str, str] = {
    "account": "req", "acctg-freq": "req", "array": "req", "batch": "req",
    "bb": "req", "bbf": "req", "begin": "req", "chdir": "req",
    "cluster": "req", "cluster-constraint": "req", "clusters": "req",
    "comment": "req", "constraint": "req", "container": "req",
    "contiguous": "no", "core-spec": "req", "cores-per-socket": "req",
    "cpu-freq": "req", "cpus-per-gpu": "req", "cpus-per-task": "req",
    "deadline": "req", "delay-boot": "req", "dependency": "req",
    "distribution": "req", "error": "req", "exclude": "req",
    "exclusive": "opt", "export": "req", "export-file": "req",
    "extra-node-info": "req", "get-user-env": "opt", "gid": "req",
    "gpu-bind": "req", "gpu-freq": "req", "gpus": "req",
    "gpus-per-node": "req", "gpus-per-socket": "req", "gpus-per-task": "req",
    "gres": "req", "gres-flags": "req", "help": "no", "hint": "req",
    "hold": "no", "ignore-pbs": "no", "input": "req", "job-name": "req",
    "kill-on-invalid-dep": "req", "license": "req", "licenses": "req",
    "mail-type": "req", "mail-user": "req", "mcs-label": "req", "mem": "req",
    "mem-bind": "req", "mem-per-cpu": "req", "mem-per-gpu": "req",
    "mincpus": "req", "network": "req", "nice": "opt", "no-kill": "opt",
    "no-requeue": "no", "nodefile": "req", "nodelist": "req", "nodes": "req",
    "ntasks": "req", "ntasks-per-core": "req", "ntasks-per-gpu": "req",
    "ntasks-per-node": "req", "ntasks-per-socket": "req", "open-mode": "req",
    "output": "req", "overcommit": "no", "oversubscribe": "no",
    "parsable": "no", "partition": "req", "power": "req", "prefer": "req",
    "priority": "req", "profile": "req", "propagate": "opt", "qos": "req",
    "quiet": "no", "reboot": "no", "requeue": "no", "reservation": "req",
    "signal": "req", "sockets-per-node": "req", "spread-job": "no",
    "switches": "req", "tasks-per-node": "req", "test-only": "no",
    "thread-spec": "req", "threads-per-core": "req", "time": "req",
    "time-min": "req", "tmp": "req", "uid": "req", "usage": "no",
    "use-min-nodes": "no", "verbose": "no", "version": "no", "wait": "no",
    "wait-all-nodes": "req", "wckey": "req", "wrap": "req",
}

# Short options -> their long name (sbatch 22.05, checked one letter at a time).
SHORT_OPTIONS: dict[str, str] = {
    "A": "account", "a": "array", "b": "begin", "B": "extra-node-info",
    "C": "constraint", "c": "cpus-per-task", "D": "chdir", "d": "dependency",
    "e": "error", "F": "nodefile", "G": "gpus", "H": "hold", "h": "help",
    "i": "input", "J": "job-name", "k": "no-kill", "L": "licenses",
    "M": "clusters", "m": "distribution", "N": "nodes", "n": "ntasks",
    "O": "overcommit", "o": "output", "p": "partition", "Q": "quiet",
    "q": "qos", "S": "core-spec", "s": "oversubscribe", "t": "time",
    "V": "version", "v": "verbose", "W": "wait", "w": "nodelist",
    "x": "exclude",
}

_SET_BY_RUNNER = "run-job sets it itself"
# Long name -> why it is refused.
REFUSED: dict[str, str] = {
    "job-name": _SET_BY_RUNNER + " (<slug>.run-job, services <slug>-service)",
    "output": _SET_BY_RUNNER + " (the run's output.log)",
    "error": _SET_BY_RUNNER + " (the run's output.log)",
    "input": _SET_BY_RUNNER + " (/dev/null)",
    "open-mode": _SET_BY_RUNNER + " (append)",
    "export": _SET_BY_RUNNER + " (ALL; use the job's 'environment')",
    "export-file": _SET_BY_RUNNER + " (use the job's 'environment')",
    "get-user-env": "it replaces the job's environment (use 'environment')",
    "partition": "use the job's 'slurm.partition' key",
    "time": "use the job's 'slurm.time' or 'timeout' key",
    "time-min": "it lets Slurm shorten the time limit run-job set",
    "chdir": "use the job's 'working_directory' key",
    "parsable": _SET_BY_RUNNER,
    "wait": "run-job waits for the job itself",
    "wrap": "run-job writes the batch script itself",
    "test-only": "nothing would run",
    "hold": "the job would never start",
    "begin": "the job's schedule decides when it starts",
    "deadline": "the job's timeout decides when it ends",
    "dependency": "a run waits for no other Slurm job (use the schedule)",
    "kill-on-invalid-dep": "a run has no dependencies",
    "array": "one run is one Slurm job",
    "requeue": "a run is executed once (run-job submits with --no-requeue)",
    "no-requeue": _SET_BY_RUNNER,
    "uid": "jobs run as the service user",
    "gid": "jobs run as the service user's group",
    "clusters": "run-job watches the job on the local cluster only",
    "cluster": "run-job watches the job on the local cluster only",
    "container": "the batch script must run on the host's shared filesystem",
    "ignore-pbs": "the batch script is run-job's own",
    "quiet": "run-job reads sbatch's output",
    "verbose": "run-job reads sbatch's output",
    "help": "not a job option",
    "usage": "not a job option",
    "version": "not a job option",
}

ALLOWED: frozenset[str] = frozenset(LONG_OPTIONS) - frozenset(REFUSED)

_HINT_SPLIT = "write the option and its value as one item: --name=value or -Xvalue"


def resolve_long(name: str) -> tuple[str | None, str]:
    """The long option ``name`` stands for, as getopt_long reads it.

    Returns ``(full_name, "")`` or ``(None, why)`` when unknown or ambiguous.
    """
    if name in LONG_OPTIONS:
        return name, ""
    matches = sorted(opt for opt in LONG_OPTIONS if opt.startswith(name))
    if len(matches) == 1:
        return matches[0], ""
    if not matches:
        return None, f"unknown sbatch option --{name}"
    listed = ", ".join("--" + m for m in matches)
    return None, f"ambiguous abbreviation --{name} (sbatch refuses it: {listed})"


def _check_long(body: str) -> str | None:
    name, eq, value = body.partition("=")
    if " " in name or "\t" in name:
        return _HINT_SPLIT
    full, why = resolve_long(name)
    if full is None:
        return why
    shown = f"--{full}" if full == name else f"--{name} (= --{full})"
    if full in REFUSED:
        return f"{shown} is not allowed: {REFUSED[full]}"
    kind = LONG_OPTIONS[full]
    if kind == "no" and eq:
        return f"{shown} takes no value"
    if kind == "req" and not eq:
        return f"{shown} needs a value: write --{full}=VALUE in one item"
    if kind == "req" and value == "":
        return f"{shown} has an empty value"
    return None


def _check_short(body: str) -> str | None:
    i = 0
    while i < len(body):
        letter = body[i]
        full = SHORT_OPTIONS.get(letter)
        if full is None:
            return f"unknown sbatch option -{letter}"
        if full in REFUSED:
            return f"-{letter} (= --{full}) is not allowed: {REFUSED[full]}"
        kind = LONG_OPTIONS[full]
        rest = body[i + 1:]
        if kind == "no":
            i += 1
            continue
        if kind == "req" and not rest:
            return f"-{letter} (= --{full}) needs a value: write -{letter}VALUE or --{full}=VALUE in one item"
        if rest.startswith(" "):
            return _HINT_SPLIT
        return None  # the rest of the word is the value (or the optional value)
    return None


def check_option(item: str) -> str | None:
    """Why one ``slurm.options`` item is refused, or None when it is allowed."""
    if not isinstance(item, str):
        return "an option must be a string"
    if item == "":
        return "an empty option"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in item):
        return "an option must not contain a newline or another control character"
    if item == "--" or item == "-":
        return f"{item!r} is not an option"
    if item.startswith("--"):
        return _check_long(item[2:])
    if item.startswith("-"):
        return _check_short(item[1:])
    return f"not an option; {_HINT_SPLIT}"


def check_options(options: Sequence[str]) -> list[str]:
    """One message per refused item: ``options[I] 'ITEM': why``; [] = all allowed.

    The caller adds the file and key path (``slurm.options``).
    """
    problems = []
    for index, item in enumerate(options):
        why = check_option(item)
        if why is not None:
            problems.append(f"options[{index}] {item!r}: {why}")
    return problems
