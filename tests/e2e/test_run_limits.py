"""Resource limits (SPEC §13, issue #17), for real: the real run-job as a
subprocess, the real cgroup, the real rlimits.

Needs root for the cgroup (``memory``, ``tasks``); skipped with the reason
when this host has no such controller (``confine.host_problem`` says which,
and where it looked). The bombs run only where run-job refuses to start them
unconfined, and the fork bomb itself checks it sits in a pids cgroup with a
small ``pids.max`` before it forks at all, with a timeout on top.

On the development host (cgroup v1 memory and pids controllers, an empty v2
hierarchy) this is the v1 path; the v2 path is proved by the tables of
``tests/unit/test_limits.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

import pctest
from pctest import command, command_env
from runjob_helpers import (PY, RootSite, ensure_service_user, history, job_yaml, kill_marked,
                            latest_status, marked_pids, marker, new_site, q, run_dirs, wait_for)
from run_job.run import confine, limits

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the run's cgroup is made by root")


def cgroup_skip(*controllers: str) -> str | None:
    if os.geteuid() != 0:
        return "needs root: the run's cgroup is made by root"
    return confine.host_problem(tuple(sorted(controllers)))


def needs(*controllers: str):
    reason = cgroup_skip(*controllers)
    return pytest.mark.skipif(reason is not None, reason=str(reason))


def slug(prefix: str) -> str:
    """A job name of this test alone (cgroupfs is shared with everything else)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run_cgroups(name: str) -> list[str]:
    """The run cgroups of job ``name`` that exist now, in every hierarchy we use."""
    controllers = tuple(c for c in ("memory", "pids") if cgroup_skip(c) is None)
    found = []
    for place in confine.find_places(controllers) if controllers else []:
        folder = place.folder()
        if os.path.isdir(folder):
            found += [os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(f"{name}.")]
    return found


@pytest.fixture
def site(tmp_path):
    return new_site(tmp_path)


@pytest.fixture
def mark():
    value = marker()
    yield value
    kill_marked(value)


def start(site, *args):
    return subprocess.Popen(command("run-job") + ["--config", str(site.config), *args],
                            env=command_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_running(site, name: str, after: str | None = None, timeout: float = 20) -> dict:
    """The status of a run of ``name`` newer than run id ``after`` once it is
    running and in the history."""
    path = site.output / name / "latest" / "status.json"

    def running():
        try:
            status = json.loads(path.read_text())
            entries = history(site, name)
        except (OSError, ValueError):
            return None
        if status.get("outcome") == "running" and status.get("run_id") != after and any(
                e.get("run_id") == status["run_id"] for e in entries):
            return status
        return None

    status = wait_for(running, timeout)
    assert status, f"no run of {name} started"
    return status


# -- memory -------------------------------------------------------------------------

HOG = r'''
import sys
size = 300 * 1024 * 1024
block = bytearray(size)
for i in range(0, size, 4096):   # touch every page
    block[i] = 1
print("allocated", len(block), sys.argv[1])
'''


def _oom_kills_of(path: str) -> int:
    try:
        return limits.parse_counter(Path(path).read_text(), "oom_kill") or 0
    except OSError:
        return 0


@needs("memory")
def test_memory_hog_ends_failed_naming_the_limit_and_nothing_else_is_touched(site, mark, tmp_path):
    name = slug("hog")
    script = site.root / "hog.py"
    script.write_text(HOG)
    hooks = tmp_path / "hooks"
    (hooks / "failure").mkdir(parents=True)
    reason_file = tmp_path / "hook-reason"
    hook = hooks / "failure" / "10-reason"
    hook.write_text(f"#!/bin/sh\nprintf %s \"$RUN_JOB_REASON\" > {q(reason_file)}\n")
    hook.chmod(0o755)
    for folder in (hooks, hooks / "failure"):
        folder.chmod(0o755)
    import yaml

    config = yaml.safe_load(site.config.read_text())
    config["hooks_directory"] = str(hooks)
    site.config.write_text(yaml.safe_dump(config))
    site.job(name, job_yaml(command=f"{PY} {q(script)} {mark}", limits={"memory": "64M"},
                            timeout="60s"))
    # a bystander outside the run, and the OOM kills of the cgroup the tests run in
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", mark])
    [place] = [p for p in confine.find_places(("memory",))]
    parent_oom = os.path.join(os.path.dirname(place.folder()), "memory.oom_control")
    before = _oom_kills_of(parent_oom)
    try:
        result = site.run_job(name, timeout=120)
        assert result.returncode == 137, result.stderr
        status = latest_status(site, name)
        assert status["outcome"] == "failed" and status["signal"] == 9
        assert "was killed by SIGKILL" in status["reason"]
        assert "limits.memory (64M) reached: the kernel killed 1 process of the run" in status["reason"]
        assert "allocated" not in (site.output / name / "latest" / "output.log").read_text()
        # hooks (and mail, from the same record) get that reason
        assert reason_file.read_text() == status["reason"]
        assert bystander.poll() is None  # untouched
        if os.path.exists(parent_oom):
            assert _oom_kills_of(parent_oom) == before  # no OOM kill outside the run's cgroup
    finally:
        bystander.kill()
        bystander.wait()
    assert wait_for(lambda: not run_cgroups(name), 10), run_cgroups(name)


# -- tasks --------------------------------------------------------------------------

BOMB = r'''
import os, sys, time
# Never fork unless confined: in a pids cgroup whose pids.max is small.
confined = False
mounts = {}
for line in open("/proc/self/mountinfo"):
    left, _, right = line.partition(" - ")
    fields, tail = left.split(), right.split()
    if tail and tail[0] == "cgroup2":
        mounts[""] = fields[4]
    elif tail and tail[0] == "cgroup" and "pids" in tail[2].split(","):
        mounts["pids"] = fields[4]
for line in open("/proc/self/cgroup"):
    _, controllers, path = line.rstrip("\n").split(":", 2)
    key = "pids" if "pids" in controllers.split(",") else controllers
    if key in mounts:
        try:
            value = open(mounts[key] + path + "/pids.max").read().strip()
        except OSError:
            continue
        if value.isdigit() and int(value) <= 100:
            confined = True
if not confined:
    print("not confined: no bomb", flush=True)
    sys.exit(3)
print("bomb", flush=True)
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.001)
'''


def _host_pids() -> int:
    return sum(1 for n in os.listdir("/proc") if n.isdigit())


@needs("pids")
def test_fork_bomb_under_tasks_is_contained_and_stopped_by_the_timeout(site, mark):
    name = slug("bomb")
    script = site.root / "bomb.py"
    script.write_text(BOMB)
    site.job(name, job_yaml(command=f"{PY} {q(script)} {mark}", limits={"tasks": 32},
                            timeout="5s", kill_grace="1s"))
    before = _host_pids()
    proc = start(site, name)
    most = peak = 0
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and proc.poll() is None:
            most = max(most, len(marked_pids(mark)))
            peak = max(peak, _host_pids())
            time.sleep(0.05)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 124, err
    status = latest_status(site, name)
    assert status["outcome"] == "timed_out"
    assert "bomb" in (site.output / name / "latest" / "output.log").read_text()
    assert 10 <= most <= 32, most  # the job's own processes: never more than tasks
    # the host's pid count did not explode (the margin is for whatever else runs on it)
    assert peak - before < 500, (before, peak)
    assert "limits.tasks (32) reached:" in status["reason"] and "forks refused" in status["reason"]
    assert marked_pids(mark) == []
    assert wait_for(lambda: not run_cgroups(name), 10), run_cgroups(name)


# -- per-process limits ----------------------------------------------------------

OPEN_MANY = r'''
import errno, sys
held = []
try:
    for i in range(20):
        held.append(open("/dev/null"))
except OSError as err:
    print("EMFILE" if err.errno == errno.EMFILE else err, "after", len(held), flush=True)
    sys.exit(0)
print("opened all 20", flush=True)
sys.exit(1)
'''


def test_open_files_bites(site):
    site.root.joinpath("open.py").write_text(OPEN_MANY)
    site.job("nofile", job_yaml(command=f"{PY} {q(site.root / 'open.py')}",
                                limits={"open_files": 16}))
    result = site.run_job("nofile")
    assert result.returncode == 0, result.stderr
    output = (site.output / "nofile" / "latest" / "output.log").read_text()
    assert output.startswith("EMFILE after ") and int(output.split()[-1]) < 16


def test_cpu_time_kills_a_busy_loop_with_sigxcpu(site):
    site.job("busy", job_yaml(command=f"{PY} -c 'while True: pass'", limits={"cpu_time": "1s"},
                              timeout="60s"))
    started = time.monotonic()
    result = site.run_job("busy")
    assert result.returncode == 128 + signal.SIGXCPU, result.stderr
    assert time.monotonic() - started < 30
    status = latest_status(site, "busy")
    assert status["outcome"] == "failed" and status["signal"] == signal.SIGXCPU
    assert status["reason"].endswith("was killed by SIGXCPU (limits.cpu_time: 1s of CPU)")


def test_file_size_stops_a_two_megabyte_write(site):
    target = site.root / "big file"
    site.job("fsize", job_yaml(command=f"dd if=/dev/zero of={q(target)} bs=64k count=32",
                               limits={"file_size": "1M"}))
    result = site.run_job("fsize")
    assert result.returncode == 128 + signal.SIGXFSZ, result.stderr
    status = latest_status(site, "fsize")
    assert status["reason"].endswith("was killed by SIGXFSZ (limits.file_size: 1M)")
    assert target.stat().st_size == 1 << 20


# -- the shim changes nothing else ----------------------------------------------------

REPORT = r'''
import json, os, sys
# as exec'd (os.environ may have LC_CTYPE added by this Python's own start-up)
raw = [e.partition("=") for e in open("/proc/self/environ").read().split("\0") if e]
env = {k: v for k, _, v in raw if k not in ("RUN_JOB_RUN_ID", "RUN_JOB_RUN_DIR")}
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
argv = open("/proc/self/cmdline", "rb").read().split(b"\0")[:-1]
print(json.dumps({"env": env, "argv": [a.decode() for a in argv],
                  "sigign": status["SigIgn"].strip(), "sigblk": status["SigBlk"].strip(),
                  "oom": open("/proc/self/oom_score_adj").read().strip(),
                  "cwd": os.getcwd(), "pgid_is_pid": os.getpgid(0) == os.getpid()}))
'''


def _parity_cases(site: pctest.Site) -> list[tuple[str, str]]:
    noshebang = site.root / "no shebang"
    noshebang.write_text("echo hi\n")
    noshebang.chmod(0o755)
    site.root.joinpath("report.py").write_text(REPORT)
    return [
        ("exit7", "/bin/sh -c 'exit 7'"),
        ("selfterm", "/bin/sh -c 'kill -TERM $$'"),
        ("missing", "/nonexistent/command x"),
        ("noexec", q(noshebang)),
        ("report", f"{PY} {q(site.root / 'report.py')} 'a b' ';' '%s' \"q'\""),
    ]


@pytest.mark.parametrize("limit", [{"open_files": 1024},
                                   pytest.param({"open_files": 1024, "memory": "1G"},
                                                marks=needs("memory"))],
                         ids=["rlimits", "rlimits+cgroup"])
def test_the_shim_keeps_status_signals_environment_and_argv(site, limit):
    env = {k: v for k, v in command_env().items() if not k.startswith(("LC_", "LANG"))}
    outcomes = {}
    for case, text in _parity_cases(site):
        for kind, extra in (("plain", {}), ("limited", {"limits": limit})):
            site.job(f"{case}-{kind}", job_yaml(command=text, working_directory=str(site.root), **extra))
            result = subprocess.run(command("run-job") + ["--config", str(site.config), f"{case}-{kind}"],
                                    env=env, capture_output=True, text=True, timeout=60)
            status = latest_status(site, f"{case}-{kind}")
            output = (site.output / f"{case}-{kind}" / "latest" / "output.log").read_text()
            if case == "report":
                output = json.loads(output)
                output["env"].pop("RUN_JOB_NAME")
                output["env"].pop("RUN_JOB_FILE")
            outcomes[case, kind] = (result.returncode, status["outcome"], status["exit_code"],
                                    status["signal"], status["reason"], output)
    for case, _ in _parity_cases(site):
        assert outcomes[case, "plain"] == outcomes[case, "limited"], case
    assert outcomes["exit7", "plain"][0] == 7
    assert outcomes["selfterm", "plain"][:4] == (143, "failed", None, 15)
    assert outcomes["missing", "plain"][0] == 127
    assert outcomes["noexec", "plain"][0] == 126 and "Exec format error" in outcomes["noexec", "plain"][4]
    report = outcomes["report", "plain"][5]
    assert report["argv"][1:] == [str(site.root / "report.py"), "a b", ";", "%s", "q'"]
    assert report["pgid_is_pid"] and report["oom"] == "0"


def _shim(settings: str, *argv: str) -> tuple[subprocess.CompletedProcess, bytes]:
    read, write = os.pipe()
    try:
        result = subprocess.run([sys.executable, "-I", "-S", confine.SHIM, settings, str(write), *argv],
                                pass_fds=(write,), capture_output=True, text=True, timeout=30)
    finally:
        os.close(write)
    try:
        return result, os.read(read, 256)
    finally:
        os.close(read)


def test_the_shim_sets_what_it_is_told_then_becomes_the_command():
    # the OOM score goes back up to what run-job had (raising needs no privilege)
    result, said = _shim("nofile=20:20,fsize=4096:4096,oom=300", "/bin/sh", "sh", "-c",
                         "ulimit -n; ulimit -f; cat /proc/self/oom_score_adj")
    assert (result.returncode, result.stdout, said) == (0, "20\n8\n300\n", b"")
    result, said = _shim("-", "/nonexistent/x", "x")
    assert (result.returncode, said) == (127, b"exec:-:2")
    result, said = _shim("nofile=5:4", "/bin/true", "true")  # soft above hard
    assert (result.returncode, said) == (125, b"rlimit:nofile:22")
    assert result.stderr == ""


# -- no cgroup is left behind --------------------------------------------------------

SLEEPER = "import sys, time; time.sleep(float(sys.argv[1]))"


@needs("memory", "pids")
def test_a_hundred_runs_leave_no_cgroup_killed_ones_included(site, mark):
    """30 successes, 30 failures, 5 timeouts, 20 --kill-job, 15 run-job SIGKILLed."""
    names = {kind: slug(kind) for kind in ("ok", "fail", "timeout", "killjob", "sigkill")}
    lim = {"memory": "128M", "tasks": 16, "open_files": 256}
    sleeper = f"{PY} -c {q(SLEEPER)} 30 {mark}"
    site.job(names["ok"], job_yaml(command="/bin/true", limits=lim))
    site.job(names["fail"], job_yaml(command="/bin/sh -c 'exit 3'", limits=lim))
    site.job(names["timeout"], job_yaml(command=sleeper, limits=lim, timeout="0.5s", kill_grace="1s"))
    site.job(names["killjob"], job_yaml(command=sleeper, limits=lim, kill_grace="1s"))
    site.job(names["sigkill"], job_yaml(command=sleeper, limits=lim, kill_grace="1s"))
    codes: dict[str, list[int]] = {kind: [] for kind in names}
    errors: list[BaseException] = []

    def plain(kind: str, count: int) -> None:
        for _ in range(count):
            codes[kind].append(site.run_job(names[kind], timeout=60).returncode)

    def killed(kind: str, count: int) -> None:
        last = None
        for _ in range(count):
            proc = start(site, names[kind])
            last = wait_running(site, names[kind], last)["run_id"]
            if kind == "killjob":
                assert site.run_job("--kill-job", names[kind], timeout=60).returncode == 0
            else:
                proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
            codes[kind].append(proc.returncode)

    def guarded(target, *args):
        try:
            target(*args)
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=guarded, args=args) for args in (
        (plain, "ok", 30), (plain, "fail", 30), (plain, "timeout", 5),
        (killed, "killjob", 20), (killed, "sigkill", 15))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    assert codes["ok"] == [0] * 30 and codes["fail"] == [3] * 30 and codes["timeout"] == [124] * 5
    assert codes["killjob"] == [128 + signal.SIGTERM] * 20
    assert codes["sigkill"] == [-signal.SIGKILL] * 15
    # no cgroup and no process of any of those runs is left (the cleaner of a
    # SIGKILLed run-job stops what it left behind)
    leftover = wait_for(lambda: not any(run_cgroups(n) for n in names.values()) or None, 20)
    assert leftover, [run_cgroups(n) for n in names.values()]
    # nor the folder of the runs below the cgroup the tests run in (nobody else's runs are
    # there: it would keep whoever manages that cgroup from removing it)
    nested = [p.folder() for p in confine.find_places(("memory", "pids")) if p.parent]
    assert wait_for(lambda: not any(os.path.exists(f) for f in nested), 10), nested
    assert wait_for(lambda: marked_pids(mark) == [], 10), marked_pids(mark)
    site.run_job("--status")  # settles the last SIGKILLed run
    outcomes = {kind: [e["outcome"] for e in history(site, n)] for kind, n in names.items()}
    assert outcomes["killjob"] == ["killed"] * 20
    assert outcomes["sigkill"] == ["lost"] * 15
    assert len(run_dirs(site, names["ok"])) == 30


@needs("memory")
def test_the_cleaner_stops_what_left_session_groups_and_marker_when_run_job_is_killed(site, mark):
    """A process with no marker in its environment, in its own session, left
    by a run whose run-job was SIGKILLed: only the cgroup knows it."""
    name = slug("escape")
    site.job(name, job_yaml(
        command=f"/bin/sh -c {q(f'env -i setsid {PY} -c {q(SLEEPER)} 60 {mark} & sleep 30')}",
        limits={"memory": "128M"}, kill_grace="1s"))
    proc = start(site, name)
    wait_running(site, name)

    def escaped():  # the sleeper; the shell that started it has the mark in its argv too
        return [pid for pid in marked_pids(mark)
                if b"RUN_JOB_RUN_ID" not in Path(f"/proc/{pid}/environ").read_bytes()]

    assert len(wait_for(escaped, 10)) == 1
    [pid] = escaped()
    assert os.getsid(pid) == pid  # its own session (and process group)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert wait_for(lambda: marked_pids(mark) == [], 10), marked_pids(mark)
    assert wait_for(lambda: not run_cgroups(name), 10), run_cgroups(name)


# -- refusals -------------------------------------------------------------------------

def test_a_job_without_limits_pays_nothing_on_the_hot_path(site):
    cache = site.root / "cache home"
    site.job("plain", job_yaml(command="/bin/true"))
    env = command_env({"XDG_CACHE_HOME": str(cache)})
    argv = [sys.executable, "-X", "importtime", "-m", "run_job", "--config", str(site.config), "plain"]
    subprocess.run(argv, env=env, capture_output=True, check=True)  # fills the cache
    warm = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    modules = {line.split("|")[-1].strip() for line in warm.stderr.splitlines()
               if line.startswith("import time:")}
    assert not {"run_job.run.limits", "run_job.run.confine", "resource"} & modules


@pytest.fixture
def root_site():
    if os.geteuid() != 0:
        pytest.skip("needs root: a second user")
    reason = pctest.any_user_skip_reason()
    if reason:
        pytest.skip(reason)
    user = ensure_service_user()
    top = Path(tempfile.mkdtemp(prefix="pc-limits-root-"))
    top.chmod(0o755)
    yield RootSite(top / "site; 'q' %s", user)
    subprocess.run(["rm", "-rf", "--", str(top)], check=False)


def test_run_job_not_root_refuses_memory_and_tasks_with_one_line(root_site):
    root_site.job("big", job_yaml(command="/bin/true", limits={"memory": "1G", "tasks": 10}))
    result = root_site.run("run-job", "big", as_user=True)
    assert result.returncode == 125, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("run-job: limits.memory and limits.tasks cannot be enforced:")
    assert f"runs as '{root_site.user.pw_name}'" in line and "root" in line
    assert not (root_site.var / "log" / "big").exists()  # nothing started, no run folder
    # per-process limits need no root
    root_site.job("small", job_yaml(command="/bin/sh -c 'ulimit -n'", limits={"open_files": 64}))
    result = root_site.run("run-job", "small", as_user=True)
    assert result.returncode == 0, result.stderr
    assert (root_site.var / "log" / "small" / "latest" / "output.log").read_text() == "64\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="run-job started by a user other than root: as root,"
                    " the service-user test above runs it that way")
def test_not_root_refuses_memory_with_one_line(site):
    site.job("big", job_yaml(command="/bin/true", limits={"memory": "1G"}))
    result = site.run_job("big")
    assert result.returncode == 125
    [line] = result.stderr.splitlines()
    assert line.startswith("run-job: limits.memory cannot be enforced:") and "root" in line
    assert run_dirs(site, "big") == []


ESCAPE = r'''
import json, os
out = {"uid": os.getuid(), "nofile": open("/proc/self/limits").read().count("Max open files")}
import resource
out["nofile"] = resource.getrlimit(resource.RLIMIT_NOFILE)
mounts = {}
for line in open("/proc/self/mountinfo"):
    left, _, right = line.partition(" - ")
    fields, tail = left.split(), right.split()
    if tail and tail[0] == "cgroup":
        for c in ("memory", "pids"):
            if c in tail[2].split(","):
                mounts[c] = fields[4]
    elif tail and tail[0] == "cgroup2":
        mounts.setdefault("", fields[4])
tries = {}
for line in open("/proc/self/cgroup"):
    _, controllers, path = line.rstrip("\n").split(":", 2)
    for c in controllers.split(",") if controllers else [""]:
        if c not in mounts or "process-control" not in path:
            continue
        here = mounts[c] + path
        out.setdefault("cgroups", []).append(path)
        attempts = {
            "raise": (os.path.join(here, "memory.limit_in_bytes" if c == "memory" else
                                   "memory.max" if c == "" else "pids.max"), "max"),
            "leave": (os.path.join(os.path.dirname(os.path.dirname(here)), "cgroup.procs"), str(os.getpid())),
        }
        for what, (path_, value) in attempts.items():
            try:
                with open(path_, "w") as f:
                    f.write(value)
                tries[f"{c}:{what}"] = "done"
            except OSError as err:
                tries[f"{c}:{what}"] = err.strerror
        try:
            os.mkdir(os.path.join(here, "mine"))
            tries[f"{c}:mkdir"] = "done"
        except OSError as err:
            tries[f"{c}:mkdir"] = err.strerror
out["tries"] = tries
print(json.dumps(out))
'''


@needs("memory", "pids")
def test_as_root_with_a_service_user_the_job_cannot_raise_or_leave_its_limits(root_site):
    script = root_site.top / "escape.py"
    script.write_text(ESCAPE)
    script.chmod(0o644)
    root_site.job("confined", job_yaml(command=f"/usr/bin/python3 {q(script)}",
                                       limits={"memory": "256M", "tasks": 64, "open_files": 64}))
    result = root_site.run("run-job", "confined")
    assert result.returncode == 0, result.stderr
    status = json.loads((root_site.var / "log" / "confined" / "latest" / "status.json").read_text())
    assert status["outcome"] == "success" and status["user"] == root_site.user.pw_name
    out = json.loads((root_site.var / "log" / "confined" / "latest" / "output.log").read_text())
    assert out["uid"] == root_site.user.pw_uid and out["nofile"] == [64, 64]
    assert len(out["cgroups"]) >= 1 and all(f"/confined.{status['run_id']}" in p for p in out["cgroups"])
    assert out["tries"] and all(v == "Permission denied" for v in out["tries"].values()), out["tries"]
    assert wait_for(lambda: not run_cgroups("confined"), 10), run_cgroups("confined")


@ROOT_ONLY
def test_validate_says_nothing_about_limits_this_host_enforces(site):
    site.job("limited", job_yaml(command="/bin/true", limits={"memory": "1G", "tasks": 10}))
    result = site.run_job("--validate")
    assert result.returncode == 0
    if cgroup_skip("memory", "pids") is None:
        assert "note" not in result.stdout
    else:
        assert "limited.yaml: note: on this host, limits." in result.stdout
