"""Who run-job becomes (privileges.py): stay, drop or refuse."""

from __future__ import annotations

import pytest

from run_job import privileges


@pytest.mark.parametrize("euid,name,wanted,action", [
    (0, "root", "root", "stay"),
    (0, "root", "svc", "drop"),
    (1000, "svc", "svc", "stay"),
    (1000, "alice", "svc", "refuse"),
    (1000, None, "svc", "refuse"),
])
def test_plan_identity(euid, name, wanted, action):
    assert privileges.plan_identity(euid, name, wanted) == action
