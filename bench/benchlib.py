"""Shared benchmark plumbing: the Debian-python venv, timing, medians.

Every benchmark runs in a venv made with Debian's ``/usr/bin/python3 -m venv``
holding the newest PyPI releases of the dependencies (the figures the issues'
targets are about), kept outside the repo under
``$XDG_CACHE_HOME/process-control-bench/<name>``. A benchmark calls
``ensure_venv()`` first: it creates the venv on first use and re-executes the
script inside it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGES = ("PyYAML", "jsonschema", "croniter", "filelock")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "process-control-bench"
_MARK = "PROCESS_CONTROL_BENCH_IN_VENV"


def ensure_venv(name: str = "venv", extra: Sequence[str] = ()) -> None:
    """Re-run the calling script inside the benchmark venv (made on first use)."""
    if os.environ.get(_MARK):
        return
    venv = CACHE / name
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with {SYSTEM_PYTHON} -m venv ...", file=sys.stderr)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", *PACKAGES, *extra],
                       check=True)
    env = dict(os.environ, **{_MARK: "1"})
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    os.execve(str(python), [str(python), *sys.argv], env)


def versions() -> str:
    """One line naming the interpreter and the dependency versions measured."""
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"python {sys.version.split()[0]} ({sys.executable})"]
    for package in PACKAGES:
        try:
            parts.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package} missing")
    return ", ".join(parts)


def time_command(argv: Sequence[str], **kwargs) -> float:
    """Seconds one run of ``argv`` takes (stdout and stderr discarded); it must succeed."""
    started = time.perf_counter()
    subprocess.run(list(argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - started


def interleaved(cases: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Run each case once per round, in turn, and return the median of each."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            samples[name].append(case())
    return {name: statistics.median(values) for name, values in samples.items()}


def slurm_environment() -> dict[str, str]:
    """The environment with ``SLURM_CONF`` of a running cluster: the caller's,
    or the project's own ``tests/slurm/local-slurm``, started if needed."""
    import shlex

    env = dict(os.environ)
    if env.get("SLURM_CONF"):
        return env
    out = subprocess.run([str(REPO / "tests" / "slurm" / "local-slurm"), "start"], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            env[name] = shlex.split(value)[0]
    return env
