#!/usr/bin/env python3
"""Benchmark: what ``run-job --job`` adds to a Slurm batch run, and how often it asks Slurm.

1. Added latency (target: at most 1 s per run). Interleaved rounds of, for a
   job whose command is ``true``:

   - baseline: ``sbatch --wait`` of the very batch script run-job generated
     for this job (copied from a run folder), a whole process;
   - case: ``run-job --config CFG --job SLUG``, a whole process (start-up,
     config and job loading, lock, precheck squeue, run folder, sbatch,
     waiting, records, history).

   Reported: medians, the difference (the figure of the target) and ratio.

2. Slurm calls per waiting minute: one run of a ``sleep SECONDS`` job through
   ``slurm_runner.execute`` in-process with a counting client (one waiting
   run: its share of the view is one squeue per 10 s; many runs waiting
   together: ``bench_slurm_scale.py``). Also the
   time from the job's own ``ended_at`` in job.status to the end of
   ``execute`` (the issue wants the end noticed within 2 s).

Needs a running cluster: ``$SLURM_CONF``, else it runs
``tests/slurm/local-slurm start`` (root). Runs in the benchmark venv (see
``benchlib.py``).

    python3 bench/bench_slurm.py [--rounds 7] [--wait-seconds 60]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

REPO = benchlib.REPO


def make_site(root: Path, slug: str, command: str) -> Path:
    import yaml

    jobs = root / "jobs"
    jobs.mkdir(parents=True)
    os.chmod(root, 0o755)
    os.chmod(jobs, 0o755)
    config = root / "process-control.yaml"
    config.write_text(yaml.safe_dump({
        "job_directory": str(jobs), "output_directory": str(root / "log"),
        "state_directory": str(root / "state"), "run_directory": str(root / "run"),
        "output_crontab": "console", "user": pwd.getpwuid(os.geteuid()).pw_name}))
    (jobs / f"{slug}.yaml").write_text(yaml.safe_dump({"command": command, "runner": "slurm"}))
    (jobs / f"{slug}.yaml").chmod(0o644)
    return config


def added_latency(env: dict[str, str], rounds: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="pc-bench-slurm-"))
    try:
        slug = f"bench-{os.getpid()}"
        config = make_site(root / "site", slug, "true")
        run_job = [sys.executable, "-m", "run_job", "--config", str(config), "--job", slug]
        benchlib.time_command(run_job, env=env)  # warm-up; also makes the script to copy
        latest = root / "site" / "log" / slug / "latest"
        script = root / "bare.sbatch"
        shutil.copyfile(latest / "job.sbatch", script)
        bare = ["sbatch", "--wait", "--parsable", f"--job-name={slug}-bare",
                "--output=/dev/null", "--export=ALL", f"--chdir={root}", str(script)]
        benchlib.time_command(bare, env=env)
        # the floor: submit, then watch the script's own job.status (no Python)
        status = shlex.quote(str(latest.resolve() / "job.status"))
        submit = " ".join(shlex.quote(w) for w in bare if w != "--wait")
        floor = ["bash", "-c", f"rm -f {status}; {submit} >/dev/null && "
                 f"until grep -qs '^exit_status=' {status}; do sleep 0.02; done"]
        medians = benchlib.interleaved({
            "sbatch --wait": lambda: benchlib.time_command(bare, env=env),
            "floor": lambda: benchlib.time_command(floor, env=env),
            "run-job --job": lambda: benchlib.time_command(run_job, env=env),
        }, rounds)
        base, case, low = medians["sbatch --wait"], medians["run-job --job"], medians["floor"]
        print(f"added latency ({rounds} rounds, medians, whole processes):")
        print(f"  sbatch --wait (baseline)            {base:7.3f} s")
        print(f"  sbatch + watch job.status (floor)   {low:7.3f} s")
        print(f"  run-job --job                       {case:7.3f} s")
        print(f"  added over sbatch --wait            {case - base:+7.3f} s   ratio {case / base:.2f}x"
              f"   (target: at most +1 s)")
        print(f"  added over the floor                {case - low:+7.3f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def calls_per_minute(env: dict[str, str], seconds: float) -> None:
    os.environ["SLURM_CONF"] = env["SLURM_CONF"]
    from run_job.clock import parse_iso, now
    from run_job.model import Config, Job
    from run_job.model import RunContext
    from run_job.slurm import batch as slurm_runner
    from run_job.slurm.vocabulary import parse_job_status
    from run_job.slurm.client import SlurmClient

    root = Path(tempfile.mkdtemp(prefix="pc-bench-slurm-"))
    try:
        run_dir = root / "run"
        run_dir.mkdir()
        config = Config(source=None, job_directory=root, output_directory=root,
                        state_directory=root, run_directory=root, output_crontab="console",
                        user="root", runner_path="run-job", service_runner_path="sbatch-service")
        argv = ("sleep", f"{seconds:g}")
        job = Job(slug=f"bench-wait-{os.getpid()}", path=root / "j.yaml", sha256="",
                  commands=(argv,), command_text=(" ".join(argv),), runner="slurm")
        client = SlurmClient(environ=env)
        ctx = RunContext(config=config, job=job, run_id="r", run_dir=run_dir,
                         output_path=run_dir / "output.log", commands=job.commands,
                         command_text=job.command_text, environment=dict(os.environ),
                         working_directory=run_dir, update_status=lambda **kw: None,
                         stop_requested=lambda: None)
        started = time.monotonic()
        result = slurm_runner.execute(ctx, client=client)
        returned = now()
        waited = time.monotonic() - started
        status = parse_job_status((run_dir / "job.status").read_text())
        noticed = (returned - parse_iso(status.ended_at)).total_seconds()
        print(f"\nSlurm calls while waiting (one {seconds:g} s job, outcome {result.outcome}):")
        print(f"  {client.calls} Slurm commands in {waited:.1f} s (sbatch included): "
              f"{(client.calls - 1) / (waited / 60):.1f} per waiting minute")
        print(f"  end noticed {noticed:.3f} s after the job wrote it to job.status")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--wait-seconds", type=float, default=60.0)
    args = parser.parse_args()
    benchlib.ensure_venv()
    env = benchlib.slurm_environment()
    env["PYTHONPATH"] = str(REPO)
    print(benchlib.versions())
    print(subprocess.run(["sbatch", "--version"], capture_output=True, text=True,
                         env=env).stdout.strip())
    added_latency(env, args.rounds)
    calls_per_minute(env, args.wait_seconds)


if __name__ == "__main__":
    main()
