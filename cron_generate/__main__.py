"""``python -m cron_generate``: the cron-generate command."""

import sys

from cron_generate.cli import main

sys.exit(main())
