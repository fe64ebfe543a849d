"""Activation binarizers of the linear layers: learnable type-B (sign) and type-A (round), and the
parameter-free baseline versions of Section III-A, as pure forward/backward pairs.

Legend: B batch, N tokens, D embed, H heads, Dh head dim, F MLP hidden. An activation ``x`` may have
any rank: (B, N, D) for a linear input, (B, N, F) after GELU, (B, H, N, Dh) for Q and K.

Learnable quantizers (BiT-style, docs/conventions.md#activations-of-linear-layers): with
``q = (x + bias) / alpha``

- type-B (Eqs. 4, 5, 29, 31): ``x_b = alpha * sign(q)``, ``sign(0) = +1``.
- type-A (Eqs. 3, 5, 14, 17): ``x_b = alpha * clip(round(q), 0, 1)``, round half to even (q = 0.5 -> 0).

Baseline quantizers (Eqs. 1-2, no parameters, statistics of each sample held constant):

- type-B: ``beta * sign(x - a_mu)``, ``a_mu = mean(x)``, ``beta = mean|x|``.
- type-A: ``beta * clip(round(x / beta), 0, 1)``, ``beta = mean|x|``.

The ``scale_grad`` option says how a learnable scale's gradient is reduced over the elements:
``"mean"`` (default, the paper's ``1/(H*N*N)`` of Eqs. 14, 15, 28, batch included), ``"sqrt"``
(sum / sqrt(count), released code) or ``"sum"`` (the true derivative of the surrogate).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._ste import discrete, frozen
from .._validate import as_float_array, check_choice
from .options import SCALE_GRAD_CHOICES

__all__ = [
    "act_sign_forward", "act_sign_backward", "act_round_forward", "act_round_backward",
    "baseline_act_sign_forward", "baseline_act_sign_backward",
    "baseline_act_round_forward", "baseline_act_round_backward", "SCALE_GRAD_CHOICES",
]


# ----------------------------------------------------------------------------------------------
# helpers shared by the quantizers of this package
# ----------------------------------------------------------------------------------------------

def _scale_grad_factor(scale_grad: str, count) -> float:
    """Factor that turns a summed scale gradient into its reduced form (count 0 is guarded)."""
    if scale_grad == "sum":
        return 1.0
    count = max(float(count), 1.0)
    return 1.0 / count if scale_grad == "mean" else 1.0 / math.sqrt(count)


def _positive_scalar(value, name: str) -> float:
    """A positive finite scale given as a Python number, NumPy scalar, 0-d or one-element array."""
    if isinstance(value, np.ndarray):
        if value.size != 1 or value.ndim > 1:
            raise ValueError(f"{name} must be a scalar (0-d or one-element array), got shape {value.shape}")
        if not np.issubdtype(value.dtype, np.floating):
            raise TypeError(f"{name} must have a floating dtype, got {value.dtype}")
        value = value.reshape(()).item()
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0 (the layer clamps scales), got {value}")
    return value


def _check_bias(bias, x: np.ndarray) -> np.ndarray | None:
    """``bias`` must broadcast against x's trailing axes: every axis equal to x's or 1."""
    if bias is None:
        return None
    bias = as_float_array(bias, "bias")
    trail = x.shape[x.ndim - bias.ndim:] if bias.ndim else ()
    if bias.ndim > x.ndim or any(b != t and b != 1 for b, t in zip(bias.shape, trail)):
        raise ValueError(f"bias of shape {bias.shape} must broadcast to the trailing axes of x "
                         f"{x.shape} (e.g. (D,) for (B, N, D), (H, 1, Dh) for (B, H, N, Dh))")
    return bias


def _sum_to_bias(g: np.ndarray, bias_shape: tuple) -> np.ndarray:
    """True sum of ``g`` over the axes that ``bias`` was broadcast along, reshaped to bias_shape."""
    lead = g.ndim - len(bias_shape)
    out = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, b in enumerate(bias_shape) if b == 1 and out.shape[i] != 1)
    if axes:
        out = out.sum(axis=axes, keepdims=True)
    return out.reshape(bias_shape)


def _check_dout(dout, cache: dict, name: str = "dout") -> np.ndarray:
    dout = as_float_array(dout, name, finite=False)
    if dout.shape != cache["shape"]:
        raise ValueError(f"{name} must have the forward output's shape {cache['shape']}, got {dout.shape}")
    return dout


def _sign(q: np.ndarray) -> np.ndarray:
    """sign with ``sign(0) = +1`` (Eq. 4; also for -0.0), in q's dtype."""
    s = (q >= 0).astype(q.dtype)  # 2 * 1{q >= 0} - 1: ~10x faster than np.where with scalars
    s *= 2
    s -= 1
    return s


# ----------------------------------------------------------------------------------------------
# learnable type-B / type-A
# ----------------------------------------------------------------------------------------------

def _act_forward(x, alpha, bias, scale_grad, kind):
    x = as_float_array(x, "x")
    alpha = _positive_scalar(alpha, "alpha")
    bias = _check_bias(bias, x)
    check_choice(scale_grad, SCALE_GRAD_CHOICES, "scale_grad")
    # alpha is a Python float, so q keeps x's dtype (NEP 50 weak scalars)
    if bias is not None:
        q = x + bias  # (*x.shape), then divided in place: one array instead of two
        q /= alpha
    else:
        q = x / alpha
    if kind == "sign":
        # BEGIN SOLUTION Task 2.1: sign STE
        window = np.abs(q) <= 1  # Eq. 5, inclusive
        value = _sign(q)
        # END SOLUTION
    else:
        # BEGIN SOLUTION Task 2.2: type-A quantizer
        window = q >= 0  # clip window, inclusive: 0 <= q <= 1
        window &= q <= 1
        # clip(round(q), 0, 1) of Eq. 3, with half-to-even rounding (q = 0.5 -> 0), is exactly 1{q > 0.5}
        value = (q > 0.5).astype(q.dtype)
        # END SOLUTION
    # alpha * op(q), not op(x + b) * alpha: the surrogate needs alpha * (q + r) to give the STE
    x_b = alpha * discrete(q, value, window)
    cache = {"shape": x.shape, "q": q, "value": value, "window": window, "alpha": alpha,
             "bias_shape": None if bias is None else bias.shape, "scale_grad": scale_grad}
    return x_b, cache


def _act_backward(dout, cache):
    g = _check_dout(dout, cache)
    window = cache["window"]
    dx = g * window  # x_b = alpha * op((x + b) / alpha): STE 1 inside the window
    # d x_b / d alpha = op(q) - q * 1{window}   (Eqs. 14, 29 / LSQ)
    dalpha_sum = np.vdot(g, cache["value"]) - np.vdot(dx, cache["q"])
    dalpha = float(dalpha_sum) * _scale_grad_factor(cache["scale_grad"], g.size)
    dbias = None if cache["bias_shape"] is None else _sum_to_bias(dx, cache["bias_shape"])
    return dx, dalpha, dbias


def act_sign_forward(x, alpha, bias, *, scale_grad: str = "mean"):
    """Learnable type-B binarizer ``x_b = alpha * sign((x + bias) / alpha)`` (Eqs. 4, 5, 29, 31).

    Forward, with ``q = (x + bias) / alpha``::

        x_b = +alpha  if q >= 0          (sign(0) = +1)
              -alpha  otherwise

    STE pseudo-gradient::

        dx     = g * 1{|q| <= 1}                                  (inclusive window)
        dalpha = reduce(g * (sign(q) - q * 1{|q| <= 1}))          (Eq. 29)
        dbias  = sum over broadcast axes of g * 1{|q| <= 1}

    Args:
        x: float array of any rank, e.g. (B, N, D) or (B, H, N, Dh).
        alpha: positive scalar (Python float, 0-d or one-element array); the layer clamps it.
        bias: float array broadcastable to x's trailing axes, (D,) or (H, 1, Dh); or None.
        scale_grad: "mean" | "sqrt" | "sum" reduction of dalpha over all elements of x.
    Returns:
        x_b: array of x's shape and dtype, values +-alpha.
        cache: dict with ``q`` (x's shape), ``value`` (sign(q), +-1), ``window`` (bool, |q| <= 1),
            ``alpha`` (float), ``shape``, ``bias_shape``, ``scale_grad``.
    """
    return _act_forward(x, alpha, bias, scale_grad, "sign")


def act_sign_backward(dout, cache):
    """Backward of :func:`act_sign_forward`: returns ``(dx, dalpha, dbias)``.

    ``dx`` has x's shape, ``dalpha`` is a Python float reduced per ``scale_grad``, ``dbias`` has
    bias's shape (a true sum over the broadcast axes) or is None when the forward had no bias.
    """
    return _act_backward(dout, cache)


def act_round_forward(x, alpha, bias, *, scale_grad: str = "mean"):
    """Learnable type-A binarizer ``x_b = alpha * clip(round((x + bias) / alpha), 0, 1)`` (Eqs. 3, 5, 14, 17).

    Forward, with ``q = (x + bias) / alpha``::

        x_b = alpha  if q > 0.5     (q = 0.5 rounds to 0, half to even)
              0      otherwise

    STE pseudo-gradient (LSQ form, = Eq. 14)::

        dx     = g * 1{0 <= q <= 1}                               (inclusive clip window)
        dalpha = reduce(g * (x_b / alpha - q * 1{0 <= q <= 1}))
        dbias  = sum over broadcast axes of g * 1{0 <= q <= 1}

    Args / Returns: as :func:`act_sign_forward`; ``cache["value"]`` holds clip(round(q), 0, 1) in {0, 1}
    and ``cache["window"]`` the bool 0 <= q <= 1.
    """
    return _act_forward(x, alpha, bias, scale_grad, "round")


def act_round_backward(dout, cache):
    """Backward of :func:`act_round_forward`: returns ``(dx, dalpha, dbias)`` as :func:`act_sign_backward`."""
    return _act_backward(dout, cache)


# ----------------------------------------------------------------------------------------------
# baseline (Section III-A): statistics per sample, no parameters
# ----------------------------------------------------------------------------------------------

def _per_sample_stats(x: np.ndarray):
    """(B, 1, ..., 1) mean and mean-absolute value of each sample, over all axes but the first."""
    axes = tuple(range(1, x.ndim))
    a_mu = x.mean(axis=axes, keepdims=True)
    beta = np.abs(x).mean(axis=axes, keepdims=True)
    # an all-zero sample has beta = 0: a tiny floor keeps q finite (q = 0 there) and the output 0
    beta = np.maximum(beta, np.finfo(x.dtype).tiny)
    return a_mu, beta


def _baseline_input(x):
    x = as_float_array(x, "x")
    if x.ndim < 2:
        raise ValueError("x must have a leading batch axis and at least one more (rank >= 2), "
                         f"got shape {x.shape}")
    return x


def baseline_act_sign_forward(x):
    """Baseline type-B binarizer ``beta * sign(x - a_mu)`` (Eqs. 1, 2, 4; XNOR-Net).

    ``a_mu = mean(x)`` and ``beta = mean|x|`` per sample (over all axes but the first), held constant.
    STE: ``dx = g * 1{|(x - a_mu) / beta| <= 1}``.

    Args:
        x: (B, ...) float array, e.g. (B, N, D).
    Returns:
        out: x's shape, values +-beta of each sample.
        cache: dict with ``a_mu``, ``beta`` ((B, 1, ..., 1)), ``window`` (bool, x's shape), ``shape``.
    """
    x = _baseline_input(x)
    a_mu, beta = _per_sample_stats(x)
    a_mu, beta = frozen(a_mu), frozen(beta)
    q = (x - a_mu) / beta  # (B, ...)
    # BEGIN SOLUTION Task 2.1: sign STE
    window = np.abs(q) <= 1
    # END SOLUTION
    out = beta * discrete(q, _sign(q), window)
    return out, {"shape": x.shape, "a_mu": a_mu, "beta": beta, "window": window}


def baseline_act_sign_backward(dout, cache):
    """Backward of :func:`baseline_act_sign_forward`: ``dx = dout * 1{|(x - a_mu)/beta| <= 1}``."""
    return _check_dout(dout, cache) * cache["window"]


def baseline_act_round_forward(x):
    """Baseline type-A binarizer ``beta * clip(round(x / beta), 0, 1)`` (Eqs. 1, 2, 3).

    ``beta = mean|x|`` per sample (over all axes but the first), held constant; no translation.
    STE: ``dx = g * 1{0 <= x / beta <= 1}``.

    Args:
        x: (B, ...) float array, e.g. (B, N, F) after GELU.
    Returns:
        out: x's shape, values in {0, beta}.
        cache: dict with ``beta`` ((B, 1, ..., 1)), ``window`` (bool, x's shape), ``shape``.
    """
    x = _baseline_input(x)
    _, beta = _per_sample_stats(x)
    beta = frozen(beta)
    q = x / beta  # (B, ...)
    # BEGIN SOLUTION Task 2.2: type-A quantizer
    window = (q >= 0) & (q <= 1)
    out = beta * discrete(q, np.clip(np.round(q), 0, 1), window)
    # END SOLUTION
    return out, {"shape": x.shape, "beta": beta, "window": window}


def baseline_act_round_backward(dout, cache):
    """Backward of :func:`baseline_act_round_forward`: ``dx = dout * 1{0 <= x/beta <= 1}``."""
    return _check_dout(dout, cache) * cache["window"]
