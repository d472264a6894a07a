#!/usr/bin/env python3
"""Benchmark: the web page's jobs page over 1,000 jobs, one request and 50 polling clients.

A site of 1,000 job files (60 distinct schedules, names, descriptions,
tags), each with a history of ``--history`` runs (one in seven failed),
served by two real servers in turn:

- gunicorn (the venv's newest release): 1 worker of the gthread kind with 8
  threads (``--workers``/``--threads``), serving
  ``run_job.web.app:application`` (``$PROCESS_CONTROL_CONFIG``). One
  process shares one state snapshot and answers from it in 1-2 ms; a second
  worker on the 2-core VM only doubles the loads (measured: p99 worse);
- the embedded server: ``process-control-web`` (one process, one thread
  per connection).

For each server:

1. one request: ``GET /`` after the 1-s state snapshot expired, so that the
   request reads every job file, history and pause once and renders the
   table (``--single`` requests, 1.2 s apart, median and max);
2. 50 concurrent clients polling ``GET /`` for 60 s: each client sends a
   request, reads the whole answer, waits ``--interval`` seconds (default
   1 s; 0 = no pause at all, the saturation case), and again; a new
   connection per request (``--keep-alive`` reuses it), ``Accept-Encoding:
   gzip`` as browsers send it (``--no-gzip``); latency from sending to the
   last byte; median, p99, max, requests per second, the server's CPU (its
   processes' user+system time over the wall time, in cores) and the whole
   machine's (the clients run on the same 2 cores).

Goal: p99 under 500 ms for the 1,000-job page on this 2-core machine.

    python3 bench/bench_web.py [--jobs 1000] [--history 20] [--clients 50]
        [--seconds 60] [--interval 1] [--servers gunicorn,embedded]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

EXTRA = ("Jinja2", "gunicorn")
TICKS = os.sysconf("SC_CLK_TCK")
KEEP_ALIVE = [False]
GZIP = [True]  # clients accept gzip, as browsers do


def make_site(root: Path, jobs: int, history: int) -> Path:
    """1,000 job files with histories; returns the config's path."""
    sys.path.insert(0, str(benchlib.REPO))
    from datetime import datetime, timedelta, timezone

    from run_job.run import history as history_mod
    from run_job.run import records

    job_dir, state = root / "jobs", root / "state"
    for folder in (job_dir, state, root / "log", root / "run"):
        folder.mkdir(parents=True)
    schedules = [f"{minute} {hour} * * *" for hour in range(15) for minute in (0, 15, 30, 45)][:60]
    now = datetime.now(timezone.utc)
    for i in range(jobs):
        slug = f"job-{i:04d}"
        (job_dir / f"{slug}.yaml").write_text(
            f"name: Job number {i}\n"
            f"description: Processes batch {i} of the nightly data.\n"
            f"command: /usr/local/bin/process --batch {i}\n"
            f'schedule: "{schedules[i % 60]}"\n'
            "tag: [nightly, batch]\n")
        entries = []
        for k in range(history):
            started = now - timedelta(days=history - k, minutes=i % 60)
            run_id = records.make_run_id(started, 1000 + k)
            entry = records.new_record(
                job=slug, run_id=run_id, runner="local", host="bench", user="process-control",
                pid=1000 + k, command=[f"/usr/local/bin/process --batch {i}"], started_at=started,
                job_file_sha256="0" * 64, run_dir=str(root / "log" / slug / run_id),
                supervisor_start_time=1)
            failed = (i + k) % 7 == 0
            entry.update(outcome="failed" if failed else "success",
                         ended_at=records.clock.iso(started + timedelta(seconds=42)), duration_s=42.0,
                         exit_code=1 if failed else 0, reason="exit status 1" if failed else "")
            entries.append(entry)
        (state / f"{slug}.history.json").write_bytes(history_mod.dumps(entries))
    config = root / "process-control.yaml"
    config.write_text(f"job_directory: {job_dir}\noutput_directory: {root}/log\nstate_directory: {state}\n"
                      f"run_directory: {root}/run\noutput_crontab: console\n")
    return config


def cpu_seconds(pids: list[int]) -> float:
    """User+system time of ``pids`` and their waited-for children."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def machine_busy() -> tuple[float, float]:
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Server:
    def __init__(self, kind: str, config: Path, port: int, runtime: Path, workers: int = 1,
                 threads: int = 8) -> None:
        env = dict(os.environ, PROCESS_CONTROL_CONFIG=str(config), XDG_RUNTIME_DIR=str(runtime))
        if kind == "gunicorn":
            argv = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "gthread",
                    "--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--backlog", "256",
                    "run_job.web.app:application"]
        else:
            argv = [sys.executable, "-m", "run_job.web_cli", "--config", str(config),
                    "--listen", f"127.0.0.1:{port}"]
        self.log = open(runtime / "server.log", "w")
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.port = port
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if request(port)[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{kind} did not start")

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def request(port: int, path: str = "/", connection: http.client.HTTPConnection | None = None
            ) -> tuple[int, int]:
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Host": "localhost", "Accept-Encoding": "gzip" if GZIP[0] else "identity"}
        if connection is None:
            headers["Connection"] = "close"
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        return response.status, len(body)
    finally:
        if connection is None:
            conn.close()


def single(port: int, count: int) -> list[float]:
    times = []
    for _ in range(count):
        time.sleep(1.2)  # past the snapshot's age: this request reads the state
        started = time.perf_counter()
        status, _ = request(port)
        times.append(time.perf_counter() - started)
        assert status == 200
    return times


def poll(server: Server, clients: int, seconds: float, interval: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        keep = KEEP_ALIVE[0]
        time.sleep(interval * index / clients if interval else 0)  # spread the starts
        conn = None
        while time.monotonic() < stop_at:
            if conn is None and keep:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            started = time.perf_counter()
            try:
                status, _ = request(server.port, connection=conn)
                if status != 200:
                    raise OSError(f"HTTP {status}")
            except (OSError, http.client.HTTPException) as err:
                with lock:
                    errors.append(str(err))
                if conn is not None:
                    conn.close()
                conn = None
                continue
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
            if interval:
                time.sleep(interval)
        if conn is not None:
            conn.close()

    cpu0, (busy0, all0), wall0 = cpu_seconds(server.pids()), machine_busy(), time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - wall0
    cpu1, (busy1, all1) = cpu_seconds(server.pids()), machine_busy()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    return {"requests": len(latencies), "errors": len(errors), "wall": wall,
            "median": statistics.median(latencies) if latencies else float("nan"), "p99": p99,
            "max": latencies[-1] if latencies else float("nan"), "rate": len(latencies) / wall,
            "server_cpu": (cpu1 - cpu0) / wall,
            "machine_cpu": (busy1 - busy0) / (all1 - all0) * os.cpu_count(),
            "first_errors": errors[:3]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", type=float, action="append",
                        help="seconds a client waits between requests (repeatable; default 1 and 0)")
    parser.add_argument("--single", type=int, default=9)
    parser.add_argument("--servers", default="gunicorn,embedded")
    parser.add_argument("--workers", type=int, default=1,
                        help="gunicorn workers (default 1: one process shares one state snapshot)")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (default 8)")
    parser.add_argument("--keep-alive", action="store_true", help="clients reuse their connection")
    parser.add_argument("--no-gzip", action="store_true", help="clients do not accept gzip")
    args = parser.parse_args()
    benchlib.ensure_venv("venv-web", extra=EXTRA)
    KEEP_ALIVE[0] = args.keep_alive
    GZIP[0] = not args.no_gzip
    intervals = args.interval or [1.0, 0.0]
    print(benchlib.versions() + f", gunicorn {__import__('gunicorn').__version__}, "
          f"Jinja2 {__import__('jinja2').__version__}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="pc-bench-web-") as tmp:
        root = Path(tmp)
        config = make_site(root / "site", args.jobs, args.history)
        print(f"{args.jobs} jobs, {args.history} history entries each")
        for kind in args.servers.split(","):
            runtime = root / f"runtime-{kind}"
            runtime.mkdir()
            port = benchlib_free_port()
            server = Server(kind, config, port, runtime, args.workers, args.threads)
            try:
                status, size = request(port)
                GZIP[0] = False
                plain = request(port)[1]
                GZIP[0] = not args.no_gzip
                times = single(port, args.single)
                label = (f"gunicorn -w {args.workers} -k gthread --threads {args.threads}" if kind == "gunicorn"
                         else "process-control-web (embedded)")
                print(f"\n{label}: GET / = {plain:,} bytes ({size:,} as the clients get it); "
                      "one request reading the state: "
                      f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
                      f"({args.single} requests)")
                for interval in intervals:
                    got = poll(server, args.clients, args.seconds, interval)
                    print(f"  {args.clients} clients, {'no pause' if not interval else f'{interval:g} s between requests'},"
                          f" {got['wall']:.0f} s: {got['requests']} requests ({got['rate']:.1f}/s), "
                          f"{got['errors']} errors; latency median {got['median'] * 1000:.0f} ms, "
                          f"p99 {got['p99'] * 1000:.0f} ms, max {got['max'] * 1000:.0f} ms; "
                          f"CPU: server {got['server_cpu']:.2f} cores, machine {got['machine_cpu']:.2f} of "
                          f"{os.cpu_count()}" + (f"; errors: {got['first_errors']}" if got["errors"] else ""))
            finally:
                server.stop()
                if os.environ.get("BENCH_WEB_LOGS"):
                    print((runtime / "server.log").read_text()[-3000:])
    return 0


def benchlib_free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
