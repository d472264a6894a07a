"""Pure hook rules: which names are hooks, their order, environment, trust."""

from __future__ import annotations

import os
import stat

import pytest

from run_job.alerts import hooks


@pytest.mark.parametrize("name, is_hook", [
    ("10-notify", True), ("notify.sh", True), ("30 third; 'x'", True), ("a%b", True),
    (".hidden", False), ("x~", False), ("x.bak", False), ("x.dpkg-old", False),
    ("x.dpkg-dist", False), ("x.dpkg-new", False), ("x.rpmsave", False), ("x.rpmnew", False),
    ("x.swp", False), ("x.orig", False), ("x.disabled", False), ("x.ucf-dist", False), ("", False),
])
def test_is_hook_name(name, is_hook):
    assert hooks.is_hook_name(name) is is_hook


def test_hook_names_sorted_bytewise_without_leftovers():
    names = ["b", "10-x", "2-y", "B", ".z", "a~", "Ä", "a"]
    assert hooks.hook_names(names) == ["10-x", "2-y", "B", "a", "b", "Ä"]


def test_hook_environment():
    record = {"job": "j", "run_id": "r1", "run_dir": None, "outcome": "failed",
              "exit_code": 3, "reason": "a\nb; 'c' 100%"}
    env = hooks.hook_environment({"PATH": "/bin", "RUN_JOB_EVENT": "stale"}, "failure", record)
    assert env == {"PATH": "/bin", "RUN_JOB_EVENT": "failure", "RUN_JOB_NAME": "j",
                   "RUN_JOB_RUN_ID": "r1", "RUN_JOB_RUN_DIR": "", "RUN_JOB_OUTCOME": "failed",
                   "RUN_JOB_EXIT_CODE": "3", "RUN_JOB_REASON": "a\nb; 'c' 100%"}


def fake_stat(mode: int, uid: int) -> os.stat_result:
    return os.stat_result((stat.S_IFREG | mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))


@pytest.mark.parametrize("mode, uid, refused", [
    (0o755, 0, None),
    (0o700, 1000, None),
    (0o775, 0, "group- or world-writable"),
    (0o757, 0, "group- or world-writable"),
    (0o777, 1000, "group- or world-writable"),
    (0o755, 4242, "owned by uid 4242"),
])
def test_unsafe_reason(mode, uid, refused):
    why = hooks.unsafe_reason(fake_stat(mode, uid), allowed_uids={0, 1000})
    if refused is None:
        assert why is None
    else:
        assert refused in why
