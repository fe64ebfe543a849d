"""Matrix products of packed bit matrices with xor/and + popcount (Figs. 2, 3, 10; Eqs. 1, 35).

Every product here contracts the packed last axis (length Kb) of both operands, like ``x @ W.T``:

    out[..., m, n] = sum_k a[..., m, k] * b[..., n, k]

and is computed from whole 64-bit words with ``np.bitwise_count`` (results are exact integers):

- ±1 x ±1 (Fig. 3, xnor/popcount):        ``out = Kb - 2 * popcount(a xor b)`` (= 2 xnor-count - Kb)
- {0,1} x ±1 (Fig. 2, 0-valued vectors):  ``out = 2 * popcount(a and b) - popcount(a)``
- {0,1} x {0,1}:                           ``out = popcount(a and b)``
- {0,1} x ternary ``t = m*(2s - 1)`` (BiBERT bit planes, Fig. 10): positions where ``t = 0`` are
  skipped by the mask, ``out = 2 * popcount(a and m and s) - popcount(a and m)``.

Padding bits are 0 in every plane (``gsbnp.bitops.pack``), so they add nothing to any popcount above,
and the ±1 formula uses the true Kb.

On top of these: ``binary_linear_packed`` (the binarized linear layer, Eq. 1) and ``gsb_av_packed``
(the GSB attention output, Eq. 35, ``Y = sum_ij alpha_i beta_j (A_i ⊠ V_j)``, batched over every
leading axis and over all (i, j) pairs at once by broadcasting).

How the kernel is fast in NumPy: the outer product over (m, n) is done one 64-bit word at a time on
large tiles of rows (``TILE_ELEMS``): one broadcast xor/and of the activation word (along n) with the
weight word row (along m), its popcount, and an add; popcounts are accumulated in uint8 for up to three
words (3 * 64 <= 255) and only then widened. For rows of 128+ words NumPy's ufunc buffer is set no
longer than a row while the kernel runs (``_bufsize``): with the default buffer the broadcast xor
takes NumPy's buffered path at ~2.7x the cost. Threads take tiles one at a time; NumPy ufuncs release
the GIL, so two threads use two cores.

Legend: B batch, H heads, N tokens, Dh head dim, D embed (= Kb of a linear layer), F output features;
Ra, Rb rows of the two operands, Kb packed length, Wd = ceil(Kb / 64) words, G flattened leading axes
(docs/legend.md). Inside the kernels the local variables K, M, N, W, L stand for Kb, Ra, Rb, Wd, G.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from .._threads import default_threads, run_on_threads, threads_for  # noqa: F401 (default_threads: re-exported)
from .._validate import as_float_array, check_float, check_int
from ..quant.weights import weight_binarization_stats
from .pack import PackedBits, PackedTernary, pack_mask, pack_signs, pack_ternary

# Elements (rows x columns) of one output tile (170 rows of a 1536-wide output). Per word of K each
# tile element costs one broadcast xor/and (8 bytes written, ~0.23 ns on this project's 2-core
# reference machine), one popcount (~0.42 ns) and one uint8 add (~0.04 ns), so NumPy's per-call
# overhead (and, with two threads, the wait for the GIL between calls) only vanishes for large tiles:
# on the fc1 shape (M=4224, K=384, F=1536) with two threads, 32K-64K-element tiles took 1.5-2x the time
# of 256K-512K (bench/bench_packed_linear.py). A tile's scratch is ~12 bytes per element per thread
# (3 MiB here).
TILE_ELEMS = 1 << 18
# Below this many word-pairs (M * N * W) a product runs on the calling thread only.
PARALLEL_MIN = 1 << 21


def _acc_dtype(K: int):
    """Smallest unsigned dtype that holds a count up to K."""
    if K <= 255:
        return np.uint8
    if K <= 65535:
        return np.uint16
    return np.uint32


def _bufsize(N: int) -> int:
    """NumPy ufunc buffer size for broadcasting an (R, 1) word column against an (N,) word row.

    Measured with NumPy 2.4 on the reference machine: with the default buffer (8192 elements) this
    broadcast xor took ~0.6 ns per uint64 element for rows of 192 to 1536 words (NumPy's buffered
    iteration); with a buffer no longer than a row it runs row by row at ~0.23 ns (N = 192: ~0.37 ns;
    fc1's N = 1536: 2.7x faster). Rows of ~4K words were fast either way. Short rows (the attention
    products of small models: N = 18, 33) ran ~2x *slower* with a row-sized buffer, so rows under 128
    words keep the default. The size must be a multiple of 16 (NumPy's rule).
    """
    if N < 128:
        return 8192
    return min(8192, N // 16 * 16)


def _tiles(L: int, M: int, N: int, target: int) -> list[tuple[int, int, int, int]]:
    """Cover the (L, M) rows of the output with tiles (l0, l1, r0, r1) of about ``target`` elements."""
    if M * N >= target:  # big matrices: row blocks of one matrix at a time
        R = max(1, target // N)
        return [(l, l + 1, r, min(r + R, M)) for l in range(L) for r in range(0, M, R)]
    Lt = max(1, target // (M * N))  # small matrices (attention maps): several whole matrices
    return [(l, min(l + Lt, L), 0, M) for l in range(0, L, Lt)]


def _popcount_kernel(a3: np.ndarray, bT: np.ndarray, K: int, op, finish, threads: int | None) -> None:
    """Accumulate ``count[l, m, n] = sum_w popcount(op(a3[l, m, w], bT[l, w, n]))`` tile by tile.

    Args:
        a3: (L, M, W) uint64 rows of the left operand.
        bT: (Lb, W, N) uint64, the right operand with words before rows (Lb = L, or 1 = shared).
        K: packed length (bounds the counts, chooses the accumulator dtype).
        op: ``np.bitwise_xor`` or ``np.bitwise_and``.
        finish: ``finish(l0, l1, r0, r1, counts)`` called once per tile with counts (l1-l0, r1-r0, N)
            in a small unsigned dtype; it must copy what it needs (the buffer is reused).
        threads: worker threads (None: ``default_threads()``).
    """
    L, M, W = a3.shape
    N = bT.shape[-1]
    if L == 0 or M == 0 or N == 0:
        return  # empty output
    shared_b = bT.shape[0] == 1
    tiles = _tiles(L, M, N, TILE_ELEMS)
    n_thr = None if threads is None else check_int(threads, "threads", lo=1)
    # a thread per PARALLEL_MIN / 2 word-pairs at most (one thread below PARALLEL_MIN), and per tile
    n_thr = max(1, min(threads_for(L * M * N * W, PARALLEL_MIN // 2, n_thr), len(tiles)))
    acc_dt = _acc_dtype(K)

    lt = max(t[1] - t[0] for t in tiles)
    rt = max(t[3] - t[2] for t in tiles)
    queue = iter(tiles)
    lock = threading.Lock()

    def work():
        # Tiles are handed out one at a time (not in fixed halves): on a shared machine a thread that
        # gets descheduled simply takes fewer tiles instead of making the other one wait at the end.
        t_buf = np.empty((lt, rt, N), np.uint64)  # one word of op(a, b) for the whole tile
        p_buf = np.empty((lt, rt, N), np.uint8)  # its popcount
        g_buf = np.empty((lt, rt, N), np.uint8)  # sum of up to 3 popcounts (<= 192)
        a_buf = g_buf if W <= 3 else np.empty((lt, rt, N), acc_dt)  # total count (<= K)
        with np.errstate():  # restores NumPy's ufunc buffer size on exit (it is context-local)
            np.setbufsize(_bufsize(N))
            run(t_buf, p_buf, g_buf, a_buf)

    def run(t_buf, p_buf, g_buf, a_buf):
        while True:
            with lock:
                tile = next(queue, None)
            if tile is None:
                return
            l0, l1, r0, r1 = tile
            t = t_buf[:l1 - l0, :r1 - r0]  # (Lt, R, N)
            p = p_buf[:l1 - l0, :r1 - r0]
            g = g_buf[:l1 - l0, :r1 - r0]
            acc = a_buf[:l1 - l0, :r1 - r0]
            b_rows = bT[0:1] if shared_b else bT[l0:l1]  # (Lt or 1, W, N)
            for w in range(W):
                # (Lt, R, 1) op (Lt or 1, 1, N) -> (Lt, R, N): a's word broadcast along n, b's along m
                op(a3[l0:l1, r0:r1, w, None], b_rows[:, None, w, :], out=t)
                if w % 3 == 0:
                    np.bitwise_count(t, out=g)
                else:
                    np.bitwise_count(t, out=p)
                    np.add(g, p, out=g)
                if W > 3 and (w % 3 == 2 or w == W - 1):  # widen once per group of 3 words
                    if w < 3:
                        np.copyto(acc, g)
                    else:
                        np.add(acc, g, out=acc)
            finish(l0, l1, r0, r1, acc)

    run_on_threads(work, n_thr)  # the calling thread works too


def _check_operand(x, name: str, kinds: tuple, matrix: bool = True) -> None:
    if not isinstance(x, (PackedBits, PackedTernary)):
        raise TypeError(f"{name} must be a PackedBits or PackedTernary (see gsbnp.bitops.pack), "
                        f"got {type(x).__name__}")
    if x.kind not in kinds:
        raise ValueError(f"{name} must be packed as {' or '.join(kinds)}, got kind {x.kind!r}")
    if matrix and len(x.lead) < 1:
        raise ValueError(f"{name} must be a packed matrix (..., rows, K), got a single vector of "
                         f"shape {x.shape}")


def _check_pair(a, b) -> None:
    if a.K != b.K:
        raise ValueError(f"a and b must have the same packed length K, got a.K={a.K} and b.K={b.K}")


def _layout(a_words: np.ndarray, b_words: np.ndarray):
    """Bring (*la, M, W) and (*lb, N, W) words to the kernel layout.

    Returns:
        a3 (L, M', W), bT (Lb, W, N), and the output shape ``lead + (M, N)``. When b has no batch
        (all its leading sizes are 1, e.g. a weight matrix) a's leading axes are folded into its rows
        (M' = prod(la) * M, L = Lb = 1) so that one weight row serves every activation row.
    """
    W = a_words.shape[-1]
    M, N = a_words.shape[-2], b_words.shape[-2]
    la, lb = a_words.shape[:-2], b_words.shape[:-2]
    try:
        lead = np.broadcast_shapes(la, lb)
    except ValueError:
        raise ValueError(f"leading shapes of a {la} and b {lb} do not broadcast") from None
    if math.prod(lb) == 1:
        a3 = a_words.reshape(1, -1, W)  # (1, prod(la)*M, W)
        b3 = b_words.reshape(1, N, W)
    else:
        L = math.prod(lead)
        a3 = np.broadcast_to(a_words, lead + (M, W)).reshape(L, M, W)
        b3 = np.broadcast_to(b_words, lead + (N, W)).reshape(L, N, W)
    bT = np.ascontiguousarray(b3.transpose(0, 2, 1))  # (Lb, W, N): word rows contiguous in n
    return a3, bT, lead + (M, N)


def _int_product(a_words, b_words, K, op, post, threads, extra=None):
    """Run the kernel and write ``post(counts, extra_tile)`` into an int32 output (..., Ra, Rb)."""
    a3, bT, out_shape = _layout(a_words, b_words)
    out3 = np.empty(a3.shape[:2] + (bT.shape[-1],), np.int32)  # (L, M', N)
    ex3 = None if extra is None else extra(a3)  # (L, M') per-row term, laid out like a3

    def finish(l0, l1, r0, r1, counts):
        o = out3[l0:l1, r0:r1]  # (Lt, R, N)
        post(counts, o, None if ex3 is None else ex3[l0:l1, r0:r1, None])

    _popcount_kernel(a3, bT, K, op, finish, threads)
    return out3.reshape(out_shape)


def _row_popcount(a3: np.ndarray) -> np.ndarray:
    """(L, M, W) words -> (L, M) int32 number of set bits per row."""
    return np.bitwise_count(a3).sum(axis=-1, dtype=np.int32)


def matmul_sign_sign(a: PackedBits, b: PackedBits, *, threads: int | None = None) -> np.ndarray:
    """±1 x ±1 product by xnor/popcount (Fig. 3): ``out = K - 2 * popcount(a xor b)``.

    Args:
        a: sign-packed (..., Ra, Kb); b: sign-packed (..., Rb, Kb); leading axes broadcast.
        threads: worker threads (None: ``default_threads()``).
    Returns:
        out: (..., Ra, Rb) int32, equal to ``unpack(a) @ unpack(b).swapaxes(-1, -2)``.
    """
    _check_operand(a, "a", ("sign",))
    _check_operand(b, "b", ("sign",))
    _check_pair(a, b)
    K = a.K

    def post(counts, o, _):
        # BEGIN SOLUTION Task 4.1: popcount matmul
        np.multiply(counts, np.int32(-2), out=o)  # -2 * popcount(a xor b)
        np.add(o, K, out=o)  # + K (the true length: pad bits never differ)
        # END SOLUTION

    return _int_product(a.words, b.words, K, np.bitwise_xor, post, threads)


def matmul_mask_sign(a: PackedBits, b: PackedBits, *, threads: int | None = None) -> np.ndarray:
    """{0,1} x ±1 product: ``out = 2 * popcount(a and b) - popcount(a)`` (Fig. 2, 0-valued vectors).

    Args:
        a: mask-packed (..., Ra, Kb) with values {0,1}; b: sign-packed (..., Rb, Kb).
    Returns:
        out: (..., Ra, Rb) int32.
    """
    _check_operand(a, "a", ("mask",))
    _check_operand(b, "b", ("sign",))
    _check_pair(a, b)

    def post(counts, o, pa):
        # BEGIN SOLUTION Task 4.1: popcount matmul
        np.multiply(counts, np.int32(2), out=o)  # + (a and b): agreements on the positions a = 1
        np.subtract(o, pa, out=o)  # - (a and not b) = - (popcount(a) - popcount(a and b))
        # END SOLUTION

    return _int_product(a.words, b.words, a.K, np.bitwise_and, post, threads, extra=_row_popcount)


def matmul_mask_mask(a: PackedBits, b: PackedBits, *, threads: int | None = None) -> np.ndarray:
    """{0,1} x {0,1} product: ``out = popcount(a and b)``.

    Args:
        a: mask-packed (..., Ra, Kb); b: mask-packed (..., Rb, Kb).
    Returns:
        out: (..., Ra, Rb) int32.
    """
    _check_operand(a, "a", ("mask",))
    _check_operand(b, "b", ("mask",))
    _check_pair(a, b)

    def post(counts, o, _):
        np.copyto(o, counts)

    return _int_product(a.words, b.words, a.K, np.bitwise_and, post, threads)


def matmul_mask_ternary(a: PackedBits, b: PackedTernary, *, threads: int | None = None) -> np.ndarray:
    """{0,1} x {-1,0,+1} product with BiBERT bit planes (Fig. 10).

    ``t = m * (2s - 1)``: the positions where ``t = 0`` are skipped through the mask, so
    ``out = popcount(a & m & s) - popcount(a & m & ~s) = 2 * popcount(a & m & s) - popcount(a & m)``.

    Args:
        a: mask-packed (..., Ra, Kb), e.g. ``A_i`` (N queries x N keys).
        b: PackedTernary (..., Rb, Kb), e.g. ``V_j^T`` (Dh x N keys).
    Returns:
        out: (..., Ra, Rb) int32.
    """
    _check_operand(a, "a", ("mask",))
    _check_operand(b, "b", ("ternary",))
    _check_pair(a, b)
    m = b.mask.words
    # BEGIN SOLUTION Task 4.1: popcount matmul
    ms = np.bitwise_and(m, b.sign.words)  # (..., N, W) positions where t = +1
    pos = _int_product(a.words, ms, a.K, np.bitwise_and,
                       lambda c, o, _: np.multiply(c, np.int32(2), out=o), threads)
    nz = _int_product(a.words, np.broadcast_to(m, ms.shape), a.K, np.bitwise_and,
                      lambda c, o, _: np.copyto(o, c), threads)
    np.subtract(pos, nz, out=pos)
    # END SOLUTION
    return pos


def popcount_matmul(a, b, *, threads: int | None = None) -> np.ndarray:
    """Dispatch on the operand kinds: ``out[..., m, n] = sum_k a[..., m, k] * b[..., n, k]``.

    Supported (a, b) kinds: (sign, sign), (mask, sign), (sign, mask), (mask, mask), (mask, ternary),
    (ternary, mask). Returns (..., Ra, Rb) int32.
    """
    for x, name in ((a, "a"), (b, "b")):
        if not isinstance(x, (PackedBits, PackedTernary)):
            raise TypeError(f"{name} must be a PackedBits or PackedTernary, got {type(x).__name__}")
    kinds = (a.kind, b.kind)
    if kinds == ("sign", "sign"):
        return matmul_sign_sign(a, b, threads=threads)
    if kinds == ("mask", "sign"):
        return matmul_mask_sign(a, b, threads=threads)
    if kinds == ("sign", "mask"):
        return matmul_mask_sign(b, a, threads=threads).swapaxes(-1, -2)
    if kinds == ("mask", "mask"):
        return matmul_mask_mask(a, b, threads=threads)
    if kinds == ("mask", "ternary"):
        return matmul_mask_ternary(a, b, threads=threads)
    if kinds == ("ternary", "mask"):
        return matmul_mask_ternary(b, a, threads=threads).swapaxes(-1, -2)
    raise ValueError(f"unsupported operand kinds {kinds}; supported: (sign, sign), (mask, sign), "
                     "(sign, mask), (mask, mask), (mask, ternary), (ternary, mask)")


# ----------------------------------------------------------------------------------------------
# Binarized linear layer (Eq. 1)


def pack_binary_weight(W: np.ndarray) -> tuple[PackedBits, float]:
    """Binarize and pack a weight by the one weight rule of ``gsbnp.quant.weights``:
    ``W_b = alpha * sign(W - mean(W))`` (docs/conventions.md#weights).

    Args:
        W: (F, D) float weight (PyTorch layout, ``out = x @ W.T``).
    Returns:
        W_packed: sign-packed (F, D) bits of ``W - W.mean()`` (sign(0) = +1).
        alpha_w: ``mean(|W|)`` of the uncentred W (Python float).
    Storage: F * ceil(D/64) * 8 bytes, 1/32 of float32 when D is a multiple of 64.
    """
    W = as_float_array(W, "W", ndim=2)
    mu, alpha = weight_binarization_stats(W)
    return pack_signs(W - mu), float(alpha)


def pack_binary_input(x: np.ndarray, bias: np.ndarray | None = None) -> PackedBits:
    """Pack the type-B activation bits ``sign(x + bias)`` (Eq. 4; the scale alpha_x is applied later).

    Args:
        x: (..., D) float input of a binarized linear layer; bias: (D,) learnable shift or None.
    Returns:
        sign-packed (..., D).
    """
    x = as_float_array(x, "x")
    if bias is not None:
        bias = as_float_array(bias, "bias", ndim=1)
        if bias.shape[0] != x.shape[-1]:
            raise ValueError(f"bias must have shape ({x.shape[-1]},), got {bias.shape}")
        x = x + bias
    return pack_signs(x)


def _scale(value, name: str) -> float:
    if isinstance(value, np.ndarray):
        if value.ndim != 0 and value.size != 1:
            raise ValueError(f"{name} must be a scalar, got an array of shape {value.shape}")
        value = value.reshape(()).item()
    return check_float(value, name, lo=0.0, lo_open=True)


def binary_linear_packed(x: PackedBits, W: PackedBits, alpha_w, alpha_x, bias: np.ndarray | None = None,
                         *, dtype=np.float32, out: np.ndarray | None = None,
                         threads: int | None = None) -> np.ndarray:
    """Binarized linear layer on packed bits: ``out = alpha_x * alpha_w * (sign(x) . sign(W)^T) + bias``.

    The float simulation computes ``(alpha_x * sign(x)) @ (alpha_w * sign(W)).T + bias``: every product
    there is ``±c`` with ``c = alpha_x * alpha_w`` rounded to ``dtype``, so its exact value is
    ``c * dot`` with the integer ``dot = K - 2 * popcount(x xor W)`` (Fig. 3). This function returns
    ``c * dot`` correctly rounded, then adds the bias: the float simulation's result up to the
    rounding of its own summation (bit-identical when c is a power of two).

    Args:
        x: sign-packed (..., D) activation bits (a single (D,) vector too), e.g.
           ``pack_binary_input(x, b)``.
        W: sign-packed (F, D) weight bits, e.g. ``pack_binary_weight(W)[0]``.
        alpha_w, alpha_x: positive scalars (weight scale mean|W|, learnable activation scale).
        bias: (F,) float or None.
        dtype: float32 (default) or float64 output.
        out: optional preallocated (..., F) C-contiguous output of ``dtype``.
        threads: worker threads (None: ``default_threads()``).
    Returns:
        out: (..., F) of ``dtype``.
    """
    _check_operand(x, "x", ("sign",), matrix=False)
    _check_operand(W, "W", ("sign",))
    if len(W.lead) != 1:
        raise ValueError(f"W must be a packed (F, D) matrix, got shape {W.shape}")
    _check_pair(x, W)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    ft = dtype.type
    c = ft(ft(_scale(alpha_x, "alpha_x")) * ft(_scale(alpha_w, "alpha_w")))
    F, K = W.lead[0], x.K
    if bias is not None:
        bias = as_float_array(bias, "bias", ndim=1)
        if bias.shape != (F,):
            raise ValueError(f"bias must have shape ({F},), got {bias.shape}")
        bias = bias.astype(dtype, copy=False)
    out_shape = x.lead + (F,)
    if out is None:
        out = np.empty(out_shape, dtype)
    elif (not isinstance(out, np.ndarray) or out.shape != out_shape or out.dtype != dtype
          or not out.flags.c_contiguous):
        raise ValueError(f"out must be a C-contiguous {dtype} array of shape {out_shape}")
    a3 = x.words.reshape(1, -1, x.words.shape[-1])  # (1, M, W): every leading axis folded into rows
    bT = np.ascontiguousarray(W.words.T)[None]  # (1, W, F)
    out2 = out.reshape(-1, F)  # (M, F) view

    def finish(l0, l1, r0, r1, counts):
        o = out2[r0:r1]  # (R, F)
        cnt = counts[0]
        np.multiply(cnt, ft(-2), out=o)  # exact: small integers
        np.add(o, ft(K), out=o)  # dot = K - 2 * popcount(x xor W), exact
        if c != 1:
            np.multiply(o, c, out=o)  # one rounding: fl(c * dot)
        if bias is not None:
            np.add(o, bias, out=o)

    _popcount_kernel(a3, bT, K, np.bitwise_xor, finish, threads)
    return out


# ----------------------------------------------------------------------------------------------
# GSB attention output (Eq. 35)


def _scales(v, name: str) -> np.ndarray:
    v = as_float_array(np.asarray(v, dtype=np.float64) if isinstance(v, (list, tuple)) else v, name,
                       ndim=1)
    if v.shape[0] < 1:
        raise ValueError(f"{name} must have at least one entry")
    return v


def gsb_av_packed(A: PackedBits, V: PackedTernary, alphas, betas, *,
                  threads: int | None = None) -> np.ndarray:
    """GSB attention output by bitwise products, Eq. 35: ``Y = sum_ij alpha_i beta_j (A_i ⊠ V_j)``.

    All (k_a+1)(k_v+1) products and every batch/head run in one broadcast product (no Python loop).

    Args:
        A: mask-packed (k_a+1, ..., N, N): ``A_0 = A_bin`` and ``A_i = M_i`` (queries x keys, keys
           packed).
        V: PackedTernary (k_v+1, ..., Dh, N): ``V_j^T = (sign(V0) * M_j)^T`` (keys packed), M_0 = 1.
           ``...`` is e.g. (B, H) and must broadcast with A's.
        alphas: (k_a+1,) attention scales; betas: (k_v+1,) value scales.
    Returns:
        Y: (..., N, Dh) float64.
    """
    _check_operand(A, "A", ("mask",))
    _check_operand(V, "V", ("ternary",))
    alphas = _scales(alphas, "alphas")
    betas = _scales(betas, "betas")
    if len(A.lead) < 2 or A.lead[0] != alphas.shape[0]:
        raise ValueError(f"A must have shape (k_a+1={alphas.shape[0]}, ..., N, N), got {A.shape}")
    if len(V.lead) < 2 or V.lead[0] != betas.shape[0]:
        raise ValueError(f"V must have shape (k_v+1={betas.shape[0]}, ..., Dh, N), got {V.shape}")
    A2 = A.with_lead(A.lead[:1] + (1,) + A.lead[1:])  # (k_a+1, 1, ..., N, N)
    V2 = V.with_lead((1,) + V.lead)  # (1, k_v+1, ..., Dh, N)
    P = matmul_mask_ternary(A2, V2, threads=threads)  # (k_a+1, k_v+1, ..., N, Dh) exact ints
    coef = np.outer(alphas, betas)  # (k_a+1, k_v+1)
    return np.tensordot(coef, P, axes=([0, 1], [0, 1]))  # (..., N, Dh)


def gsb_av_bitwise(A_stack: np.ndarray, V_stack: np.ndarray, alphas, betas, *,
                   threads: int | None = None) -> np.ndarray:
    """Pack, then ``gsb_av_packed``: Eq. 35 from dense component stacks.

    Args:
        A_stack: (k_a+1, ..., N, N) {0,1}: ``[A_bin, M_1, ..., M_k_a]``.
        V_stack: (k_v+1, ..., N, Dh) {-1,0,1}: ``[sign(V0) * M_j for j = 0..k_v]``.
        alphas: (k_a+1,); betas: (k_v+1,).
    Returns:
        Y: (..., N, Dh) float64, equal to ``A_gsb @ V_gsb`` with
        ``A_gsb = sum_i alpha_i A_i`` and ``V_gsb = sum_j beta_j V_j`` (up to float rounding).
    """
    if not isinstance(V_stack, np.ndarray):
        raise TypeError(f"V_stack must be a numpy.ndarray, got {type(V_stack).__name__}")
    if V_stack.ndim < 3:
        raise ValueError(f"V_stack must have shape (k_v+1, ..., N, Dh), got {V_stack.shape}")
    return gsb_av_packed(pack_mask(A_stack), pack_ternary(V_stack.swapaxes(-1, -2)), alphas, betas,
                         threads=threads)
