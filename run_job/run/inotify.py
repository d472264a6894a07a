"""inotify(7) through ctypes: the kernel's word that a run folder or a log changed.

``run-job --follow`` and ``--wait --next`` sleep on it, and a local run's
supervisor watches its ``events.jsonl`` with it. It is an optimisation of a
wait, never its only wake-up: inotify sees nothing of what another host
writes to a shared file system (a Slurm job on another node), and a user may
have no inotify instance left (``fs.inotify.max_user_instances``), so every
caller also looks on its own at least every second. ``Watch.open`` returns
None when inotify cannot be had; the callers then only poll.

``sees_all_writes(path)`` tells the one case where a wait may trust it
further: a file system of this host alone (``LOCAL_FILESYSTEMS``: ext4, xfs,
btrfs, tmpfs...), where every write passes through this kernel, whoever
makes it. A Slurm run's watcher then sleeps on inotify and looks on its own
only every 10 s (``slurm/batch.py``); on anything else (NFS, CIFS, FUSE, a
type not listed, a path it cannot place) it looks every second.
"""

from __future__ import annotations

import errno
import os
import struct

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_DONT_FOLLOW = 0x02000000
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len

_libc: list = []

# File systems whose every write goes through the local kernel (so inotify
# sees it): disk, memory and overlay file systems; never a network or FUSE one.
LOCAL_FILESYSTEMS = frozenset({
    "ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "ramfs", "overlay", "zfs", "f2fs",
    "reiserfs", "jfs", "bcachefs", "nilfs2", "vfat", "exfat", "ntfs3", "hfsplus",
})
MOUNTINFO_LIMIT = 4 * 1024 * 1024


def _unescape(text: str) -> str:
    """A mountinfo path: ``\\040`` is a space, and so on (octal escapes)."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def filesystem_type(path: str | os.PathLike, mountinfo: bytes | None = None) -> str | None:
    """The type of the file system ``path`` is on (``/proc/self/mountinfo``:
    the last mount at the longest matching mount point), or None."""
    if mountinfo is None:
        from run_job.security import read_bounded

        try:
            mountinfo = read_bounded("/proc/self/mountinfo", MOUNTINFO_LIMIT)
        except OSError:
            return None
    where = os.path.realpath(path)
    best, found = -1, None
    for line in mountinfo.decode(errors="replace").splitlines():
        fields = line.split(" ")
        try:
            mount = _unescape(fields[4])
            kind = fields[fields.index("-", 6) + 1]
        except (IndexError, ValueError):
            continue
        if where == mount or mount == "/" or where.startswith(mount.rstrip("/") + "/"):
            if len(mount) >= best:
                best, found = len(mount), kind
    return found


def sees_all_writes(path: str | os.PathLike) -> bool:
    """True when inotify on ``path`` sees every write to it, whichever
    process on whichever host makes it: a local file system only."""
    return filesystem_type(path) in LOCAL_FILESYSTEMS


def _lib():
    if not _libc:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        _libc.append((libc, ctypes))
    return _libc[0]


class Watch:
    """One inotify instance; ``fd`` goes into a ``poll``; ``drain`` empties it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def open(cls) -> Watch | None:
        """A new instance, or None when the kernel will not give one."""
        try:
            libc, ctypes = _lib()
            fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        except (OSError, AttributeError):
            return None
        return cls(fd) if fd >= 0 else None

    def add(self, path: str | os.PathLike, mask: int) -> bool:
        """Watch ``path`` (never following a symlink); False when it cannot be."""
        libc, ctypes = _lib()
        wd = libc.inotify_add_watch(self.fd, os.fsencode(path), mask | IN_DONT_FOLLOW)
        if wd < 0:
            err = ctypes.get_errno()
            if err not in (errno.ENOENT, errno.EACCES, errno.ENOTDIR, errno.ENOSPC, errno.ELOOP):
                raise OSError(err, os.strerror(err), os.fspath(path))
            return False
        return True

    def drain(self) -> list[str]:
        """Read every pending event; the names they carry (files in a watched folder)."""
        names: list[str] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except (BlockingIOError, InterruptedError):
                return names
            if not data:
                return names
            offset = 0
            while offset + _HEADER.size <= len(data):
                _, _, _, length = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                name = data[offset:offset + length].rstrip(b"\0")
                offset += length
                if name:
                    names.append(os.fsdecode(name))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
