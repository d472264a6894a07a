"""Reading one run's folder for the web page, and nothing else.

Paths are built only from a slug (``jobs.is_slug``) and a run id
(``records.is_run_id``) checked before this module is called, and walked one
component at a time from ``output_directory`` without following a link
(``O_NOFOLLOW``): a run folder, ``status.json`` or ``output.log`` that is a
symbolic link is refused, so nothing outside the output folder is ever
served. ``latest`` is read as a link's text (``readlink``), checked as a run
id, and never followed. Files are opened as ``security.open_regular`` opens
them (no FIFO, no device, never blocking) and output is read by byte range.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

from run_job.security import STATE_LIMIT, open_regular, read_fd

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
STREAM_CHUNK = 64 * 1024


class RunFolder:
    """An open run folder (a descriptor; close it, or use ``with``)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def status(self) -> dict[str, Any] | None:
        """Its ``status.json`` as ``records.read_status`` accepts one, or None."""
        from run_job.jsoncodec import loads
        from run_job.run.transitions import entry_problem

        try:
            fd, st = open_regular("status.json", nofollow=True, dir_fd=self.fd)
        except OSError:
            return None
        try:
            data = loads(read_fd(fd, st, STATE_LIMIT, "status.json"))
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        return data if entry_problem(data) is None else None

    def output_size(self) -> int | None:
        """Bytes in ``output.log`` now; None when there is no usable one."""
        try:
            fd, st = open_regular("output.log", nofollow=True, dir_fd=self.fd)
        except OSError:
            return None
        os.close(fd)
        return st.st_size

    def read_output(self, offset: int, limit: int) -> tuple[bytes, int] | None:
        """(at most ``limit`` bytes of ``output.log`` from ``offset``, its
        size when opened); None when there is no usable ``output.log``."""
        try:
            fd, st = open_regular("output.log", nofollow=True, dir_fd=self.fd)
        except OSError:
            return None
        try:
            size = os.fstat(fd).st_size
            if offset >= size:
                return b"", size
            return os.pread(fd, min(limit, size - offset), offset), size
        finally:
            os.close(fd)

    def stream_output(self, offset: int) -> tuple[Iterator[bytes], int] | None:
        """(chunks of ``output.log`` from ``offset`` up to its size when
        opened, that size); None when there is no usable ``output.log``.
        The file stays open until the iterator is exhausted or closed."""
        try:
            fd, st = open_regular("output.log", nofollow=True, dir_fd=self.fd)
        except OSError:
            return None
        end = st.st_size

        def chunks() -> Iterator[bytes]:
            position = min(offset, end)
            try:
                while position < end:
                    data = os.pread(fd, min(STREAM_CHUNK, end - position), position)
                    if not data:
                        break
                    position += len(data)
                    yield data
            finally:
                os.close(fd)

        return chunks(), max(0, end - min(offset, end))


def _job_dir(output_directory: str | os.PathLike, slug: str) -> int:
    top = os.open(os.fspath(output_directory), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return os.open(slug, _DIR, dir_fd=top)
    finally:
        os.close(top)


def open_run(output_directory: str | os.PathLike, slug: str, run_id: str) -> RunFolder | None:
    """The run folder ``<output_directory>/<slug>/<run_id>``, or None when
    it is missing or any part of the way is a link or not a folder."""
    try:
        job_fd = _job_dir(output_directory, slug)
    except OSError:
        return None
    try:
        return RunFolder(os.open(run_id, _DIR, dir_fd=job_fd))
    except OSError:
        return None
    finally:
        os.close(job_fd)


def latest(output_directory: str | os.PathLike, slug: str) -> str | None:
    """The run id ``<slug>/latest`` names (its link text, checked as a run
    id; the link is never followed), or None."""
    from run_job.run.records import is_run_id

    try:
        job_fd = _job_dir(output_directory, slug)
    except OSError:
        return None
    try:
        target = os.readlink("latest", dir_fd=job_fd)
    except OSError:  # none, or not a link
        return None
    finally:
        os.close(job_fd)
    return target if is_run_id(target) else None
