"""Running as the service user: drop from root, or refuse.

``plan_identity`` (pure) decides; ``become`` does it. run-job drops before it
touches any lock, run folder or state file, so everything a run creates
belongs to the service user and the next run, as that user, can use it.
"""

from __future__ import annotations

import os
import pwd


def _errors():
    """``run_job.errors``, imported only when an error is raised or caught: the
    hot path of ``run-job --job`` does not pay for it."""
    from run_job import errors

    return errors



def plan_identity(euid: int, current_name: str | None, wanted: str) -> str:
    """"stay", "drop" or "refuse" (pure).

    Root with another service user drops; the service user itself stays;
    anyone else is refused.
    """
    if current_name == wanted:
        return "stay"
    if euid == 0:
        return "drop"
    return "refuse"


def current_user() -> tuple[int, str | None]:
    euid = os.geteuid()
    try:
        return euid, pwd.getpwuid(euid).pw_name
    except KeyError:
        return euid, None


def become(wanted: str, program: str = "run-job", what: str = "jobs") -> dict[str, str]:
    """Run as ``wanted`` from now on; returns HOME/USER/LOGNAME for the job.

    Raises SecurityError (exit 125) when the user does not exist, when another
    user runs run-job, or when the switch fails.
    """
    euid, name = current_user()
    try:
        entry = pwd.getpwnam(wanted)
    except KeyError:
        raise _errors().SecurityError(
            f"the service user {wanted!r} (config key 'user') does not exist;"
            " create it or change 'user'") from None
    env = {"HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name}
    action = plan_identity(euid, name, wanted)
    if action == "stay":
        return env
    if action == "refuse":
        raise _errors().SecurityError(
            f"{program} runs as {name or euid!r} but {what} must run as {wanted!r}"
            " (config key 'user'); run it as that user or as root")
    try:
        os.initgroups(entry.pw_name, entry.pw_gid)
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    except OSError as err:
        raise _errors().SecurityError(f"cannot switch to the service user {wanted!r}: {err.strerror}") from err
    if os.geteuid() != entry.pw_uid or os.getuid() != entry.pw_uid:  # never trust silently
        raise _errors().SecurityError(f"switching to the service user {wanted!r} did not take effect")
    os.environ.update(env)
    return env


def default_working_directory(home: str | None) -> str:
    """SPEC §3: the service user's home if it exists, else ``/``."""
    if home and os.path.isdir(home):
        return home
    return "/"
