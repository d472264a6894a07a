"""Atomic file writes: temp file in the same folder, fsync, ``os.replace``.

Anything another process reads (crontab, status.json, history, caches) is
written through here, so a reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: bytes, mode: int = 0o644,
                 *, tmp_prefix: str = ".", fsync: bool = True) -> None:
    """Replace ``path`` with ``data``; the file gets exactly ``mode``.

    The temporary name starts with ``tmp_prefix`` (a dot by default: cron
    ignores such names in /etc/cron.d, as do run-job's own scans).
    """
    path = Path(path)
    tmp = path.with_name(f"{tmp_prefix}{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fchmod(fd, mode)  # whatever the umask
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if fsync:
        try:
            dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)
