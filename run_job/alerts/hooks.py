"""Event hooks: finding and running the executables of ``<hooks_directory>/<event>/``.

``hook_names`` (pure) decides which names in an event folder are hooks;
``hook_environment`` (pure) builds their environment. ``find_hooks`` checks
the folders and files against the ownership/permission rules of the job
directory, and ``run_hooks`` runs each hook in its own session (process
group), stdin from /dev/null, output to a temporary file whose tail is
logged, bounded by ``HOOK_TIMEOUT`` seconds: then the whole group gets
SIGTERM, ``HOOK_KILL_GRACE`` seconds later SIGKILL. A hook never raises out
of here: every problem is logged and returned as data.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Mapping

from run_job import logsetup as log
from run_job.security import ownership_reason


HOOK_TIMEOUT = 30.0  # seconds per hook
HOOK_KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL to the hook's group
OUTPUT_TAIL_BYTES = 4096  # of a hook's output, copied into the log

EVENTS = ("start", "success", "failure", "timeout", "skipped", "recovery")

# Names that are not hooks: dot files, editor and package-manager leftovers.
_BACKUP = re.compile(
    r"(~|\.(bak|old|orig|rej|swp|swo|tmp|save|disabled)"
    r"|\.dpkg-(old|new|dist|tmp|bak)|\.rpm(new|orig|save)|\.ucf-(old|new|dist))$")


class HookResult:
    """What became of one hook (``as_dict`` goes into ``status.json``)."""

    __slots__ = ("event", "hook", "exit_code", "signal", "timed_out", "duration_s", "error")

    def __init__(self, event: str, hook: str, *, exit_code: int | None = None,
                 signal: int | None = None, timed_out: bool = False,
                 duration_s: float = 0.0, error: str | None = None) -> None:
        self.event = event
        self.hook = hook  # file name inside the event folder
        self.exit_code = exit_code  # None: did not end on its own
        self.signal = signal  # the hook died of this signal
        self.timed_out = timed_out
        self.duration_s = duration_s
        self.error = error  # could not be started, or refused

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"HookResult({self.as_dict()!r})"


# --------------------------------------------------------------------------
# Pure parts
# --------------------------------------------------------------------------

def is_hook_name(name: str) -> bool:
    """Dot files and backups (``x~``, ``x.bak``, ``x.dpkg-old`` ...) are not hooks."""
    return bool(name) and not name.startswith(".") and not _BACKUP.search(name)


def hook_names(names: list[str]) -> list[str]:
    """The hook candidates among ``names``, in the order they run (bytewise sort)."""
    return sorted((n for n in names if is_hook_name(n)), key=lambda n: n.encode("utf-8", "surrogateescape"))


def hook_environment(base: Mapping[str, str], event: str, record: Mapping,
                     extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` plus the ``RUN_JOB_*`` variables of one event, then ``extra``
    (an event's message, a pause's who and why: values only ever passed in
    the environment, never through a shell)."""
    def text(value: object) -> str:
        return "" if value is None else str(value)

    env = dict(base)
    env.update({
        "RUN_JOB_EVENT": event,
        "RUN_JOB_NAME": text(record.get("job")),
        "RUN_JOB_RUN_ID": text(record.get("run_id")),
        "RUN_JOB_RUN_DIR": text(record.get("run_dir")),
        "RUN_JOB_OUTCOME": text(record.get("outcome")),
        "RUN_JOB_EXIT_CODE": text(record.get("exit_code")),
        "RUN_JOB_REASON": text(record.get("reason")),
    })
    env.update(extra or {})
    return env


def unsafe_reason(st: os.stat_result, *, allowed_uids: set[int]) -> str | None:
    """Why a hook folder or file with this stat may not be trusted, or None.

    The job directory's rule (``security.ownership_reason``), applied whoever
    runs: run-job usually drops from root to the service user before its
    hooks run, and a hook is code run as that user.
    """
    return ownership_reason(st, allowed_uids, "root or the service user")


# --------------------------------------------------------------------------
# Effects
# --------------------------------------------------------------------------

def _allowed_uids(user: str) -> set[int]:
    uids = {0, os.geteuid()}
    try:
        import pwd
        uids.add(int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid)
    except (KeyError, ValueError):
        pass
    return uids


def find_hooks(hooks_directory: Path | None, event: str, user: str) -> tuple[list[Path], list[HookResult]]:
    """The hook files to run for ``event``, and the refused ones (as results)."""
    if hooks_directory is None:
        return [], []
    folder = Path(hooks_directory) / event
    allowed = _allowed_uids(user)
    refused: list[HookResult] = []
    for checked in (Path(hooks_directory), folder):
        try:
            st = os.stat(checked)
        except FileNotFoundError:
            return [], []
        except OSError as err:
            log.warning("hooks: cannot read %s: %s", checked, err.strerror)
            return [], [HookResult(event, "", error=f"{checked}: {err.strerror}")]
        if not stat.S_ISDIR(st.st_mode):
            log.warning("hooks: %s is not a folder; no %s hooks run", checked, event)
            return [], [HookResult(event, "", error=f"{checked}: not a folder")]
        why = unsafe_reason(st, allowed_uids=allowed)
        if why:
            log.warning("hooks: refusing folder %s: %s; no %s hooks run", checked, why, event)
            return [], [HookResult(event, "", error=f"{checked}: refused: {why}")]
    try:
        names = os.listdir(folder)
    except OSError as err:
        log.warning("hooks: cannot list %s: %s", folder, err.strerror)
        return [], [HookResult(event, "", error=f"{folder}: {err.strerror}")]
    hooks: list[Path] = []
    for name in hook_names(names):
        path = folder / name
        try:
            st = os.stat(path)  # a symlink is judged by what it points to
        except OSError as err:
            log.warning("hooks: skipping %s: %s", path, err.strerror)
            continue
        if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
            continue  # like run-parts: non-executables are not hooks
        why = unsafe_reason(st, allowed_uids=allowed)
        if why:
            log.warning("hooks: refusing %s: %s", path, why)
            refused.append(HookResult(event, name, error=f"refused: {why}"))
            continue
        hooks.append(path)
    return hooks, refused


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_hook(path: Path, event: str, env: Mapping[str, str], *,
             timeout: float, kill_grace: float) -> HookResult:
    """Run one hook to its end or to ``timeout``; never raises."""
    result = HookResult(event, path.name)
    started = time.monotonic()
    with tempfile.TemporaryFile(prefix="process-control-hook-") as out:
        try:
            proc = subprocess.Popen(
                [str(path)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=dict(env), cwd=str(path.parent), start_new_session=True, close_fds=True)
        except OSError as err:
            result.error = f"cannot start: {err.strerror or err}"
            log.warning("hooks: %s hook %s %s", event, path, result.error)
            return result
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            result.timed_out = True
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=kill_grace)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
            # Whatever else of the group survived TERM goes now.
            _kill_group(proc.pid, signal.SIGKILL)
        result.duration_s = round(time.monotonic() - started, 3)
        if proc.returncode is not None and proc.returncode < 0:
            result.signal = -proc.returncode
        elif proc.returncode is not None:
            result.exit_code = proc.returncode
        tail = _tail(out)
    if result.timed_out:
        log.warning("hooks: %s hook %s did not finish within %g s; its process group was"
                    " stopped. Output: %s", event, path, timeout, tail)
    elif result.exit_code != 0:
        log.warning("hooks: %s hook %s failed (%s). Output: %s", event, path,
                    f"exit {result.exit_code}" if result.signal is None else f"signal {result.signal}",
                    tail)
    else:
        log.info("hooks: %s hook %s ran in %.3f s", event, path, result.duration_s)
    return result


def _tail(fh) -> str:
    try:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - OUTPUT_TAIL_BYTES))
        data = fh.read(OUTPUT_TAIL_BYTES)
    except OSError:
        return "(unreadable)"
    text = data.decode("utf-8", errors="replace").strip()
    return repr(text) if text else "(none)"


def run_hooks(hooks_directory: Path | None, event: str, record: Mapping, *, user: str,
              base_env: Mapping[str, str] | None = None, timeout: float | None = None,
              kill_grace: float | None = None,
              extra: Mapping[str, str] | None = None) -> list[HookResult]:
    """Run every hook of ``event`` in order; the results (refusals included)."""
    try:
        hooks, results = find_hooks(hooks_directory, event, user)
        if not hooks:
            return results
        env = hook_environment(os.environ if base_env is None else base_env, event, record, extra)
        for path in hooks:
            results.append(run_hook(
                path, event, env,
                timeout=HOOK_TIMEOUT if timeout is None else timeout,
                kill_grace=HOOK_KILL_GRACE if kill_grace is None else kill_grace))
        return results
    except Exception as err:  # noqa: BLE001 - a hook must never break a run
        log.error("hooks: %s hooks failed unexpectedly: %s: %s", event, type(err).__name__, err)
        return [HookResult(event, "", error=f"internal error: {err}")]
