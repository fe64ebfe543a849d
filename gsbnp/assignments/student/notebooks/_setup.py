# %%
# Use the copy of gsbnp that this notebook belongs to (the folder above notebooks/).
import os
import subprocess
import sys

ROOT = os.path.abspath("..")
sys.path.insert(0, ROOT)
import numpy as np  # noqa: F401 - for the cells below

import gsbnp
from gsbnp.gradcheck import check_surrogate, numerical_gradient, rel_error  # noqa: F401

assert os.path.abspath(gsbnp.__file__).startswith(ROOT), f"imported {gsbnp.__file__}, not the copy in {ROOT}"


def public_tests(task_file):
    """Run the public tests of one task (the same as `python -m pytest tests/<file>` in a terminal)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--no-header", "-p", "no:cacheprovider",
                           os.path.join("tests", task_file)], cwd=ROOT, capture_output=True, text=True, check=False)
    print(proc.stdout[-3000:] or proc.stderr[-3000:])


print("gsbnp from", os.path.dirname(gsbnp.__file__))
