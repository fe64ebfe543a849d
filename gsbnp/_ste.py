"""The two hooks every quantizer routes its discrete steps through, and the frozen-residual surrogate.

A straight-through estimator (STE) replaces the derivative of a discrete op (sign, round, clip, a
threshold mask) by 1 inside a window and 0 outside. Finite differences of the real function cannot
check that (they are 0 almost everywhere and blow up across a step), so gsbnp checks every STE against
the **frozen-residual surrogate** (docs/conventions.md#checking-an-ste): at the check point ``x0`` each
discrete op records its residual ``r = op(u0) - u0`` and its window; the surrogate then evaluates

    op(u) := u + r        inside the window recorded at x0
    op(u) := op(u0)       outside it

and every statistic the STE treats as constant (thresholds Theta, gamma, mean(W), a dropout mask) is
replayed from x0. The surrogate is smooth, equals the real function at ``x0``, and its finite-difference
derivative is exactly the straight-through gradient.

Quantizers call two functions:

- ``discrete(u, value, window)`` returns ``value`` (= op(u), already computed) in normal use; under a
  surrogate replay it returns ``where(window0, u + r0, value0)``.
- ``frozen(value)`` returns ``value`` in normal use and the value recorded at ``x0`` under replay.

In normal use both are one attribute test: no cost in the training hot path. Calls are matched by
their order, so a replayed forward must make the same calls as the recorded one (it does: the graph is
fixed by the frozen masks).
"""

from __future__ import annotations

import contextlib

import numpy as np

_active: "FrozenResidual | None" = None


class FrozenResidual:
    """Records discrete ops on one forward pass, then replays them as the smooth surrogate.

    Use::

        sur = FrozenResidual()
        with sur.record():
            out0 = f(x0)          # the real function; residuals, windows, statistics stored
        with sur.replay():
            out = f(x)            # the surrogate at x (every `with` restarts from the first record)
    """

    def __init__(self):
        self.records: list[tuple] = []
        self._recorded = False
        self._mode: str | None = None
        self._pos = 0

    @contextlib.contextmanager
    def _activate(self, mode: str):
        global _active
        if _active is not None:
            raise RuntimeError("a frozen-residual surrogate is already active; they do not nest")
        self._mode, self._pos, _active = mode, 0, self
        try:
            yield self
        finally:
            _active, self._mode = None, None
        if mode == "replay" and self._pos != len(self.records):
            raise RuntimeError("the replayed forward made fewer discrete calls than the recorded one")

    def record(self):
        """Context: evaluate the real function and store every discrete op's residual and window."""
        self.records = []
        self._recorded = True
        return self._activate("record")

    def replay(self):
        """Context: evaluate the surrogate, replaying the records in order."""
        if not self._recorded:
            raise RuntimeError("nothing recorded: run the function once under record() first")
        return self._activate("replay")

    def _next(self, kind: str):
        if self._pos >= len(self.records):
            raise RuntimeError("the replayed forward made more discrete calls than the recorded one")
        rec = self.records[self._pos]
        self._pos += 1
        if rec[0] != kind:
            raise RuntimeError("the replayed forward made different discrete calls than the recorded one")
        return rec


def discrete(u: np.ndarray, value: np.ndarray, window) -> np.ndarray:
    """A discrete op ``value = op(u)`` whose STE passes the gradient inside ``window``.

    ``window`` is a boolean array broadcastable to ``u`` (or ``True`` for an identity STE such as
    Eq. 6). Returns ``value`` unchanged unless a frozen-residual surrogate is active.
    """
    sur = _active
    if sur is None:
        return value
    if sur._mode == "record":
        window = np.broadcast_to(np.asarray(window, dtype=bool), np.shape(u)).copy()
        sur.records.append(("discrete", np.array(value, copy=True), np.asarray(value) - u, window))
        return value
    _, value0, r0, window0 = sur._next("discrete")
    return np.where(window0, u + r0, value0)


def frozen(value):
    """A quantity the STE holds constant (threshold, scale statistic, mask): replayed from x0."""
    sur = _active
    if sur is None:
        return value
    if sur._mode == "record":
        sur.records.append(("frozen", value.copy() if isinstance(value, np.ndarray) else value))
        return value
    return sur._next("frozen")[1]


def surrogate_active() -> bool:
    """True while a frozen-residual surrogate records or replays (layers use it to skip caching)."""
    return _active is not None
