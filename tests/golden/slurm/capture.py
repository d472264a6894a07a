"""Re-record the Slurm outputs the unit tests parse (run on a live cluster).

    eval "$(tests/slurm/local-slurm start)"
    PYTHONPATH=. python3 tests/golden/slurm/capture.py     # about 90 s (a TIMEOUT job)

Writes ``*.txt`` next to this file: what sbatch --parsable, scontrol show job
and squeue printed for jobs in known states, and the stderr of failures. Job
ids and times differ at each capture; the tests read them from the files.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FMT = "%i|%T|%u|%P|%j"


def sh(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def sbatch(*args) -> str:
    proc = sh(["sbatch", "--parsable", *args])
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return proc.stdout


def state(job_id: str) -> str:
    out = sh(["scontrol", "show", "job", job_id]).stdout
    return out.split("JobState=", 1)[1].split()[0] if "JobState=" in out else ""


def wait_state(job_id: str, *states: str, limit: float = 150) -> None:
    end = time.monotonic() + limit
    while state(job_id) not in states:
        if time.monotonic() > end:
            raise SystemExit(f"job {job_id} not in {states}: {state(job_id)}")
        time.sleep(0.2)


def save(name: str, text: str) -> None:
    (HERE / name).write_text(text)
    print("wrote", name)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="pc golden; 'x' "))
    os.chdir(work)
    weird = work / "we ird;'dir %j"
    weird.mkdir()
    out = str(weird / "out put.log").replace("%", "\\%")
    raw = sbatch("-J", "golden-ok.run-job", "-o", out, "--comment=hello world JobState=FAKE",
                 "-D", str(weird), "--time=5", "-p", "pc-alt", "--wrap", "true")
    save("sbatch_parsable.txt", raw)
    ok = raw.strip()
    failed = sbatch("-J", "golden-fail.run-job", "-o", "/dev/null", "--wrap", "exit 3").strip()
    timeout = sbatch("-J", "golden-timeout.run-job", "-o", "/dev/null", "--time=1", "--wrap", "sleep 300").strip()
    cancel = sbatch("-J", "golden-cancel.run-job", "-o", "/dev/null", "--wrap", "sleep 300").strip()
    held = sbatch("-J", "golden|pipe.run-job", "-H", "-o", "/dev/null", "--wrap", "true").strip()
    wait_state(ok, "COMPLETED")
    wait_state(failed, "FAILED")
    wait_state(cancel, "RUNNING")
    save("scontrol_running.txt", sh(["scontrol", "show", "job", cancel]).stdout)
    save("scontrol_pending.txt", sh(["scontrol", "show", "job", held]).stdout)
    save("squeue_active.txt", sh(["squeue", "-h", "-o", FMT]).stdout)
    save("scontrol_completed.txt", sh(["scontrol", "show", "job", ok]).stdout)
    save("scontrol_failed.txt", sh(["scontrol", "show", "job", failed]).stdout)
    sh(["scancel", cancel])
    sh(["scancel", held])
    wait_state(held, "CANCELLED")
    save("scontrol_cancelled_pending.txt", sh(["scontrol", "show", "job", held]).stdout)
    wait_state(cancel, "CANCELLED")
    save("scontrol_cancelled.txt", sh(["scontrol", "show", "job", cancel]).stdout)
    save("scontrol_unknown_stderr.txt", sh(["scontrol", "show", "job", "999999"]).stderr)
    save("scancel_kill_gone_stderr.txt", sh(["scancel", "--signal=KILL", "--full", ok]).stderr)
    wait_state(timeout, "TIMEOUT", limit=180)
    save("scontrol_timeout.txt", sh(["scontrol", "show", "job", timeout]).stdout)
    save("squeue_all.txt", sh(["squeue", "-h", "-t", "all", "-o", FMT, "-j",
                               ",".join([ok, failed, timeout, cancel, held])]).stdout)
    dead = work / "dead.conf"
    conf = Path(os.environ["SLURM_CONF"]).read_text().splitlines()
    dead.write_text("\n".join("SlurmctldPort=1" if l.startswith("SlurmctldPort=") else l
                              for l in conf) + "\n")
    env = dict(os.environ, SLURM_CONF=str(dead))
    save("squeue_unreachable_stderr.txt", sh(["squeue", "-h"], env=env).stderr)
    save("sbatch_unreachable_stderr.txt", sh(["sbatch", "--wrap", "true"], env=env).stderr)
    save("sbatch_bad_partition_stderr.txt", sh(["sbatch", "-p", "no-such-part", "--wrap", "true"]).stderr)


if __name__ == "__main__":
    main()
