"""Task 1.1: LayerNorm backward."""

from helpers import check_public

import gsbnp.functional as F
from gsbnp.gradcheck import numerical_gradient, rel_error


def test_frozen_reference():
    check_public("1.1")


def test_gradients_match_finite_differences_of_the_forward(rng):
    x = rng.standard_normal((2, 5, 8)) * 3 + 1
    w, b = rng.standard_normal(8), rng.standard_normal(8)
    y, cache = F.layernorm_forward(x, w, b)
    dout = rng.standard_normal(y.shape)
    grads = F.layernorm_backward(dout, cache)
    def f(_):
        return F.layernorm_forward(x, w, b)[0]
    errors = {name: rel_error(g, numerical_gradient(f, a, dout))
              for name, a, g in zip(("dx", "dweight", "dbias"), (x, w, b), grads)}
    assert all(e < 1e-6 for e in errors.values()), errors
