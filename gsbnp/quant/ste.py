"""Alias of :mod:`gsbnp._ste` (the STE hooks live on the ground floor, below ``functional`` and
``quant``, because dropout's mask is frozen by the same hook). ``gsbnp.quant.ste`` keeps working."""

from .._ste import FrozenResidual, discrete, frozen, surrogate_active

__all__ = ["FrozenResidual", "discrete", "frozen", "surrogate_active"]
