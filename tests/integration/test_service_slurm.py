"""sbatch-service on the real single-node Slurm (tests/slurm/local-slurm).

Every verb and guarantee of SPEC §7: start/stop/restart/reload/init/deploy/
status/purge, signals reaching the main process only, 5 concurrent starts
giving one job, exit 4 with nothing submitted or cancelled when Slurm is
unreachable, stage executables (good and bad ``start`` lines), the keep-alive
entry written by cron-generate bringing a cancelled service back, and a
service of another user submitted from root.

Each test uses unique service names and a site (config, job directory, logs,
state) in tmp_path with adversarial folder names; every job a test starts is
cancelled at teardown, even when the test fails.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import pctest
from pctest import REPO, free_port, wait_for
from pctest import USER as ME

pytestmark = pytest.mark.slurm

# The test service: traps HUP/USR1/USR2 (a marker line each) and TERM (marker,
# then exit 0), and runs a child that records any HUP it gets: a signal meant
# for the main process must not reach it.
SERVICE_SCRIPT = r"""#!/bin/bash
dir=$1
mark() { printf '%s\n' "$1" >>"$dir/signals"; }
trap 'mark hup' HUP
trap 'mark usr1' USR1
trap 'mark usr2' USR2
trap 'mark term; exit 0' TERM
bash -c 'trap "printf \"child-hup\n\" >>\"$1/signals\"" HUP; while :; do sleep 0.2 & wait $!; done' child "$dir" &
printf '%s\n' "$$" "${PC_TEST_VALUE-unset}" "$PWD" "$PATH" "${PC_LEAK-unset}" >"$dir/ready.tmp" && mv "$dir/ready.tmp" "$dir/ready"
while :; do sleep 0.2 & wait $!; done
"""

# A service that ignores TERM: only the KILL after kill_grace stops it.
STUBBORN_SCRIPT = r"""#!/bin/bash
trap '' TERM
printf 'up\n' >"$1/ready"
while :; do sleep 0.2 & wait $!; done
"""


def unique(purpose: str) -> str:
    return f"t{uuid.uuid4().hex[:8]}-{purpose}"


class ServiceSite(pctest.Site):
    """pctest's site under one adversarial tmp folder, for services: ``env``
    names the cluster, ``work`` is the services' working directory, ``bin``
    holds the stand-in sbatch-service and the test service."""

    def __init__(self, tmp_path: Path, env: dict[str, str], user: str = ME) -> None:
        self.bin = tmp_path / "bin"  # a plain path: service_runner_path allows no spaces
        self.runner = self.bin / "sbatch-service"
        super().__init__(tmp_path / "site with space; it's 100%", user=user,
                         service_runner_path=str(self.runner))
        self.work = self.root / "work dir 'q' %d"
        for folder in (self.work, self.bin):
            folder.mkdir(parents=True, exist_ok=True)
        self.env = env
        # What an installed sbatch-service would be: the keep-alive entry calls it.
        self.runner.write_text("#!/bin/sh\n" + shlex.join(self.argv()) + ' "$@"\n')
        self.runner.chmod(0o755)
        self.script = self.bin / "service.sh"
        self.script.write_text(SERVICE_SCRIPT)
        self.script.chmod(0o755)
        tmp_path.chmod(0o755)

    def argv(self) -> list[str]:
        return pctest.command("sbatch-service") + ["--config", str(self.config)]

    def command_env(self, env: dict[str, str] | None = None) -> dict[str, str]:
        return pctest.command_env(base=self.env if env is None else env)

    def run(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv() + list(args), capture_output=True, text=True,
                              env=self.command_env(env), timeout=timeout, stdin=subprocess.DEVNULL)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(self.argv() + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.command_env(env),
                                stdin=subprocess.DEVNULL)

    def markers(self, slug: str) -> Path:
        folder = self.root / f"markers {slug}"
        folder.mkdir(exist_ok=True)
        folder.chmod(0o777)
        return folder

    def service(self, slug: str, extra: str = "", script: Path | None = None) -> Path:
        """A job file whose command is the test service, with its marker folder."""
        markers = self.markers(slug)
        command = shlex.join([str(script or self.script), str(markers)])
        text = (f"runner: slurm\n"
                f"command: {json.dumps(command)}\n"
                f"working_directory: {json.dumps(str(self.work))}\n"
                f"environment:\n  PC_TEST_VALUE: {json.dumps(ADVERSARIAL)}\n"
                f"kill_grace: 3s\n" + extra)
        if "service:" not in extra:
            text += "service: {}\n"
        path = self.jobs / f"{slug}.yaml"
        path.write_text(text)
        path.chmod(0o644)
        return path

    def signals(self, slug: str) -> list[str]:
        try:
            return (self.markers(slug) / "signals").read_text().split()
        except FileNotFoundError:
            return []


ADVERSARIAL = "a b'c \"d\" $HOME `x` ; 100% \\n"


def squeue(env: dict[str, str], name: str, user: str = ME) -> list[list[str]]:
    proc = subprocess.run(["squeue", "-h", "-n", name, "-u", user, "-o", "%i|%T|%u|%j"],
                          capture_output=True, text=True, env=env, timeout=30, check=True)
    return [line.split("|") for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture
def cleanup(slurm_env):
    """Names of the services a test starts: cancelled at teardown whatever happened."""
    names: list[tuple[str, str]] = []
    yield lambda slug, user=ME: names.append((slug, user))
    for slug, user in names:
        subprocess.run(["scancel", "-n", f"{slug}-service", "-u", user], env=slurm_env,
                       capture_output=True, timeout=30)
    for slug, user in names:
        wait_for(lambda: not squeue(slurm_env, f"{slug}-service", user), timeout=10, step=0.1)
        # The test cluster tracks job processes with proctrack/linuxproc (no
        # cgroups): a child that outlives the service's main process escapes
        # Slurm's cleanup. Its command line carries the test's unique slug.
        subprocess.run(["pkill", "-KILL", "-f", "--", slug], capture_output=True, timeout=30)


@pytest.fixture
def site(tmp_path, slurm_env) -> ServiceSite:
    return ServiceSite(tmp_path, slurm_env)


def ready(site: ServiceSite, slug: str) -> list[str]:
    path = site.markers(slug) / "ready"
    return wait_for(lambda: path.exists() and path.read_text().splitlines(), what=f"{slug} ready")


# ------------------------------------------------------------------ lifecycle


def test_start_status_reload_stop_restart(site, slurm_env, cleanup):
    slug = unique("life")
    custom = unique("usr1")
    cleanup(slug)
    cleanup(custom)
    site.service(slug)
    site.service(custom, "service:\n  reload_signal: USR1\n  stop_signal: SIGTERM\n")

    # the caller's environment does not leak into the service (cron and a shell give the same)
    first = site.run("start", slug, env=dict(slurm_env, PC_LEAK="1", PATH="/opt/x:" + slurm_env["PATH"]))
    assert first.returncode == 0, first.stderr
    jobs = squeue(slurm_env, f"{slug}-service")
    assert len(jobs) == 1 and jobs[0][1] in ("PENDING", "RUNNING"), jobs
    job_id = jobs[0][0]
    assert f"Slurm job {job_id}" in first.stdout and ("RUNNING" in first.stdout or "PENDING" in first.stdout)
    pid, value, cwd, path, leak = ready(site, slug)
    assert value == ADVERSARIAL  # the job's environment, byte for byte
    assert cwd == str(site.work)
    assert path == "/usr/local/bin:/usr/bin:/bin" and leak == "unset"

    # start of a running service: a no-op, exit 0, same job
    again = site.run("start", slug)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""  # off a terminal (cron) the no-op says nothing: no mail
    assert [j[0] for j in squeue(slurm_env, f"{slug}-service")] == [job_id]

    # status of a running service: 0, with job id, state and node
    status = site.run("status", slug)
    assert status.returncode == 0, status.stdout + status.stderr
    row = [line for line in status.stdout.splitlines() if line.startswith(slug)][0].split()
    assert row[1] == job_id and row[2] == "RUNNING" and row[3] != "-"

    # reload: HUP reaches the main process, and only it (not its child)
    reload = site.run("reload", slug)
    assert reload.returncode == 0, reload.stderr
    assert "SIGHUP" in reload.stdout
    wait_for(lambda: "hup" in site.signals(slug), what="hup marker")
    time.sleep(0.5)
    assert site.signals(slug) == ["hup"]
    assert squeue(slurm_env, f"{slug}-service")[0][1] == "RUNNING"  # HUP did not kill it

    # custom reload signal; not-running service gets status 3
    assert site.run("start", custom).returncode == 0
    ready(site, custom)
    both = site.run("status", slug, custom)
    assert both.returncode == 0, both.stdout
    assert site.run("reload", custom).returncode == 0
    wait_for(lambda: "usr1" in site.signals(custom), what="usr1 marker")

    # stop: the stop signal to the main process, exit 0, squeue shows none
    stop = site.run("stop", slug)
    assert stop.returncode == 0, stop.stderr
    assert squeue(slurm_env, f"{slug}-service") == []
    assert "term" in site.signals(slug)
    assert "SIGTERM to the main process" in stop.stdout
    status = site.run("status", slug, custom)
    assert status.returncode == 3, status.stdout
    assert "not running" in status.stdout

    # stop of a stopped service succeeds; reload of it fails
    again = site.run("stop", slug)
    assert again.returncode == 0 and "not running" in again.stdout
    assert site.run("reload", slug).returncode == 1

    # restart of the running one: a new job, the log appended across restarts
    restart = site.run("restart", custom)
    assert restart.returncode == 0, restart.stderr
    jobs = squeue(slurm_env, f"{custom}-service")
    assert len(jobs) == 1
    log = site.output / custom / "service.log"
    wait_for(lambda: log.read_text().count("starts as Slurm job") == 2, what="two starts in the log")
    state = json.loads((site.state / "services" / f"{custom}.json").read_text())
    assert state["job_id"] == jobs[0][0] and state["last_action"] == "start"

    # without SERVICE: every service of the job directory
    stop_all = site.run("stop")
    assert stop_all.returncode == 0, stop_all.stderr
    assert squeue(slurm_env, f"{custom}-service") == []


def test_pending_service(site, slurm_env, cleanup):
    """A job that cannot start (more CPUs than the node has: it pends, blocking nobody)."""
    slug = unique("pending")
    cleanup(slug)
    site.service(slug, "slurm:\n  options: ['--cpus-per-task=17']\n")
    start = site.run("start", slug)
    assert start.returncode == 0, start.stderr
    assert "PENDING (PartitionConfig)" in start.stdout
    status = site.run("status", slug)
    assert status.returncode == 3 and "PENDING" in status.stdout, status.stdout
    # pending counts as present; on a terminal the no-op says so
    import pty

    master, slave = pty.openpty()
    try:
        again = subprocess.run(site.argv() + ["start", slug], stdout=slave, stderr=subprocess.PIPE,
                               text=True, env=site.command_env(), timeout=120, stdin=subprocess.DEVNULL)
        os.close(slave)
        said = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            said += chunk
    finally:
        os.close(master)
    assert again.returncode == 0, again.stderr
    assert b"already present" in said and b"PENDING" in said, said
    assert len(squeue(slurm_env, f"{slug}-service")) == 1
    reload = site.run("reload", slug)
    assert reload.returncode == 1 and "has not started" in reload.stderr
    stop = site.run("stop", slug)
    assert stop.returncode == 0, stop.stderr
    assert squeue(slurm_env, f"{slug}-service") == []


def test_start_of_a_service_that_dies_at_once_fails(site, slurm_env, cleanup):
    slug = unique("dies")
    cleanup(slug)
    (site.jobs / f"{slug}.yaml").write_text(
        "runner: slurm\ncommand: /nonexistent/server --port 1\nservice: {}\n")
    start = site.run("start", slug)
    assert start.returncode == 1, start.stdout + start.stderr
    assert "is not pending or running" in start.stderr and "/nonexistent/server" in start.stderr
    assert len(start.stderr.strip().splitlines()) == 1
    assert squeue(slurm_env, f"{slug}-service") == []


def test_unknown_partition_is_one_line_exit_1(site, slurm_env, cleanup):
    slug = unique("nopart")
    cleanup(slug)
    site.service(slug, "slurm:\n  partition: no-such-partition\n")
    start = site.run("start", slug)
    assert start.returncode == 1, start.stdout + start.stderr
    assert "invalid partition" in start.stderr.lower()
    assert len(start.stderr.strip().splitlines()) == 1 and "Traceback" not in start.stderr


def test_five_concurrent_starts_give_one_job(site, slurm_env, cleanup):
    slug = unique("five")
    cleanup(slug)
    site.service(slug)
    procs = [site.popen("start", slug) for _ in range(5)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert [r[0] for r in results] == [0] * 5, results
    jobs = squeue(slurm_env, f"{slug}-service")
    assert len(jobs) == 1, jobs
    outputs = [r[1] for r in results]
    assert sum(": started," in out for out in outputs) == 1
    assert sorted(outputs)[:4] == [""] * 4  # the no-ops: silent off a terminal
    assert site.run("stop", slug).returncode == 0
    assert squeue(slurm_env, f"{slug}-service") == []


def test_stop_escalates_to_kill_after_grace(site, slurm_env, cleanup):
    slug = unique("stubborn")
    cleanup(slug)
    stubborn = site.bin / "stubborn.sh"
    stubborn.write_text(STUBBORN_SCRIPT)
    stubborn.chmod(0o755)
    site.service(slug, script=stubborn)
    assert site.run("start", slug).returncode == 0
    ready(site, slug)
    began = time.monotonic()
    stop = site.run("stop", slug)
    took = time.monotonic() - began
    assert stop.returncode == 0, stop.stderr
    assert "sending KILL" in stop.stdout
    assert took >= 3.0  # kill_grace: 3s
    assert squeue(slurm_env, f"{slug}-service") == []


# ---------------------------------------------------------------- unreachable


def test_unreachable_slurm_exit_4_nothing_submitted_or_cancelled(site, slurm_env, dead_slurm_env, cleanup):
    running = unique("alive")
    absent = unique("absent")
    cleanup(running)
    cleanup(absent)
    site.service(running)
    site.service(absent)
    assert site.run("start", running).returncode == 0
    ready(site, running)
    job_id = squeue(slurm_env, f"{running}-service")[0][0]

    # the three questions in parallel: each waits ~10 s for the dead controller
    calls = {verb: site.popen(*args, env=dead_slurm_env) for verb, args in {
        "start": ("start", absent), "stop": ("stop", running), "status": ("status", running, absent),
        "purge": ("purge",)}.items()}
    import threading

    from run_job.config.settings import load_config
    from run_job.config.jobs import scan_job_directory
    from run_job.slurm.service import UNREACHABLE_STATE, service_states
    from run_job.slurm.client import SlurmClient

    config = load_config(str(site.config))
    jobs = scan_job_directory(config).jobs
    dead_states: dict = {}
    asking = threading.Thread(target=lambda: dead_states.update(
        service_states(config, jobs, SlurmClient(environ=dead_slurm_env))))
    asking.start()
    results = {verb: (p.wait(timeout=120), *p.communicate()) for verb, p in calls.items()}
    asking.join(120)
    assert dead_states == {running: UNREACHABLE_STATE, absent: UNREACHABLE_STATE}
    for verb, (status, out, err) in results.items():
        assert status == 4, (verb, status, out, err)
        assert "unreachable" in err.lower(), (verb, err)
        assert "Traceback" not in err
    assert "unknown: Slurm unreachable" in results["status"][1]
    # nothing was submitted, nothing was cancelled, no file was purged
    assert squeue(slurm_env, f"{absent}-service") == []
    assert [j[0] for j in squeue(slurm_env, f"{running}-service")] == [job_id]
    assert (site.state / "services" / f"{running}.json").exists()
    assert site.signals(running) == []

    live = service_states(config, jobs, SlurmClient(environ=slurm_env))
    assert live == {running: "RUNNING", absent: "not running"}
    assert site.run("stop", running).returncode == 0


# ---------------------------------------------------------------------- stages


STAGES = r"""#!/bin/bash
# An sbatch-service stage executable: $1 is the stage.
printf '%s %s %s\n' "$1" "$SBATCH_SERVICE_NAME" "${SBATCH_SERVICE_JOB_ID-}" >>"$MARKERS/stages"
case "$1" in
    init)   echo "init output passes through" ;;
    start)  echo "#SBATCH --comment=from-stage"
            echo "#SBATCH --nice=5 --mem=100M" ;;
    reload) echo "USR2" ;;
    stop)   ;;
esac
"""


def stage_service(site: ServiceSite, slug: str, stages: str) -> Path:
    path = site.bin / f"{slug}.stages"
    path.write_text(stages)
    path.chmod(0o755)
    markers = site.markers(slug)
    site.service(slug, f"service:\n  stages: {json.dumps(str(path))}\n")
    text = (site.jobs / f"{slug}.yaml").read_text()
    text = text.replace("environment:\n", f"environment:\n  MARKERS: {json.dumps(str(markers))}\n")
    (site.jobs / f"{slug}.yaml").write_text(text)
    return markers


def test_stages_executable(site, slurm_env, cleanup):
    slug = unique("stages")
    cleanup(slug)
    markers = stage_service(site, slug, STAGES)

    start = site.run("start", slug)
    assert start.returncode == 0, start.stderr
    job_id = squeue(slurm_env, f"{slug}-service")[0][0]
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True,
                           env=slurm_env, check=True).stdout
    assert "Comment=from-stage" in shown and "Nice=5" in shown
    ready(site, slug)

    reload = site.run("reload", slug)  # the stage names USR2: it wins over HUP
    assert reload.returncode == 0, reload.stderr
    assert "SIGUSR2" in reload.stdout
    wait_for(lambda: "usr2" in site.signals(slug), what="usr2 marker")
    assert "hup" not in site.signals(slug)

    init = site.run("init", slug)  # stops, then runs the init stage; does not start
    assert init.returncode == 0, init.stderr
    assert "init output passes through" in init.stdout
    assert squeue(slurm_env, f"{slug}-service") == []
    stages = (markers / "stages").read_text().splitlines()
    assert [line.split()[0] for line in stages] == ["start", "reload", "stop", "init"]
    assert stages[1] == f"reload {slug} {job_id}"


@pytest.mark.parametrize("output, why", [
    ("#SBATCH --comment=ok\necho not-an-option\n", "must start with '#SBATCH '"),
    ("#SBATCH --partition=debug\n", "not allowed"),
    ("#SBATCH --job-name=evil\n", "not allowed"),
    ("#SBATCH --mem 1G\n", "not an option"),
])
def test_bad_stage_start_line_submits_nothing(site, slurm_env, cleanup, output, why):
    slug = unique("badstage")
    cleanup(slug)
    stage_service(site, slug, "#!/bin/sh\n[ \"$1\" = start ] && printf '%s' " + shlex.quote(output) + "\nexit 0\n")
    result = site.run("start", slug)
    assert result.returncode == 1, result.stdout + result.stderr
    assert why in result.stderr and "nothing submitted" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert squeue(slurm_env, f"{slug}-service") == []


# ------------------------------------------------------------------ keep alive


def test_keep_alive_entry_brings_a_cancelled_service_back(site, slurm_env, cleanup):
    slug = unique("watch")
    cleanup(slug)
    site.service(slug, "service:\n  keep_alive: '*/5 * * * *'\n")
    crontab = subprocess.run([sys.executable, "-m", "cron_generate", "--config", str(site.config),
                              "--stdout"], capture_output=True, text=True,
                             env=site.command_env(), timeout=60)
    assert crontab.returncode == 0, crontab.stderr
    entry = [line for line in crontab.stdout.splitlines()
             if line.startswith("*/5") and line.endswith(f" start {slug}")]
    assert len(entry) == 1, crontab.stdout
    fields = entry[0].split(None, 6)
    assert fields[5] == ME
    # the entry names this (non-default) config; cron turns '\%' into '%'
    # before the shell sees the line, as it does here
    command = fields[6].replace("\\%", "%")

    def cron_run() -> subprocess.CompletedProcess:  # as cron runs it: /bin/sh -c
        return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                              env=site.command_env(), timeout=120)

    first = cron_run()
    assert first.returncode == 0, first.stderr
    job_id = squeue(slurm_env, f"{slug}-service")[0][0]
    ready(site, slug)
    assert f"{slug}: started, Slurm job {job_id}" in first.stdout  # cron mails this: news
    # the watchdog finds it running: nothing to do, nothing said (no mail every period)
    quiet = cron_run()
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    assert [j[0] for j in squeue(slurm_env, f"{slug}-service")] == [job_id]
    # cancelled behind its back (time limit, node failure, an operator)
    subprocess.run(["scancel", job_id], env=slurm_env, check=True, timeout=30)
    wait_for(lambda: not squeue(slurm_env, f"{slug}-service"), what="the job to go")
    back = cron_run()
    assert back.returncode == 0, back.stderr
    jobs = squeue(slurm_env, f"{slug}-service")
    assert len(jobs) == 1 and jobs[0][0] != job_id and jobs[0][1] in ("PENDING", "RUNNING")
    assert site.run("stop", slug).returncode == 0


# ------------------------------------------------------- init, deploy, purge


def test_init_deploy_purge(site, slurm_env, cleanup):
    slug = unique("deploy")
    other = unique("other")
    cleanup(slug)
    cleanup(other)
    counter = site.root / "init count"
    init = shlex.join(["/bin/sh", "-c", 'echo init >>"$1"; test -d "$PWD"', "sh", str(counter)])
    site.service(slug, f"service:\n  init_command: {json.dumps(init)}\n")
    site.service(other)

    assert site.run("init").returncode == 2  # init needs names
    assert site.run("init", slug).returncode == 0
    assert counter.read_text().count("init") == 1
    assert squeue(slurm_env, f"{slug}-service") == []  # init does not start

    assert site.run("start", slug, other).returncode == 0
    first = squeue(slurm_env, f"{slug}-service")[0][0]
    ready(site, slug)
    deploy = site.run("deploy", slug)  # stop, init, start
    assert deploy.returncode == 0, deploy.stderr
    assert counter.read_text().count("init") == 2
    jobs = squeue(slurm_env, f"{slug}-service")
    assert len(jobs) == 1 and jobs[0][0] != first
    assert "term" in site.signals(slug)

    log = site.output / slug / "service.log"
    assert log.exists()
    purge = site.run("purge", slug)
    assert purge.returncode == 0, purge.stderr
    assert squeue(slurm_env, f"{slug}-service") == []
    assert not log.exists() and not (site.output / slug).exists()
    assert not (site.state / "services" / f"{slug}.json").exists()
    assert squeue(slurm_env, f"{other}-service")  # only the named service

    # no SERVICE: every service, and the central folder
    (site.jobs / f"{slug}.yaml").unlink()  # its state file is gone already
    purge_all = site.run("purge")
    assert purge_all.returncode == 0, purge_all.stderr
    assert squeue(slurm_env, f"{other}-service") == []
    assert not (site.state / "services").exists()
    assert not (site.output / other).exists()


def test_failing_init_fails_deploy_before_submitting(site, slurm_env, cleanup):
    slug = unique("badinit")
    cleanup(slug)
    site.service(slug, "service:\n  init_command: ['/bin/true', '/bin/sh -c \"exit 3\"']\n")
    init = site.run("init", slug)
    assert init.returncode == 1, init.stdout + init.stderr
    assert "init_command 2" in init.stderr and "exited 3" in init.stderr
    deploy = site.run("deploy", slug)
    assert deploy.returncode == 1
    assert squeue(slurm_env, f"{slug}-service") == []


# ---------------------------------------------------------- bad input, users


@pytest.mark.parametrize("args, why", [
    (("frobnicate",), "unknown verb"),
    (("start", "no-such-service"), "no-such-service"),
    (("start", "../etc"), "not a service name"),
    (("start", "plainjob"), "is a job, not a service"),
    ((), "give a verb"),
])
def test_bad_input_one_line_exit_2(site, args, why):
    (site.jobs / "plainjob.yaml").write_text("command: /bin/true\n")
    result = site.run(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert why in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("sbatch-service: ")


@pytest.fixture
def open_tmp():
    """A temporary folder others can enter (pytest's tmp_path is below a 0700 folder)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="pc-service-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_service_of_another_user_submitted_from_root(open_tmp, slurm_env, cleanup):
    if os.geteuid() != 0:
        pytest.skip("needs root to submit as another user")
    user = "nobody"
    site = ServiceSite(open_tmp, slurm_env, user=user)
    for folder in (site.root, site.work, site.bin):
        folder.chmod(0o777)
    slug = unique("nobody")
    cleanup(slug, user)
    site.service(slug)
    start = site.run("start", slug)
    assert start.returncode == 0, start.stderr
    jobs = squeue(slurm_env, f"{slug}-service", user)
    assert len(jobs) == 1 and jobs[0][2] == user
    assert squeue(slurm_env, f"{slug}-service", "root") == []
    ready(site, slug)
    assert (site.state / "services" / f"{slug}.json").stat().st_uid == pwd.getpwnam(user).pw_uid
    assert (site.output / slug / "service.log").stat().st_uid == pwd.getpwnam(user).pw_uid
    stop = site.run("stop", slug)
    assert stop.returncode == 0, stop.stderr
    assert squeue(slurm_env, f"{slug}-service", user) == []


# -------------------------------------------------------------------- examples


def test_example_http_server_service(site, slurm_env, cleanup):
    """examples/services/http-server.yaml as shipped, with only paths and port changed."""
    import urllib.request

    import yaml

    slug = unique("http")
    cleanup(slug)
    www = site.root / "www 100%"
    www.mkdir()
    (www / "index.html").write_text("hello from a Slurm service\n")
    greeting = www / "greeting.txt"
    greeting.write_text("first\n")
    data = yaml.safe_load((REPO / "examples" / "services" / "http-server.yaml").read_text())
    port = free_port()
    data["command"] = shlex.join([sys.executable, str(REPO / "examples" / "services" / "http-server.py")])
    data["environment"].update(HTTP_PORT=port, HTTP_DIRECTORY=str(www), HTTP_GREETING_FILE=str(greeting))
    data["working_directory"] = str(www)
    data["service"]["init_command"] = shlex.join(["/bin/mkdir", "-p", str(www)])
    (site.jobs / f"{slug}.yaml").write_text(yaml.safe_dump(data))

    def get(path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.read().decode()

    def answers(path: str):
        try:
            return get(path)
        except OSError:
            return None

    deploy = site.run("deploy", slug)
    assert deploy.returncode == 0, deploy.stderr
    assert wait_for(lambda: answers("/index.html"), what="the server") == "hello from a Slurm service\n"
    assert get("/greeting") == "first\n"
    greeting.write_text("second\n")
    assert site.run("reload", slug).returncode == 0
    wait_for(lambda: answers("/greeting") == "second\n", what="the reloaded greeting")
    stop = site.run("stop", slug)
    assert stop.returncode == 0, stop.stderr
    assert answers("/index.html") is None
    log = (site.output / slug / "service.log").read_text()
    assert "signal 1: reloading" in log and "signal 15: stopping" in log and "stopped" in log


def test_example_stage_script(site, slurm_env, cleanup):
    """examples/services/legacy-app.stages: its #SBATCH lines pass, its signals win."""
    slug = unique("legacy")
    cleanup(slug)
    stages = (REPO / "examples" / "services" / "legacy-app.stages").read_text()
    markers = stage_service(site, slug, stages)
    start = site.run("start", slug)
    assert start.returncode == 0, start.stderr
    job_id = squeue(slurm_env, f"{slug}-service")[0][0]
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True,
                           env=slurm_env, check=True).stdout
    assert "Comment=legacy-app" in shown and "NumCPUs=2" in shown
    ready(site, slug)
    reload = site.run("reload", slug)
    assert reload.returncode == 0 and "SIGUSR1" in reload.stdout
    wait_for(lambda: "usr1" in site.signals(slug), what="usr1 marker")
    stop = site.run("stop", slug)  # the stage names INT: the test service does not trap it
    assert stop.returncode == 0 and "SIGINT" in stop.stdout, stop.stdout
    assert "term" not in site.signals(slug)
    assert squeue(slurm_env, f"{slug}-service") == []
    assert markers.exists()


def test_run_as_the_service_user_with_debian_python(open_tmp, slurm_env, cleanup):
    """As the service user itself (no switch), with Debian's python3 and its
    packaged (oldest supported) PyYAML, jsonschema, croniter and filelock;
    anyone else but root is refused."""
    from pctest import any_user_command, any_user_env, any_user_skip_reason

    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs root and runuser")
    reason = any_user_skip_reason()
    if reason:
        pytest.skip(reason)
    user = "nobody"
    site = ServiceSite(open_tmp, slurm_env, user=user)
    for folder in (site.root, site.work, site.bin):
        folder.chmod(0o777)
    slug = unique("asuser")
    cleanup(slug, user)
    site.service(slug)

    def as_user(who: str, *args: str) -> subprocess.CompletedProcess:
        # the checkout and its venv may be under a 0700 /root: a readable copy
        env = any_user_env(site.command_env())
        keep = [f"{name}={env[name]}" for name in ("PYTHONPATH", "SLURM_CONF") if name in env]
        argv = ["runuser", "-u", who, "--", "env", *keep, *any_user_command("sbatch-service"),
                "--config", str(site.config), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, cwd="/")

    start = as_user(user, "start", slug)
    assert start.returncode == 0, start.stderr
    jobs = squeue(slurm_env, f"{slug}-service", user)
    assert len(jobs) == 1 and jobs[0][2] == user
    ready(site, slug)
    other = as_user("daemon", "stop", slug)
    assert other.returncode == 1, other.stdout + other.stderr
    assert "runs as 'daemon' but services must run as 'nobody'" in other.stderr
    assert len(squeue(slurm_env, f"{slug}-service", user)) == 1
    status = as_user(user, "status", slug)
    assert status.returncode == 0, status.stdout + status.stderr
    stop = as_user(user, "stop", slug)
    assert stop.returncode == 0, stop.stderr
    assert squeue(slurm_env, f"{slug}-service", user) == []
