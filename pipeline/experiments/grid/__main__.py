"""``python -m pipeline.experiments.grid``."""

import sys

from pipeline.experiments.grid.cli import main

sys.exit(main())
