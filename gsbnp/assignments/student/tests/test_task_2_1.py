"""Task 2.1: sign STE (the type-B binarizer's value and STE window, and the baseline's)."""

import numpy as np
from helpers import check_public

from gsbnp.gradcheck import check_surrogate
from gsbnp.quant import act_sign_backward, act_sign_forward


def test_frozen_reference_at_the_window_edges():
    check_public("2.1")


def test_sign_of_zero_is_plus_one():
    xb, _ = act_sign_forward(np.array([[-0.0, 0.0, -1e-300]]), 0.5, None)
    assert xb.tolist() == [[0.5, 0.5, -0.5]], xb


def test_backward_matches_the_surrogate_of_your_forward(rng):
    x, bias = rng.standard_normal((2, 5, 8)) * 1.5, rng.standard_normal(8) * 0.3
    alpha = np.array(0.8)
    errors = check_surrogate(lambda: act_sign_forward(x, alpha, bias, scale_grad="sum"), act_sign_backward,
                             [x, alpha, bias], rng=rng)
    assert max(errors) < 1e-8, dict(zip(("dx", "dalpha", "dbias"), errors))
