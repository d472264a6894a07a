"""Fixtures shared by every tier; the helpers themselves live in ``pctest``.

Import helpers from ``pctest`` (a unique module name): several folders have a
``conftest.py``, and ``from conftest import ...`` may find another one. The
names are re-exported here for tests that still do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pctest import DATA, REPO, USER, Site, command, command_env, run  # noqa: F401


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")
