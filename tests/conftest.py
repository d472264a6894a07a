"""Fixtures shared by every tier; the helpers themselves live in ``pctest``.

Import helpers from ``pctest`` (a unique module name): several folders have a
``conftest.py``, and ``from conftest import ...`` may find another one. The
names are re-exported here for tests that still do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import pctest
from pctest import (DATA, REPO, USER, Site, command, command_env, config_record,  # noqa: F401
                    config_settings, free_port, run, wait_for)


def pytest_configure(config: pytest.Config) -> None:
    # Before any test: HOME and XDG_* name empty folders of this session, so
    # that no test (nor a command it starts) writes into the user's home.
    pctest.isolate_home()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when anything wrote into HOME: a test or a command that
    ignores XDG_* and would have written into the invoking user's home."""
    written = pctest.home_writes()
    if not written:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["tests wrote into HOME; but for the session's stand-in HOME, these would be in the "
             "invoking user's home (use tmp_path, or XDG_*, which name the session's folders):",
             *written[:20], *(["..."] if len(written) > 20 else [])]
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "files written into HOME", red=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    pctest.cleanup_session()


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")
