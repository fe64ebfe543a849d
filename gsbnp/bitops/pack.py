"""Bit packing: ±1 signs, {0,1} masks and {-1,0,+1} ternary planes as 64-bit words.

A binarized matrix needs one bit per entry. gsbnp packs along the **last axis** (the axis a matrix
product contracts over, Kb) with ``np.packbits(..., bitorder="little")`` and views every 8 bytes as one
little-endian ``uint64`` word, so that

    bit j of word w  <->  element k = 64*w + j   (j = 0 is the least significant bit).

The layout does not depend on the machine's byte order: bytes are read as ``'<u8'`` and converted to
native ``uint64``.

Bit meanings (``PackedBits.kind``):
- ``"sign"``: bit 1 <-> +1 (``x >= 0``, so ``sign(0) = +1`` as Eq. 4), bit 0 <-> -1.
- ``"mask"``: bit 1 <-> 1, bit 0 <-> 0 (a {0,1} matrix such as ``A_bin`` or ``M_i``).
- ternary values ``t in {-1, 0, +1}`` (``PackedTernary``, BiBERT-style bit planes, Fig. 10): a mask plane
  ``m = (t != 0)`` and a sign plane ``s = (t > 0)``, so ``t = m * (2s - 1)``.

**Padding rule.** When Kb is not a multiple of 64 the last word has ``64*n_words - Kb`` unused high bits.
They are always 0, in every plane of every operand (the constructors check it). The popcount products
of ``gsbnp.bitops.popcount`` are written so that 0-padding adds nothing: a xor of two 0 bits and an and
with a 0 bit are 0, and every formula that needs the length uses the true Kb, never ``64*n_words``.

Legend: Kb packed (contracted) length (the attribute ``PackedBits.K``), Wd = ceil(Kb / 64) words
(docs/legend.md). ``...`` stands for any leading axes (B, H, N, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORD_BITS = 64
BITORDER = "little"
KINDS = ("sign", "mask")


def n_words(K: int) -> int:
    """Number of 64-bit words that hold K bits: ``ceil(K / 64)``."""
    return -(-int(K) // WORD_BITS)


def _pad_mask(K: int) -> np.uint64:
    """Bits of the last word that lie beyond K (all must be 0); 0 when K is a multiple of 64."""
    r = K % WORD_BITS
    return np.uint64(0) if r == 0 else np.uint64(~((1 << r) - 1) & 0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True, eq=False)
class PackedBits:
    """One bit plane: ``words`` (..., W) uint64 holding K bits per row along the last axis.

    Attributes:
        words: (..., W) uint64, W = ceil(K / 64); bits beyond K are 0 (checked).
        K: true length of the packed axis (>= 1).
        kind: ``"sign"`` (bit 1 = +1, bit 0 = -1) or ``"mask"`` (bit 1 = 1, bit 0 = 0).
    """

    words: np.ndarray
    K: int
    kind: str

    def __post_init__(self):
        if not isinstance(self.words, np.ndarray):
            raise TypeError(f"words must be a numpy.ndarray of uint64, got {type(self.words).__name__}")
        if self.words.dtype != np.uint64:
            raise TypeError(f"words must have dtype uint64, got {self.words.dtype}")
        if isinstance(self.K, bool) or not isinstance(self.K, (int, np.integer)) or self.K < 1:
            raise ValueError(f"K must be a positive int, got {self.K!r}")
        object.__setattr__(self, "K", int(self.K))
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.words.ndim < 1 or self.words.shape[-1] != n_words(self.K):
            raise ValueError(f"words must have shape (..., {n_words(self.K)}) for K={self.K}, "
                             f"got {self.words.shape}")
        pad = _pad_mask(self.K)
        if pad and self.words.size and np.any(self.words[..., -1] & pad):
            raise ValueError(f"padding bits beyond K={self.K} must be 0 (see the padding rule)")

    @property
    def lead(self) -> tuple:
        """Leading shape (everything but the packed axis)."""
        return self.words.shape[:-1]

    @property
    def shape(self) -> tuple:
        """Shape of the unpacked array: ``lead + (K,)``."""
        return self.lead + (self.K,)

    @property
    def nbytes(self) -> int:
        """Storage of the packed words in bytes (K/8 per row when K is a multiple of 64)."""
        return int(self.words.nbytes)

    def with_lead(self, lead: tuple) -> "PackedBits":
        """Same bits with the leading axes reshaped (e.g. to insert broadcast axes of size 1)."""
        return PackedBits(self.words.reshape(tuple(lead) + (self.words.shape[-1],)), self.K, self.kind)


@dataclass(frozen=True, eq=False)
class PackedTernary:
    """A {-1, 0, +1} matrix as two planes: ``t = mask * (2 * sign - 1)`` (BiBERT bit planes, Fig. 10).

    Attributes:
        sign: PackedBits of kind "sign", bit 1 where t > 0.
        mask: PackedBits of kind "mask", bit 1 where t != 0. The leading shapes of the two planes must
            broadcast (e.g. one sign plane sign(V0) shared by all masks M_j).
    """

    sign: PackedBits
    mask: PackedBits

    def __post_init__(self):
        if not isinstance(self.sign, PackedBits) or self.sign.kind != "sign":
            raise TypeError("sign must be a PackedBits of kind 'sign'")
        if not isinstance(self.mask, PackedBits) or self.mask.kind != "mask":
            raise TypeError("mask must be a PackedBits of kind 'mask'")
        if self.sign.K != self.mask.K:
            raise ValueError(f"sign and mask planes must have the same K, got {self.sign.K} and "
                             f"{self.mask.K}")
        try:
            np.broadcast_shapes(self.sign.lead, self.mask.lead)
        except ValueError:
            raise ValueError(f"sign plane leading shape {self.sign.lead} does not broadcast with mask "
                             f"plane leading shape {self.mask.lead}") from None

    kind = "ternary"

    @property
    def K(self) -> int:
        return self.mask.K

    @property
    def lead(self) -> tuple:
        return np.broadcast_shapes(self.sign.lead, self.mask.lead)

    @property
    def shape(self) -> tuple:
        return self.lead + (self.K,)

    @property
    def nbytes(self) -> int:
        return self.sign.nbytes + self.mask.nbytes

    def with_lead(self, lead: tuple) -> "PackedTernary":
        """Both planes broadcast to ``lead`` (reshaped; planes are broadcast first if they differ)."""
        full = self.lead
        s = np.broadcast_to(self.sign.words, full + (self.sign.words.shape[-1],))
        m = np.broadcast_to(self.mask.words, full + (self.mask.words.shape[-1],))
        new = tuple(lead) + (s.shape[-1],)
        return PackedTernary(PackedBits(s.reshape(new), self.K, "sign"),
                             PackedBits(m.reshape(new), self.K, "mask"))


def _check_real(x, name: str) -> np.ndarray:
    """A real (float, int or bool) array with at least one axis and a non-empty last axis."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
            or x.dtype == np.bool_):
        raise TypeError(f"{name} must have a real dtype (float, int or bool), got {x.dtype}")
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"{name} must have at least one axis with a non-empty last axis (K >= 1), "
                         f"got shape {x.shape}")
    return x


def _pack_bool(bits: np.ndarray) -> np.ndarray:
    """(..., K) bool -> (..., W) native uint64 words, bit j of word w = element 64*w + j, pads 0."""
    K = bits.shape[-1]
    nbytes = 8 * n_words(K)
    packed = np.packbits(bits, axis=-1, bitorder=BITORDER)  # (..., ceil(K/8)) uint8, pad bits 0
    if packed.shape[-1] != nbytes:  # pad whole bytes with 0 up to a multiple of 8 bytes
        buf = np.zeros(packed.shape[:-1] + (nbytes,), dtype=np.uint8)
        buf[..., :packed.shape[-1]] = packed
        packed = buf
    packed = np.ascontiguousarray(packed)
    return packed.view("<u8").astype(np.uint64, copy=False)  # (..., W)


def _unpack_bool(p: PackedBits) -> np.ndarray:
    """(..., W) words -> (..., K) bool."""
    raw = np.ascontiguousarray(p.words.astype("<u8", copy=False)).view(np.uint8)  # (..., 8W)
    return np.unpackbits(raw, axis=-1, count=p.K, bitorder=BITORDER).astype(bool)


def pack_signs(x: np.ndarray) -> PackedBits:
    """Pack ``sign(x)`` (``+1`` for ``x >= 0``, ``-1`` otherwise; Eq. 4) along the last axis.

    Args:
        x: (..., K) float or int array (NaN refused: its sign is undefined).
    Returns:
        PackedBits of kind "sign": words (..., ceil(K/64)) uint64, bit 1 = +1.
    """
    x = _check_real(x, "x")
    if x.dtype == np.bool_:
        raise TypeError("x must be a float or int array: the sign of a bool array is ambiguous "
                        "(use pack_mask for {0,1} data)")
    if np.issubdtype(x.dtype, np.floating) and np.isnan(x).any():
        raise ValueError("x contains NaN (its sign is undefined)")
    return PackedBits(_pack_bool(x >= 0), x.shape[-1], "sign")


def pack_mask(m: np.ndarray) -> PackedBits:
    """Pack a {0,1} (or bool) matrix along the last axis.

    Args:
        m: (..., K) bool array, or a real array whose values are all 0 or 1.
    Returns:
        PackedBits of kind "mask": words (..., ceil(K/64)) uint64, bit 1 = 1.
    """
    m = _check_real(m, "m")
    if m.dtype != np.bool_:
        if not np.isin(m, (0, 1)).all():
            raise ValueError("m must contain only 0 and 1 (a {0,1} mask)")
        m = m != 0
    return PackedBits(_pack_bool(m), m.shape[-1], "mask")


def pack_ternary(t: np.ndarray) -> PackedTernary:
    """Pack a {-1, 0, +1} matrix as a sign plane (t > 0) and a mask plane (t != 0).

    Args:
        t: (..., K) real array with values in {-1, 0, 1}, e.g. ``V_j = sign(V0) * M_j`` (Eq. 29)
           transposed so that the contracted token axis is last.
    Returns:
        PackedTernary with planes of leading shape ``t.shape[:-1]``.
    """
    t = _check_real(t, "t")
    if t.dtype == np.bool_ or not np.isin(t, (-1, 0, 1)).all():
        raise ValueError("t must be a numeric array with values in {-1, 0, 1}")
    K = t.shape[-1]
    return PackedTernary(PackedBits(_pack_bool(t > 0), K, "sign"),
                         PackedBits(_pack_bool(t != 0), K, "mask"))


def unpack_bits(p: PackedBits, dtype=np.float32) -> np.ndarray:
    """Inverse of ``pack_signs`` / ``pack_mask``.

    Args:
        p: PackedBits with words (..., W).
        dtype: output dtype (default float32).
    Returns:
        (..., K) array: ±1 for kind "sign", {0,1} for kind "mask".
    """
    if not isinstance(p, PackedBits):
        raise TypeError(f"p must be a PackedBits, got {type(p).__name__}")
    bits = _unpack_bool(p)  # (..., K)
    if p.kind == "sign":
        return np.where(bits, 1, -1).astype(dtype)
    return bits.astype(dtype)


def unpack_ternary(p: PackedTernary, dtype=np.float32) -> np.ndarray:
    """Inverse of ``pack_ternary``: (..., K) array with values ``mask * (2 * sign - 1)``."""
    if not isinstance(p, PackedTernary):
        raise TypeError(f"p must be a PackedTernary, got {type(p).__name__}")
    s = _unpack_bool(p.sign)
    m = _unpack_bool(p.mask)
    return (m * np.where(s, 1, -1)).astype(dtype)
