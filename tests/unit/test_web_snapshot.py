"""The web page's state snapshot: never older than its age, one load at a time, dropped on demand."""

from __future__ import annotations

import threading
import time

from run_job.web.app import Snapshot, State


class Loads:
    def __init__(self, delay: float = 0.0) -> None:
        self.count = 0
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self) -> int:
        time.sleep(self.delay)
        with self.lock:
            self.count += 1
            return self.count


def test_reused_within_its_age_then_reloaded():
    loads = Loads()
    snap = Snapshot(loads, 0.4)
    assert snap.get() == 1 and snap.get() == 1 and loads.count == 1
    time.sleep(0.45)
    assert snap.get() == 2  # too old: this request waits for a new one


def test_past_half_its_age_a_background_load_and_no_wait():
    loads = Loads(delay=0.15)
    snap = Snapshot(loads, 1.0)
    assert snap.get() == 1
    time.sleep(0.55)
    started = time.monotonic()
    assert snap.get() == 1  # answered from the current one at once
    assert time.monotonic() - started < 0.1
    deadline = time.monotonic() + 5
    while snap.get() != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert snap.get() == 2 and loads.count == 2


def test_concurrent_requests_share_one_load():
    loads = Loads(delay=0.2)
    snap = Snapshot(loads, 5.0)
    got = []
    threads = [threading.Thread(target=lambda: got.append(snap.get())) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == [1] * 20 and loads.count == 1


def test_age_zero_loads_for_every_request():
    loads = Loads()
    snap = Snapshot(loads, 0.0)
    assert [snap.get() for _ in range(3)] == [1, 2, 3]


def test_invalidate_drops_it_and_an_older_load_is_not_kept():
    loads = Loads()
    snap = Snapshot(loads, 60.0)
    assert snap.get() == 1
    snap.invalidate()
    assert snap.get() == 2


def test_what_is_made_from_a_snapshot_is_made_once_and_bounded():
    state = State(None, [], [])
    made = []
    for _ in range(3):
        assert state.made("x", lambda: made.append(1) or "value") == "value"
    assert made == [1]
    for i in range(State.MADE_LIMIT + 5):
        state.made(("filter", i), lambda: "v")
    assert len(state._made) == State.MADE_LIMIT
