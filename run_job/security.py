"""What root may trust: bounded reads, who may own what, folders made for others.

Root runs these tools from cron; the service user, the authors of job files and
anything in the output and state folders are assumed hostile. Every file the
tools read goes through ``read_bounded`` (or ``open_regular`` when the caller
needs the descriptor): opened without blocking (a FIFO or a device planted
where a file is expected cannot hang the caller), used only if it is a regular
file, and read up to a size limit (``/dev/zero`` or a runaway file cannot
exhaust memory). Its errors are ``OSError``s, so callers that treat an
unreadable file as missing keep doing so, with a ``strerror`` a person can act
on; ``reason`` words any of them for a message.

The ownership rule (``ownership_reason``: writable by nobody but its owner,
owned by root or, where allowed, the service user) has its one owner here,
used for the config file (root's alone), job files and folders, and hooks.
``make_dir_for`` creates a folder for the service user as root without
following a link anyone else could have planted.
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
    chunks: list[bytes] = []
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


# ---------------------------------------------------------------------------
# Who may own what (as root, like sshd's StrictModes and sudo's sudoers rule)


def ownership_reason(st: os.stat_result, allowed_uids: set[int], owners: str) -> str | None:
    """The rule (pure): a file or folder that root trusts is writable by
    nobody but its owner, and owned by one of ``allowed_uids``; the short
    reason why ``st`` breaks it, or None."""
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        return f"mode {mode:04o} is group- or world-writable (chmod go-w)"
    if st.st_uid not in allowed_uids:
        return f"owned by uid {st.st_uid}, not {owners}"
    return None


def ownership_problem(st: os.stat_result, path: str | os.PathLike, what: str,
                      allowed_uids: set[int], owners: str) -> str | None:
    """``ownership_reason`` as one message naming the file and the fix (pure)."""
    reason = ownership_reason(st, allowed_uids, owners)
    if reason is None:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        return (f"{what} {path} is group- or world-writable (mode {mode:04o}); as root,"
                f" process-control refuses it: chmod go-w {path}")
    return (f"{what} {path} is {reason}; as root, process-control refuses it:"
            f" chown root {path}")


def check_file_security(path: str | os.PathLike, what: str, service_user: str | None, *,
                        root_only: bool = False) -> str | None:
    """As root: the reason ``path`` may not be trusted, or None (always None
    when not root). Refused: writable by group or others; owned by anyone but
    root and the service user, or anyone but root with ``root_only`` (the
    global config, which decides what root does, as sudoers and sshd_config)."""
    if os.geteuid() != 0:
        return None
    try:
        st = os.stat(path)
    except OSError as err:
        return f"{what} {path} cannot be examined: {err.strerror}"
    if root_only:
        return ownership_problem(st, path, what, {0}, "root")
    allowed = {0}
    uid = uid_of(service_user)
    if uid is not None:
        allowed.add(uid)
    return ownership_problem(st, path, what, allowed, f"root or the service user {service_user!r}")


_UIDS: dict[str, int | None] = {}


def uid_of(user: str | None) -> int | None:
    """The uid of ``user`` (looked up once per process), or None."""
    if not user:
        return None
    if user not in _UIDS:
        import pwd

        try:
            _UIDS[user] = pwd.getpwnam(user).pw_uid
        except KeyError:
            _UIDS[user] = None
    return _UIDS[user]


# ---------------------------------------------------------------------------
# Creating a folder for the service user, as root


class UntrustedPath(OSError):
    """A folder on the way that someone other than root could change."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def open_trusted_dir(path: str, *, parent_of_new: bool = False, _depth: int = 0) -> int:
    """A descriptor of the folder ``path``, reached from ``/`` one component at
    a time without following a link that root does not control.

    Every folder on the way is owned by root and writable by nobody else, or
    sticky (``/tmp``: others cannot rename root's entries in it); with
    ``parent_of_new`` the last one must be writable by root alone, sticky or
    not. A symbolic link is followed only from such a folder (only root can
    have put it there), and its target is walked by the same rules.
    """
    if _depth > 40:
        raise UntrustedPath(errno.ELOOP, "too many symbolic links", path)
    absolute = os.path.abspath(path)
    parts = [p for p in absolute.split("/") if p]
    fd = os.open("/", _DIR_FLAGS)
    try:
        _check_trusted(os.fstat(fd), "/", last=parent_of_new and not parts)
        where = ""
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            try:
                nfd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as err:
                if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                st = os.lstat(part, dir_fd=fd)
                if not stat.S_ISLNK(st.st_mode):
                    raise
                target = os.readlink(part, dir_fd=fd)
                resolved = os.path.join(where or "/", target)
                rest = "/".join(parts[index + 1:])
                os.close(fd)
                fd = -1
                return open_trusted_dir(os.path.join(resolved, rest) if rest else resolved,
                                        parent_of_new=parent_of_new, _depth=_depth + 1)
            os.close(fd)
            fd = nfd
            where = f"{where}/{part}"
            _check_trusted(os.fstat(fd), where, last=parent_of_new and last)
        result, fd = fd, -1
        return result
    finally:
        if fd >= 0:
            os.close(fd)


def _check_trusted(st: os.stat_result, where: str, *, last: bool) -> None:
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != 0:
        raise UntrustedPath(errno.EPERM, f"{where} is owned by uid {st.st_uid}, not root", where)
    if mode & 0o022 and (last or not mode & stat.S_ISVTX):
        raise UntrustedPath(errno.EPERM, f"{where} is writable by others than root"
                                         f" (mode {mode:04o})", where)


def make_dir_for(path: str | os.PathLike, uid: int, gid: int, mode: int = 0o755) -> bool:
    """As root: create the missing folder ``path`` for ``uid``:``gid``.

    Only under a parent that root owns and nobody else can write (see
    ``open_trusted_dir``), and its owner is fixed through a descriptor opened
    without following links, so nobody can get another folder chowned by
    swapping in a link. True when it was created; False when it was there
    already (left as it is). Raises ``OSError`` (``UntrustedPath``) otherwise.
    """
    parent, name = os.path.split(os.path.abspath(os.fspath(path)))
    pfd = open_trusted_dir(parent, parent_of_new=True)
    try:
        try:
            os.mkdir(name, 0o700, dir_fd=pfd)
        except FileExistsError:
            return False
        fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=pfd)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        return True
    finally:
        os.close(pfd)


def require_secure_config(config: object) -> None:
    """Raise SecurityError when, as root, the config file (``config.source``)
    is not owned by root or is writable by anyone else."""
    source = getattr(config, "source", None)
    if source is None:
        return
    reason = check_file_security(source, "config file", getattr(config, "user", None), root_only=True)
    if reason:
        from run_job.errors import SecurityError

        raise SecurityError(reason)
