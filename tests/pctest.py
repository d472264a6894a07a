"""Shared test helpers of every tier: how to call the commands, a site in
tmp_path, a config, waiting, a free port.

Imported as ``pctest`` (a unique name: several folders have a conftest.py;
tests/conftest.py re-exports the common names).

- ``wait_for(predicate, timeout=20, step=0.05, what=None)``: poll until true;
- ``free_port(host)``: a TCP port nobody listens on;
- ``config_settings(root, var=None, **keys)``: a site's config as the mapping
  a config file holds (folders ``jobs``, ``log``, ``state``, ``run``);
  ``config_record(root, **fields)``: the same layout as a ``Config`` record,
  for tests that call the package in-process;
- ``Site``: that config written to ``root/process-control.yaml`` with its job
  folder; the variants (cron-generate's, Slurm's, services', root's) are small
  subclasses in their test files;
- ``run``/``command``/``command_env``: the commands as subprocesses.

The commands run as real subprocesses. By default they run from this checkout
(``python -m run_job``); with ``PC_INSTALLED=1`` the installed console scripts
on PATH are used instead (the Debian package's CI run tests those too).

A test session never writes into the invoking user's home: ``isolate_home``
(called by tests/conftest.py) points HOME and the XDG base folders at empty
folders of the session, and ``home_writes`` lists what landed in that HOME.

A command run as another user (a service user) cannot use this checkout nor
its venv when they sit under a 0700 home (a root newcomer clones into /root):
``any_user_command`` and ``any_user_env`` run it from a world-readable copy of
the packages with Debian's /usr/bin/python3, or as installed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
USER = pwd.getpwuid(os.geteuid()).pw_name
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-yaml & co (.ci/run installs them)
MODULES = {"run-job": "run_job", "cron-generate": "cron_generate", "sbatch-service": "run_job.service_cli",
           "check-jobs-icinga": "run_job.check_cli", "process-control-web": "run_job.web_cli"}
PACKAGES = ("run_job", "cron_generate", "schemas")  # what a checkout run imports


def installed() -> bool:
    """The tests run the installed commands (``PC_INSTALLED=1``), not this checkout."""
    return os.environ.get("PC_INSTALLED") == "1"


def command(name: str) -> list[str]:
    """argv prefix of ``run-job``, ``cron-generate`` or ``sbatch-service``."""
    if installed():
        found = shutil.which(name)
        if not found:
            pytest.fail(f"PC_INSTALLED=1 but {name} is not on PATH")
        return [found]
    return [sys.executable, "-m", MODULES[name]]


def command_env(extra: dict | None = None, *, base: Mapping[str, str] | None = None) -> dict:
    """The environment of a command under test: ``base`` (default this
    process's), no PROCESS_CONTROL_CONFIG, the session's HOME and XDG_*, this
    checkout on PYTHONPATH (unless ``PC_INSTALLED=1``), then ``extra``."""
    env = dict(os.environ if base is None else base)
    env.pop("PROCESS_CONTROL_CONFIG", None)
    env.update(session_env())
    if not installed():
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if extra:
        env.update(extra)
    return env


def run(name: str, *args: str, env: dict | None = None, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command(name) + list(args), capture_output=True, text=True,
                          env=command_env(env), timeout=timeout, **kwargs)


# ------------------------------------------------------------ waiting, ports

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, step: float = 0.05,
             what: str | None = None) -> T:
    """Call ``predicate`` every ``step`` seconds until it returns something
    true, and return that. When ``timeout`` seconds pass first: its last
    (false) value, or, given ``what``, fail the test saying what never came."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            if what is not None:
                pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
            return value
        time.sleep(step)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nobody listens on (the kernel's pick)."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------- configs

def config_settings(root: Path, *, var: Path | None = None, **keys: object) -> dict[str, Any]:
    """A site's config as a config file holds it: ``root/jobs``, and ``log``,
    ``state``, ``run`` under ``var`` (default ``root``), the crontab on the
    console, this user; then ``keys`` (any config key, replacing those)."""
    var = root if var is None else var
    settings: dict[str, Any] = {
        "job_directory": str(root / "jobs"),
        "output_directory": str(var / "log"),
        "state_directory": str(var / "state"),
        "run_directory": str(var / "run"),
        "output_crontab": "console",
        "user": USER,
    }
    settings.update(keys)
    return settings


def config_record(root: Path, **fields: object) -> Any:
    """``config_settings(root)`` as a ``run_job.model.Config`` (no file), with
    the installed runner paths; ``fields`` replace any of its fields."""
    from run_job.model import Config

    settings = config_settings(root)
    values: dict[str, Any] = {
        "source": None,
        "job_directory": Path(settings["job_directory"]),
        "output_directory": Path(settings["output_directory"]),
        "state_directory": Path(settings["state_directory"]),
        "run_directory": Path(settings["run_directory"]),
        "output_crontab": settings["output_crontab"],
        "user": settings["user"],
        "runner_path": "/usr/bin/run-job",
        "service_runner_path": "/usr/bin/sbatch-service",
    }
    values.update(fields)
    return Config(**values)


class Site:
    """A config file and every folder it names, under one tmp folder ``root``.

    ``jobs`` (made, mode 0755) and ``config`` (``process-control.yaml``,
    0644) under ``root``; ``output`` (the log folder), ``state`` and
    ``rundir`` under ``var`` (default ``root``), left for the commands to
    make. ``settings`` are config keys on top of ``config_settings``.
    """

    def __init__(self, root: Path, *, var: Path | None = None, **settings: object) -> None:
        self.root = root
        self.var = root if var is None else var
        self.jobs = root / "jobs"
        self.output = self.var / "log"
        self.state = self.var / "state"
        self.rundir = self.var / "run"
        self.config = root / "process-control.yaml"
        self.settings = settings
        self.jobs.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)
        os.chmod(self.jobs, 0o755)
        self.write_config()

    def write_config(self, **changes: object) -> None:
        """(Re)write the config: the site's folders and settings, then ``changes``."""
        import yaml

        data = config_settings(self.root, var=self.var, **{**self.settings, **changes})
        self.config.write_text(yaml.safe_dump(data, sort_keys=False))
        self.config.chmod(0o644)

    def job(self, slug: str, text: str) -> Path:
        path = self.jobs / f"{slug}.yaml"
        path.write_text(text)
        path.chmod(0o644)
        return path

    def run_job(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run("run-job", "--config", str(self.config), *args, **kwargs)


# ------------------------------------------------ the session's HOME and XDG

_SESSION: dict[str, Path] = {}
_XDG = {"XDG_CACHE_HOME": "cache", "XDG_CONFIG_HOME": "config", "XDG_STATE_HOME": "state",
        "XDG_DATA_HOME": "data"}


def _traversable(folder: str) -> bool:
    """Every user can enter ``folder`` and each of its parents."""
    path = Path(folder).resolve()
    for part in [path, *path.parents]:
        try:
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def session_folder() -> Path:
    """This session's own folder (mode 0755, every parent traversable), made once."""
    if "top" not in _SESSION:
        candidates = [tempfile.gettempdir(), "/tmp", "/var/tmp"]
        base = next((c for c in candidates if os.path.isdir(c) and _traversable(c)), None)
        if base is None:
            raise RuntimeError(f"none of {candidates} can be entered by every user")
        top = Path(tempfile.mkdtemp(prefix="pc-test-session-", dir=base))
        top.chmod(0o755)
        _SESSION["top"] = top
    return _SESSION["top"]


def session_env() -> dict[str, str]:
    """HOME and the XDG base folders of this session: empty folders of its own."""
    top = session_folder()
    env = {"HOME": str(top / "home")}
    env.update({name: str(top / "xdg" / sub) for name, sub in _XDG.items()})
    for path in env.values():
        os.makedirs(path, mode=0o700, exist_ok=True)
    return env


def isolate_home() -> None:
    """From now on this process and every command it starts write no file into
    the invoking user's home: HOME and XDG_* name the session's folders."""
    os.environ.update(session_env())


def home_writes() -> list[str]:
    """What landed in the session's HOME (nothing should: see session_env)."""
    home = Path(session_env()["HOME"])
    return sorted(str(p) for p in home.rglob("*"))


def cleanup_session() -> None:
    top = _SESSION.pop("top", None)
    if top is not None:
        shutil.rmtree(top, ignore_errors=True)


# ---------------------------------------------------- commands as another user

def readable_checkout() -> Path:
    """A copy of this checkout's packages that every user can read, made once.

    The service user cannot read a checkout (or a venv) under a 0700 folder
    such as /root; the copy sits in the session folder, every parent
    traversable, folders 0755 and files 0644."""
    top = session_folder()
    copy = top / "pythonpath"
    if not copy.exists():
        staging = top / ".pythonpath"
        staging.mkdir(mode=0o755)
        for package in PACKAGES:
            shutil.copytree(REPO / package, staging / package,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # compiled, as an installed package is (Debian's py3compile): the
        # users who run it cannot write __pycache__ here, and a start that
        # compiles every module costs ten times one that does not
        if os.access(SYSTEM_PYTHON, os.X_OK):
            subprocess.run([SYSTEM_PYTHON, "-m", "compileall", "-q", str(staging)],
                           check=True, capture_output=True)
        for folder, _dirs, files in os.walk(staging):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o644)
        staging.rename(copy)
    return copy


def any_user_command(name: str) -> list[str]:
    """argv prefix of a command any user can run: the installed console script,
    or Debian's python3 on ``readable_checkout()`` (see ``any_user_env``)."""
    if installed():
        return command(name)
    # -P: not the current folder first (the checkout, when pytest runs from it)
    return [SYSTEM_PYTHON, "-P", "-m", MODULES[name]]


def any_user_env(extra: dict | None = None) -> dict:
    """``command_env`` for ``any_user_command``: PYTHONPATH is the readable copy
    alone (neither the checkout nor the venv may be readable to that user)."""
    env = command_env(extra)
    if installed():
        env.pop("PYTHONPATH", None)
    else:
        env["PYTHONPATH"] = str(readable_checkout())
    return env


def any_user_skip_reason() -> str | None:
    """Why a command cannot run as another user here, or None."""
    if installed():
        return None
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"no {SYSTEM_PYTHON} (Debian's python3) to run the command as another user"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import yaml, jsonschema, croniter, filelock"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return (f"{SYSTEM_PYTHON} cannot import the dependencies (install python3-yaml, "
                f"python3-jsonschema, python3-croniter, python3-filelock): {probe.stderr.strip()[-200:]}")
    return None



# ---------------------------------------------------- a real second user, a terminal

SERVICE_USER = "pc-run-test"  # a real second user, made by the root tests when missing


def ensure_service_user() -> pwd.struct_passwd:
    """The system user ``SERVICE_USER`` (made with useradd when missing; as root)."""
    import tempfile

    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        if not shutil.which("useradd"):
            pytest.skip("useradd is not available")
        home = tempfile.mkdtemp(prefix="pc-home-")
        os.rmdir(home)
        subprocess.run(["useradd", "--system", "--create-home", "--home-dir", home,
                        "--shell", "/usr/sbin/nologin", SERVICE_USER], check=True)
        return pwd.getpwnam(SERVICE_USER)


def run_on_terminal(argv: list[str], env: dict | None = None) -> tuple[int, bytes]:
    """Run ``argv`` with a pseudo-terminal as its stdin, stdout and stderr:
    (exit status, everything it wrote)."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - child
        os.execve(argv[0], argv, env if env is not None else command_env())
    seen = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        seen += data
    _, wstatus = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(wstatus), seen


def comm(pid: int) -> str:
    """The process name of ``pid`` (what ps, pgrep and top show; "" once it is gone)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def cmdline(pid: int) -> str:
    """The argv of ``pid`` as one line ("" once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def private_kb(pid: int) -> int:
    """Anonymous PSS of ``pid`` in kB (``smaps_rollup``): what one more waiting
    process of the same interpreter costs."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss_Anon:"):
                return int(line.split()[1])
    return 0
