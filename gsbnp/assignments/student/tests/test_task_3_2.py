"""Task 3.2: GSB value backward (Eqs. 28-32)."""

import numpy as np
from helpers import check_public

from gsbnp.gradcheck import check_surrogate
from gsbnp.quant import gsb_value_backward, gsb_value_forward


def test_frozen_reference():
    check_public("3.2")


def test_backward_matches_the_surrogate_of_the_forward(rng):
    V0 = rng.standard_normal((2, 2, 5, 4))
    betas = np.array([0.8, 0.4, 0.2])
    errors = check_surrogate(lambda: gsb_value_forward(V0, betas, 2, scale_grad="sum"), gsb_value_backward,
                             [V0, betas], rng=rng)
    assert max(errors) < 1e-8, dict(zip(("dV0", "dbetas"), errors))
