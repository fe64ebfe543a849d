"""Task 2.2: type-A quantizer (value and STE window, and the baseline's)."""

import numpy as np
from helpers import check_public

from gsbnp.gradcheck import check_surrogate
from gsbnp.quant import act_round_backward, act_round_forward


def test_frozen_reference_at_the_window_edges():
    check_public("2.2")


def test_values_are_zero_or_alpha():
    xb, _ = act_round_forward(np.linspace(-3, 3, 25).reshape(5, 5), 2.0, None)
    assert set(np.unique(xb).tolist()) <= {0.0, 2.0}


def test_backward_matches_the_surrogate_of_your_forward(rng):
    x, bias = np.abs(rng.standard_normal((2, 5, 12))), rng.standard_normal(12) * 0.2
    alpha = np.array(1.3)
    errors = check_surrogate(lambda: act_round_forward(x, alpha, bias, scale_grad="sum"), act_round_backward,
                             [x, alpha, bias], rng=rng)
    assert max(errors) < 1e-8, dict(zip(("dx", "dalpha", "dbias"), errors))
