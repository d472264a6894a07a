"""sbatch-service without Slurm: its help, through the module entry
(``python -m run_job.service_cli``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_cli_help_and_module_entry():
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-m", "run_job.service_cli", "--help"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0
    assert "init|deploy|start|stop|restart|reload|status|purge" in proc.stdout
