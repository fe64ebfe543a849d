"""Input validation shared by every public entry point.

Each helper raises ``gsbnp.errors.UsageTypeError`` (a ``TypeError``: wrong kind of object or dtype) or
``gsbnp.errors.UsageError`` (a ``ValueError``: wrong shape, range or value) with a message that names
the argument and says what was expected, so that bad input fails at the public boundary instead of as
a NaN or a broadcasting error deep inside a layer. This module imports nothing from gsbnp but
``gsbnp.errors``.
"""

from __future__ import annotations

import numbers

import numpy as np

from .errors import UsageError, UsageTypeError


def as_float_array(x, name: str, *, ndim: int | tuple[int, ...] | None = None,
                   finite: bool = True) -> np.ndarray:
    """Return ``x`` as a floating NumPy array, checking dtype, rank and finiteness.

    Integer, boolean and object arrays are refused (``UsageTypeError``): silently casting uint8 images
    or integer labels to float hides real mistakes.
    """
    if not isinstance(x, np.ndarray):
        raise UsageTypeError(f"{name} must be a numpy.ndarray of floats, got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise UsageTypeError(f"{name} must have a floating dtype (float32 or float64), got {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise UsageError(f"{name} must have rank {want}, got shape {x.shape}")
    # one sum is far cheaper than isfinite(x).all() and is non-finite whenever x holds a NaN or an inf;
    # only when it is (or a huge finite sum overflowed) is every entry looked at
    if finite and not np.isfinite(np.sum(x)) and not np.isfinite(x).all():
        raise UsageError(f"{name} contains NaN or inf")
    return x


def check_shape(x: np.ndarray, shape: tuple, name: str) -> None:
    """Require ``x.shape == shape``; ``None`` in ``shape`` matches any size."""
    if x.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, x.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise UsageError(f"{name} must have shape {want}, got {x.shape}")


def check_choice(value, choices, name: str):
    """Require ``value`` to be one of ``choices`` (option strings)."""
    if value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_int(value, name: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """Require an integer (not bool) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UsageTypeError(f"{name} must be an int, got {type(value).__name__}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else lo
        hi_s = "inf" if hi is None else hi
        raise UsageError(f"{name} must be in [{lo_s}, {hi_s}], got {value}")
    return int(value)


def check_float(value, name: str, *, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False) -> float:
    """Require a finite real number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UsageTypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise UsageError(f"{name} must be finite, got {value}")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise UsageError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value}")
    if hi is not None and value > hi:
        raise UsageError(f"{name} must be <= {hi}, got {value}")
    return value
