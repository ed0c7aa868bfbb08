"""``python -m pipeline.grid``."""

import sys

from pipeline.grid.cli import main

sys.exit(main())
