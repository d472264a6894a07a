"""Retries of a run (SPEC §10): when to try again, after how long, and the
words for it (pure).

The controller (``controller._Run.execute``) owns the effects: it calls the
executor once per attempt, keeps the lock, records every attempt in
``status.json`` and sleeps the delays on run-job's signal wakeup. What it
asks this module:

* ``delay(retry, n)``: the wait before retry ``n`` (1-based), yacron's rule
  min(``maximum_delay``, ``initial_delay`` × ``backoff_multiplier``^(n−1));
* ``plan(...)``: retry or not after an attempt, and why not;
* ``attempt_record`` / ``ended_attempt``: one entry of ``status.json``'s
  ``attempts``;
* ``summary``: what the run's reason says about its attempts.

A run is tried again only when its attempt ``failed`` or ``timed_out``: a
``killed`` attempt (``--kill-job``, a stop signal to run-job) and a ``lost``
one (supervision lost) never are, nor is any attempt once run-job was told
to stop. No attempt starts at or after the job's next scheduled start.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (start-up cost)
    from datetime import datetime
    from typing import Any, TypeGuard

from run_job import clock
from run_job.model import Retry

RETRIED_OUTCOMES = frozenset({"failed", "timed_out"})


def enabled(retry: Retry | None) -> TypeGuard[Retry]:
    """Does the job retry at all (pure)? Only such runs list their attempts."""
    return retry is not None and retry.maximum_retries > 0


def delay(retry: Retry, n: int) -> float:
    """Seconds to wait before retry ``n`` (1 = the second attempt) (pure)."""
    try:
        grown = retry.initial_delay * retry.backoff_multiplier ** max(0, n - 1)
    except OverflowError:
        grown = retry.maximum_delay
    return max(0.0, min(retry.maximum_delay, grown))


class Plan:
    """What follows an attempt: ``delay`` seconds then the next attempt, or
    (``delay`` None) the end of the run, ``why`` in words (empty when the
    attempt succeeded or was not to be retried anyway)."""

    __slots__ = ("delay", "why")

    def __init__(self, delay: float | None, why: str = "") -> None:
        self.delay, self.why = delay, why

    def __repr__(self) -> str:
        return f"Plan({self.delay!r}, {self.why!r})"


def plan(retry: Retry | None, *, attempt: int, outcome: str, stopping: bool,
         now: datetime, next_start: datetime | None) -> Plan:
    """After attempt number ``attempt`` ended with ``outcome``: retry, or why not
    (pure). ``stopping``: run-job was told to stop; ``next_start``: the job's
    next scheduled start after the run began (None: not scheduled)."""
    if not enabled(retry) or outcome not in RETRIED_OUTCOMES or stopping:
        return Plan(None)
    total = retry.maximum_retries + 1
    if attempt >= total:
        return Plan(None, f"gave up after {total} attempts (retry.maximum_retries: "
                          f"{retry.maximum_retries})")
    wait = delay(retry, attempt)
    if next_start is not None:
        from datetime import timedelta

        if now + timedelta(seconds=wait) >= next_start:
            return Plan(None, f"not retried: attempt {attempt + 1} would start after {_fmt(wait)}"
                              f" delay, at or after the next scheduled start"
                              f" {clock.iso(next_start)}")
    return Plan(wait)


def attempt_record(number: int, started: datetime, output_offset: int | None) -> dict[str, Any]:
    """The ``attempts`` entry of an attempt that has just started (pure)."""
    return {"attempt": number, "started_at": clock.iso(started), "ended_at": None,
            "duration_s": None, "exit_code": None, "signal": None, "outcome": "running",
            "reason": "", "slurm_job_id": None, "output_offset": output_offset,
            "retry_at": None}


def ended_attempt(entry: dict[str, Any], result: Any, ended: datetime,
                  retry_at: datetime | None) -> dict[str, Any]:
    """The entry once its attempt ended with ``result`` (an ExecResult) (pure)."""
    started = clock.parse_iso(entry.get("started_at"))
    done = dict(entry)
    done.update({
        "ended_at": clock.iso(ended),
        "duration_s": round((ended - started).total_seconds(), 6) if started else None,
        "exit_code": result.exit_code, "signal": result.signal, "outcome": result.outcome,
        "reason": result.reason,
        "slurm_job_id": result.slurm_job_id if result.slurm_job_id is not None
        else entry.get("slurm_job_id"),
        "retry_at": clock.iso(retry_at) if retry_at is not None else None,
    })
    return done


def summary(attempts: list[dict[str, Any]], retry: Retry, outcome: str, why: str) -> str:
    """The run's reason about its attempts, empty for a plain first-attempt
    success (pure). ``why``: the plan's last word."""
    count = len(attempts)
    total = retry.maximum_retries + 1
    if outcome == "success":
        return f"succeeded at attempt {count} of {total}" if count > 1 else ""
    earlier = ", ".join(str(a.get("outcome")) for a in attempts[:-1])
    said = f"attempt {count} of {total}" + (f" (earlier: {earlier})" if earlier else "")
    return f"{said}; {why}" if why else said


def marker_line(number: int, total: int, started: datetime, previous: dict[str, Any]) -> bytes:
    """The line run-job writes into ``output.log`` where attempt ``number``
    (2 or more) begins; a first attempt has none, so a run without retries
    keeps the job's output byte for byte (pure)."""
    after = str(previous.get("outcome"))
    reason = " ".join(str(previous.get("reason") or "").split())
    if reason:
        after += f": {reason}"
    return (f"--- run-job: attempt {number} of {total} at {clock.iso(started)}"
            f" (attempt {number - 1} {after}) ---\n").encode("utf-8", "replace")


def _fmt(seconds: float) -> str:
    return f"{seconds:g}s"
