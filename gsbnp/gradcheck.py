"""Numerical gradient checking: the tool that proves every hand-written backward in gsbnp.

Public (tutorials and course assignments use it):

- ``rel_error(a, b)``: ``max|a - b| / max(1e-8, max|a| + max|b|)`` — a scale-aware error that does not
  explode on entries that are (numerically) zero.
- ``numerical_gradient(f, x, dout, h)``: centred differences of ``sum(f(x) * dout)`` w.r.t. ``x``; an
  array-valued ``f`` is projected on a (random) upstream gradient ``dout``.
- ``check_module(module, x, ...)``: every parameter and the input of a ``gsbnp.nn.Module`` against its
  ``backward``, under the frozen-residual surrogate so that STE quantizers are checked too.
- ``check_surrogate(forward, backward, arrays, ...)``: the same check for a pure forward/backward
  pair (a quantizer of ``gsbnp.quant``, a functional layer): one relative error per input array.
- ``FrozenResidual`` (from ``gsbnp._ste``): the surrogate of docs/conventions.md#checking-an-ste.

All checks are meant for float64; in float32 a centred difference has ~1e-3 relative noise.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ._ste import FrozenResidual

__all__ = ["rel_error", "numerical_gradient", "check_module", "check_surrogate", "assert_close",
           "FrozenResidual"]


def rel_error(a, b) -> float:
    """Relative error ``max|a-b| / max(1e-8, max|a| + max|b|)`` of two arrays of the same shape."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1e-8, np.max(np.abs(a)) + np.max(np.abs(b))))


def _project(out, dout) -> float:
    if isinstance(out, tuple):
        return float(sum(np.sum(o * d) for o, d in zip(out, dout)))
    return float(np.sum(out * dout))


def numerical_gradient(f: Callable, x: np.ndarray, dout=None, h: float = 1e-6) -> np.ndarray:
    """Centred-difference gradient of ``L(x) = sum(f(x) * dout)`` with respect to ``x``.

    Args:
        f: called as ``f(x)``; returns an array, a tuple of arrays, or a scalar.
        x: float array, perturbed **in place** one entry at a time and restored exactly.
        dout: upstream gradient(s) with the shape(s) of ``f(x)``; ``None`` for a scalar ``f``.
        h: step; 1e-6 suits float64.
    Returns:
        array of ``x``'s shape, ``(L(x + h e_i) - L(x - h e_i)) / 2h`` at each entry.
    """
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a float array, got {x.dtype}")
    if dout is None:
        dout = 1.0
    grad = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)  # a view: x must be contiguous so that writes reach f
    if not np.shares_memory(flat, x):
        raise ValueError("x must be contiguous (numerical_gradient perturbs it in place)")
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = _project(f(x), dout)
        flat[i] = old - h
        fm = _project(f(x), dout)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return grad


def _random_like(out, rng):
    if isinstance(out, tuple):
        return tuple(rng.standard_normal(o.shape) for o in out)
    return rng.standard_normal(np.shape(out))


def check_module(module, x: np.ndarray, *, rng: np.random.Generator | None = None, h: float = 1e-6,
                 params: list[str] | None = None, max_entries: int | None = None) -> dict[str, float]:
    """Check ``module.backward`` against finite differences for the input and every parameter.

    The module's forward runs once under ``FrozenResidual.record()`` (so STE windows, thresholds and
    dropout masks are frozen at the check point), its ``backward`` is called with a random upstream
    gradient, and each numerical derivative is taken of the surrogate. For a module without discrete
    ops the surrogate *is* the function.

    Args:
        module: a ``gsbnp.nn.Module`` whose ``forward`` returns an array or a tuple of arrays and whose
            ``backward`` takes the matching upstream gradient(s) and returns ``dx``.
        x: float64 input.
        rng: source of the random upstream gradient (default seed 0).
        params: names to check (default: all of ``module.params``).
        max_entries: if set, check only this many randomly chosen entries of each array (big models).
    Returns:
        ``{"x": err, name: err, ...}`` relative errors (``rel_error``).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    x = np.array(x, dtype=np.float64, copy=True)
    sur = FrozenResidual()
    with sur.record():
        out = module.forward(x)
    dout = _random_like(out, rng)
    dout_copy = tuple(d.copy() for d in dout) if isinstance(dout, tuple) else dout.copy()
    dx = module.backward(*dout) if isinstance(dout, tuple) else module.backward(dout)
    grads = {k: np.array(v, copy=True) for k, v in module.grads.items()}

    def loss_at() -> float:
        with sur.replay():
            return _project(module.forward(x), dout)

    def num_grad(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = arr.reshape(-1)
        idx = np.arange(flat.size)
        if max_entries is not None and flat.size > max_entries:
            idx = np.sort(rng.choice(flat.size, size=max_entries, replace=False))
        g = np.empty(idx.size)
        for j, i in enumerate(idx):
            old = flat[i]
            flat[i] = old + h
            fp = loss_at()
            flat[i] = old - h
            fm = loss_at()
            flat[i] = old
            g[j] = (fp - fm) / (2 * h)
        return idx, g

    errors = {}
    idx, g = num_grad(x)
    errors["x"] = rel_error(dx.reshape(-1)[idx], g)
    for name in (params if params is not None else list(module.params)):
        p = module.params[name]
        if not p.flags.c_contiguous:
            raise ValueError(f"parameter {name} must be C-contiguous to be checked")
        idx, g = num_grad(p)
        errors[name] = rel_error(grads[name].reshape(-1)[idx], g)
    # The upstream gradient must come back untouched (backward never writes into dout).
    same = (all(np.array_equal(a, b) for a, b in zip(dout, dout_copy)) if isinstance(dout, tuple)
            else np.array_equal(dout, dout_copy))
    if not same:
        raise AssertionError("backward wrote into its upstream gradient dout")
    return errors


def check_surrogate(forward: Callable, backward: Callable, arrays, *, rng: np.random.Generator | None = None,
                    h: float = 1e-5) -> list[float]:
    """Check a forward/backward pair against the numerical derivative of its frozen-residual surrogate.

    Args:
        forward: ``forward() -> (out, cache)``; it reads the ``arrays`` (perturbed in place here).
        backward: ``backward(dout, cache) -> tuple`` of gradients in the order of ``arrays``.
        arrays: float64 inputs to check (e.g. ``[x, alpha, bias]``).
        rng: for the random upstream gradient (default: seed 0); h: the centred-difference step.
    Returns:
        ``rel_error`` of each analytic gradient, in the order of ``arrays``.
    Raises:
        AssertionError: the backward wrote into ``dout``, or the surrogate differs from the function at
        the check point (a recording/replay mismatch).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    sur = FrozenResidual()
    with sur.record():
        out0, cache = forward()
    dout = rng.standard_normal(np.shape(out0))
    dout_copy = dout.copy()
    grads = backward(dout, cache)
    if not np.array_equal(dout, dout_copy):
        raise AssertionError("backward wrote into its upstream gradient dout")

    def replay(_):
        with sur.replay():
            return forward()[0]

    if not np.array_equal(replay(None), out0):
        raise AssertionError("the surrogate differs from the function at the check point")
    return [rel_error(np.asarray(g, dtype=np.float64).reshape(np.shape(a)),
                      numerical_gradient(replay, a, dout, h))
            for a, g in zip(arrays, grads)]


def assert_close(errors: dict[str, float], tol: float) -> None:
    """Raise ``AssertionError`` listing every entry of ``errors`` at or above ``tol``."""
    bad = {k: v for k, v in errors.items() if not v < tol}
    if bad:
        lines = ", ".join(f"{k}: {v:.3e}" for k, v in sorted(bad.items(), key=lambda kv: -kv[1]))
        raise AssertionError(f"gradient check failed (tol {tol:.0e}): {lines}")
