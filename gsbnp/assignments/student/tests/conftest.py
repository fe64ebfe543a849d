"""Public tests of the course assignments (your copy). Run them with ``python -m pytest`` in this folder.

They check your work against your own forward (finite differences, the frozen-residual surrogate), exact
edges and frozen reference numbers of one public case per task (``tests/expected/``). Your teacher grades
with their own tests on other inputs: passing here is a good sign, not the grade.
"""

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
