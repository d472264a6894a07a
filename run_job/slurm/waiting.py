"""A Slurm run's wait in the lean waiter (``run/lean.py``): nothing decided here.

``batch._Watch`` hands its wait off (``run/handoff.py``) when nothing is due
but time: the job pending or running, no order given, the shared view in
use. This sleeps on inotify (the run folder: ``job.status``) and the signal
wakeup pipe, looks at the view every ``view.LOOK_EVERY`` s, and goes back to the full
run-job as soon as the watch has something to do:

- ``job.status`` differs from the bytes the watch saw (the job started or
  ended); read on inotify, with each view, and on its own every
  ``status_every`` s (1 s where inotify does not see the job's writes);
- the view is stale and this waiter got its refresh lock (the lock goes
  back with it, and the full run-job asks squeue under it; a busy lock means
  another waiter is asking: we look again after ``view.RETRY`` s);
- a view newer than the last one acted on says the job ended, is absent, or
  started when the watch did not know it yet; or Slurm has been unreachable
  for ``slurm.unreachable_timeout`` (unreachable time is counted here, from
  the view's ``since``, never read as "gone");
- the deadline (``timeout`` counted from the start), or a stop signal.

With 500 runs waiting, one goes back per ``view.PERIOD`` to refresh the
view; the others sleep, each waking once in ``view.LOOK_EVERY`` s. Imports: ``os``, ``time``, ``run.inotify`` (ctypes),
``slurm.view`` and what it imports (``security``, ``atomic``, ``jsoncodec``).
"""

from __future__ import annotations

import os
import time

from run_job.run import inotify
from run_job.security import read_bounded
from run_job.slurm import view

STATUS_FILE = "job.status"  # vocabulary.STATUS_FILE (the vocabulary is not imported here)
STATUS_LIMIT = 64 * 1024  # batch.JOB_STATUS_LIMIT


def _status_bytes(path: str) -> bytes | None:
    try:
        return read_bounded(path, STATUS_LIMIT)
    except (OSError, ValueError):
        return None


def wait(state: dict, stop, sleep) -> None:
    """Sleep until the watch has something to do; ``state`` (the watch's
    saved state) is updated with what was learnt. ``stop()``: the stop signal
    received; ``sleep(timeout, *fds)``: the lean waiter's sleep."""
    vw = view.View.at(state["view_folder"], state["view_name"])
    if not vw.open():
        return
    watch = inotify.Watch.open()
    if watch is not None:  # job.status only: a new view wakes nobody (500 runs at once)
        watch.add(os.path.dirname(state["status_path"]), inotify.IN_MOVED_TO | inotify.IN_CLOSE_WRITE)
    try:
        _wait(state, vw, watch, stop, sleep)
    finally:
        if watch is not None:
            watch.close()
        vw.close()


def _wait(state: dict, vw: view.View, watch: inotify.Watch | None, stop, sleep) -> None:
    deadline = state["deadline"]
    status_every = min(state["status_every"], 1.0) if watch is None else state["status_every"]
    next_status = 0.0  # at once: a write before the watch was added has no event
    names: set[str] = set()
    while stop() is None:
        now = time.monotonic()
        view_due = now >= state["next_view"]
        if STATUS_FILE in names or now >= next_status or view_due:
            if _status_bytes(state["status_path"]) != state["status_bytes"]:
                return
            next_status = now + status_every
        if deadline is not None and now >= deadline:
            return
        if view_due and _view_says_go(state, vw, now):
            return
        times = [next_status, state["next_view"]] + ([deadline] if deadline is not None else [])
        ready = sleep(max(0.0, min(times) - time.monotonic()),
                      *([watch.fd] if watch is not None else []))
        names = set(watch.drain()) if watch is not None and watch.fd in ready else set()


def _view_says_go(state: dict, vw: view.View, now: float) -> bool:
    """Read the view; True when the full run-job must act (``state`` updated)."""
    snap = vw.read()
    if snap is None or not snap.fresh(now):
        lock = vw.take_lock()
        if lock is None:  # another waiter is asking; its view wakes us
            state["next_view"] = now + view.RETRY
            return False
        os.set_inheritable(lock, True)
        state["view_lock"] = lock
        state["next_view"] = 0.0
        return True
    state["next_view"] = now + (view.PERIOD if snap.error else view.LOOK_EVERY)
    if snap.answered == state["seen_view"]:
        return False
    said, found = snap.about(state["job_id"], state["submitted"])
    if said == "nothing":
        state["seen_view"] = snap.answered
        return False
    if said == "unreachable":
        if state["unreachable_since"] is None:
            since = snap.since if snap.since is not None else snap.asked
            state["unreachable_since"] = max(since, state["submitted"])
        state["unreachable_error"] = snap.error
        state["seen_view"] = snap.answered
        return now - state["unreachable_since"] >= state["unreachable_timeout"]
    if found is not None and found.active and (state["started"] is not None or not found.started):
        state["unreachable_since"] = None
        state["seen_view"] = snap.answered
        return False
    state["next_view"] = 0.0  # ended, absent, or started: the watch acts on this view
    return True
