"""``python -m gsbnp ...`` runs the ``gsbnp`` command."""

import sys

from gsbnp.cli import main

sys.exit(main())
