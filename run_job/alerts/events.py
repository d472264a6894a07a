"""The events a run fires hooks for: built-in ones and the job's own (pure)."""

from __future__ import annotations

# Fired by run-job itself; a job's own ``events`` may not reuse these names.
BUILTIN_EVENTS = ("start", "success", "failure", "timeout", "skipped", "recovery", "pause",
                  "resume")
