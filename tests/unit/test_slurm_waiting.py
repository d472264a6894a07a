"""The lean waiter's Slurm wait (slurm/waiting.py): when it goes back to the
full run-job and when it sleeps on, read from a real view file."""

from __future__ import annotations

import os
import time

import pytest

from run_job.slurm import view, waiting


def state_for(tmp_path, **changes) -> dict:
    folder = tmp_path / view.FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    status = tmp_path / "job.status"
    state = {"job_id": "42", "status_path": str(status), "status_bytes": None,
             "submitted": time.monotonic() - 5, "started": None, "deadline": None,
             "unreachable_since": None, "unreachable_error": "", "unreachable_timeout": 600.0,
             "next_view": 0.0, "seen_view": None, "jitter": 0.0, "view_folder": str(folder),
             "view_name": "h.u.00000000.view", "status_every": 60.0, "view_lock": None}
    state.update(changes)
    return state


def write_view(state, *, asked=None, error="", jobs=(("42", "RUNNING", True, True),), since=None):
    now = time.monotonic()
    data = view.render(asked=now if asked is None else asked, answered=now, error=error,
                       since=since, jobs=list(jobs))
    path = os.path.join(state["view_folder"], state["view_name"])
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def go(state) -> bool:
    vw = view.View.at(state["view_folder"], state["view_name"])
    assert vw.open()
    try:
        return waiting._view_says_go(state, vw, time.monotonic())  # noqa: SLF001
    finally:
        vw.close()


def test_a_fresh_view_listing_the_job_running_as_known_keeps_it_waiting(tmp_path):
    state = state_for(tmp_path, started=time.monotonic() - 1)
    write_view(state)
    assert go(state) is False
    assert state["next_view"] > time.monotonic() + view.LOOK_EVERY - 2
    assert state["view_lock"] is None


def test_a_job_that_started_unnoticed_goes_back(tmp_path):
    state = state_for(tmp_path)  # the watch does not know it started
    write_view(state)
    assert go(state) is True


@pytest.mark.parametrize("jobs", [(), (("42", "COMPLETED", False, True),)])
def test_a_job_absent_or_ended_goes_back(tmp_path, jobs):
    state = state_for(tmp_path, started=time.monotonic() - 1)
    write_view(state, jobs=jobs)
    assert go(state) is True


def test_a_view_asked_before_the_submission_says_nothing(tmp_path):
    state = state_for(tmp_path, submitted=time.monotonic())
    write_view(state, asked=time.monotonic() - 3, jobs=())
    assert go(state) is False


def test_a_stale_view_sends_back_one_waiter_with_the_refresh_lock(tmp_path):
    state = state_for(tmp_path)
    other = state_for(tmp_path)
    assert go(state) is True  # no view at all: somebody must ask squeue
    lock = state["view_lock"]
    assert lock is not None and os.get_inheritable(lock)
    try:
        assert go(other) is False  # the lock is taken: another waiter is asking
        assert other["view_lock"] is None
        assert other["next_view"] <= time.monotonic() + view.RETRY
    finally:
        os.close(lock)


def test_unreachable_time_is_counted_here_until_the_limit(tmp_path):
    state = state_for(tmp_path, unreachable_timeout=30.0)
    write_view(state, error="Slurm controller unreachable", since=time.monotonic() - 10)
    assert go(state) is False  # counted, never read as gone
    assert state["unreachable_since"] is not None
    assert state["next_view"] <= time.monotonic() + view.PERIOD
    state["unreachable_since"] = time.monotonic() - 31
    write_view(state, error="Slurm controller unreachable", since=time.monotonic() - 31)
    assert go(state) is True


def test_the_wait_goes_back_when_job_status_changes(tmp_path):
    state = state_for(tmp_path, started=time.monotonic() - 1)
    write_view(state)
    status = tmp_path / "job.status"

    def sleep(timeout, *fds):
        status.write_text("started_at=x\nended_at=y\n")  # the job wrote its end
        time.sleep(0.01)
        return list(fds)

    started = time.monotonic()
    waiting.wait(state, lambda: None, sleep)
    assert time.monotonic() - started < 5


def test_the_wait_goes_back_at_the_deadline_and_on_a_stop(tmp_path):
    state = state_for(tmp_path, started=time.monotonic() - 1, deadline=time.monotonic() + 0.2)
    write_view(state)
    waiting.wait(state, lambda: None, lambda timeout, *fds: time.sleep(min(timeout, 0.05)) or [])
    state = state_for(tmp_path, started=time.monotonic() - 1)
    write_view(state)
    waiting.wait(state, lambda: 15, lambda timeout, *fds: [])
