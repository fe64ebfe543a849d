# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · The binary linear layer: Eqs. 1-2, bits, xnor and popcount
#
# Almost every parameter of a ViT sits in a linear layer. Binarizing one (Eq. 1) replaces the matrix
# product by a product of ±1 matrices scaled by two numbers, and a product of ±1 vectors can be
# computed with two bit operations: **xnor** and **popcount** (Fig. 3). This notebook builds that up
# with the real gsbnp code and measures the memory saved.

# %%
# Setup. GSBNP_TUTORIAL_SMALL=1 (set by the tests and CI) shrinks models, data and epochs so that the
# notebook runs in seconds; without it the numbers match the text.
import os, sys
SMALL = os.environ.get("GSBNP_TUTORIAL_SMALL", "0") not in ("", "0")
try:
    import gsbnp
except ImportError:  # a checkout without `pip install -e .`: use the package next to tutorials/
    sys.path.insert(0, os.path.abspath(".."))
    import gsbnp
import numpy as np
import matplotlib.pyplot as plt
plt.rcParams.update({"figure.dpi": 80})
print(f"gsbnp {gsbnp.__version__}, numpy {np.__version__}, small mode: {SMALL}")

# %% [markdown]
# ## Eqs. 1-2 (XNOR-Net)
#
# `Y = W A ≈ alpha * beta * (B(W_ts) ⊛ B(A_ts))` with `W_ts = (W - w_mu) / alpha`,
# `A_ts = (A - a_mu) / beta`, `alpha = mean|W|`, `beta = mean|A|` and `B = sign`. gsbnp stores a
# weight as `W (F, D)` and computes `out = x @ W.T` (the paper's `W A` transposed); the example below
# uses the sizes of Fig. 2 (n = 4 tokens, b = 4 input and d = 5 output features).

# %%
from gsbnp.quant import baseline_act_sign_forward, weight_binarize_forward
rng = np.random.default_rng(0)
W = rng.standard_normal((5, 4))       # (d, b) = (F, D)
x = rng.standard_normal((1, 4, 4))    # (batch 1, n tokens, b features)
W_b, wc = weight_binarize_forward(W)  # alpha * sign(W - w_mu)
x_b, xc = baseline_act_sign_forward(x)  # beta * sign(x - a_mu), statistics of the sample
print("alpha =", round(float(wc["alpha"]), 4), " beta =", round(float(xc["beta"].ravel()[0]), 4))
print("sign(W - w_mu) =\n", np.sign(W_b).astype(int))
Y, Y_b = x @ W.T, x_b @ W_b.T
print("Y =\n", Y[0].round(2), "\nbinarized =\n", Y_b[0].round(2))

# %% [markdown]
# One sample of 4 numbers is a poor average. With realistic widths the binarized product is a noisy
# but strongly correlated copy of the real one:

# %%
D = 128 if SMALL else 384
W = rng.standard_normal((4 * D, D)) / np.sqrt(D)
x = rng.standard_normal((1, 64, D))
Y = x @ W.T
Y_b = baseline_act_sign_forward(x)[0] @ weight_binarize_forward(W)[0].T
r = np.corrcoef(Y.ravel(), Y_b.ravel())[0, 1]
plt.figure(figsize=(4, 4)); plt.plot(Y.ravel()[::7], Y_b.ravel()[::7], ".", ms=2)
plt.xlabel("x W^T (real)"); plt.ylabel("binarized (Eq. 1)"); plt.title(f"D = {D}: correlation {r:.2f}")
plt.show()

# %% [markdown]
# ## Bits: `np.packbits`
#
# A ±1 entry needs one bit: 1 for +1, 0 for -1. `np.packbits` packs eight of them into a byte;
# gsbnp packs along the last axis (the one a product contracts) with `bitorder="little"` and views
# every 8 bytes as one `uint64` word, so bit j of word w is element 64w + j. Unused bits of the last
# word are 0 in every operand, so they never change a popcount.

# %%
from gsbnp.bitops import pack_signs, unpack_bits
s = np.array([1, -1, -1, 1, 1, 1, -1, 1, -1, 1])
bits = s >= 0
print("signs          ", s)
print("bits           ", bits.astype(int))
print("np.packbits    ", [f"{b:08b}" for b in np.packbits(bits, bitorder="little")],
      "(little: bit 0 first, printed last)")
p = pack_signs(s.astype(float))
print("gsbnp words    ", [f"{w:#x}" for w in p.words], f"K = {p.K}, {p.nbytes} bytes")
print("round trip     ", np.array_equal(unpack_bits(p), s))

# %% [markdown]
# ## xnor + popcount = dot product (Fig. 3)
#
# For ±1 vectors `a`, `w` of length K, each position contributes +1 where the bits agree and -1
# where they differ: `a · w = K - 2 * popcount(a xor w)` (xnor counts the agreements, xor the
# disagreements). `np.bitwise_count` is the popcount.

# %%
K = 200
a, w = rng.choice([-1.0, 1.0], K), rng.choice([-1.0, 1.0], K)
pa, pw = pack_signs(a), pack_signs(w)
disagree = int(np.bitwise_count(np.bitwise_xor(pa.words, pw.words)).sum())
print(f"a.w = {a @ w:.0f}    K - 2 popcount(a xor w) = {K - 2 * disagree}    ({pa.words.size} words)")

# %% [markdown]
# `gsbnp.bitops` does this for whole matrices (`matmul_sign_sign`), and for the 0-valued vectors of
# Fig. 2 (`matmul_mask_sign`: a {0,1} operand, e.g. a binarized attention row, against a ±1 one:
# `2 * popcount(a and w) - popcount(a)`). The integer results equal the float products exactly.

# %%
from gsbnp.bitops import matmul_mask_sign, matmul_sign_sign, pack_mask
A = rng.choice([-1.0, 1.0], (3, 6, 130)); B = rng.choice([-1.0, 1.0], (7, 130))
M = rng.integers(0, 2, (3, 6, 130)).astype(float)
print("sign x sign:", np.array_equal(matmul_sign_sign(pack_signs(A), pack_signs(B)), A @ B.T))
print("mask x sign:", np.array_equal(matmul_mask_sign(pack_mask(M), pack_signs(B)), M @ B.T))

# %% [markdown]
# ## The binarized linear layer on bits
#
# A GSB linear layer (docs/conventions.md, "Activations of linear layers") binarizes its input with a learnable type-B quantizer,
# `x_b = alpha_x sign(x + b_x)`, and its weight with Eqs. 1-2. `binary_linear_packed` computes the
# layer from bits: `alpha_x * alpha_w * (K - 2 popcount(x xor W)) + bias`. It matches the float
# simulation used in training.

# %%
from gsbnp.bitops import binary_linear_packed, pack_binary_input, pack_binary_weight
from gsbnp.nn import Linear
lin = Linear(96, 160, rng=rng)  # float32
lin.set_quant(weights=True, act_mode="learnable")
x = rng.standard_normal((2, 10, 96)).astype(np.float32)
sim = lin(x)  # float simulation (the first batch also initialises alpha_x = 2 mean|x|)
p = lin.params
W_bits, alpha_w = pack_binary_weight(p["W"])
x_bits = pack_binary_input(x, p["act_bias"])
packed = binary_linear_packed(x_bits, W_bits, alpha_w, float(p["act_alpha"]), p["b"])
print("max |packed - float simulation| =", np.abs(packed - sim).max(), " (float32 rounding)")
print(f"weight: {p['W'].nbytes} bytes as float32, {W_bits.nbytes} bytes packed")
assert np.allclose(packed, sim, atol=1e-4)

# %% [markdown]
# ## Memory
#
# A binarized weight costs one bit plus one 32-bit scale per layer. Patch embedding, the heads,
# LayerNorms, biases, tokens and the learnable binarization parameters stay 32-bit, so a whole model
# shrinks less than 32x. `model.summary()` counts it. With many tokens the GSB offset `Phi`
# (H, N, N) per block (Eq. 9) becomes a large part of what is left.

# %%
from gsbnp.models import DeiT, DeiTConfig
presets = ("digits", "tiny") if SMALL else ("digits", "tiny", "small32", "deit_small")
fp_mb, bin_mb = [], []
for name in presets:
    m = DeiT(DeiTConfig.preset(name), rng=np.random.default_rng(0)).set_precision("binary")
    text = m.summary(print_fn=None).splitlines()
    phi = sum(v.size for k, v in m.params.items() if k.endswith(".Phi"))
    print(f"{name:10s}", text[-3].replace("total parameters: ", ""), "|", text[-1],
          f"| of which Phi (H, N, N): {phi:,}")
    n_params = sum(v.size for v in m.params.values())
    bits = sum(v.size for k, v in m.params.items() if k in m.binarized_weight_names())
    fp_mb.append(n_params * 4 / 2**20)
    bin_mb.append(((n_params - bits) * 4 + bits / 8) / 2**20)
    del m
xs = np.arange(len(presets))
plt.bar(xs - 0.2, fp_mb, 0.4, label="32-bit"); plt.bar(xs + 0.2, bin_mb, 0.4, label="binarized")
plt.xticks(xs, presets); plt.yscale("log"); plt.ylabel("MiB"); plt.legend(); plt.show()

# %% [markdown]
# Notebook 06 counts operations (Table IX) and runs GSB's attention product on bits.
# **Assignment 4.1** asks you to write the popcount post-processing of `matmul_sign_sign` and
# `matmul_mask_sign`.
