"""Packing of ±1 / {0,1} / ternary matrices into uint64 words (gsbnp.bitops.pack)."""

import numpy as np
import pytest

from gsbnp.bitops import (PackedBits, PackedTernary, n_words, pack_mask, pack_signs, pack_ternary,
                          unpack_bits, unpack_ternary)

ODD_K = (1, 7, 63, 64, 65, 200)


def _sign(x):
    return np.where(x >= 0, 1, -1)


@pytest.mark.parametrize("K", ODD_K)
def test_sign_round_trip_with_leading_axes(K):
    rng = np.random.default_rng(K)
    x = rng.standard_normal((2, 3, K))
    x[0, 0, 0] = 0.0  # sign(0) = +1 (Eq. 4)
    p = pack_signs(x)
    assert p.words.dtype == np.uint64
    assert p.words.shape == (2, 3, n_words(K))
    assert p.shape == x.shape and p.lead == (2, 3) and p.kind == "sign"
    back = unpack_bits(p, dtype=np.float64)
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, _sign(x))
    assert back[0, 0, 0] == 1


@pytest.mark.parametrize("K", ODD_K)
def test_mask_and_ternary_round_trip(K):
    rng = np.random.default_rng(100 + K)
    m = rng.integers(0, 2, (3, K))
    np.testing.assert_array_equal(unpack_bits(pack_mask(m)), m)
    np.testing.assert_array_equal(unpack_bits(pack_mask(m.astype(bool))), m)
    np.testing.assert_array_equal(unpack_bits(pack_mask(m.astype(np.float32))), m)
    t = rng.integers(-1, 2, (2, 4, K))
    pt = pack_ternary(t)
    assert pt.kind == "ternary" and pt.shape == t.shape
    np.testing.assert_array_equal(unpack_ternary(pt), t)


def test_bit_order_is_little_within_words():
    """Element k lives in bit k % 64 of word k // 64 (documented layout)."""
    K = 130
    for k in (0, 1, 63, 64, 100, 129):
        v = np.zeros(K)
        v[k] = 1
        w = pack_mask(v).words
        expect = np.zeros(3, np.uint64)
        expect[k // 64] = np.uint64(1) << np.uint64(k % 64)
        np.testing.assert_array_equal(w, expect)


@pytest.mark.parametrize("K", (1, 7, 63, 65, 200))
def test_padding_bits_are_zero_in_every_plane(K):
    rng = np.random.default_rng(K)
    x = np.abs(rng.standard_normal((4, K)))  # all +1: every valid sign bit is 1
    t = np.ones((4, K))
    last_bits = K % 64
    for words in (pack_signs(x).words, pack_mask(np.ones((4, K))).words, pack_ternary(t).sign.words,
                  pack_ternary(t).mask.words):
        top = words[:, -1] >> np.uint64(last_bits)  # bits beyond K
        assert not top.any()
        assert (np.bitwise_count(words).sum(axis=-1) == K).all()


def test_packed_weight_is_32x_smaller_than_float32():
    W = np.random.default_rng(0).standard_normal((12, 192)).astype(np.float32)
    p = pack_signs(W)
    assert W.nbytes == 32 * p.nbytes
    assert p.nbytes == 12 * 192 // 8


def test_packedbits_validation():
    good = pack_signs(np.ones((2, 70)))
    with pytest.raises(TypeError, match="uint64"):
        PackedBits(good.words.astype(np.int64), 70, "sign")
    with pytest.raises(TypeError, match="words"):
        PackedBits([1, 2], 70, "sign")
    with pytest.raises(ValueError, match="shape"):
        PackedBits(good.words, 200, "sign")
    with pytest.raises(ValueError, match="K"):
        PackedBits(good.words, 0, "sign")
    with pytest.raises(ValueError, match="kind"):
        PackedBits(good.words, 70, "xnor")
    bad = good.words.copy()
    bad[0, -1] |= np.uint64(1) << np.uint64(63)  # a padding bit set
    with pytest.raises(ValueError, match="padding"):
        PackedBits(bad, 70, "sign")


def test_ternary_container_validation():
    s = pack_signs(np.ones((2, 9)))
    m = pack_mask(np.ones((2, 9)))
    with pytest.raises(TypeError, match="sign"):
        PackedTernary(m, m)
    with pytest.raises(TypeError, match="mask"):
        PackedTernary(s, s)
    with pytest.raises(ValueError, match="same K"):
        PackedTernary(s, pack_mask(np.ones((2, 10))))
    with pytest.raises(ValueError, match="broadcast"):
        PackedTernary(s, pack_mask(np.ones((3, 9))))
    shared = PackedTernary(pack_signs(np.ones((1, 2, 9))), pack_mask(np.ones((3, 2, 9))))
    assert shared.lead == (3, 2)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        pack_signs([1.0, -1.0])
    with pytest.raises(TypeError, match="ambiguous"):
        pack_signs(np.array([True, False]))
    with pytest.raises(TypeError, match="real dtype"):
        pack_signs(np.array([1 + 1j]))
    with pytest.raises(ValueError, match="NaN"):
        pack_signs(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="K >= 1"):
        pack_signs(np.zeros((3, 0)))
    with pytest.raises(ValueError, match=r"\{0,1\}"):
        pack_mask(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\{-1, 0, 1\}"):
        pack_ternary(np.array([0.5, 1.0]))
    with pytest.raises(TypeError, match="PackedBits"):
        unpack_bits(np.zeros(3, np.uint64))
    with pytest.raises(TypeError, match="PackedTernary"):
        unpack_ternary(pack_signs(np.ones(3)))
