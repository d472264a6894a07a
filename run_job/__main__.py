"""``python -m run_job``: the run-job command."""

import sys

from run_job.cli import main

sys.exit(main())
