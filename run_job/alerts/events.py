"""The events a run fires hooks for: built-in ones and the job's own (pure).

A job's own events (``events:`` in its job file, SPEC §9) are signalled from
inside a run with ``run-job --trigger EVENT [--message TEXT]``. Their message
is hostile by default: whatever the job wrote, it becomes one line of at most
``MAX_MESSAGE`` bytes (``cut_message``) before it is stored, shown or handed
to a hook (as ``RUN_JOB_EVENT_MESSAGE``, an environment variable: never
through a shell).
"""

from __future__ import annotations

# Fired by run-job itself; a job's own ``events`` may not reuse these names.
BUILTIN_EVENTS = ("start", "success", "failure", "timeout", "skipped", "recovery", "pause",
                  "resume")
MAX_MESSAGE = 1024  # bytes of UTF-8 kept of an event's message
ENV_EVENTS = "RUN_JOB_EVENTS"  # the job's declared events, comma-separated, in its environment


def cut_message(text: str) -> str:
    """``text`` as one line of at most ``MAX_MESSAGE`` bytes of UTF-8 (pure):
    every run of whitespace, line breaks included, becomes one space, other
    control characters a space too; a character cut in half is dropped."""
    flat = "".join(" " if (ord(ch) < 32 or 0x7f <= ord(ch) < 0xa0) else ch for ch in text)
    flat = " ".join(flat.split())
    data = flat.encode("utf-8", "replace")  # lone surrogates (undecodable argv bytes): '?'
    if len(data) > MAX_MESSAGE:
        data = data[:MAX_MESSAGE]
    return data.decode("utf-8", "ignore").rstrip()


def declared_from_env(value: str | None) -> tuple[str, ...]:
    """The declared events as the run's environment lists them (pure)."""
    return tuple(name for name in (value or "").split(",") if name)


def undeclared_message(event: str, slug: str, declared: tuple[str, ...] | list[str]) -> str:
    """What ``--trigger`` says of an event its job does not declare (pure)."""
    import difflib

    if not declared:
        return (f"job {slug} declares no events; add 'events: [{event}]' to its job file"
                " to signal it")
    close = difflib.get_close_matches(event, list(declared), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return (f"event '{event}' is not declared by job {slug} (its events: {', '.join(declared)})"
            f"{hint}")
