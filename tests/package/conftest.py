"""Tests of the INSTALLED Debian package (tests/package/).

What belongs here: checks of what ``apt-get install ./process-control_*.deb``
put on the machine: /usr/bin/run-job and friends on /usr/bin/python3 with
Debian's libraries, the conffile /etc/process-control.yaml, the service user,
its folders, man pages, completion, logrotate and tmpfiles.d files, and the
real cron daemon running a generated entry as the service user.

They run as root against the real system paths (/var/lib/process-control,
/etc/cron.d/process-control) and skip, with the reason, when
/usr/bin/run-job is not the packaged one.  ``.ci/package.sh`` builds,
installs and purges the package around them.  Every file a test creates is
named after a unique slug and removed afterwards, and a crontab it changes is
put back as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from pkgtools import CRONTAB, JOB_DIR, packaged_reason, remove_traces, unique_slug


@pytest.fixture(autouse=True, scope="session")
def packaged() -> None:
    reason = packaged_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def job_file() -> Iterator[Callable[[str, str], str]]:
    """Drop job files into the real job directory; removes them and their runs."""
    slugs: list[str] = []

    def make(tag: str, text: str) -> str:
        slug = unique_slug(tag)
        slugs.append(slug)
        path = JOB_DIR / f"{slug}.yaml"
        path.write_text(text)
        path.chmod(0o644)
        return slug

    yield make
    for slug in slugs:
        remove_traces(slug)


@pytest.fixture
def saved_crontab() -> Iterator[None]:
    """Put /etc/cron.d/process-control back as it was (or absent)."""
    before = CRONTAB.read_bytes() if CRONTAB.exists() else None
    yield
    if before is None:
        CRONTAB.unlink(missing_ok=True)
    else:
        tmp = CRONTAB.with_name(".process-control.pkgtest")
        tmp.write_bytes(before)
        tmp.chmod(0o644)
        os.replace(tmp, CRONTAB)
