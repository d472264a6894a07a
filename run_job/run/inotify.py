"""inotify(7) through ctypes: the kernel's word that a run folder or a log changed.

``run-job --follow`` and ``--wait --next`` sleep on it, and a local run's
supervisor watches its ``events.jsonl`` with it. It is an optimisation of a
wait, never its only wake-up: inotify sees nothing of what another host
writes to a shared file system (a Slurm job on another node), and a user may
have no inotify instance left (``fs.inotify.max_user_instances``), so every
caller also looks on its own at least every second. ``Watch.open`` returns
None when inotify cannot be had; the callers then only poll.
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
