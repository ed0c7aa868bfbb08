"""``python -m pipeline.plots``."""

import sys

from pipeline.plots.cli import main

sys.exit(main())
