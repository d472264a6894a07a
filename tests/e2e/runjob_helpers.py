"""Helpers of the run-job end-to-end tests: adversarial sites, /proc markers,
run records, a root site with a real service user (the shared ones,
``wait_for`` and ``Site``, are in ``pctest``)."""

from __future__ import annotations

import json
import os
import pwd
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pctest
from pctest import SERVICE_USER, Site, ensure_service_user  # noqa: F401 - re-exported
from pctest import wait_for  # noqa: F401 - re-exported for older tests; import it from pctest


# Folder names with spaces, quotes, '%' and ';' (SPEC: names are adversarial).
HOSTILE = "a site; 'q' \"dq\" %s"

PY = shlex.quote(sys.executable)

# A job body that starts a child, a grandchild, a setsid'd descendant and a
# double-forked daemon, each carrying MARKER in its argv, then waits.
TREE_SCRIPT = r'''
import os, sys, time
marker = sys.argv[1]
wait = float(sys.argv[2])
def sleeper(tag):
    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", marker, tag])
if os.fork() == 0:                       # child with its own grandchild
    if os.fork() == 0:
        sleeper("grandchild")
    sleeper("child")
if os.fork() == 0:                       # a setsid'd descendant
    os.setsid()
    sleeper("setsid")
if os.fork() == 0:                       # a daemon: double fork + setsid
    os.setsid()
    if os.fork() == 0:
        signal_ignore = __import__("signal")
        signal_ignore.signal(signal_ignore.SIGTERM, signal_ignore.SIG_IGN)  # only KILL works
        sleeper("daemon")
    os._exit(0)
print("tree started", flush=True)
time.sleep(wait)
'''


def job_yaml(**fields: object) -> str:
    """A job file's text; values dumped by PyYAML, so hostile paths stay intact."""
    import yaml

    return yaml.safe_dump(fields, allow_unicode=True)


def q(path: object) -> str:
    """A path quoted for a job ``command`` (shell quoting rules)."""
    return shlex.quote(str(path))


def new_site(tmp_path: Path, **settings: object) -> Site:
    return Site(tmp_path / HOSTILE, **settings)


def marker() -> str:
    return f"pc-test-marker-{uuid.uuid4().hex}"


def tree_command(site: Site, mark: str, wait: float) -> str:
    script = site.root / "tree.py"
    script.write_text(TREE_SCRIPT)
    return f"{PY} {shlex.quote(str(script))} {mark} {wait}"


def marked_pids(mark: str) -> list[int]:
    """Live (non-zombie) processes whose argv carries ``mark``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if mark.encode() in cmdline and state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def kill_marked(mark: str) -> None:
    for pid in marked_pids(mark):
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def history(site: Site, slug: str) -> list[dict]:
    return json.loads((site.state / f"{slug}.history.json").read_text())


def latest_status(site: Site, slug: str) -> dict:
    return json.loads((site.output / slug / "latest" / "status.json").read_text())


def run_dirs(site: Site, slug: str) -> list[Path]:
    folder = site.output / slug
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if p.name != "latest" and not p.name.startswith("."))


# ---------------------------------------------------- as root, with a service user

class RootSite(pctest.Site):
    """A config (root's, 0644) and its folders; ``var`` belongs to the service user."""

    def __init__(self, top: Path, user: pwd.struct_passwd, **settings: object) -> None:
        super().__init__(top, var=top / "var", user=user.pw_name, **settings)
        self.top = top
        self.user = user
        self.var.mkdir()
        os.chown(self.var, user.pw_uid, user.pw_gid)

    def run(self, name: str, *args: str, as_user: bool = False, timeout: float = 60,
            env: dict | None = None) -> subprocess.CompletedProcess:
        full = pctest.any_user_env({"XDG_CACHE_HOME": str(self.top / "cache")})
        full.update(env or {})
        kwargs: dict = {}
        if as_user:
            full.update(HOME=self.user.pw_dir, USER=self.user.pw_name, LOGNAME=self.user.pw_name,
                        XDG_CACHE_HOME=str(self.var / "cache"))
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": [],
                      "cwd": "/"}
        return subprocess.run([*pctest.any_user_command(name), "--config", str(self.config), *args],
                              capture_output=True, text=True, env=full, timeout=timeout, **kwargs)
