"""Atomic file writes: temp file in the same folder, fsync, ``os.replace``.

Anything another process reads (crontab, status.json, history, caches, the
shared Slurm view) is written through here, so a reader sees the old file or
the new one, never half. Only ``os`` is imported (no pathlib): a waiting run
(``slurm/view.py``) writes through here too, and stays small.
"""

from __future__ import annotations

import os


def write_atomic(path: str | os.PathLike, data: bytes, mode: int = 0o644,
                 *, tmp_prefix: str = ".", fsync: bool = True, dir_fd: int | None = None) -> None:
    """Replace ``path`` with ``data``; the file gets exactly ``mode``.

    The temporary name starts with ``tmp_prefix`` (a dot by default: cron
    ignores such names in /etc/cron.d, as do run-job's own scans). It is
    created new (``O_EXCL``, ``O_NOFOLLOW``): a link or file planted under
    that name in a folder others can write is never written through.
    ``dir_fd``: ``path`` is a name in that open folder (the folder cannot be
    swapped under the writer).
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f"{tmp_prefix}{name}.tmp{os.getpid()}")
    fd = _create(tmp, dir_fd)
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
        os.replace(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    if fsync:
        try:
            dfd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)


def _create(tmp: str, dir_fd: int | None = None) -> int:
    """A new file at ``tmp``, mode 0600; what was left there (by a crashed
    writer with our pid, or planted) is removed first, never followed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    except FileExistsError:
        os.unlink(tmp, dir_fd=dir_fd)  # unlink removes a link itself, not its target
        return os.open(tmp, flags, 0o600, dir_fd=dir_fd)
