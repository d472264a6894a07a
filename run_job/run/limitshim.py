"""The exec shim of a run with limits: set them in this process, then exec the command.

Run by ``supervise.spawn`` (never imported) as::

    python -I -S limitshim.py SETTINGS ERR_FD PATH ARGV0 ARGS...

SETTINGS is ``nofile=S:H,cpu=S:H,fsize=S:H,oom=N`` (any of them, or ``-``,
built by ``limits.shim_settings``). The process then becomes the command
itself (``execve``), so its pid, exit status and death by signal are the
command's own, exactly as without the shim:

- the environment passed on is the one this process was started with, read
  back from ``/proc/self/environ``: Python's start-up may add ``LC_CTYPE``
  to ``os.environ`` (PEP 538), which must not reach the job;
- SIGPIPE and SIGXFSZ get their default action back (Python ignores both,
  and an ignored signal stays ignored across exec);
- ``oom`` puts back the OOM score run-job had before it protected itself
  (the supervisor is never the memory limit's victim, its commands may be);
- when the exec fails, ``exec:-:<errno>`` on ERR_FD tells run-job why (it
  words it as it does for a command it could not start) and the shim exits
  127 (not found) or 126; a limit it cannot set is ``rlimit:<name>:<errno>``
  and an unreadable environment ``environ:-:<errno>``, exit 125. ERR_FD is
  closed by the exec, so run-job reads nothing at all when the exec worked.

Only the interpreter's built-in modules are used: it must start in a few
milliseconds and read nothing the job could have changed.
"""

import os
import sys


def _fail(err_fd, kind, what, err, status):
    number = getattr(err, "errno", None) or 22  # EINVAL for a bad value
    os.write(err_fd, f"{kind}:{what}:{number}".encode())
    os._exit(status)


def main(args):
    import resource

    settings, err_fd, path, argv = args[0], int(args[1]), args[2], args[3:]
    for item in settings.split(","):
        if item in ("", "-"):
            continue
        name, _, value = item.partition("=")
        try:
            if name == "oom":
                with open("/proc/self/oom_score_adj", "w") as handle:
                    handle.write(value)
            else:
                soft, _, hard = value.partition(":")
                limit = getattr(resource, "RLIMIT_" + name.upper())
                resource.setrlimit(limit, (int(soft), int(hard)))
        except (OSError, ValueError) as err:
            _fail(err_fd, "rlimit", name, err, 125)
    try:
        with open("/proc/self/environ", "rb") as handle:
            raw = handle.read()
    except OSError as err:
        _fail(err_fd, "environ", "-", err, 125)
    env = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep:
            env[key] = value
    import _signal

    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
    os.set_inheritable(err_fd, False)
    try:
        os.execve(path, argv, env)
    except (OSError, ValueError) as err:
        _fail(err_fd, "exec", "-", err, 127 if getattr(err, "errno", None) == 2 else 126)


if __name__ == "__main__":
    main(sys.argv[1:])
