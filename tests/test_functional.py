"""Float64 gradient checks of every functional forward/backward pair, and their purity."""

import numpy as np
import pytest
from conftest import B, D, H, N
from conftest import F as FH
from scipy.special import erf, ndtr

import gsbnp.functional as F
from gsbnp.gradcheck import numerical_gradient, rel_error

TOL = 1e-6


def _check(fwd, bwd, inputs, rng, names) -> dict:
    """Relative error of bwd of fwd(*inputs) against numerical gradients, per named input.

    Also asserts that the backward leaves dout untouched. Callers assert the errors (< TOL).
    """
    out, cache = fwd(*inputs)
    dout = rng.standard_normal(out.shape)
    dout_copy = dout.copy()
    grads = bwd(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert np.array_equal(dout, dout_copy), "backward wrote into dout"
    errors = {}
    for i, name in enumerate(names):
        if name is None:
            continue

        def f(_):
            return fwd(*inputs)[0]
        errors[name] = rel_error(grads[i], numerical_gradient(f, inputs[i], dout))
    return errors


def test_linear(rng):
    x, W, b = rng.standard_normal((B, N, D)), rng.standard_normal((FH, D)), rng.standard_normal(FH)
    errs = _check(F.linear_forward, F.linear_backward, [x, W, b], rng, ["x", "W", "b"])
    assert max(errs.values()) < TOL, errs


def test_linear_without_bias(rng):
    x, W = rng.standard_normal((B, D)), rng.standard_normal((FH, D))
    out, cache = F.linear_forward(x, W, None)
    dx, dW, db = F.linear_backward(np.ones_like(out), cache)
    assert db is None and np.allclose(out, x @ W.T)


def test_layernorm(rng):
    x = rng.standard_normal((B, N, D)) * 3 + 1
    w, b = rng.standard_normal(D), rng.standard_normal(D)
    errs = _check(F.layernorm_forward, F.layernorm_backward, [x, w, b], rng, ["x", "weight", "bias"])
    assert max(errs.values()) < TOL, errs
    y, _ = F.layernorm_forward(x, np.ones(D), np.zeros(D))
    assert np.allclose(y.mean(-1), 0) and np.allclose(y.var(-1), 1, atol=1e-4)


def test_gelu(rng):
    x = rng.standard_normal((B, N, FH)) * 2
    errs = _check(F.gelu_forward, F.gelu_backward, [x], rng, ["x"])
    assert max(errs.values()) < TOL, errs
    y, _ = F.gelu_forward(x)
    assert np.allclose(y, 0.5 * x * (1 + erf(x / np.sqrt(2))), rtol=0, atol=1e-15)


def test_gelu_float32_fast_path_is_exact_to_float32_resolution(rng):
    x = np.concatenate([rng.standard_normal(200_000) * 3, np.linspace(-12, 12, 10_001)]).astype(np.float32)
    y, _ = F.gelu_forward_fast(x)
    assert y.dtype == np.float32
    xd = x.astype(np.float64)
    exact = xd * ndtr(xd)  # ndtr = Phi without the 1 + erf cancellation in the tail
    err = np.abs(y - exact)
    # within a few float32 ulps of |x| everywhere (the scale of the activation's input)
    assert np.max(err / np.spacing(np.maximum(np.abs(x), np.float32(1e-3)))) < 6
    # the cached derivative g = Phi + x phi (the backward is dout * g) within a few ulps of 1
    g, = [F.gelu_backward(np.ones_like(x), cache) for cache in [F.gelu_forward_fast(x)[1]]]
    g_exact = ndtr(xd) + xd * np.exp(-0.5 * xd * xd) / np.sqrt(2 * np.pi)
    assert g.dtype == np.float32 and np.max(np.abs(g - g_exact)) < 6 * np.spacing(np.float32(1))
    # extreme and non-finite inputs: the end points of the tables, NaN stays NaN
    e = np.array([-1e30, -9, 9, 1e30, np.nan], np.float32)
    ye, ce = F.gelu_forward_fast(e)
    assert np.allclose(ye[:4], [0, 0, 9, 1e30], atol=1e-12) and np.isnan(ye[4])
    assert np.allclose(ce[:4], [0, 0, 1, 1], atol=1e-12) and np.isnan(ce[4])


def test_gelu_float32_threads_do_not_change_results(monkeypatch, rng):
    x = (rng.standard_normal((3, 70_000)) * 3).astype(np.float32)
    monkeypatch.setenv("GSBNP_NUM_THREADS", "1")
    y1, g1 = F.gelu_forward_fast(x)
    monkeypatch.setenv("GSBNP_NUM_THREADS", "3")
    y3, g3 = F.gelu_forward_fast(x)
    assert np.array_equal(y1, y3) and np.array_equal(g1, g3)


def test_gelu_fast_path_is_pinned_to_the_readable_formula(rng):
    x = (rng.standard_normal((4, 9, 3000)) * 3).astype(np.float32)
    (y, g), (yr, gr) = F.gelu_forward_fast(x), F.gelu_forward(x)
    assert yr.dtype == y.dtype == np.float32 and gr.dtype == g.dtype == np.float32
    # the readable x * Phi(x) in float32 and the table path agree to a few float32 ulps of max(|x|, 1)
    ulp = np.spacing(np.maximum(np.abs(x), np.float32(1)))
    assert np.max(np.abs(y - yr) / ulp) < 8 and np.max(np.abs(g - gr) / ulp) < 8
    # any other dtype takes the readable path itself: bit for bit
    xd = x.astype(np.float64)
    for a, b in zip(F.gelu_forward_fast(xd), F.gelu_forward(xd)):
        assert a.dtype == np.float64 and np.array_equal(a, b)
    # the GELU layer of the MLP runs the fast path in float32
    from gsbnp.nn import GELU
    assert np.array_equal(GELU().forward(x), y)


def test_softmax(rng):
    x = rng.standard_normal((B, H, N, N)) * 3
    errs = _check(F.softmax_forward, F.softmax_backward, [x], rng, ["x"])
    assert max(errs.values()) < TOL, errs
    y, _ = F.softmax_forward(x)
    assert np.allclose(y.sum(-1), 1)
    y_big, _ = F.softmax_forward(x + 1000.0)  # stabilised
    assert np.allclose(y_big, y)


def test_attention(rng):
    q, k, v = (rng.standard_normal((B, N, D)) for _ in range(3))

    def fwd(q, k, v):
        return F.attention_forward(q, k, v, H)
    fwd.__name__ = "attention_forward"
    errs = _check(fwd, F.attention_backward, [q, k, v], rng, ["q", "k", "v"])
    assert max(errs.values()) < TOL, errs


def test_attention_matches_per_head_loop(rng):
    q, k, v = (rng.standard_normal((B, N, D)) for _ in range(3))
    out, cache = F.attention_forward(q, k, v, H)
    Dh = D // H
    for h in range(H):  # reference: one head at a time, textbook formula
        sl = slice(h * Dh, (h + 1) * Dh)
        s = q[..., sl] @ k[..., sl].transpose(0, 2, 1) / np.sqrt(Dh)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        assert np.allclose(out[..., sl], a @ v[..., sl])
        assert np.allclose(cache["A"][:, h], a)


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_dropout(rng, p):
    x = rng.standard_normal((B, N, D))

    def fwd(x):
        return F.dropout_forward(x, p, np.random.default_rng(7), True)  # same seed: frozen mask
    fwd.__name__ = "dropout_forward"
    errs = _check(fwd, F.dropout_backward, [x], rng, ["x"])
    assert max(errs.values()) < TOL, errs
    y, _ = F.dropout_forward(x, p, np.random.default_rng(7), False)
    assert y is x  # identity in eval mode


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_drop_path(rng, p):
    x = rng.standard_normal((B * 4, N, D))

    def fwd(x):
        return F.drop_path_forward(x, p, np.random.default_rng(3), True)
    fwd.__name__ = "drop_path_forward"
    errs = _check(fwd, F.drop_path_backward, [x], rng, ["x"])
    assert max(errs.values()) < TOL, errs
    y, _ = fwd(x)
    # every sample is either dropped whole or kept whole (and scaled by 1/(1-p))
    kept = np.all(np.isclose(y, x / (1 - p)), axis=(1, 2))
    dropped = np.all(y == 0, axis=(1, 2))
    assert np.all(kept | dropped)
    if p:
        assert dropped.any() and kept.any()


def test_patch_embed(rng):
    C, P, img = 3, 2, 6
    x = rng.standard_normal((B, C, img, img))
    W, b = rng.standard_normal((D, C, P, P)), rng.standard_normal(D)

    def fwd(x, W, b):
        return F.patch_embed_forward(x, W, b, P)
    fwd.__name__ = "patch_embed_forward"
    errs = _check(fwd, F.patch_embed_backward, [x, W, b], rng, ["x", "W", "b"])
    assert max(errs.values()) < TOL, errs


def test_patch_embed_equals_strided_convolution(rng):
    C, P, img = 2, 3, 6
    x = rng.standard_normal((B, C, img, img))
    W, b = rng.standard_normal((D, C, P, P)), rng.standard_normal(D)
    out, _ = F.patch_embed_forward(x, W, b, P)
    ref = np.empty((B, (img // P) ** 2, D))
    for i in range(img // P):  # a direct stride-P convolution
        for j in range(img // P):
            patch = x[:, :, i * P:(i + 1) * P, j * P:(j + 1) * P]
            ref[:, i * (img // P) + j] = np.einsum("bcyx,dcyx->bd", patch, W) + b
    assert np.allclose(out, ref)
    assert np.array_equal(F.unpatchify(F.patchify(x, P), P, C, img, img), x)


def test_backward_twice_gives_identical_grads(rng):
    x, W, b = rng.standard_normal((B, N, D)), rng.standard_normal((FH, D)), rng.standard_normal(FH)
    dout = rng.standard_normal((B, N, FH))
    g1 = F.linear_backward(dout, F.linear_forward(x, W, b)[1])
    g2 = F.linear_backward(dout, F.linear_forward(x, W, b)[1])
    for a, c in zip(g1, g2):
        assert np.array_equal(a, c)


def test_gelu_without_grad_gives_the_same_output(rng):
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal((3, 5, 7)) * 4).astype(dtype)
        y, g = F.gelu_forward(x)
        y2, none = F.gelu_forward(x, with_grad=False)
        assert none is None and g is not None
        np.testing.assert_array_equal(y2, y)
