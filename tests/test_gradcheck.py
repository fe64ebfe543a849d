"""The checking tools themselves: rel_error, numerical_gradient, the frozen-residual surrogate."""

import numpy as np
import pytest

from gsbnp.gradcheck import FrozenResidual, numerical_gradient, rel_error
from gsbnp.quant.ste import discrete, frozen


def test_rel_error():
    a = np.array([1.0, 2.0])
    assert rel_error(a, a) == 0.0
    assert rel_error(a, a + 1e-3) == pytest.approx(1e-3 / 4.001)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        rel_error(np.zeros(2), np.zeros(3))


def test_numerical_gradient_of_known_functions(rng):
    x = rng.standard_normal((3, 4))
    dout = rng.standard_normal((3, 4))
    g = numerical_gradient(np.sin, x, dout)
    assert rel_error(g, np.cos(x) * dout) < 1e-9
    g = numerical_gradient(lambda v: float(np.sum(v ** 3)), x)
    assert rel_error(g, 3 * x ** 2) < 1e-9
    x0 = x.copy()
    numerical_gradient(np.sin, x, dout)
    assert np.array_equal(x, x0)  # restored exactly


def test_numerical_gradient_rejects_integers():
    with pytest.raises(TypeError, match="float"):
        numerical_gradient(np.sin, np.arange(3))


def _ste_sign(x, alpha):
    q = x / alpha
    s = discrete(q, np.where(q >= 0, 1.0, -1.0), np.abs(q) <= 1)
    return alpha * s


def test_frozen_residual_surrogate_equals_function_and_gives_ste_gradient(rng):
    x = np.array([-2.0, -0.5, 0.0, 0.3, 1.0, 1.5])
    alpha = 1.0
    sur = FrozenResidual()
    with sur.record():
        y0 = _ste_sign(x, alpha)
    with sur.replay():
        assert np.array_equal(_ste_sign(x, alpha), y0)  # equal at the check point

    def f(v):
        with sur.replay():
            return _ste_sign(v, alpha)
    g = numerical_gradient(f, x.copy(), np.ones_like(x))
    assert np.allclose(g, (np.abs(x) <= 1).astype(float))  # STE: 1 inside |q| <= 1, else 0


def test_frozen_replays_statistics_and_detects_graph_changes():
    sur = FrozenResidual()
    with sur.record():
        m = frozen(np.mean(np.array([1.0, 3.0])))
    with sur.replay():
        assert frozen(123.0) == m == 2.0
    with pytest.raises(RuntimeError, match="more discrete calls"):
        with sur.replay():
            frozen(1.0)
            frozen(2.0)
    with pytest.raises(RuntimeError, match="fewer discrete calls"):
        with sur.replay():
            pass
    with pytest.raises(RuntimeError, match="nothing recorded"):
        with FrozenResidual().replay():
            pass
    with pytest.raises(RuntimeError, match="do not nest"):
        with sur.record():
            with sur.record():
                pass


def test_check_surrogate_passes_the_sign_ste_and_catches_wrong_backwards():
    from gsbnp.gradcheck import check_surrogate

    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (4, 5))

    def forward():  # sign with the clipped-identity STE, written with the surrogate's discrete()
        return discrete(x, np.where(x >= 0, 1.0, -1.0), np.abs(x) <= 1), None

    good = check_surrogate(forward, lambda g, _: (g * (np.abs(x) <= 1),), [x], rng=rng)
    assert good[0] < 1e-8
    bad = check_surrogate(forward, lambda g, _: (g,), [x], rng=rng)  # identity STE: wrong outside |x| <= 1
    assert bad[0] > 1e-2

    def writes_into_dout(g, _):
        g *= 2
        return (g,)
    with pytest.raises(AssertionError, match="wrote into"):
        check_surrogate(forward, writes_into_dout, [x], rng=rng)
