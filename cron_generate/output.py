"""Installing the crontab: the lock, the comparison and the atomic write.

The only module of cron-generate with effects on the output file. It leaves
nothing in the crontab's folder but the crontab.

- Lock: ``flock(2)`` on the crontab's folder itself (a descriptor of the
  folder; the kernel releases it when the process ends, however it ends), so
  that two cron-generate writing the same file are serialized whatever config
  each one read, with a bounded wait. No lock file: cron would have to ignore
  it, and it would stay in /etc/cron.d for ever.
- Write: :func:`run_job.atomic.write_atomic` with a temporary name that starts
  with a dot (cron ignores it), fsync, mode 0644 whatever the umask,
  ``os.replace``; the temporary file is removed on any error, and under the
  lock any left by a cron-generate that was killed (and the lock file of
  earlier versions) are removed. An unchanged file (same bytes, mode 0644) is
  not rewritten: its mtime stays, so cron does not reload it for nothing.
- Name: in /etc/cron.d (the folder resolved), the file name must pass Debian
  cron's rule (no dots), else cron ignores the file; elsewhere any name goes.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

from cron_generate.render import CrontabError, check_output_name
from run_job.atomic import write_atomic

MODE = 0o644
CRON_D = "/etc/cron.d"
DEFAULT_LOCK_TIMEOUT = 60.0
# Far above any crontab cron-generate writes (100,000 jobs take about 15 MB).
READ_LIMIT = 64 * 1024 * 1024


class Installed(NamedTuple):
    """What is at the output path now: its bytes (None if missing) and mode."""

    data: bytes | None
    mode: int | None


def output_path(value: str) -> Path:
    """The configured output file, checked: absolute, an existing folder, and in
    /etc/cron.d a name cron reads."""
    path = Path(value)
    if not path.is_absolute():
        raise CrontabError(f"output_crontab {value!r} must be an absolute path or 'console'")
    if not path.parent.is_dir():
        raise CrontabError(f"output_crontab {value!r}: folder {str(path.parent)!r} does not exist")
    if in_cron_d(path.parent):
        check_output_name(path.name)
    return path


def in_cron_d(folder: Path) -> bool:
    """Whether ``folder`` is cron's /etc/cron.d (links resolved), where cron
    ignores file names with dots."""
    try:
        return os.path.samefile(folder, CRON_D)
    except OSError:
        return os.path.realpath(folder) == CRON_D


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
    with folder_lock(path.parent, lock_timeout):
        remove_leftovers(path)
        if in_sync(read_installed(path), text):
            return False
        try:
            write_atomic(path, text.encode("utf-8"), MODE, tmp_prefix=".")
        except OSError as err:
            raise CrontabError(f"cannot write {str(path)!r}: {err.strerror or err}") from err
        return True


@contextmanager
def folder_lock(folder: Path, timeout: float) -> Iterator[None]:
    """Hold ``flock(LOCK_EX)`` on ``folder`` itself, waiting at most ``timeout`` seconds."""
    import fcntl
    import time

    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise CrontabError(f"cannot open the folder {str(folder)!r} to lock it: {err.strerror or err}") from err
    try:
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CrontabError(f"another cron-generate holds the lock on {str(folder)!r} (waited "
                                       f"{timeout:g}s); try again when it is done") from None
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.1)
            except OSError as err:
                raise CrontabError(f"cannot lock the folder {str(folder)!r}: {err.strerror or err}") from err
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_leftovers(path: Path) -> None:
    """Under the lock: temporary files of a cron-generate that was killed while
    writing ``path``, and the ``.<name>.lock`` of earlier versions (regular
    files only; best effort)."""
    prefix = f".{path.name}.tmp"
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        if not (name == f".{path.name}.lock" or (name.startswith(prefix) and name[len(prefix):].isdigit())):
            continue
        try:
            if stat.S_ISREG(os.lstat(path.parent / name).st_mode):
                os.unlink(path.parent / name)
        except OSError:
            pass
