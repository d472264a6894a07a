"""Process trees (run/proctree.py): descendants in a process table, /proc/PID/stat."""

from __future__ import annotations

from run_job.run import proctree


def test_descendants_from_a_process_table():
    table = {1: ("S", 0, 1), 10: ("S", 1, 10), 11: ("S", 10, 11), 12: ("Z", 11, 11),
             13: ("S", 12, 13), 20: ("S", 1, 20)}
    assert proctree.descendants(10, table) == {11, 13}
    assert proctree.descendants(99, table) == set()


def test_parse_proc_stat_with_hostile_comm():
    data = b"123 (a) b (c)) S 1 123 123 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0"
    assert proctree.parse_proc_stat(data) == ("S", 1, 123)
