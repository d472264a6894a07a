"""Installing the crontab: the lock, the comparison and the atomic write.

The only module of cron-generate with effects on the output file.

- Lock: ``.<name>.lock`` beside the output file (a name with a dot, which cron
  ignores in /etc/cron.d), taken with filelock and a timeout, so that two
  cron-generate writing the same file are serialized whatever config each one
  read. The lock file is never removed (removing it would reopen the race).
- Write: :func:`run_job.atomic.write_atomic` with a temporary name that starts
  with a dot (cron ignores it), fsync, mode 0644 whatever the umask,
  ``os.replace``. An unchanged file (same bytes, mode 0644) is not rewritten:
  its mtime stays, so cron does not reload it for nothing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple

from cron_generate.render import CrontabError, check_output_name
from run_job.atomic import write_atomic

MODE = 0o644
DEFAULT_LOCK_TIMEOUT = 60.0
# Far above any crontab cron-generate writes (100,000 jobs take about 15 MB).
READ_LIMIT = 64 * 1024 * 1024


class Installed(NamedTuple):
    """What is at the output path now: its bytes (None if missing) and mode."""

    data: bytes | None
    mode: int | None


def output_path(value: str) -> Path:
    """The configured output file, checked: absolute, a cron.d-valid name, an existing folder."""
    path = Path(value)
    if not path.is_absolute():
        raise CrontabError(f"output_crontab {value!r} must be an absolute path or 'console'")
    check_output_name(path.name)
    if not path.parent.is_dir():
        raise CrontabError(f"output_crontab {value!r}: folder {str(path.parent)!r} does not exist")
    return path


def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def read_installed(path: Path) -> Installed:
    """The installed file: read without blocking and up to ``READ_LIMIT``.

    Anything but a regular file there (a FIFO, a device, a socket, a folder)
    is refused: cron-generate replaces only a regular file it could read, so
    that something an operator put there on purpose is never lost silently.
    """
    from run_job.security import NotRegularFile, open_regular, read_fd, reason

    try:
        fd, st = open_regular(path)
    except FileNotFoundError:
        return Installed(None, None)
    except NotRegularFile as err:
        raise CrontabError(f"output_crontab {str(path)!r} is {err.kind}, not a regular file; cron-generate "
                           "replaces only a regular file: remove it, or set output_crontab elsewhere") from err
    except OSError as err:
        raise CrontabError(f"cannot read {str(path)!r}: {reason(err)}") from err
    try:
        data = read_fd(fd, st, READ_LIMIT, path)
    except OSError as err:
        raise CrontabError(f"cannot read {str(path)!r}: {reason(err)}; is output_crontab the right "
                           "file?") from err
    finally:
        os.close(fd)
    return Installed(data, stat.S_IMODE(st.st_mode))


def in_sync(installed: Installed, text: str) -> bool:
    return installed.data == text.encode("utf-8") and installed.mode == MODE


def unified_diff(path: Path, installed: Installed, text: str) -> str:
    """The change from the installed file to ``text`` (empty when the bytes match)."""
    import difflib  # only --diff needs it

    old = (installed.data or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
    new = text.splitlines(keepends=True)
    fromfile = str(path) if installed.data is not None else "/dev/null"
    diff = "".join(difflib.unified_diff(old, new, fromfile=fromfile, tofile=f"{path} (generated)"))
    if not diff and installed.data is not None and installed.mode != MODE:
        diff = f"mode of {path}: {installed.mode:04o}, expected {MODE:04o}\n"
    return diff


def install(path: Path, text: str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> bool:
    """Write ``text`` to ``path`` under the lock unless in sync; True if written."""
    import filelock  # only a write needs it

    try:
        # made here so that its mode is 0644 (umask permitting) with every
        # filelock version, and never through a symlink
        os.close(os.open(lock_path(path), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, MODE))
    except OSError as err:
        raise CrontabError(f"cannot create the lock file {lock_path(path)}: {err.strerror or err}") from err
    lock = filelock.FileLock(str(lock_path(path)), timeout=lock_timeout)
    try:
        with lock:
            if in_sync(read_installed(path), text):
                return False
            try:
                write_atomic(path, text.encode("utf-8"), MODE, tmp_prefix=".")
            except OSError as err:
                raise CrontabError(f"cannot write {str(path)!r}: {err.strerror or err}") from err
            return True
    except filelock.Timeout as err:
        raise CrontabError(f"another cron-generate holds {lock_path(path)} (waited {lock_timeout:g}s); "
                           "try again when it is done") from err
    except OSError as err:  # the lock file itself cannot be created
        raise CrontabError(f"cannot lock {lock_path(path)}: {err.strerror or err}") from err
