"""Shared fixtures. Gradient checks run in float64 at small, all-distinct dimensions."""

import numpy as np
import pytest

# B=2, N=5, D=8, H=2 (Dh=4), F=12: distinct so that a transposition bug cannot hide.
B, N, D, H, F = 2, 5, 8, 2, 12


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
