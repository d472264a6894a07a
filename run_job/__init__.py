"""process-control: declarative YAML jobs, supervised runs, cron.d and Slurm.

The ``run_job`` package owns the one config pipeline (``config``, ``jobs``),
the ``run-job`` and ``sbatch-service`` commands and everything they run.
``cron_generate`` imports from here, never the reverse.
"""

__version__ = "0.1.0"
