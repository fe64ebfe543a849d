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
# # 03 · Why binarized attention fails
#
# Section III-B binarizes the attention map like any type-A activation (Eq. 7):
#
# `A_re = softmax(B(Q) B(K)^T / sqrt(d))`, `A_bin = clip(round(A_re / gamma), 0, 1)`
#
# and the paper reports two failures. With gamma from Eq. 2 (the mean), almost every entry becomes 1
# (Fig. 4); with gamma from Eq. 8 (the mean of the entries above 0.5), almost every entry becomes 0,
# and a row with no 1 left erases its token's features (the **vanishing feature** problem, Fig. 7).
# The baseline therefore switches back to Eq. 2 whenever Eq. 8 leaves fewer ones than tokens. Here we
# measure all of this on real DeiT attention maps of the digits.

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

# %%
from gsbnp import functional as F

def last_block_qkv(model, x):
    """q, k, v (B, H, N, Dh) entering the attention product of the last block, as the model's own
    forward pass computed them (``DeiT.inspect``)."""
    r = model.inspect(x, block=-1)
    return r["q"], r["k"], r["v"]

from gsbnp import quant as Q
from gsbnp.data import channel_stats, load_digits
from gsbnp.models import DeiT
from gsbnp.train.augment import eval_transform
from gsbnp.train.pipeline import model_config_for

def baseline_A_re(model, x):
    """Eq. 7's A_re = softmax(sign(Q) sign(K)^T / sqrt(Dh)) of the last block, (B, H, N, N)."""
    return model.inspect(x, block=-1)["A_re"]  # softmax(Q_b K_b^T / sqrt(Dh)) as the layer computed it

data = load_digits()
cfg = model_config_for(data, "digits", method="baseline", **(dict(depth=2, embed_dim=32) if SMALL else {}))
x = eval_transform(data.x_test[:64 if SMALL else 200], *channel_stats(data.x_train))
N = cfg.num_tokens
print(f"N = {N} tokens, head dim {cfg.head_dim}, {len(x)} test images")

# %% [markdown]
# ## Fig. 4: a baseline model at initialization
#
# We build the baseline model in stage 2 (everything binary), run it once, and recompute Eq. 7's
# `A_re` of the last block from its modules; `baseline_attention_forward(A_re)` must reproduce the
# map the layer itself produced (`last_attention`).

# %%
model = DeiT(cfg, rng=np.random.default_rng(0)).set_precision("binary").eval()
model.forward(x)
A_re = baseline_A_re(model, x)
A_eq8, c8 = Q.baseline_attention_forward(A_re, mode="eq8")
assert np.allclose(A_eq8, model.blocks[-1].attn.last_attention, atol=1e-6)

def eq2_scaled(A):  # A_re / gamma with gamma = mean of the map (Eq. 2)
    return A / A.mean(axis=(-2, -1), keepdims=True)

def report(A, c8, title):
    s2 = eq2_scaled(A)
    print(f"{title}: {np.mean(A < 0.5):.1%} of A_re < 0.5;  ones after Eq. 2 scaling: "
          f"{np.mean(np.round(s2) >= 1):.1%};  maps switched from Eq. 8 to Eq. 2: {c8['switched'].mean():.0%}")

report(A_re, c8, "initialization")
fig, ax = plt.subplots(1, 2, figsize=(10, 3))
ax[0].hist(A_re.ravel(), 50); ax[0].set_title("(a) A_re at initialization"); ax[0].set_yscale("log")
ax[1].hist(np.clip(eq2_scaled(A_re), 0, 3).ravel(), 50); ax[1].axvline(0.5, color="r")
ax[1].set_title("(b) A_re / gamma (Eq. 2), clipped at 3: right of the red line -> 1"); ax[1].set_yscale("log")
plt.show()

# %% [markdown]
# ## Fig. 6: a trained baseline
#
# Now train the model a little: a full-precision run first, then the binarized baseline starting
# from its weights (both short; the distributions, not the accuracy, are the point).

# %%
import tempfile
from gsbnp.train.pipeline import PipelineConfig, train_stage2, train_teacher
pc = PipelineConfig(epochs_teacher=2 if SMALL else 15, epochs_stage2=1 if SMALL else 6, seed=0)
out = tempfile.mkdtemp(prefix="gsbnp-03-")
fp, r_fp = train_teacher(data, cfg, pc, out, progress=False)
fp.set_precision("weights")  # train_stage2 expects the stage-1 layout (same parameters here)
trained, r_b = train_stage2(data, cfg, pc, out, stage1=fp, teacher=None, distill="none", progress=False)
print(f"full precision {r_fp['test_acc']:.3f}   baseline binary {r_b['test_acc']:.3f} test accuracy")
trained.eval()
A_re = baseline_A_re(trained, x)
A_eq8, c8 = Q.baseline_attention_forward(A_re, mode="eq8")
report(A_re, c8, "trained")
big = A_re > 0.5
n_big = big.sum(axis=(-2, -1), keepdims=True)  # (B, H, 1, 1) values above 0.5 per map
gamma8 = np.where(n_big > 0, (A_re * big).sum(axis=(-2, -1), keepdims=True) / np.maximum(n_big, 1),
                  np.nan)  # Eq. 8, NaN where no value exceeds 0.5
fig, ax = plt.subplots(1, 3, figsize=(13, 3))
ax[0].hist(A_re.ravel(), 50); ax[0].set_title("(a) A_re, trained"); ax[0].set_yscale("log")
has8 = np.isfinite(gamma8[..., 0, 0])  # (B, H): maps with at least one value > 0.5
ax[1].hist((A_re[has8] / gamma8[has8]).ravel() if has8.any() else np.zeros(1), 50)
ax[1].axvline(0.5, color="r"); ax[1].set_yscale("log")
ax[1].set_title("(b) A_re / gamma, Eq. 8 (maps that have one)")
ax[2].hist(np.clip(eq2_scaled(A_re), 0, 3).ravel(), 50); ax[2].axvline(0.5, color="r")
ax[2].set_title("(c) A_re / gamma, Eq. 2 (clipped at 3)"); ax[2].set_yscale("log")
plt.show()

# %% [markdown]
# ## Fig. 7: vanishing features
#
# The attention output is `Y = A_bin V`: a row of `A_bin` with no 1 gives an all-zero row of `Y` —
# that token's features are erased (if it is the [cls] token, the class head sees nothing). The toy
# case of Fig. 7 (N = 6 tokens, C = 2 channels):

# %%
A_toy = np.array([[0.05, 0.6, 0.1, 0.1, 0.1, 0.05],
                  [0.2, 0.2, 0.2, 0.15, 0.15, 0.1],   # a flat row: nothing above the threshold
                  [0.7, 0.1, 0.05, 0.05, 0.05, 0.05],
                  [0.1, 0.1, 0.55, 0.1, 0.1, 0.05],
                  [0.3, 0.3, 0.1, 0.1, 0.1, 0.1],     # flat again
                  [0.05, 0.05, 0.05, 0.05, 0.2, 0.6]])
V_toy = np.arange(12, dtype=float).reshape(6, 2) - 5
A_bin = np.clip(np.round(A_toy / 0.6), 0, 1)  # gamma from Eq. 8 (mean of the values > 0.5)
print("A_bin =\n", A_bin.astype(int), "\nY = A_bin V =\n", A_bin @ V_toy)


# %% [markdown]
# On the trained model: count the rows of each binarized map that keep no 1, with Eq. 8 alone, with
# the baseline's switch (gsbnp's `baseline_attention_forward(mode="eq8")`), and with Eq. 2.

# %%
def erased_rows(A_bin):
    return np.mean(~A_bin.any(axis=-1))

# Eq. 8 without the switch: a map with no value > 0.5 binarizes to all zeros
eq8_alone = has8[..., None, None] & (A_re / np.where(np.isfinite(gamma8), gamma8, 1) > 0.5)
with_switch = c8["A_bin"]
eq2 = Q.baseline_attention_forward(A_re, mode="eq2")[1]["A_bin"]
rows = {"Eq. 8 alone": eq8_alone, "Eq. 8 + switch (baseline)": with_switch, "Eq. 2": eq2}
for name, Ab in rows.items():
    print(f"{name:27s} erased rows {erased_rows(Ab):6.1%}   ones {Ab.mean():6.1%}")
b, h = 0, 0
fig, ax = plt.subplots(1, 4, figsize=(13, 3.2))
ax[0].imshow(A_re[b, h], cmap="viridis"); ax[0].set_title("A_re (image 0, head 0)")
for a, (name, Ab) in zip(ax[1:], rows.items()):
    a.imshow(Ab[b, h], cmap="gray_r", vmin=0, vmax=1); a.set_title(name, fontsize=9)
for a in ax:
    a.grid(False)
plt.show()

# %% [markdown]
# Either the map is almost all ones (Eq. 2: attention no longer tells patches apart) or almost all
# zeros (Eq. 8: rows vanish); the switch only trades one failure for the other, and since it counts
# the ones of a whole map, a map that passes it can still lose some of its rows. GSB (notebook 04)
# keeps several thresholds at once, relative to each row's maximum, so no row with a positive
# maximum is ever erased and large attention values stay larger than small ones.
