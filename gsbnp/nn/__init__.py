"""Modules composed from ``gsbnp.functional`` and ``gsbnp.quant``: thin stateful wrappers that keep
caches and fill ``grads``."""

from .attention import MHSA, Block, DropPath
from .layers import GELU, MLP, SCALE_FLOOR, Dropout, LayerNorm, Linear, PatchEmbed
from .module import Module, atomic_write_bytes, load_npz, save_npz

__all__ = ["Module", "Linear", "LayerNorm", "GELU", "MLP", "MHSA", "Block", "PatchEmbed", "Dropout",
           "DropPath", "SCALE_FLOOR", "save_npz", "load_npz", "atomic_write_bytes"]
