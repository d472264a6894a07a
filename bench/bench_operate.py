#!/usr/bin/env python3
"""Benchmark: what following and waiting cost (SPEC §9), with real runs.

Every process is real: ``run-job --job`` runs the job, ``run-job --follow``
and ``run-job --wait`` attach to it, in the benchmark venv (Debian's
``/usr/bin/python3``, newest PyPI releases; see ``benchlib.py``). The jobs
wait on a gate file until every follower or waiter is attached.

1. followers: 100 ``--follow`` of one run that writes 100 MB (64 KiB
   writes, paced at ``--rate`` MB/s, default 5: a 20 s run) into pipes the
   benchmark reads. Reported: the followers' total CPU time (user + system,
   from ``wait4``), the same less their start-up (a follower of a finished
   empty run, median of 5, times 100), both divided by the time from the
   gate opening to the last follower's exit ("cores"); and that each
   follower received every byte (length and CRC-32 against output.log).
   Target: < 1 core in total.
2. waiters: 100 ``--wait`` of one run, attached (asleep in the run's end
   lock), their CPU time over 60 s (``/proc/PID/stat`` before and after);
   also 20 ``--wait --next`` over the same 60 s. Target: 0%.
3. latency: a run's job writes the time as its last act and exits; the time
   until an attached ``--wait`` has exited, over ``--rounds`` runs, median
   and 90th percentile. Target: median < 100 ms.

    python3 bench/bench_operate.py [--only followers,waiters,latency] [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

REPO = benchlib.REPO
WRITER = r'''
import os, sys, time
gate = os.path.join(os.environ["GATE_DIR"], os.environ["RUN_JOB_RUN_ID"])
while not os.path.exists(gate):
    time.sleep(0.01)
total, rate, chunk = int(sys.argv[1]), float(sys.argv[2]), 65536
block = bytes(range(256)) * (chunk // 256)
started, sent = time.monotonic(), 0
while sent < total:
    n = min(chunk, total - sent)
    os.write(1, block[:n])
    sent += n
    ahead = sent / rate - (time.monotonic() - started)
    if ahead > 0:
        time.sleep(ahead)
'''
ENDER = r'''
import os, time
gate = os.path.join(os.environ["GATE_DIR"], os.environ["RUN_JOB_RUN_ID"])
while not os.path.exists(gate):
    time.sleep(0.005)
with open(os.environ["END_FILE"], "w") as f:
    f.write(repr(time.time()))
'''


class Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.jobs, self.output, self.gates = root / "jobs", root / "log", root / "gates"
        for folder in (self.jobs, self.gates):
            folder.mkdir(parents=True)
        self.config = root / "pc.yaml"
        self.config.write_text(
            f"job_directory: {root}/jobs\noutput_directory: {root}/log\n"
            f"state_directory: {root}/state\nrun_directory: {root}/run\n"
            f"output_crontab: console\nuser: {os.environ.get('USER') or 'root'}\n")
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = str(REPO)

    def job(self, slug: str, script: str, *args: str, **env: str) -> None:
        path = self.root / f"{slug}.py"
        path.write_text(script)
        environment = "".join(f"  {k}: {shlex.quote(v)}\n" for k, v in
                              {"GATE_DIR": str(self.gates), **env}.items())
        (self.jobs / f"{slug}.yaml").write_text(
            f"command: {sys.executable} {path} {' '.join(args)}\nenvironment:\n{environment}")

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "run_job", "--config", str(self.config), *args]

    def start(self, *args: str, **kwargs) -> subprocess.Popen:
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        return subprocess.Popen(self.argv(*args), env=self.env, stdin=subprocess.DEVNULL, **kwargs)

    def running(self, slug: str, previous: str | None = None) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                run_id = os.readlink(self.output / slug / "latest")
                text = (self.output / slug / run_id / "status.json").read_text()
            except OSError:
                run_id, text = None, ""
            if run_id and run_id != previous and '"outcome": "running"' in text:
                return run_id
            time.sleep(0.01)
        raise SystemExit(f"{slug}: no run started")

    def open_gate(self, run_id: str) -> None:
        (self.gates / (run_id + ".tmp")).write_text("")
        os.rename(self.gates / (run_id + ".tmp"), self.gates / run_id)


def has_open(pid: int, suffix: str) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}").endswith(suffix)
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def attached(procs: list[subprocess.Popen], suffix: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for proc in procs:
        while not has_open(proc.pid, suffix):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"pid {proc.pid} never opened {suffix} ({proc.poll()})")
            time.sleep(0.01)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reap(proc: subprocess.Popen) -> tuple[int, float]:
    """Wait for ``proc``: (exit status, its CPU seconds) from wait4."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------


def bench_followers(root: Path, count: int, size: int, rate: float) -> None:
    site = Site(root / "followers")
    site.job("empty", "")
    subprocess.run(site.argv("empty"), env=site.env, check=True)
    startup = []
    for _ in range(5):
        proc = site.start("--follow", "empty")
        startup.append(reap(proc)[1])
    startup_cpu = statistics.median(startup)
    site.job("big", WRITER, str(size), str(rate * 1e6))
    run = site.start("big")
    run_id = site.running("big")
    followers = [site.start("--follow", "big", stdout=subprocess.PIPE) for _ in range(count)]
    attached(followers, "/output.log")
    selector = selectors.DefaultSelector()
    seen = {}
    for proc in followers:
        selector.register(proc.stdout.fileno(), selectors.EVENT_READ, proc)
        seen[proc.pid] = [0, 0]
    started = time.monotonic()
    site.open_gate(run_id)
    open_pipes = len(followers)
    while open_pipes:
        for key, _ in selector.select():
            data = os.read(key.fd, 1 << 20)
            if data:
                state = seen[key.data.pid]
                state[0] += len(data)
                state[1] = zlib.crc32(data, state[1])
            else:
                selector.unregister(key.fd)
                open_pipes -= 1
    results = [reap(proc) for proc in followers]
    ended = time.monotonic()
    if run.wait() != 0:
        raise SystemExit("the writing run failed")
    log = (site.output / "big" / run_id / "output.log").read_bytes()
    want = (len(log), zlib.crc32(log))
    complete = sum(1 for proc in followers if tuple(seen[proc.pid]) == want)
    codes = {code for code, _ in results}
    total = sum(cpu for _, cpu in results)
    wall = ended - started
    net = total - count * startup_cpu
    print(f"followers: {count} of a run writing {len(log) / 1e6:.0f} MB at {rate:g} MB/s:"
          f" {complete}/{count} received every byte (length and CRC-32), exit {sorted(codes)}")
    print(f"  CPU total {total:.2f} s over {wall:.1f} s = {total / wall:.3f} cores;"
          f" start-up {startup_cpu * 1000:.0f} ms each; following alone {net:.2f} s ="
          f" {net / wall:.3f} cores (target < 1)")


def bench_waiters(root: Path, count: int, seconds: float, next_count: int) -> None:
    site = Site(root / "waiters")
    site.job("hold", ENDER, END_FILE=str(root / "waiters-end"))
    run = site.start("hold")
    run_id = site.running("hold")
    waiters = [site.start("--wait", "hold") for _ in range(count)]
    attached(waiters, "/.supervisor.lock")
    nexts = [site.start("--wait", "hold", "--next") for _ in range(next_count)]
    time.sleep(2.0)  # their start-up is over
    before = {p.pid: cpu_seconds(p.pid) for p in waiters + nexts}
    time.sleep(seconds)
    after = {p.pid: cpu_seconds(p.pid) for p in waiters + nexts}
    used = sum(after[p.pid] - before[p.pid] for p in waiters)
    used_next = sum(after[p.pid] - before[p.pid] for p in nexts)
    site.open_gate(run_id)
    codes = {reap(p)[0] for p in waiters}
    run.wait()
    for proc in nexts:
        proc.kill()
        proc.wait()
    print(f"waiters: {count} --wait over {seconds:g} s: {used:.3f} s CPU in total"
          f" ({100 * used / seconds / count:.4f}% of a core each); exit {sorted(codes)}")
    print(f"  {next_count} --wait --next over the same time: {used_next:.3f} s CPU in total")


def bench_latency(root: Path, rounds: int) -> None:
    site = Site(root / "latency")
    end_file = root / "latency-end"
    site.job("quick", ENDER, END_FILE=str(end_file))
    samples = []
    previous = None
    for _ in range(rounds):
        run = site.start("quick")
        run_id = site.running("quick", previous)
        previous = run_id
        waiter = site.start("--wait", "quick")
        attached([waiter], "/.supervisor.lock")
        time.sleep(0.2)
        site.open_gate(run_id)
        code, _ = reap(waiter)
        woke = time.time()
        if code != 0:
            raise SystemExit(f"the waiter exited {code}")
        samples.append(woke - float(end_file.read_text()))
        run.wait()
    samples.sort()
    p90 = samples[min(len(samples) - 1, int(0.9 * len(samples)))]
    print(f"latency: the job's end to the waiter's exit over {rounds} runs: median"
          f" {statistics.median(samples) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms,"
          f" max {samples[-1] * 1000:.1f} ms (target: median < 100 ms)")


def main() -> None:
    benchlib.ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="followers,waiters,latency")
    parser.add_argument("--followers", type=int, default=100)
    parser.add_argument("--size", type=int, default=100_000_000, help="bytes the run writes")
    parser.add_argument("--rate", type=float, default=5.0, help="MB/s the run writes")
    parser.add_argument("--waiters", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--next-waiters", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(benchlib.versions())
    print(f"host: {os.cpu_count()} cores, Linux {os.uname().release}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    root = Path(tempfile.mkdtemp(prefix="pc-bench-operate-"))
    try:
        only = args.only.split(",")
        if "followers" in only:
            bench_followers(root, args.followers, args.size, args.rate)
        if "waiters" in only:
            bench_waiters(root, args.waiters, args.seconds, args.next_waiters)
        if "latency" in only:
            bench_latency(root, args.rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
