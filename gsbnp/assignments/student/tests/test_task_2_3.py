"""Task 2.3: the baseline's Eq. 8 scale and its switch back to Eq. 2."""

import numpy as np
from helpers import check_public

from gsbnp.quant import baseline_attention_forward


def test_frozen_reference():
    check_public("2.3")


def test_a_flat_map_falls_back_to_eq2():
    A = np.full((1, 1, 4, 4), 0.25)  # no value above 0.5
    _, cache = baseline_attention_forward(A, mode="eq8")
    assert cache["switched"].tolist() == [[True]]
    assert np.allclose(cache["gamma"], 0.25)


def test_an_identity_map_keeps_eq8():
    A = np.eye(5)[None, None] * 0.8 + 0.04
    out, cache = baseline_attention_forward(A, mode="eq8")
    assert cache["switched"].tolist() == [[False]]
    assert np.count_nonzero(out) == 5
