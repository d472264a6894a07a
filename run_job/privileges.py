"""Running as the service user: drop from root, or refuse.

``plan_identity`` (pure) decides; ``become`` does it. run-job drops before it
touches any lock, run folder or state file, so everything a run creates
belongs to the service user and the next run, as that user, can use it.
"""

from __future__ import annotations

import os
import pwd


from run_job.errors import SecurityError


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
    """(euid, its user name or None when it has none)."""
    euid = os.geteuid()
    try:
        return euid, pwd.getpwuid(euid).pw_name
    except KeyError:
        return euid, None


def user_name() -> str:
    """The name of the user this process runs as now (the uid as text when
    it has no name): what records write in ``user``."""
    euid, name = current_user()
    return name if name is not None else str(euid)


def become(wanted: str, program: str = "run-job", what: str = "jobs") -> dict[str, str]:
    """Run as ``wanted`` from now on; returns HOME/USER/LOGNAME for the job.

    Raises SecurityError (exit 125) when the user does not exist, when another
    user runs run-job, or when the switch fails.
    """
    euid, name = current_user()
    try:
        entry = pwd.getpwnam(wanted)
    except KeyError:
        raise SecurityError(
            f"the service user {wanted!r} (config key 'user') does not exist;"
            " create it or change 'user'") from None
    env = {"HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name}
    action = plan_identity(euid, name, wanted)
    if action == "stay":
        return env
    if action == "refuse":
        raise SecurityError(
            f"{program} runs as {name or euid!r} but {what} must run as {wanted!r}"
            " (config key 'user'); run it as that user or as root")
    try:
        os.initgroups(entry.pw_name, entry.pw_gid)
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    except OSError as err:
        raise SecurityError(f"cannot switch to the service user {wanted!r}: {err.strerror}") from err
    if os.geteuid() != entry.pw_uid or os.getuid() != entry.pw_uid:  # never trust silently
        raise SecurityError(f"switching to the service user {wanted!r} did not take effect")
    os.environ.update(env)
    return env


def become_if_root(wanted: str, program: str = "run-job") -> None:
    """Root reads and writes the state as the service user (files stay
    theirs, nothing of a job's is touched as root); any other user reads as
    itself, with what it may read (``--status``, the check, ``--metrics``)."""
    if os.geteuid() == 0 and wanted != "root":
        become(wanted, program=program)


def default_working_directory(home: str | None) -> str:
    """SPEC §3: the service user's home if it exists, else ``/``."""
    if home and os.path.isdir(home):
        return home
    return "/"


def check_code_readable(user: str) -> None:
    """After the switch: can this process still read its own code and the
    Python it runs on? run-job imports parts of itself later (mail, hooks,
    Slurm); a root-only installation (a pyenv under /root) would make them
    fail midway, so say it now, before the run starts."""
    import sys

    import run_job

    for folder in (os.path.dirname(os.path.abspath(run_job.__file__)),
                   os.path.dirname(os.path.abspath(os.__file__))):
        if not os.access(folder, os.R_OK | os.X_OK):
            raise SecurityError(
                f"the service user {user!r} cannot read {folder}, where"
                f" {'process-control' if 'run_job' in folder else 'Python'} is installed"
                f" ({sys.executable}): install it where that user can read it (Debian's"
                " package and /usr/bin/python3 are), or start run-job as that user")
