#!/usr/bin/env python3
"""Benchmark: N Slurm runs waiting at once, what they cost the controller and the host (issue 18).

N ``run-job --job`` processes (root, dropping to a service user, as cron
runs them) each submit one Slurm job and wait for it; every job sleeps until
a common moment after the measuring window, their ends spread by
``--stagger`` seconds each. Measured in the same run:

- controller RPCs from ``sdiag`` (statistics reset with ``sdiag --reset``
  before the runs start): those of the service user, by phase (submission:
  from the first start until every run has its job id; then each minute of
  waiting), and of the two job queries by message type
  (``REQUEST_JOB_USER_INFO``: squeue -u, 3 RPCs with the federation and
  partition info; ``REQUEST_JOB_INFO_SINGLE``: scontrol show job, 2 RPCs);
- CPU of the waiting run-jobs together: utime+stime of each process plus its
  reaped children's cutime+cstime (``/proc/PID/stat``) over each minute of
  waiting, as % of one core;
- their memory: PSS of each (``/proc/PID/smaps_rollup``) in the middle of
  the waiting, median and total;
- the delay from each job's own ``ended_at`` in ``job.status`` to the end
  the run recorded (``status.json``'s ``ended_at``): median and max.

``--repo`` names the checkout whose ``run_job`` is measured (default: this
one), so the same bench measures the code before and after a change: the
package is copied to a folder the service user can read and compiled there.
The runs use Debian's ``/usr/bin/python3`` and its libraries.

Needs root and a running cluster with room for N jobs at once:
``$SLURM_CONF``, e.g. ``LOCAL_SLURM_CPUS=600 tests/slurm/local-slurm start``
(Slurm's MaxTasksPerNode, 512 by default, caps one node's jobs).

    python3 bench/bench_slurm_scale.py --runs 100 [--repo /work/wt-base] [--window 120]
"""

from __future__ import annotations

import argparse
import compileall
import os
import pwd
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = "/usr/bin/python3"
USER = "pc-slurm-bench"
HZ = os.sysconf("SC_CLK_TCK")


def sdiag(env: dict[str, str]) -> str:
    return subprocess.run(["sdiag"], capture_output=True, text=True, env=env, check=True).stdout


def rpc_counts(text: str, user: str) -> dict[str, int]:
    """The user's RPC count and the two job queries' counts (cumulative)."""
    found = {"user": 0, "squeue": 0, "scontrol": 0}
    by_user = text.split("statistics by user", 1)[-1]
    match = re.search(rf"^\s*{re.escape(user)}\s+\(\s*\d+\)\s+count:(\d+)", by_user, re.M)
    if match:
        found["user"] = int(match.group(1))
    by_type = text.split("statistics by message type", 1)[-1].split("statistics by user", 1)[0]
    # squeue -u: REQUEST_JOB_USER_INFO (without -u: REQUEST_JOB_INFO); scontrol show job ID:
    # REQUEST_JOB_INFO_SINGLE; each with REQUEST_FED_INFO (and squeue's REQUEST_PARTITION_INFO)
    for key, name in (("squeue", "REQUEST_JOB_USER_INFO"), ("squeue", "REQUEST_JOB_INFO"),
                      ("scontrol", "REQUEST_JOB_INFO_SINGLE")):
        match = re.search(rf"^\s*{name}\s+\(\s*\d+\)\s+count:(\d+)", by_type, re.M)
        if match:
            found[key] += int(match.group(1))
    return found


def cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(x) for x in fields[11:15])  # utime stime cutime cstime


def pss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--create-home", "--shell", "/usr/sbin/nologin", USER],
                       check=True)
        return pwd.getpwnam(USER)


def stage_code(repo: Path, top: Path) -> Path:
    """``repo``'s run_job and schemas, copied where the service user can read it, compiled."""
    code = top / "code"
    shutil.copytree(repo / "run_job", code / "run_job",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(repo / "schemas", code / "schemas")  # a checkout's package data
    compileall.compile_dir(str(code), quiet=1, legacy=False)
    for folder, _dirs, files in os.walk(code):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return code


def make_site(top: Path, user: pwd.struct_passwd, runs: int, end_at: float, stagger: float) -> Path:
    site = top / "site"
    jobs = site / "jobs"
    jobs.mkdir(parents=True)
    for folder in (top, site, jobs):
        os.chmod(folder, 0o755)
    var = site / "var"
    var.mkdir()
    os.chown(var, user.pw_uid, user.pw_gid)
    config = site / "process-control.yaml"
    config.write_text("\n".join([
        f"job_directory: {jobs}", f"output_directory: {var}/log", f"state_directory: {var}/state",
        f"run_directory: {var}/run", "output_crontab: console", f"user: {user.pw_name}",
        "keep_runs: 5", ""]))
    config.chmod(0o644)
    for i in range(runs):
        until = int(end_at + i * stagger)
        # every job ends at its own moment after the window, whenever it started
        (jobs / f"scale-{i}.yaml").write_text(
            "runner: slurm\n"
            f"command: \"sh -c 't=$(({until} - $(date +%s))); [ $t -gt 0 ] && sleep $t; exit 0'\"\n")
        (jobs / f"scale-{i}.yaml").chmod(0o644)
    return config


def read_json(path: Path) -> dict | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def bench(args: argparse.Namespace, runs: int, env: dict[str, str]) -> None:
    user = ensure_user()
    top = Path(tempfile.mkdtemp(prefix=f"pc-bench-scale-{runs}-", dir="/var/tmp"))
    procs: list[subprocess.Popen] = []
    try:
        code = stage_code(Path(args.repo), top)
        submit_allowance = args.submit_allowance or max(30.0, runs * 0.25)
        end_at = time.time() + submit_allowance + args.window + 15
        config = make_site(top, user, runs, end_at, args.stagger)
        log = top / "site" / "var" / "log"
        run_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                   "SLURM_CONF": env["SLURM_CONF"], "PYTHONPATH": str(code)}
        subprocess.run(["sdiag", "--reset"], env=env, check=True, capture_output=True)
        t_start = time.monotonic()
        for i in range(runs):
            procs.append(subprocess.Popen(
                [PYTHON, "-P", "-m", "run_job", "--config", str(config), "--job", f"scale-{i}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=run_env, cwd="/"))
            time.sleep(args.spawn_gap)
        # submission: until every run has its job id
        pending = set(range(runs))
        while pending:
            for i in list(pending):
                st = read_json(log / f"scale-{i}" / "latest" / "status.json")
                if st and st.get("slurm_job_id"):
                    pending.discard(i)
                elif procs[i].poll() is not None:
                    raise SystemExit(f"run {i} ended early ({procs[i].returncode}): "
                                     f"{procs[i].stderr.read().decode()[-500:] if procs[i].stderr else ''}")
            if time.monotonic() - t_start > submit_allowance + args.window:
                raise SystemExit(f"{len(pending)} runs not submitted")
            time.sleep(0.5)
        t_submitted = time.monotonic()
        submit_s = t_submitted - t_start
        if submit_s > submit_allowance:
            print(f"  warning: submission took {submit_s:.0f} s, over the allowance "
                  f"{submit_allowance:.0f} s: the window is shorter", file=sys.stderr)
        counts = [rpc_counts(sdiag(env), USER)]
        ticks = [{p.pid: cpu_ticks(p.pid) for p in procs}]
        times = [time.monotonic()]
        pss: list[int] = []
        minutes = max(1, int(args.window // 60))
        for minute in range(minutes):
            target = times[0] + 60 * (minute + 1)
            if minute == 0:
                time.sleep(30)
                pss = [k for k in (pss_kib(p.pid) for p in procs) if k is not None]
            time.sleep(max(0.0, target - time.monotonic()))
            counts.append(rpc_counts(sdiag(env), USER))
            ticks.append({p.pid: cpu_ticks(p.pid) for p in procs})
            times.append(time.monotonic())
        alive = sum(1 for p in procs if p.poll() is None)
        # the ends
        for proc in procs:
            proc.wait(timeout=end_at - time.time() + runs * args.stagger + 300)
        delays, outcomes = [], {}
        for i in range(runs):
            folder = log / f"scale-{i}" / "latest"
            st = read_json(folder / "status.json") or {}
            outcomes[st.get("outcome")] = outcomes.get(st.get("outcome"), 0) + 1
            try:
                status = dict(line.split("=", 1) for line in
                              (folder / "job.status").read_text().splitlines() if "=" in line)
                delays.append((when(st["ended_at"]) - when(status["ended_at"])).total_seconds())
            except (OSError, KeyError, ValueError):
                pass
        print(f"\nN={runs} waiting runs, code of {args.repo} "
              f"(sdiag: RPCs of user {USER}; squeue 3 RPCs, scontrol show job 2)")
        print(f"  submission: {submit_s:5.1f} s, {counts[0]['user']} RPCs "
              f"({counts[0]['squeue']} squeue, {counts[0]['scontrol']} scontrol show job;"
              f" sbatch and the prechecks)")
        for minute in range(1, len(counts)):
            a, b = counts[minute - 1], counts[minute]
            span = times[minute] - times[minute - 1]
            used = 0
            for pid, t0 in ticks[minute - 1].items():
                t1 = ticks[minute].get(pid)
                if t0 is not None and t1 is not None:
                    used += t1 - t0
            cpu = used / HZ / span * 100
            print(f"  waiting minute {minute}: {(b['user'] - a['user']) * 60 / span:7.1f} RPCs/min "
                  f"({(b['squeue'] - a['squeue']) * 60 / span:.1f} squeue, "
                  f"{(b['scontrol'] - a['scontrol']) * 60 / span:.1f} scontrol show job per min); "
                  f"CPU of the waiters {cpu:.2f}% of a core")
        if pss:
            print(f"  PSS per waiting run-job: median {statistics.median(pss) / 1024:.1f} MiB, "
                  f"max {max(pss) / 1024:.1f} MiB, all together {sum(pss) / 1024:.0f} MiB")
        print(f"  still waiting at the end of the window: {alive}/{runs}; outcomes {outcomes}")
        if delays:
            print(f"  end recorded after job.status' ended_at: median {statistics.median(delays):.2f} s, "
                  f"max {max(delays):.2f} s (n={len(delays)})")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        subprocess.run(["scancel", "-u", USER], env=env, capture_output=True)
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="100", help="comma-separated N, e.g. 100,500")
    parser.add_argument("--repo", default=str(REPO), help="the checkout whose run_job is measured")
    parser.add_argument("--window", type=float, default=120.0, help="seconds of waiting measured")
    parser.add_argument("--stagger", type=float, default=0.1, help="seconds between two jobs' ends")
    parser.add_argument("--spawn-gap", type=float, default=0.02, help="seconds between two starts")
    parser.add_argument("--submit-allowance", type=float, default=0.0,
                        help="seconds allowed for the submissions (default max(30, N/4))")
    parser.add_argument("--keep", action="store_true", help="keep the site folder")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (sdiag --reset, run-job dropping to a service user)")
    env = dict(os.environ)
    if not env.get("SLURM_CONF"):
        raise SystemExit("set SLURM_CONF (tests/slurm/local-slurm start prints it)")
    print(f"{PYTHON}: {subprocess.run([PYTHON, '--version'], capture_output=True, text=True).stdout.strip()}; "
          + subprocess.run(["sbatch", "--version"], capture_output=True, text=True, env=env).stdout.strip()
          + f"; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    for runs in (int(n) for n in args.runs.split(",")):
        bench(args, runs, env)


if __name__ == "__main__":
    main()
