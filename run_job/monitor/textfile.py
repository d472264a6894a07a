"""The jobs' Prometheus textfiles (SPEC §11): ``<metrics.textfile_directory>/
process_control_<slug>.prom``, read by node_exporter's textfile collector.

``write_job`` is the one writer: it loads that one job's state the way every
face does (``status.state_of``), renders it (``metrics.render_job``) and
replaces the file atomically (a temporary file in the same folder, then a
rename; mode 0644; the temporary name is created, never opened through a link
planted there). run-job calls it as the service user at every run's start and
end and at every skip (``run/controller.py``), and at every pause and resume
(``--pause``/``--resume``). It never raises: a failure is logged and the run
goes on.

``remove_stale`` is cron-generate's: it removes the files of jobs that no
longer exist, and nothing else (only regular files named
``process_control_<slug>.prom`` whose slug has no job file).
"""

from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from typing import Any, Iterable

PREFIX = "process_control_"
SUFFIX = ".prom"


def file_name(slug: str) -> str:
    return f"{PREFIX}{slug}{SUFFIX}"


def slug_of(name: str) -> str | None:
    """The slug of a textfile name of ours, else None (pure)."""
    from run_job.config.jobs import is_slug

    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
        return None
    slug = name[len(PREFIX):-len(SUFFIX)]
    return slug if is_slug(slug) else None


def stale(names: Iterable[str], slugs: Iterable[str]) -> list[str]:
    """The names among ``names`` that are textfiles of jobs not in ``slugs`` (pure)."""
    keep = set(slugs)
    return sorted(name for name in names
                  if (slug := slug_of(name)) is not None and slug not in keep)


def write_job(config: Any, slug: str, *, job: Any = None, config_path: str | None = None,
              now: Any = None) -> bool:
    """Write the textfile of ``slug`` (``job``: its validated Job, else its
    file is loaded); True when written. Never raises: a failure is logged."""
    from run_job import logsetup

    directory = config.metrics_directory
    if directory is None:
        return False
    try:
        text = _render(config, slug, job, config_path, now)
        if text is None:
            return False
        from run_job.atomic import write_atomic

        write_atomic(os.path.join(os.fspath(directory), file_name(slug)), text.encode(), 0o644,
                     fsync=False)
        return True
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        logsetup.warning("%s: metrics not written: %s%s", slug, where, err.strerror or err)
    except Exception as err:  # noqa: BLE001 - metrics never fail a run
        logsetup.warning("%s: metrics not written: %s: %s", slug, type(err).__name__, err)
    return False


def _render(config: Any, slug: str, job: Any, config_path: str | None, now: Any) -> str | None:
    from run_job import clock
    from run_job.monitor.metrics import render_job
    from run_job.monitor.status import state_of

    path = os.path.join(os.fspath(config.job_directory), f"{slug}.yaml")
    problems: list[str] = []
    if job is None:
        if not os.path.lexists(path):
            return None  # no such job: cron-generate removes its file
        from run_job.config.cache import validated_jobs
        from run_job.errors import ProcessControlError

        found = validated_jobs(config, config_path, [slug])[slug]
        if isinstance(found, ProcessControlError):
            problems = str(found).splitlines()
        else:
            job = found
    state = state_of(config, slug, path, job, problems, now=now or clock.now())
    return render_job(state)


def remove_stale(directory: str | os.PathLike, slugs: Iterable[str]) -> tuple[list[str], list[str]]:
    """Remove the textfiles of jobs not in ``slugs`` from ``directory``:
    (removed names, problems). Only regular files; names are removed relative
    to the opened folder (a folder swapped meanwhile is not followed)."""
    import stat

    try:
        fd = os.open(os.fspath(directory), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return [], []
    except OSError as err:
        return [], [f"{directory}: {err.strerror or err}"]
    removed: list[str] = []
    problems: list[str] = []
    try:
        for name in stale(os.listdir(fd), slugs):
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    problems.append(f"{os.path.join(os.fspath(directory), name)}: not a regular"
                                    " file, left alone")
                    continue
                os.unlink(name, dir_fd=fd)
                removed.append(name)
            except FileNotFoundError:
                continue
            except OSError as err:
                problems.append(f"{os.path.join(os.fspath(directory), name)}: {err.strerror or err}")
    finally:
        os.close(fd)
    return removed, problems
