"""Bit-level kernels: packing, popcount matrix products, and the Table IX operation count.

Kernels only: this package sits below ``nn`` and knows nothing of layers or models. Packed model
files and packed inference (``export_packed``, ``load_packed``, ``PackedLinear``) live above the model,
in ``gsbnp.models.packed``.

- ``pack``: ±1 / {0,1} / ternary matrices <-> uint64 words (``np.packbits``, little bit order).
- ``popcount``: xor/and + ``np.bitwise_count`` products (Figs. 2, 3, 10), the binarized linear layer
  (Eq. 1) and the GSB attention output (Eq. 35) on packed bits.
- ``ops``: BOPs / FLOPs / OPs of a transformer block and a whole model (Section V-F, Table IX).

Legend: B batch, N tokens, D embed, H heads, Dh head dim, F output features; Kb packed (contracted)
length, Wd words per packed row (docs/legend.md).
"""

from .ops import COUNTING_RULE, count_block_ops, count_model_ops, format_ops_table
from .pack import (BITORDER, WORD_BITS, PackedBits, PackedTernary, n_words, pack_mask, pack_signs,
                   pack_ternary, unpack_bits, unpack_ternary)
from .popcount import (binary_linear_packed, default_threads, gsb_av_bitwise, gsb_av_packed,
                       matmul_mask_mask, matmul_mask_sign, matmul_mask_ternary, matmul_sign_sign,
                       pack_binary_input, pack_binary_weight, popcount_matmul)

__all__ = [
    "BITORDER", "WORD_BITS", "PackedBits", "PackedTernary", "n_words", "pack_signs", "pack_mask",
    "pack_ternary", "unpack_bits", "unpack_ternary",
    "matmul_sign_sign", "matmul_mask_sign", "matmul_mask_mask", "matmul_mask_ternary",
    "popcount_matmul", "binary_linear_packed", "pack_binary_weight", "pack_binary_input",
    "gsb_av_packed", "gsb_av_bitwise", "default_threads",
    "COUNTING_RULE", "count_block_ops", "count_model_ops", "format_ops_table",
]

