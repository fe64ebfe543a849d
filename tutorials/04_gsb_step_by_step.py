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
# # 04 · Group Superposition Binarization, step by step
#
# GSB approximates the attention map by a **superposition** of binary matrices with learnable
# scales (Eq. 10), and the value matrix V likewise (Eq. 26):
#
# `A_gsb = alpha_0 A_bin + sum_i alpha_i M_i`,   `V_gsb = sum_i beta_i sign(V0) M_i`.
#
# We apply every equation to a real attention map — `softmax(q k^T / sqrt(d))` of the last block of a
# briefly trained full-precision DeiT on the digits (inside a GSB-DeiT the same steps start from the
# binarized `Q_b K_b^T`) — draw Fig. 9, check the backward passes (Eqs. 14-20, 28-32) numerically,
# verify Eq. 35, and finish with a gradient check of a whole binarized GSB-DeiT.

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
import warnings
import numpy as np
import matplotlib.pyplot as plt
plt.rcParams.update({"figure.dpi": 80})
print(f"gsbnp {gsbnp.__version__}, numpy {np.__version__}, small mode: {SMALL}")

# %%
from gsbnp import functional as F

def last_block_qkv(model, x):
    """q, k, v (B, H, N, Dh) entering the attention product of the last block, as the model's own
    forward pass computed them (``DeiT.inspect``)."""
    r = model.inspect(x, block=-1)
    return r["q"], r["k"], r["v"]

import tempfile
from gsbnp import quant as Q
from gsbnp.data import channel_stats, load_digits
from gsbnp.gradcheck import check_surrogate, rel_error
from gsbnp.train.augment import eval_transform
from gsbnp.train.pipeline import PipelineConfig, model_config_for, train_teacher

data = load_digits()
cfg = model_config_for(data, "digits", **(dict(depth=2, embed_dim=32) if SMALL else {}))
model, res = train_teacher(data, cfg, PipelineConfig(epochs_teacher=2 if SMALL else 12, seed=0),
                           tempfile.mkdtemp(prefix="gsbnp-04-"), progress=False)
model.eval()
x = eval_transform(data.x_test[:32], *channel_stats(data.x_train))
model.forward(x)
r = model.inspect(x, block=-1)  # the last block's attention internals from the model's own forward
q, k, v = r["q"], r["k"], r["v"]
A_re = r["A_re"]  # softmax(q k^T / sqrt(Dh)), (B, H, N, N)
assert np.allclose(A_re, model.blocks[-1].attn.last_attention, atol=1e-6)
A_re, V = A_re.astype(np.float64), v.astype(np.float64)
N = A_re.shape[-1]
print(f"trained full-precision DeiT: test accuracy {res['test_acc']:.3f};  A_re {A_re.shape}, V {V.shape}")

# %% [markdown]
# ## Eq. 9 and Eq. 13: translation and row-wise thresholds
#
# `A_ret = A_re - Phi` (Eq. 9) with a learnable offset `Phi` (H, N, N), zero at initialization.
# The masks compare `A_ret` with thresholds relative to each row's maximum (Eq. 13):
# `Theta_i = c_i * max_row(A_ret)`, `c_i = 0.5 + 0.4 i / k`, i = 1..k, equally spaced in [0.5, 0.9].

# %%
k = 2
Phi = np.zeros(A_re.shape[1:])  # (H, N, N) at initialization
A_ret = A_re - Phi
print("c_i for k = 1..4:", {kk: Q.threshold_coefficients(kk).round(3).tolist() for kk in range(1, 5)})
row = A_ret[0, 0, 0]
print("row 0 of map (0, 0): max", row.max().round(3),
      " Theta =", (Q.threshold_coefficients(k) * row.max()).round(3))

# %% [markdown]
# ## Eqs. 21-25: initial scales
#
# GSB is sensitive to the initial scales; the paper minimises the squared error of the superposition
# (Eq. 21). With nested masks `M_0 ⊇ M_1 ⊇ ... ⊇ M_k` an entry in region `R_i = M_i \ M_{i+1}` is
# represented by `alpha_0 + ... + alpha_i`, so (docs/conventions.md, "Initial scales", typos of Eq. 25 fixed)
# `alpha_0 = mean(A_ret)` and `alpha_0 + ... + alpha_i = mean of A_ret over R_i`. An empty region or
# a non-positive result gets the floor 1e-5 with a warning.

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    alphas = Q.gsb_attention_init(A_ret, k)
print("alphas =", alphas.round(4), *[f"\n  warning: {w.message}" for w in caught])

# %% [markdown]
# ## Eqs. 10-12: the forward pass, and Fig. 9
#
# `A_bin = clip(round(A_ret / alpha_0), 0, 1)` (Eq. 11), `M_i = 1{A_ret > Theta_i}` (Eq. 12), and the
# superposition `A_gsb` (Eq. 10) takes k + 2 levels: 0, alpha_0 A_bin, plus the alpha_i of every mask
# an entry passes.

# %%
A_gsb, cache = Q.gsb_attention_forward(A_ret, alphas, k)
b, h = 0, 0
panels = [("A_re", A_re[b, h]), ("A_bin", cache["A_bin"][b, h]), ("M_1", cache["M"][0, b, h]),
          ("M_2", cache["M"][1, b, h]), ("A_gsb (Eq. 10)", A_gsb[b, h])]
fig, ax = plt.subplots(1, 5, figsize=(15, 3.2))
for a, (name, img) in zip(ax, panels):
    a.imshow(img, cmap="viridis"); a.set_title(name); a.grid(False)
plt.suptitle("Fig. 9 on a real map (image 0, head 0)"); plt.show()
base2 = Q.baseline_attention_forward(A_re, mode="eq2")[0]
base8 = Q.baseline_attention_forward(A_re, mode="eq8")[0]
r = 0  # the [cls] row
plt.figure(figsize=(10, 3))
plt.plot(A_re[b, h, r], "k.-", label="A_re"); plt.plot(A_gsb[b, h, r], "C2s-", label="A_gsb, k = 2")
plt.plot(base2[b, h, r], "C0^:", label="baseline, Eq. 2")
plt.plot(base8[b, h, r], "C3v:", label="baseline, Eq. 8 + switch")
plt.xlabel("key token"); plt.title("row of the [cls] query"); plt.legend(fontsize=8); plt.show()


# %% [markdown]
# How good is the approximation? Relative error `||A_ret - A_gsb|| / ||A_ret||` for k = 0..4 (scales
# re-initialized each time) against the baseline, and the fraction of rows erased (all zero):

# %%
def rel_l2(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(a)

errs = {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    for kk in range(5):
        Ag = Q.gsb_attention_forward(A_ret, Q.gsb_attention_init(A_ret, kk), kk)[0]
        errs[f"GSB k={kk}"] = (rel_l2(A_ret, Ag), np.mean(~(Ag > 0).any(-1)))
for mode in ("eq2", "eq8"):
    Ab = Q.baseline_attention_forward(A_re, mode=mode)[0]
    errs[f"baseline {mode}"] = (rel_l2(A_re, Ab), np.mean(~(Ab > 0).any(-1)))
for name, (e, erased) in errs.items():
    print(f"{name:13s} rel. error {e:.3f}   erased rows {erased:.1%}")
plt.figure(figsize=(8, 3)); plt.bar(list(errs), [e for e, _ in errs.values()])
plt.ylabel("relative L2 error"); plt.xticks(fontsize=8); plt.show()

# %% [markdown]
# ## Eqs. 14-20: the backward pass
#
# The thresholds are held constant; each discrete piece passes the gradient inside its own window
# (strict inequalities, Eqs. 17-20):
#
# `dA_ret = g * (1{0 < A_ret/alpha_0 < 1} + sum_i alpha_i 1{0 < A_ret - Theta_i < 1})`,
# `dalpha_0 = reduce(g (A_bin - (A_ret/alpha_0) 1{0 < A_ret/alpha_0 < 1}))` (Eq. 14),
# `dalpha_i = reduce(g M_i)` (Eq. 15), with `reduce` the mean over all `H N N` entries (batch
# included). We check the literal formulas, then the frozen-residual surrogate (notebook 01) with
# `scale_grad="sum"` (the true derivative of the surrogate).

# %%
g = np.random.default_rng(0).standard_normal(A_ret.shape)
dA, dalphas = Q.gsb_attention_backward(g, cache)
u = A_ret / alphas[0]
Theta = Q.threshold_coefficients(k)[:, None, None, None, None] * A_ret.max(-1, keepdims=True)[None]
win = (0 < A_ret[None] - Theta) & (A_ret[None] - Theta < 1)  # (k, B, H, N, N)
dA_lit = g * (((0 < u) & (u < 1)) + np.einsum("k,k...->...", alphas[1:], win))
dal_lit = [np.mean(g * (cache["A_bin"] - u * ((0 < u) & (u < 1))))] + [np.mean(g * m) for m in cache["M"]]
print("literal Eqs. 14-20:", rel_error(dA, dA_lit), rel_error(dalphas, dal_lit))

small = np.ascontiguousarray(A_ret[:2, :, :6, :6])  # a slice keeps the finite differences quick
al = np.maximum(alphas, 0.01)  # any positive scales will do; keep them off the floor 1e-5
err_A, err_al = check_surrogate(lambda: Q.gsb_attention_forward(small, al, k, scale_grad="sum"),
                                Q.gsb_attention_backward, [small, al], rng=np.random.default_rng(1))
print("frozen-residual check: dA_ret", f"{err_A:.1e}", " dalphas", f"{err_al:.1e}")

# %% [markdown]
# ## Eqs. 26-34: the value matrix
#
# `V0 = V - Omega` (Omega learnable (H, 1, Dh), zero at first), `M_0 = 1`,
# `M_i = 1{V0 > c_i v_max} or 1{V0 < c_i v_min}` with `v_max`, `v_min` per sample, and
# `V_gsb = sum_i beta_i sign(V0) M_i` (Eqs. 26-27): each entry becomes `±(beta_0 + ... + beta_j)`,
# j its highest mask. Initial betas come from the same region means of `|V0|` (Eqs. 33-34).
# The STE (Eq. 32) passes `g` through every component whose window `|V0 / beta_i| <= 1` holds on its mask.

# %%
V0 = V - np.zeros((V.shape[1], 1, V.shape[3]))
betas = Q.gsb_value_init(V0, k)
V_gsb, vcache = Q.gsb_value_forward(V0, betas, k)
print("betas =", betas.round(4), " levels:", np.unique(np.abs(V_gsb).round(6)))
plt.figure(figsize=(9, 3))
plt.hist(V0.ravel(), 80, alpha=0.6, label="V0 (real)")
plt.hist(V_gsb.ravel(), 80, alpha=0.8, label=f"V_gsb (k = {k})"); plt.yscale("log"); plt.legend(); plt.show()
print("relative L2 error: GSB", round(rel_l2(V0, V_gsb), 3), "  sign alone (k = 0)",
      round(rel_l2(V0, Q.gsb_value_forward(V0, Q.gsb_value_init(V0, 0), 0)[0]), 3))
Vs = np.ascontiguousarray(V0[:2, :, :5, :4])
bs = Q.gsb_value_init(Vs, k)
err_V, err_b = check_surrogate(lambda: Q.gsb_value_forward(Vs, bs, k, scale_grad="sum"),
                               Q.gsb_value_backward, [Vs, bs], rng=np.random.default_rng(2))
print("frozen-residual check: dV0", f"{err_V:.1e}", " dbetas", f"{err_b:.1e}")

# %% [markdown]
# ## Eq. 35: the output as (k+1)^2 binary products
#
# `Y = A_gsb V_gsb = sum_ij alpha_i beta_j (A_i ⊠ V_j)` with `A_0 = A_bin`, `A_i = M_i`,
# `V_j = sign(V0) M_j`. Training uses the superposed float product; inference multiplies each binary
# pair separately — on bits (`gsb_av_bitwise`, BiBERT-style planes for the zeros of `V_j`, Fig. 10).

# %%
from gsbnp.bitops import gsb_av_bitwise
Y = A_gsb @ V_gsb
A_stack = np.concatenate([cache["A_bin"][None], cache["M"]]).astype(np.float64)  # (k+1, B, H, N, N)
V_stack = vcache["sign"][None] * vcache["M"]                                       # (k+1, B, H, N, Dh)
Y_pairs = np.einsum("i,j,ibhnm,jbhmd->bhnd", alphas, betas, A_stack, V_stack)
Y_bits = gsb_av_bitwise(A_stack, V_stack, alphas, betas)
print("float pairs:", rel_error(Y, Y_pairs), "  packed bits:", rel_error(Y, Y_bits))
assert rel_error(Y, Y_bits) < 1e-12

# %% [markdown]
# ## A whole GSB-DeiT, checked
#
# `gsbnp.gradcheck.check_module` runs a model once under the frozen-residual recorder, calls its
# hand-written backward with a random upstream gradient, and compares every parameter's gradient with
# centred differences of the surrogate (float64). Here: a small GSB-DeiT in stage 2 — binary weights,
# type-A/B activations with learnable scales and biases, GSB attention with Phi, GSB value with Omega.

# %%
from gsbnp.gradcheck import check_module
from gsbnp.models import DeiT, DeiTConfig
tiny = DeiTConfig(img_size=4, patch_size=2, in_chans=2, num_classes=3, embed_dim=8, depth=2, num_heads=2,
                  mlp_ratio=1.5, scale_grad="sum")
m = DeiT(tiny, rng=np.random.default_rng(0), dtype=np.float64).set_precision("binary")
xx = np.random.default_rng(1).standard_normal((2, 2, 4, 4))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    m.forward(xx)  # the first batch initialises every learnable scale
rng = np.random.default_rng(3)
for name, p in m.params.items():  # move offsets off zero and scales off the floor
    if name.endswith(("Phi", "Omega", "q_bias", "k_bias", "act_bias")):
        p[...] = rng.standard_normal(p.shape) * 0.05
    elif name.endswith(("alphas", "betas")):
        p[...] = np.where(p < 1e-3, rng.uniform(0.01, 0.1, p.shape), p)
errs = check_module(m, xx, rng=np.random.default_rng(2), max_entries=6 if SMALL else None)
worst = sorted(errs.items(), key=lambda kv: -kv[1])[:5]
print(f"{len(errs)} arrays checked; largest relative errors:", [(n, f"{e:.1e}") for n, e in worst])
assert max(errs.values()) < 1e-5

# %% [markdown]
# **Assignments 3.1 and 3.2** ask you to write `gsb_attention_backward` and `gsb_value_backward`; the
# tests that grade them are the checks above, over many shapes and options.
