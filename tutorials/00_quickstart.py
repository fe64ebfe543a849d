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
# # 00 · Quick start: a binarized vision transformer on 8x8 digits
#
# This notebook trains a tiny **GSB-DeiT** — a data-efficient image transformer whose weights *and*
# activations are binarized with Group Superposition Binarization (Gao et al., *GSB: Group
# Superposition Binarization for Vision Transformer with Limited Training Samples*) — on the 1,797
# handwritten 8x8 digits bundled with gsbnp, then looks at its predictions. Everything is NumPy: every
# layer has a hand-written forward and backward.
#
# The recipe is the paper's (Section IV-D): a full-precision **teacher**, then **stage 1** (binary
# weights), then **stage 2** (binary weights and activations, distilled from the teacher with Eq. 36).
# The later notebooks take every piece apart:
#
# | notebook | what |
# |---|---|
# | 01 | binarization and the straight-through estimator (Fig. 1, Eqs. 3-6) |
# | 02 | the binary linear layer, bit packing, xnor/popcount (Eqs. 1-2, Figs. 2-3) |
# | 03 | why binarized attention fails (Eqs. 7-8, Figs. 4, 6, 7) |
# | 04 | GSB step by step (Eqs. 9-35, Fig. 9) and gradient checks |
# | 05 | two-stage training, distillation, overfitting on limited data (Eq. 36, Fig. 11) |
# | 06 | operation counts (Table IX) and packed inference |

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

# %% [markdown]
# ## The data
#
# `load_digits()` returns the bundled data set in gsbnp's `.npz` format: uint8 images `(N, H, W, C)`
# with a fixed, stratified split of 1,437 training and 360 test images, 10 classes.

# %%
from gsbnp.data import load_digits
data = load_digits()
print("train", data.x_train.shape, data.x_train.dtype, " test", data.x_test.shape,
      " classes", data.class_names.tolist())
fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
for ax, img, y in zip(axes.ravel(), data.x_train, data.y_train):
    ax.imshow(img[..., 0], cmap="gray_r"); ax.set_title(str(y)); ax.axis("off")
plt.show()

# %% [markdown]
# ## The model
#
# `DeiTConfig.preset("digits")` cuts each 8x8 image into 2x2 patches: 16 patch tokens plus the
# **[cls]** and **[dist]** tokens, N = 18 tokens of width D = 64, 4 blocks of 2 heads. The two heads
# read [cls] (trained on the labels) and [dist] (trained on the teacher); at inference the model
# averages them. `set_precision` switches between the three stages; patch embedding and heads stay
# full precision, as in the paper. (In small mode the model has 2 blocks of width 32.)

# %%
from gsbnp.models import DeiT
from gsbnp.train.pipeline import model_config_for
cfg = model_config_for(data, "digits", **(dict(depth=2, embed_dim=32) if SMALL else {}))
print(cfg)
model = DeiT(cfg, rng=np.random.default_rng(0))
for stage in ("fp", "weights", "binary"):
    model.set_precision(stage)
    print(f"\n--- set_precision({stage!r})")
    print("\n".join(model.summary(print_fn=None).splitlines()[-3:]))

# %% [markdown]
# ## Training: teacher -> stage 1 -> stage 2
#
# `run_pipeline` runs the three stages with AdamW and a cosine schedule, evaluates on the test split
# after every epoch and writes checkpoints and per-epoch metrics into a folder. Stage 2 uses GSB
# (k_a = k_v = 2) and hard distillation from the teacher (Eq. 36 with lambda = 0.5). `gsbnp train` runs
# the same thing from the command line with longer defaults.

# %%
import json, tempfile
from gsbnp.train.pipeline import PipelineConfig, run_pipeline
epochs = dict(epochs_teacher=4, epochs_stage1=2, epochs_stage2=2) if SMALL else \
    dict(epochs_teacher=30, epochs_stage1=10, epochs_stage2=15)
out = tempfile.mkdtemp(prefix="gsbnp-quickstart-")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # scales that start at their floor (see 04)
    results = run_pipeline(data, cfg, PipelineConfig(seed=0, **epochs), out, progress=False,
                           log=lambda line: None)
for stage in ("teacher", "stage1", "stage2"):
    r = results[stage]
    print(f"{stage:8s} {r['epochs']:3d} epochs  test accuracy {r['test_acc']:.3f}  ({r['time_s']:.0f} s)")

# %% [markdown]
# Each stage wrote `<stage>_metrics.jsonl` (one row per epoch). The curves below put the three runs
# end to end: the binary stages start from the previous stage's weights.

# %%
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.5))
start = 0
for stage, color in (("teacher", "C0"), ("stage1", "C1"), ("stage2", "C2")):
    rows = [json.loads(l) for l in open(os.path.join(out, f"{stage}_metrics.jsonl"))]
    ep = start + np.array([r["epoch"] for r in rows])
    a1.plot(ep, [r["train_loss"] for r in rows], color=color, label=f"{stage} train")
    a1.plot(ep, [r["test_loss"] for r in rows], "--", color=color, label=f"{stage} test")
    a2.plot(ep, [r["test_acc"] for r in rows], color=color, label=stage)
    start = ep[-1]
a1.set(xlabel="epoch (all stages)", ylabel="loss"); a1.legend(fontsize=8)
a2.set(xlabel="epoch (all stages)", ylabel="test accuracy"); a2.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Predictions of the binarized model
#
# `load_model` rebuilds a model from a checkpoint (config, precision stage, weights and the learned
# binarization scales). In eval mode `forward` returns the mean of the two heads.

# %%
from gsbnp.train.augment import eval_transform
from gsbnp.models.checkpoint import load_model
student, meta = load_model(os.path.join(out, "stage2_last.npz"))
student.eval()
x = eval_transform(data.x_test, meta["mean"], meta["std"])  # (M, 1, 8, 8) float32
logits = student.forward(x)
pred = logits.argmax(axis=1)
print("precision stage:", student.precision, " test accuracy:", np.mean(pred == data.y_test))
fig, axes = plt.subplots(3, 12, figsize=(12, 3.6))
for ax, img, p, y in zip(axes.ravel(), data.x_test, pred, data.y_test):
    ax.imshow(img[..., 0], cmap="gray_r"); ax.axis("off")
    ax.set_title(f"{p}" if p == y else f"{p} ({y})", color="k" if p == y else "r", fontsize=9)
plt.suptitle("predicted (true) - wrong ones in red"); plt.show()
conf = np.zeros((10, 10), int)
np.add.at(conf, (data.y_test, pred), 1)
plt.imshow(conf, cmap="Blues"); plt.xlabel("predicted"); plt.ylabel("true"); plt.colorbar()
plt.title("confusion matrix (test)"); plt.show()

# %% [markdown]
# ## Where the binarized model looks
#
# Every attention layer keeps the map of its last forward pass in `last_attention` (B, H, N, N). For
# the GSB model that is the superposed binary matrix `A_gsb` of Eq. 10; its row for the [cls] token
# (query 0), restricted to the 16 patch keys, shows which patches feed the class head.

# %%
student.forward(x[:4])
A = student.blocks[-1].attn.last_attention  # (4, H, N, N)
fig, axes = plt.subplots(2, 4, figsize=(9, 4.4))
for j in range(4):
    axes[0, j].imshow(data.x_test[j, ..., 0], cmap="gray_r"); axes[0, j].axis("off")
    axes[1, j].imshow(A[j, :, 0, 2:].mean(axis=0).reshape(4, 4), cmap="magma"); axes[1, j].axis("off")
axes[1, 0].set_title("[cls] row of A_gsb, last block", fontsize=9, loc="left")
plt.show()
print("distinct values of A_gsb in the last block:", np.unique(np.round(A, 6)).size)

# %% [markdown]
# Next: **01** explains what binarizing means and how a network with `sign` inside can be trained at
# all. The course assignments (`gsbnp assignments build --out DIR`) let you write the key backward
# passes yourself and grade them with the project's own tests.
