#!/usr/bin/env python3
"""Benchmark: what alerts cost at the end of a run.

Every case is a fresh Python process (start-up included), as each cron run
of ``run-job --job`` is, timed interleaved over several rounds:

- baseline: ``import run_job.cli, run_job.controller`` (what ``run-job
  --job`` imports before it reaches alerts: every run pays this anyway);
- quiet: baseline + ``alerts.on_end`` of a successful run of a job without
  ``failmail`` and without hooks (the common case: must cost ~nothing, so
  ``mail``/``hooks`` with smtplib, ssl, email and subprocess are imported
  lazily);
- hook: ``on_end`` of a failed run with one trivial ``/bin/sh`` hook;
- mail: ``on_end`` of a failed run mailing through a real SMTP server
  (aiosmtpd, in the benchmark process) on loopback;
- down: ``on_end`` of a failed run with nothing listening on the SMTP port.

Reported: medians (ms) and each case's ratio to the baseline, plus the
added milliseconds. Also, in-process: the median time of one ``mail.send``
to the loopback server (no start-up).

It runs in a venv made with Debian's ``/usr/bin/python3 -m venv`` holding the
newest PyPI releases of PyYAML, jsonschema, croniter, filelock and aiosmtpd,
kept under ``$XDG_CACHE_HOME/process-control-bench/venv-alerts`` (outside the
repo; ``benchlib.ensure_venv`` creates it and re-runs the script there).

    python3 bench/bench_alerts.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import REPO, ensure_venv, versions  # noqa: E402

CASE = r"""
import sys
import run_job.cli, run_job.controller
from pathlib import Path
from run_job.model import Config, FailMail, Job, MailConfig
case, root, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
if case == "baseline":
    raise SystemExit(0)
from run_job.alerts import notify as alerts
config = Config(source=None, job_directory=root, output_directory=root, state_directory=root,
                run_directory=root, output_crontab="console", user="root", runner_path="run-job",
                service_runner_path="sbatch-service",
                hooks_directory=root / "hooks" if case == "hook" else None,
                mail=MailConfig(smtp_host="127.0.0.1", smtp_port=port, timeout=5.0))
failmail = FailMail("pc@example.org", ("ops@example.org",)) if case in ("mail", "down") else None
job = Job(slug="bench", path=root / "bench.yaml", sha256="0", commands=(("true",),),
          command_text=("true",), failmail=failmail)
outcome = "success" if case == "quiet" else "failed"
record = {"job": "bench", "run_id": "r1", "host": "h", "outcome": outcome,
          "exit_code": 0 if outcome == "success" else 1, "signal": None, "reason": "",
          "run_dir": str(root / "run"), "started_at": "2026-01-01T00:00:00Z",
          "ended_at": "2026-01-01T00:00:01Z", "duration_s": 1.0, "command": ["true"]}
result = alerts.on_end(config, job, record, [])
if case == "mail" and not result["mail"]["sent"]:
    raise SystemExit(f"mail not sent: {result}")
if case == "hook" and result["hooks"][0]["exit_code"] != 0:
    raise SystemExit(f"hook failed: {result}")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    ensure_venv("venv-alerts", extra=("aiosmtpd",))
    from aiosmtpd.controller import Controller

    class Sink:
        count = 0

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            Sink.count += 1
            return "250 OK"

    port = free_port()
    smtp = Controller(Sink(), hostname="127.0.0.1", port=port)
    smtp.start()
    down_port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cases = ["baseline", "quiet", "hook", "mail", "down"]
    times: dict[str, list[float]] = {c: [] for c in cases}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
            root = Path(tmp)
            (root / "run").mkdir()
            (root / "run" / "output.log").write_bytes(b"".join(b"line %d\n" % i for i in range(1000)))
            hook_dir = root / "hooks" / "failure"
            hook_dir.mkdir(parents=True)
            (hook_dir / "10-noop").write_text("#!/bin/sh\nexit 0\n")
            (hook_dir / "10-noop").chmod(0o755)
            for _ in range(2):  # warm-up: page cache, .pyc files
                for case in cases:
                    subprocess.run([sys.executable, "-c", CASE, case, tmp,
                                    str(down_port if case == "down" else port)], env=env, check=True)
            for _ in range(args.rounds):
                for case in cases:
                    started = time.perf_counter()
                    subprocess.run([sys.executable, "-c", CASE, case, tmp,
                                    str(down_port if case == "down" else port)], env=env, check=True)
                    times[case].append(time.perf_counter() - started)
            # In-process: one send to the loopback server, no start-up.
            sys.path.insert(0, str(REPO))
            from email.message import EmailMessage

            from run_job.alerts import mail
            from run_job.model import MailConfig
            config = MailConfig(smtp_host="127.0.0.1", smtp_port=port, timeout=5.0)
            sends = []
            for _ in range(args.rounds * 4):
                msg = EmailMessage()
                msg["Subject"] = "bench"
                msg.set_content("x\n" * 50)
                started = time.perf_counter()
                mail.send(config, msg, "pc@example.org", ["ops@example.org"])
                sends.append(time.perf_counter() - started)
    finally:
        smtp.stop()

    base = statistics.median(times["baseline"])
    print(f"{versions()}; {args.rounds} rounds, medians")
    print(f"{'case':<10} {'ms':>8} {'x baseline':>11} {'added ms':>9}")
    for case in cases:
        med = statistics.median(times[case])
        print(f"{case:<10} {med * 1000:8.1f} {med / base:11.2f} {(med - base) * 1000:9.1f}")
    print(f"mail.send in-process to loopback aiosmtpd: median {statistics.median(sends) * 1000:.2f} ms"
          f" ({len(sends)} sends; {Sink.count} messages accepted in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
