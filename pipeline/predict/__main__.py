"""``python -m pipeline.predict``."""

import sys

from pipeline.predict.cli import main

sys.exit(main())
