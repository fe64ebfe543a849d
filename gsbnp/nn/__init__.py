"""Modules composed from ``gsbnp.functional`` and ``gsbnp.quant``: thin stateful wrappers that keep
caches and fill ``grads``."""

from ..quant.options import SCALE_FLOOR  # noqa: F401  (documented alias: gsbnp.nn.SCALE_FLOOR)
from .attention import MHSA, Block, DropPath
from .layers import GELU, MLP, Dropout, LayerNorm, Linear, PatchEmbed
from .module import Module, atomic_write_bytes, load_npz, save_npz

__all__ = ["Module", "Linear", "LayerNorm", "GELU", "MLP", "MHSA", "Block", "PatchEmbed", "Dropout",
           "DropPath", "SCALE_FLOOR", "save_npz", "load_npz", "atomic_write_bytes"]
