"""``python -m gsbnp.assignments``: the same as ``gsbnp assignments``."""

import sys

from . import main

sys.exit(main())
