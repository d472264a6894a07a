"""What root may trust: bounded reads of files that someone else may have written.

Root runs these tools from cron; the service user, the authors of job files and
anything in the output and state folders are assumed hostile. Every file the
tools read goes through ``read_bounded``: opened without blocking (a FIFO or a
device planted where a file is expected cannot hang the caller), used only if
it is a regular file, and read up to a size limit (``/dev/zero`` or a runaway
file cannot exhaust memory). Its errors are ``OSError``s, so callers that treat
an unreadable file as missing keep doing so, with a ``strerror`` a person can
act on.
"""

from __future__ import annotations

import errno
import os
import stat

# Size limits of the files the tools read (bytes).
CONFIG_LIMIT = 1024 * 1024  # config and job files (as yamlfile.MAX_BYTES)
STATE_LIMIT = 32 * 1024 * 1024  # a history file, a run's status.json, a pause record
CACHE_LIMIT = 64 * 1024 * 1024  # a validation cache entry or bundle


class NotRegularFile(OSError):
    """A FIFO, socket, device or folder where a regular file was expected."""


class FileTooLarge(OSError):
    """A file larger than the caller's limit."""


def kind_of(mode: int) -> str:
    """What a ``st_mode`` is, in words (pure)."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def read_bounded(path: str | os.PathLike, limit: int, *, nofollow: bool = False,
                 dir_fd: int | None = None) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    Never blocks on a FIFO or device; ``nofollow`` refuses a symbolic link as
    the last component (ELOOP). Raises ``NotRegularFile``, ``FileTooLarge`` or
    the ``OSError`` of the open or read.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_NOFOLLOW if nofollow else 0)
    fd = os.open(path, flags, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, f"{kind_of(st.st_mode)}, not a regular file",
                                 os.fspath(path))
        if st.st_size > limit:
            raise too_large(path, st.st_size, limit)
        chunks = []
        total = 0
        while True:
            data = os.read(fd, max(st.st_size, 65536) + 1 if not chunks else 1 << 20)
            if not data:
                break
            total += len(data)
            if total > limit:  # it grew while we read
                raise too_large(path, total, limit)
            chunks.append(data)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


def too_large(path: str | os.PathLike, size: int, limit: int) -> FileTooLarge:
    return FileTooLarge(errno.EFBIG, f"{size:,} bytes or more, larger than the limit of"
                                     f" {limit:,} bytes", os.fspath(path))
