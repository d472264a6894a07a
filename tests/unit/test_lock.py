"""The job's flock lock (run/lock.py): the holder line, exclusivity."""

from __future__ import annotations

from run_job.run import lock


def test_lock_holder_round_trip_and_reference_pid_files():
    text = lock.format_holder(12, 345, "20260102T030405.123456Z-12")
    assert lock.parse_holder(text) == (12, 345, "20260102T030405.123456Z-12")
    assert lock.parse_holder(b"4242\n") == (4242, None, None)  # the reference's pid file
    assert lock.parse_holder(b"") == (None, None, None)
    assert lock.parse_holder(b"\xff garbage") == (None, None, None)


def test_flock_is_exclusive_and_released_on_close(tmp_path):
    path = lock.lock_path(tmp_path / "run dir; 'x'", "job")
    a = lock.open_lock(path)
    b = lock.open_lock(path)
    try:
        assert lock.try_lock(a)
        assert not lock.try_lock(b)
        assert lock.is_locked(path) is True
        import os

        os.close(a)
        assert lock.try_lock(b)
    finally:
        import os

        os.close(b)
