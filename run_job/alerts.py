"""Failure/recovery mail and event hooks after a run (stub: filled by the alerts work)."""

from __future__ import annotations

from run_job.model import Config, Job


def on_start(config: Config, job: Job, record: dict) -> None:
    """Fire the ``start`` hooks. Never raises."""


def on_end(config: Config, job: Job, record: dict, previous: list[dict]) -> dict:
    """Mail and hooks for a finished (or skipped) run. Never raises.

    ``previous`` is the job's history before this run, oldest first. The
    result is stored as ``record["alerts"]``.
    """
    return {}
