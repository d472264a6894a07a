"""Small pure decisions of the monitoring: which textfiles are stale, which
service states mean "should be up"."""

from __future__ import annotations

import pytest

from run_job.monitor.textfile import file_name, slug_of, stale
from run_job.slurm.service import started


@pytest.mark.parametrize("name,slug", [
    ("process_control_a.prom", "a"),
    ("process_control_web-1_x.prom", "web-1_x"),
    ("process_control_.prom", None),
    ("process_control_-x.prom", None),
    ("process_control_a.b.prom", None),
    ("process_control_a.prom.tmp12", None),
    (".process_control_a.prom.tmp12", None),
    ("process_control_a b.prom", None),
    ("other.prom", None),
    ("process_control_a.prom\n", None),
])
def test_slug_of_a_textfile_name(name, slug):
    assert slug_of(name) == slug
    if slug is not None:
        assert file_name(slug) == name


def test_stale_names_only_ours_and_only_of_jobs_that_are_gone():
    names = ["process_control_kept.prom", "process_control_gone.prom", "node.prom",
             "process_control_x.y.prom", "process_control_b.prom"]
    assert stale(names, ["kept"]) == ["process_control_b.prom", "process_control_gone.prom"]
    assert stale(names, ["kept", "gone", "b"]) == []


@pytest.mark.parametrize("state,up", [
    ({"last_action": "start"}, True),    # start, restart and deploy end with start
    ({"last_action": "reload"}, True),   # needs it running
    ({"last_action": "stop"}, False),
    ({"last_action": "init"}, False),    # init stops first
    ({}, False),                         # never started, or purged
    ({"last_action": ["start"]}, False),  # damaged
])
def test_started(state, up):
    assert started(state) is up
