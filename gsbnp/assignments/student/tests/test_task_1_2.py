"""Task 1.2: attention backward."""

from helpers import check_public

import gsbnp.functional as F
from gsbnp.gradcheck import numerical_gradient, rel_error


def test_frozen_reference():
    check_public("1.2")


def test_gradients_match_finite_differences_of_the_forward(rng):
    q, k, v = (rng.standard_normal((2, 5, 8)) for _ in range(3))
    out, cache = F.attention_forward(q, k, v, 2)
    dout = rng.standard_normal(out.shape)
    grads = F.attention_backward(dout, cache)
    def f(_):
        return F.attention_forward(q, k, v, 2)[0]
    errors = {f"d{n}": rel_error(g, numerical_gradient(f, a, dout)) for n, a, g in zip("qkv", (q, k, v), grads)}
    assert all(e < 1e-6 for e in errors.values()), errors
