"""Pure forward/backward pairs of the full-precision layers: the teaching core of gsbnp.

Every ``*_forward`` returns ``(out, cache)``; every ``*_backward(dout, cache)`` returns the gradients
of its inputs and parameters and never writes into ``dout``.
"""

from .activation import gelu_backward, gelu_forward, normal_cdf, softmax_backward, softmax_forward
from .attention import attention_backward, attention_forward, merge_heads, split_heads
from .dropout import drop_path_backward, drop_path_forward, dropout_backward, dropout_forward
from .fast import gelu_forward_fast
from .linear import linear_backward, linear_forward, patch_embed_backward, patch_embed_forward, patchify, unpatchify
from .loss import cross_entropy, log_softmax
from .normalization import LN_EPS, layernorm_backward, layernorm_forward

__all__ = [
    "linear_forward", "linear_backward", "layernorm_forward", "layernorm_backward", "LN_EPS",
    "gelu_forward", "gelu_backward", "gelu_forward_fast", "normal_cdf", "softmax_forward", "softmax_backward",
    "attention_forward", "attention_backward", "split_heads", "merge_heads",
    "dropout_forward", "dropout_backward", "drop_path_forward", "drop_path_backward",
    "patch_embed_forward", "patch_embed_backward", "patchify", "unpatchify", "cross_entropy",
    "log_softmax",
]
