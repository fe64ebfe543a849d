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
# Almost every parameter of a ViT sits in a linear layer. Binarizing one (Eq. 1, Fig. 2) replaces the
# matrix product by a product of ±1 matrices times two scales, and a product of ±1 vectors can be
# computed with two bit operations, **xnor** and **popcount** (Fig. 3). This notebook builds that up
# with the real gsbnp code, on the trained models bundled with it:
#
# 1. Eqs. 1-2 on Fig. 2's toy sizes, then on a trained layer of `digits-baseline`;
# 2. bit packing with `np.packbits`, and xnor/popcount as a dot product (Fig. 3);
# 3. a trained GSB layer of `digits-gsb` computed from bits, for a ±1 input (`fc1`) and for a {0, 1}
#    input (`fc2`, the "0-valued vectors" of Fig. 2);
# 4. what binarization saves in memory, for the bundled model and for DeiT-Small.
#
# Every number the text mentions is printed by the cell above it and checked there with `assert`.

# %%
import re
import sys

try:
    import gsbnp
except ImportError:  # a checkout without `pip install -e .`: use the package next to tutorials/
    sys.path.insert(0, "..")
    import gsbnp
import matplotlib.pyplot as plt
import numpy as np

print(f"gsbnp {gsbnp.__version__}, numpy {np.__version__}")

# %% [markdown]
# ## Eqs. 1-2 (XNOR-Net) on Fig. 2's sizes
#
# `Y = W * A ≈ alpha beta (B(W_ts) ⊛ B(A_ts))` with `W_ts = (W - w_mu) / alpha`,
# `A_ts = (A - a_mu) / beta`, `alpha = mean|W|`, `beta = mean|A|` (Eq. 2) and `B = sign` for these
# type-B inputs. The paper writes activations as columns (`A` is features x tokens); gsbnp stores a
# weight as `W (F, D)` and a layer input as rows of tokens `x (..., N, D)`, so it computes
# `out = x @ W.T`, the paper's product transposed. Fig. 2's example has n = 4 tokens, b = 4 input
# and d = 5 output features. `weight_binarize_forward` and `baseline_act_sign_forward` are the
# library's Eq. 1-2 binarizers (the baseline model's; statistics of the one sample).

# %%
from gsbnp.quant import baseline_act_sign_forward, weight_binarize_forward

rng = np.random.default_rng(0)
W = rng.standard_normal((5, 4))  # (d, b) = (F, D): 5 outputs, 4 inputs
x = rng.standard_normal((1, 4, 4))  # (batch 1, n = 4 tokens, b = 4 features)
W_b, wc = weight_binarize_forward(W)  # alpha * sign(W - w_mu)
x_b, xc = baseline_act_sign_forward(x)  # beta * sign(x - a_mu)
alpha, beta = float(wc["alpha"]), float(xc["beta"].ravel()[0])
print(f"alpha = mean|W| = {alpha:.4f}   beta = mean|x| = {beta:.4f}")
Y, Y_b = x[0] @ W.T, x_b[0] @ W_b.T  # (n, d)
print("Y = x W^T =\n", Y.round(2), "\nalpha beta sign(x_ts) sign(W_ts)^T =\n", Y_b.round(2))
assert np.allclose(Y_b, alpha * beta * (np.sign(x_b[0]) @ np.sign(W_b).T))

fig, ax = plt.subplots(1, 4, figsize=(15, 3.2))
panels = ((W, "W (d x b)", "input feature b", "output feature d"),
          (np.sign(W_b), "B(W_ts) = sign(W - w_mu)", "input feature b", "output feature d"),
          (x[0], "x (n x b; the paper's A transposed)", "input feature b", "token n"),
          (np.sign(x_b[0]), "B(x_ts) = sign(x - a_mu)", "input feature b", "token n"))
for a, (M, title, xl, yl) in zip(ax, panels):
    im = a.matshow(M, cmap="coolwarm", vmin=-2, vmax=2)
    a.set(title=title, xlabel=xl, ylabel=yl)
    a.xaxis.set_ticks_position("bottom")
    fig.colorbar(im, ax=a, shrink=0.8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Eqs. 1-2 on a trained layer
#
# Four numbers per row are a poor average. `digits-baseline` is the paper's baseline (Section III)
# trained on the bundled digits: each of its block linear layers binarizes its input with Eq. 2's
# per-sample statistics and its weight with `mean|W|`. We record the input and output of `fc1` in its
# first block on the test images (a temporary wrapper around the layer's `forward`, removed
# afterwards), recompute the layer with the library's binarizers and compare with what a
# full-precision product of the same real numbers would give.

# %%
from gsbnp import pretrained
from gsbnp.data import load_digits
from gsbnp.train.augment import eval_transform


def record(layers, model, x):
    """Run ``model.forward(x)``; return {name: (input, output)} of each layer in ``layers`` (a dict)."""
    seen = {}
    try:
        for name, layer in layers.items():
            def recording(h, _name=name, _forward=layer.forward):
                out = _forward(h)
                seen[_name] = (h.copy(), out.copy())
                return out
            layer.forward = recording  # an instance attribute shadows the class's forward
        logits = model.forward(x)
    finally:
        for layer in layers.values():
            layer.__dict__.pop("forward", None)
    return seen, logits


data = load_digits()
base = pretrained.load("digits-baseline")
meta_base = pretrained.info("digits-baseline")
x_test = eval_transform(data.x_test, meta_base["mean"], meta_base["std"])  # (M, 1, 8, 8)
seen, logits = record({"fc1": base.blocks[0].mlp.fc1}, base, x_test)
assert np.mean(logits.argmax(1) == data.y_test) == meta_base["test_acc"], "recording changed nothing"
h, out = seen["fc1"]  # (M, N, D) input, (M, N, F) output
lin = base.blocks[0].mlp.fc1.params
W_b, wc = weight_binarize_forward(lin["W"])
h_b, hc = baseline_act_sign_forward(h)  # beta and a_mu per sample (M, 1, 1)
ours = h_b @ W_b.T + lin["b"]  # Eq. 1, plus the layer's full-precision bias
real = h @ lin["W"].T + lin["b"]  # the same real numbers, not binarized
r = np.corrcoef(real.ravel(), ours.ravel())[0, 1]
rel = np.linalg.norm(ours - real) / np.linalg.norm(real)
print(f"digits-baseline block 0 fc1: input {h.shape}, weight {lin['W'].shape}, "
      f"test accuracy {meta_base['test_acc']:.3f}")
print(f"max |Eq. 1 recomputed - the layer's own output| = {np.abs(ours - out).max():.1e}")
print(f"binarized vs real product: correlation {r:.3f}, relative error {rel:.2f}")
assert np.allclose(ours, out, atol=1e-4), "the layer computes Eq. 1"
assert r > 0.5, "the binarized product should be a noisy but clearly correlated copy of the real one"

fig, ax = plt.subplots(figsize=(5, 4.5))
ax.plot(real.ravel()[::9], ours.ravel()[::9], ".", ms=2, alpha=0.5, label="outputs (every 9th)")
lim = np.abs(real).max()
ax.plot([-lim, lim], [-lim, lim], "k:", lw=1, label="y = x")
ax.set(title=f"block 0 fc1 of digits-baseline: correlation {r:.2f}",
       xlabel="x W^T + b (real)", ylabel="alpha beta (B(x_ts) ⊛ B(W_ts)) + b (Eq. 1)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The layer's own output equals Eq. 1 recomputed (the cell prints the largest difference). The
# binarized product follows the real one with the printed correlation; the spread around the
# diagonal is the binarization error the network was trained to live with.
#
# ## Bits: `np.packbits`
#
# A ±1 entry needs one bit: 1 for +1, 0 for -1. `np.packbits` packs eight of them into a byte.
# gsbnp packs along the last axis (the one a product contracts) with `bitorder="little"` and views
# every 8 bytes as one `uint64` word, so bit j of word w is element 64w + j. Unused bits of the last
# word are 0 in every operand, so they never change a count.

# %%
from gsbnp.bitops import pack_signs, unpack_bits

s = np.array([1, -1, -1, 1, 1, 1, -1, 1, -1, 1])
bits = s >= 0
packed_bytes = np.packbits(bits, bitorder="little")
p = pack_signs(s.astype(float))
print("signs          ", s.tolist())
print("bits           ", bits.astype(int).tolist())
print("np.packbits    ", [f"{b:08b}" for b in packed_bytes], "(little: element 0 is the last printed bit)")
print("gsbnp words    ", [f"{w:#x}" for w in p.words], f"K = {p.K}, {p.words.nbytes} bytes")
assert np.array_equal(unpack_bits(p), s), "packing round-trips"
assert int(p.words[0]) == int(packed_bytes[0]) + 256 * int(packed_bytes[1]), "the word is the bytes, little-endian"

# %% [markdown]
# ## xnor + popcount = dot product (Fig. 3)
#
# For two ±1 vectors, each position contributes +1 to the dot product where the signs agree and -1
# where they differ. In bits, "agree" is **xnor** (1 where the bits are equal), and counting the 1s
# of a word is **popcount**. So a dot product of length K costs K/64 xnor and popcount instructions
# instead of K multiply-adds. Below, two 16-element vectors: their bits and the xnor of the bits,
# and the library's popcount product `matmul_sign_sign` against the float dot product.

# %%
from gsbnp.bitops import matmul_sign_sign

a = rng.choice([-1.0, 1.0], 16)
w = rng.choice([-1.0, 1.0], 16)
xnor = (a >= 0) == (w >= 0)  # 1 where the bits agree
agree, differ = int(xnor.sum()), int((~xnor).sum())
dot_bits = int(matmul_sign_sign(pack_signs(a[None]), pack_signs(w[None]))[0, 0])
print(f"agreements {agree}, disagreements {differ}: {agree} - {differ} = {agree - differ}")
print(f"float a . w = {a @ w:.0f}    matmul_sign_sign on the packed words = {dot_bits}")
assert a @ w == agree - differ == dot_bits

fig, ax = plt.subplots(figsize=(10, 2.8))
im = ax.imshow(np.stack([a >= 0, w >= 0, xnor]).astype(int), cmap="Greys", vmin=0, vmax=1, aspect="auto")
ax.set(title="Fig. 3: bits of a, bits of w, and xnor(a, w)", xlabel="position in the vector",
       ylabel="row", yticks=[0, 1, 2], yticklabels=["a", "w", "xnor"])
fig.colorbar(im, ax=ax, ticks=[0, 1], label="bit")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## A trained GSB layer on bits
#
# The GSB model's linear layers binarize their input with a **learnable** quantizer instead of
# Eq. 2's statistics (docs/conventions.md, "Activations of linear layers"): `x_b = alpha_x sign(x + b_x)`
# for type-B inputs and `x_b = alpha_x 1{(x + b_x) / alpha_x > 0.5}` for the type-A input of `fc2`
# (notebook 01). The weight is still `alpha_w sign(W - mean W)`. With packed bits:
#
# * `fc1` (±1 input): `binary_linear_packed` computes `alpha_x alpha_w (sign(x) ⊛ sign(W)) + bias`
#   with xnor/popcount;
# * `fc2` ({0, 1} input, Fig. 2's "0-valued vectors"): `matmul_mask_sign` multiplies a 0/1 mask by
#   ±1 weights (the 0 entries drop out of the sum), then the layer scales by `alpha_x alpha_w`.
#
# We record both layers' inputs and outputs in the first block of `digits-gsb` on the test images,
# recompute them from bits and compare with the layer's float simulation used in training.

# %%
from gsbnp.bitops import binary_linear_packed, matmul_mask_sign, pack_binary_input, pack_binary_weight, pack_mask
from gsbnp.quant import act_round_forward

gsb = pretrained.load("digits-gsb")
meta = pretrained.info("digits-gsb")
mlp = gsb.blocks[0].mlp
seen, logits = record({"fc1": mlp.fc1, "fc2": mlp.fc2}, gsb, eval_transform(data.x_test, meta["mean"], meta["std"]))
assert np.mean(logits.argmax(1) == data.y_test) == meta["test_acc"]

h1, out1 = seen["fc1"]
p1 = mlp.fc1.params
W1_bits, alpha_w1 = pack_binary_weight(p1["W"])
bits_out1 = binary_linear_packed(pack_binary_input(h1, p1["act_bias"]), W1_bits, alpha_w1,
                                 float(p1["act_alpha"]), p1["b"])

h2, out2 = seen["fc2"]
p2 = mlp.fc2.params
W2_bits, alpha_w2 = pack_binary_weight(p2["W"])
alpha_x2 = float(p2["act_alpha"])
_, c2 = act_round_forward(h2, alpha_x2, p2["act_bias"])  # the type-A codes in {0, 1}
dot2 = matmul_mask_sign(pack_mask(c2["value"]), W2_bits)  # integer (mask . sign) products
bits_out2 = dot2 * np.float32(alpha_x2 * alpha_w2) + p2["b"]

for name, h_, W_, o_, b_ in (("fc1", h1, p1["W"], out1, bits_out1), ("fc2", h2, p2["W"], out2, bits_out2)):
    print(f"{name}: input {h_.shape}, weight {W_.shape}: max |from bits - float simulation| = "
          f"{np.abs(b_ - o_).max():.1e} (output range +-{np.abs(o_).max():.1f})")
print(f"fc2's input codes: {c2['value'].mean():.1%} ones, so the mask product skips the other entries")
assert np.allclose(bits_out1, out1, rtol=1e-5, atol=1e-4)
assert np.allclose(bits_out2, out2, rtol=1e-5, atol=1e-4)

# %% [markdown]
# Both layers agree with their float simulation up to float32 rounding (the cell prints the largest
# difference): the float simulation *is* the bit computation, only written with floats so that it
# can be trained.
#
# ## Memory
#
# A binarized weight costs one bit, plus one 32-bit scale per layer. Patch embedding, the two heads,
# LayerNorms, biases, tokens and the learnable binarization parameters stay 32-bit, so a whole model
# shrinks by less than 32x. `model.summary()` counts it (its last lines below). With many tokens the
# GSB offset `Phi` (H, N, N) of every block (Eq. 9) becomes a large part of what is left.

# %%
from gsbnp.models import DeiT, DeiTConfig

print("\n".join(gsb.summary(print_fn=None).splitlines()[-3:]))


def memory_parts(model):
    """Bytes of a binarized model by kind: 1-bit weights, Phi, and the rest (32-bit)."""
    binary = model.binarized_weight_names()
    parts = {"1-bit weights": 0.0, "Phi (H, N, N), 32-bit": 0.0, "other 32-bit": 0.0}
    for name, value in model.params.items():
        if name in binary:
            parts["1-bit weights"] += value.size / 8 + 4  # the bits plus one float32 scale
        elif name.endswith(".Phi"):
            parts["Phi (H, N, N), 32-bit"] += value.size * 4
        else:
            parts["other 32-bit"] += value.size * 4
    return parts


presets = {"digits (bundled)": gsb}
for name in ("tiny", "deit_small"):
    presets[name] = DeiT(DeiTConfig.preset(name), rng=np.random.default_rng(0)).set_precision("binary")
rows = {}
for name, m in presets.items():
    parts = memory_parts(m)
    fp_bytes = sum(v.size for v in m.params.values()) * 4
    rows[name] = parts, fp_bytes
    printed = float(re.search(r"compression ([0-9.]+)x", m.summary(print_fn=None)).group(1))
    ratio = fp_bytes / sum(parts.values())
    print(f"{name:17s} {fp_bytes / 2**20:7.2f} MiB at 32 bit -> {sum(parts.values()) / 2**20:6.2f} MiB "
          f"binarized ({ratio:.2f}x; summary says {printed}x); Phi is "
          f"{parts['Phi (H, N, N), 32-bit'] / sum(parts.values()):.0%} of it")
    assert abs(ratio - printed) < 0.01 * printed, "our count agrees with model.summary()"
    assert ratio < 32, "the 32-bit remainder keeps the compression below 32x"
ds_parts, dg_parts = rows["deit_small"][0], rows["digits (bundled)"][0]
assert ds_parts["Phi (H, N, N), 32-bit"] > ds_parts["other 32-bit"], \
    "in DeiT-Small, Phi outweighs all other 32-bit parameters"
n_bits = sum(gsb.params[k].size for k in gsb.binarized_weight_names())
assert n_bits > 0.5 * sum(v.size for v in gsb.params.values()), "most parameters of the digits model are 1-bit"
assert dg_parts["1-bit weights"] < 0.5 * sum(dg_parts.values()), "in the digits model the 32-bit part is the larger"

fig, ax = plt.subplots(figsize=(10, 3.6))
names = list(rows)
left = np.zeros(len(names))
for i, part in enumerate(rows[names[0]][0]):
    share = np.array([rows[n][0][part] / sum(rows[n][0].values()) for n in names])
    ax.barh(names, share, left=left, color=f"C{i}", label=part)
    left += share
ax.set(title="what the memory of a binarized model is made of", xlabel="share of the binarized model's bytes",
       ylabel="model (preset)", xlim=(0, 1))
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
plt.tight_layout()
plt.show()

# %% [markdown]
# Even in the bundled digits model, where the binarized weights are most of the parameters (the
# summary above counts them), the 32-bit remainder takes more bytes than the 1-bit weights
# (asserted). For DeiT-Small at 224 px (N = 198 tokens) the 32-bit `Phi` of Eq. 9 outweighs every
# other 32-bit parameter (asserted too), which caps the compression the printed ratios show.
# Notebook 06 counts operations
# (Table IX) and runs a whole model on bits.
#
# **Assignment 4.1** (`gsbnp assignments build --out DIR`) asks you to write the popcount
# post-processing of `matmul_sign_sign` and `matmul_mask_sign`.
#
# ## Exercises
#
# 1. **Explain (Eq. 2).** For a fixed sign matrix `S = sign(W)`, show that the scale `alpha` that
#    minimizes `||W - alpha S||^2` is `mean|W|`, the `alpha` of Eq. 2. What changes when, as in Eq. 1,
#    `W` is first centred by `w_mu`?
# 2. **Explain (bit packing).** gsbnp keeps the unused bits of the last word 0 in every operand. For a
#    length K = 10, what would `matmul_mask_sign` return if the 54 pad bits of the *sign* operand
#    were 1 but those of the mask operand 0, and what if both had pad bits 1? Which products are
#    safe against such pad bits, and why does gsbnp refuse them instead of relying on that?
# 3. **Try (Eq. 1 vs the real product).** Repeat the trained-layer comparison for every block and for
#    `qkv`, `proj`, `fc1` of `digits-baseline` (use `record` with a dict of layers). Which layer's
#    binarized product is closest to the real one? Then run the same comparison on `digits-stage1`
#    (binary weights, real activations): how much of the error is due to the activations?
# 4. **Try (memory).** Use `memory_parts` on `DeiT(DeiTConfig.preset("small32"))` in stage 2. Why is
#    its compression so much better than DeiT-Small's, although both have the same blocks? What would
#    the compression of DeiT-Small be with the `Phi` of one row per head, shape (H, N, 1)?
