"""What root may trust: bounded reads of files that someone else may have written.

Root runs these tools from cron; the service user, the authors of job files and
anything in the output and state folders are assumed hostile. Every file the
tools read goes through ``read_bounded`` (or ``open_regular`` when the caller
needs the descriptor): opened without blocking (a FIFO or a device planted
where a file is expected cannot hang the caller), used only if it is a regular
file, and read up to a size limit (``/dev/zero`` or a runaway file cannot
exhaust memory). Its errors are ``OSError``s, so callers that treat an
unreadable file as missing keep doing so, with a ``strerror`` a person can act
on; ``reason`` words any of them for a message.
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
    """A FIFO, socket, device or folder where a regular file was expected.

    ``kind`` says what it is instead, in words ("a FIFO").
    """

    kind = "not a regular file"


class FileTooLarge(OSError):
    """A file larger than the caller's limit (``size``: bytes seen, ``limit``)."""

    size = 0
    limit = 0


class NotTrusted(OSError):
    """A file not owned by the expected user, or writable by group or others."""


def kind_of(mode: int) -> str:
    """What a ``st_mode`` is, in words (pure)."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def not_regular(path: str | os.PathLike, mode: int) -> NotRegularFile:
    err = NotRegularFile(errno.EINVAL, f"{kind_of(mode)}, not a regular file", os.fspath(path))
    err.kind = kind_of(mode)
    return err


def reason(err: OSError) -> str:
    """An ``OSError`` of a read in words, without the path (pure)."""
    if isinstance(err, NotRegularFile):
        return f"not a regular file ({err.kind})"
    return err.strerror or str(err)


def open_regular(path: str | os.PathLike, *, nofollow: bool = False, dir_fd: int | None = None,
                 limit: int | None = None) -> tuple[int, os.stat_result]:
    """A read-only descriptor of the regular file ``path`` and its ``fstat``.

    Checked with ``stat`` before the open, so that a device is never even
    opened (opening some has effects: a watchdog, a tape), and with ``fstat``
    after it (the name may have changed meanwhile); the open never blocks.
    ``nofollow`` refuses a symbolic link as the last component (ELOOP).
    ``limit``: refuse a file larger than that (``FileTooLarge``).
    """
    st = os.stat(path, dir_fd=dir_fd, follow_symlinks=not nofollow)
    if not stat.S_ISREG(st.st_mode):
        if nofollow and stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, "a symbolic link, refused here", os.fspath(path))
        raise not_regular(path, st.st_mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_NOFOLLOW if nofollow else 0)
    fd = os.open(path, flags, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(path, st.st_mode)
        if limit is not None and st.st_size > limit:
            raise too_large(path, st.st_size, limit)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_fd(fd: int, st: os.stat_result, limit: int, path: str | os.PathLike) -> bytes:
    """At most ``limit`` bytes from the start of ``fd`` (``st``: its fstat)."""
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


def read_bounded(path: str | os.PathLike, limit: int, *, nofollow: bool = False,
                 dir_fd: int | None = None, owner: int | None = None) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    Never blocks on a FIFO or device; ``nofollow`` refuses a symbolic link as
    the last component (ELOOP); ``owner``: refuse a file not owned by that uid
    or writable by group or others (``NotTrusted``). Raises ``NotRegularFile``,
    ``FileTooLarge`` or the ``OSError`` of the open or read.
    """
    fd, st = open_regular(path, nofollow=nofollow, dir_fd=dir_fd)
    try:
        if owner is not None and (st.st_uid != owner or st.st_mode & 0o022):
            raise NotTrusted(errno.EPERM, f"owned by uid {st.st_uid} with mode {st.st_mode & 0o7777:04o}, "
                                          f"not by uid {owner} and writable by it alone", os.fspath(path))
        return read_fd(fd, st, limit, path)
    finally:
        os.close(fd)


def too_large(path: str | os.PathLike, size: int, limit: int) -> FileTooLarge:
    err = FileTooLarge(errno.EFBIG, f"{size:,} bytes or more, larger than the limit of"
                                    f" {limit:,} bytes", os.fspath(path))
    err.size, err.limit = size, limit
    return err
