"""xor/and + popcount products on packed bits (gsbnp.bitops.popcount): exact integer equality with
the float matmul of the same ±1 / {0,1} / ternary matrices, the binarized linear layer (Eq. 1) and the
bitwise GSB attention output (Eq. 35)."""

import numpy as np
import pytest

import gsbnp.bitops.popcount as pc
from gsbnp.bitops import (binary_linear_packed, gsb_av_bitwise, gsb_av_packed, matmul_mask_mask,
                          matmul_mask_sign, matmul_mask_ternary, matmul_sign_sign, pack_binary_input,
                          pack_binary_weight, pack_mask, pack_signs, pack_ternary, popcount_matmul)

ODD_K = (1, 7, 63, 65, 200)


def _pm1(rng, shape):
    return rng.choice(np.array([-1, 1]), size=shape)


def _mt(x):
    return np.swapaxes(x, -1, -2)


@pytest.fixture
def tiny_tiles(monkeypatch):
    """Force many odd-sized tiles and the threaded path on small inputs."""
    monkeypatch.setattr(pc, "TILE_ELEMS", 7)
    monkeypatch.setattr(pc, "PARALLEL_MIN", 0)


@pytest.mark.parametrize("K", ODD_K)
def test_sign_sign_equals_float_matmul(K):
    rng = np.random.default_rng(K)
    a, b = _pm1(rng, (2, 3, 5, K)), _pm1(rng, (4, K))
    out = matmul_sign_sign(pack_signs(a), pack_signs(b))  # shared b (a weight)
    assert out.dtype == np.int32 and out.shape == (2, 3, 5, 4)
    np.testing.assert_array_equal(out, a @ b.T)
    b3 = _pm1(rng, (3, 4, K))  # batched b broadcast against a's (2, 3)
    np.testing.assert_array_equal(matmul_sign_sign(pack_signs(a), pack_signs(b3)), a @ _mt(b3))


@pytest.mark.parametrize("K", ODD_K)
def test_mask_products_equal_float_matmul(K):
    rng = np.random.default_rng(10 + K)
    a = rng.integers(0, 2, (2, 5, K))
    s = _pm1(rng, (2, 4, K))
    m = rng.integers(0, 2, (2, 4, K))
    t = rng.integers(-1, 2, (2, 4, K))
    np.testing.assert_array_equal(matmul_mask_sign(pack_mask(a), pack_signs(s)), a @ _mt(s))
    np.testing.assert_array_equal(matmul_mask_mask(pack_mask(a), pack_mask(m)), a @ _mt(m))
    np.testing.assert_array_equal(matmul_mask_ternary(pack_mask(a), pack_ternary(t)), a @ _mt(t))


def test_dispatch_covers_every_supported_pair():
    rng = np.random.default_rng(1)
    K = 70
    a_s, b_s = _pm1(rng, (5, K)), _pm1(rng, (4, K))
    a_m, b_m = rng.integers(0, 2, (5, K)), rng.integers(0, 2, (4, K))
    a_t, b_t = rng.integers(-1, 2, (5, K)), rng.integers(-1, 2, (4, K))
    cases = [(pack_signs(a_s), pack_signs(b_s), a_s @ b_s.T),
             (pack_mask(a_m), pack_signs(b_s), a_m @ b_s.T),
             (pack_signs(a_s), pack_mask(b_m), a_s @ b_m.T),
             (pack_mask(a_m), pack_mask(b_m), a_m @ b_m.T),
             (pack_mask(a_m), pack_ternary(b_t), a_m @ b_t.T),
             (pack_ternary(a_t), pack_mask(b_m), a_t @ b_m.T)]
    for a, b, ref in cases:
        np.testing.assert_array_equal(popcount_matmul(a, b), ref)
    with pytest.raises(ValueError, match="unsupported"):
        popcount_matmul(pack_ternary(a_t), pack_ternary(b_t))


def test_tiled_threaded_paths_match(tiny_tiles):
    """Row tiles (one matrix) and batch tiles (many small matrices), 3 threads, odd sizes."""
    rng = np.random.default_rng(2)
    a, b = _pm1(rng, (13, 200)), _pm1(rng, (9, 200))  # W = 4 words: uint8 groups + uint16 total
    np.testing.assert_array_equal(matmul_sign_sign(pack_signs(a), pack_signs(b), threads=3), a @ b.T)
    a = rng.integers(0, 2, (3, 2, 5, 65))
    t = rng.integers(-1, 2, (3, 2, 4, 65))
    np.testing.assert_array_equal(matmul_mask_ternary(pack_mask(a), pack_ternary(t), threads=3),
                                  a @ _mt(t))


@pytest.mark.parametrize("K", (255, 256, 65600))
def test_counts_near_accumulator_limits(K):
    """All-agreeing / all-disagreeing rows reach the extreme counts 0 and K exactly."""
    a = np.ones((2, K))
    a[1] = -1
    out = matmul_sign_sign(pack_signs(a), pack_signs(np.ones((3, K))))
    np.testing.assert_array_equal(out, np.array([[K] * 3, [-K] * 3]))


def test_zero_padding_never_changes_results():
    """Appending zero columns (which pack to the same 0 bits as padding) leaves products unchanged."""
    rng = np.random.default_rng(3)
    K = 65
    a = rng.integers(0, 2, (4, K))
    t = rng.integers(-1, 2, (3, K))
    ref = matmul_mask_ternary(pack_mask(a), pack_ternary(t))
    a_pad = np.concatenate([a, np.zeros((4, 63), int)], axis=1)  # K = 128: no padding bits at all
    t_pad = np.concatenate([t, np.zeros((3, 63), int)], axis=1)
    np.testing.assert_array_equal(matmul_mask_ternary(pack_mask(a_pad), pack_ternary(t_pad)), ref)
    np.testing.assert_array_equal(ref, a @ t.T)


def test_bad_operands_raise():
    s7, s8 = pack_signs(np.ones((2, 7))), pack_signs(np.ones((2, 8)))
    with pytest.raises(ValueError, match="same packed length K"):
        matmul_sign_sign(s7, s8)
    with pytest.raises(TypeError, match="PackedBits"):
        matmul_sign_sign(np.ones((2, 7)), s7)
    with pytest.raises(ValueError, match="packed as sign"):
        matmul_sign_sign(pack_mask(np.ones((2, 7))), s7)
    with pytest.raises(ValueError, match="matrix"):
        matmul_sign_sign(pack_signs(np.ones(7)), s7)
    with pytest.raises(ValueError, match="broadcast"):
        matmul_sign_sign(pack_signs(np.ones((2, 3, 7))), pack_signs(np.ones((4, 3, 7))))


# ---------------------------------------------------------------- binarized linear layer (Eq. 1)

def _float_simulation(x, b_in, W, alpha_x, bias, dtype):
    """(alpha_x * sign(x + b)) @ (alpha_w * sign(W - mean W)).T + bias, as a float layer computes it."""
    ft = np.dtype(dtype).type
    x_b = ft(alpha_x) * np.where(x + b_in >= 0, 1, -1).astype(dtype)
    W_b = ft(np.abs(W).mean()) * np.where(W - W.mean() >= 0, 1, -1).astype(dtype)
    return x_b @ W_b.T + bias


def test_binary_linear_matches_float_simulation_bit_exact_for_power_of_two_scales():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 65)).astype(np.float32)  # (B, N, D)
    b_in = rng.standard_normal(65).astype(np.float32)
    W = rng.standard_normal((12, 65)).astype(np.float32)  # (F, D)
    bias = rng.standard_normal(12).astype(np.float32)
    W_p, _ = pack_binary_weight(W)
    alpha_w = 0.25  # power-of-two scales: every partial sum of the float product is exact
    out = binary_linear_packed(pack_binary_input(x, b_in), W_p, alpha_w, 0.5, bias)
    assert out.shape == (2, 5, 12) and out.dtype == np.float32
    sim = (np.float32(0.5) * np.where(x + b_in >= 0, 1, -1).astype(np.float32)) @ (
        np.float32(alpha_w) * np.where(W - W.mean() >= 0, 1, -1).astype(np.float32)).T + bias
    np.testing.assert_array_equal(out, sim)


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_binary_linear_general_scales(dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 200)).astype(dtype)
    W = rng.standard_normal((9, 200)).astype(dtype)
    bias = rng.standard_normal(9).astype(dtype)
    alpha_x = 0.37
    W_p, alpha_w = pack_binary_weight(W)
    assert alpha_w == pytest.approx(float(np.abs(W).mean()))
    out = np.empty((7, 9), dtype)
    res = binary_linear_packed(pack_binary_input(x), W_p, alpha_w, alpha_x, bias, dtype=dtype, out=out)
    assert res is out
    sim = _float_simulation(x, 0, W, alpha_x, bias, dtype)
    eps = np.finfo(dtype).eps
    assert np.max(np.abs(out - sim)) <= 8 * eps * np.max(np.abs(sim))
    dot = np.where(x >= 0, 1, -1) @ np.where(W - W.mean() >= 0, 1, -1).T  # exact integers
    c = dtype(dtype(alpha_x) * dtype(alpha_w))
    np.testing.assert_array_equal(out, (dot * c).astype(dtype) + bias)  # correctly rounded c * dot


def test_binary_linear_threaded_tiles_match(tiny_tiles):
    rng = np.random.default_rng(6)
    x, W = rng.standard_normal((11, 130)), rng.standard_normal((6, 130))
    W_p, alpha_w = pack_binary_weight(W)
    ref = binary_linear_packed(pack_binary_input(x), W_p, alpha_w, 1.0, threads=1, dtype=np.float64)
    got = binary_linear_packed(pack_binary_input(x), W_p, alpha_w, 1.0, threads=2, dtype=np.float64)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(ref / alpha_w, np.where(x >= 0, 1, -1) @
                                  np.where(W - W.mean() >= 0, 1, -1).T)


def test_pack_binary_weight_matches_quant_weight_binarizer():
    quant = pytest.importorskip("gsbnp.quant")
    if not hasattr(quant, "weight_binarize_forward"):
        pytest.skip("gsbnp.quant.weight_binarize_forward not written yet")
    W = np.random.default_rng(7).standard_normal((6, 70))
    W_b, _ = quant.weight_binarize_forward(W)
    W_p, alpha_w = pack_binary_weight(W)
    np.testing.assert_allclose(alpha_w * np.where(W - W.mean() >= 0, 1, -1), W_b, rtol=1e-12)
    x = np.eye(70) * 2 - 1  # ±1 rows, each with a single +1
    out = binary_linear_packed(pack_signs(x), W_p, alpha_w, 1.0, dtype=np.float64)
    np.testing.assert_allclose(out, x @ W_b.T, rtol=1e-12, atol=1e-12)


def test_binary_linear_bad_input():
    x_p = pack_signs(np.ones((3, 8)))
    W_p, _ = pack_binary_weight(np.random.default_rng(0).standard_normal((4, 8)))
    with pytest.raises(ValueError, match="alpha_x"):
        binary_linear_packed(x_p, W_p, 1.0, 0.0)
    with pytest.raises(TypeError, match="alpha_w"):
        binary_linear_packed(x_p, W_p, "1", 1.0)
    with pytest.raises(ValueError, match="same packed length K"):
        binary_linear_packed(pack_signs(np.ones((3, 9))), W_p, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"\(F, D\)"):
        binary_linear_packed(x_p, pack_signs(np.ones((2, 4, 8))), 1.0, 1.0)
    with pytest.raises(ValueError, match="bias"):
        binary_linear_packed(x_p, W_p, 1.0, 1.0, np.ones(5))
    with pytest.raises(TypeError, match="dtype"):
        binary_linear_packed(x_p, W_p, 1.0, 1.0, dtype=np.int32)
    with pytest.raises(ValueError, match="out"):
        binary_linear_packed(x_p, W_p, 1.0, 1.0, out=np.empty((4, 3), np.float32))
    with pytest.raises(TypeError, match="floating"):
        pack_binary_weight(np.ones((4, 8), int))
    with pytest.raises(ValueError, match="bias"):
        pack_binary_input(np.ones((3, 8)), np.ones(7))


# ---------------------------------------------------------------- GSB attention output (Eq. 35)

def _gsb_stacks(rng, k_a, k_v, B=2, H=2, N=5, Dh=4):
    """Random A_i in {0,1} and nested value masks M_0 = 1 ⊇ M_1 ⊇ ...: V_j = sign(V0) * M_j."""
    A = rng.integers(0, 2, (k_a + 1, B, H, N, N))
    V0 = rng.standard_normal((B, H, N, Dh))
    mags = np.abs(V0) / np.abs(V0).max()
    M = np.stack([mags > c for c in [-1.0] + [0.5 + 0.4 * j / max(k_v, 1) for j in range(1, k_v + 1)]])
    V = np.where(V0 >= 0, 1, -1) * M  # (k_v+1, B, H, N, Dh)
    return A, V


@pytest.mark.parametrize("k_a,k_v,N", [(2, 2, 5), (0, 0, 5), (1, 3, 70)])
def test_gsb_av_equals_superposed_float_product(k_a, k_v, N):
    rng = np.random.default_rng(8 + k_a + N)
    A, V = _gsb_stacks(rng, k_a, k_v, N=N)
    alphas = rng.uniform(0.1, 1.0, k_a + 1)
    betas = rng.uniform(0.1, 1.0, k_v + 1)
    Y = gsb_av_bitwise(A, V, alphas, betas)
    assert Y.shape == (2, 2, N, 4)
    A_gsb = np.tensordot(alphas, A.astype(float), axes=1)  # (B, H, N, N)
    V_gsb = np.tensordot(betas, V.astype(float), axes=1)  # (B, H, N, Dh)
    np.testing.assert_allclose(Y, A_gsb @ V_gsb, rtol=1e-12, atol=1e-12)
    pairs = sum(alphas[i] * betas[j] * (A[i] @ V[j]) for i in range(k_a + 1) for j in range(k_v + 1))
    np.testing.assert_allclose(Y, pairs, rtol=1e-12, atol=1e-12)


def test_gsb_av_shared_sign_plane_and_threads(tiny_tiles):
    rng = np.random.default_rng(9)
    A, V = _gsb_stacks(rng, 2, 2, N=9)
    alphas, betas = np.array([0.5, 0.2, 0.1]), np.array([0.3, 0.2, 0.05])
    ref = gsb_av_bitwise(A, V, alphas, betas, threads=1)
    Vt = np.swapaxes(V, -1, -2)  # (k_v+1, B, H, Dh, N)
    shared = pc.PackedTernary(pack_signs(np.where(Vt[:1] >= 0, 1.0, -1.0)), pack_mask(Vt != 0))
    got = gsb_av_packed(pack_mask(A), shared, alphas, betas, threads=3)
    np.testing.assert_allclose(got, ref, rtol=1e-13)


def test_gsb_av_bad_input():
    rng = np.random.default_rng(10)
    A, V = _gsb_stacks(rng, 2, 2)
    with pytest.raises(ValueError, match="k_a\\+1=2"):
        gsb_av_bitwise(A, V, np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="k_v\\+1=2"):
        gsb_av_bitwise(A, V, np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="same packed length K"):
        gsb_av_bitwise(A[..., :4], V, np.ones(3), np.ones(3))
    with pytest.raises(TypeError, match="V_stack"):
        gsb_av_bitwise(A, V.tolist(), np.ones(3), np.ones(3))


def test_empty_rows_single_vector_and_thread_argument():
    rng = np.random.default_rng(11)
    b = pack_signs(_pm1(rng, (4, 70)))
    assert matmul_sign_sign(pack_signs(np.ones((0, 70))), b).shape == (0, 4)
    x = _pm1(rng, 70).astype(float)
    W = rng.standard_normal((4, 70))
    W_p, alpha_w = pack_binary_weight(W)
    out = binary_linear_packed(pack_signs(x), W_p, alpha_w, 1.0, dtype=np.float64)  # one (D,) vector
    assert out.shape == (4,)
    np.testing.assert_allclose(out, alpha_w * (x @ np.where(W - W.mean() >= 0, 1, -1).T), rtol=1e-12)
    with pytest.raises(ValueError, match="threads"):
        matmul_sign_sign(pack_signs(np.ones((3, 70))), b, threads=0)


def test_kernel_restores_ufunc_buffer_size_and_reraises_worker_errors(tiny_tiles):
    """The kernel shrinks NumPy's ufunc buffer only while it runs, in every thread it uses."""
    rng = np.random.default_rng(12)
    a, b = _pm1(rng, (40, 130)), _pm1(rng, (600, 130))  # rows of 600 words: buffer 592
    before = np.getbufsize()
    np.testing.assert_array_equal(matmul_sign_sign(pack_signs(a), pack_signs(b), threads=2), a @ b.T)
    assert np.getbufsize() == before
    assert pc._bufsize(600) == 592 and pc._bufsize(127) == 8192 and pc._bufsize(10 ** 6) == 8192

    calls = []

    def finish(l0, l1, r0, r1, counts):
        calls.append((r0, np.getbufsize()))
        if r0 > 0:
            raise RuntimeError("boom in a tile")

    a3 = pack_signs(a).words[None]
    bT = np.ascontiguousarray(pack_signs(b).words.T)[None]
    with pytest.raises(RuntimeError, match="boom"):
        pc._popcount_kernel(a3, bT, 130, np.bitwise_xor, finish, threads=2)
    assert calls and all(bs == 592 for _, bs in calls)
    assert np.getbufsize() == before
