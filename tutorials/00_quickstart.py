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
# # 00 · Quick start: train a binarized vision transformer on 8x8 digits
#
# This notebook trains a tiny **GSB-DeiT** — a data-efficient image transformer whose weights *and*
# activations are binarized with Group Superposition Binarization (Gao et al., *GSB: Group
# Superposition Binarization for Vision Transformer with Limited Training Samples*) — on the 1,797
# handwritten 8x8 digits bundled with gsbnp, and compares it with the **bundled trained models** that
# the later notebooks study. Everything is NumPy: every layer has a hand-written forward and backward.
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
#
# Every number the text talks about is printed by a cell and checked there with `assert`.

# %%
import json
import os
import sys
import tempfile
import warnings

try:
    import gsbnp
except ImportError:  # a checkout without `pip install -e .`: use the package next to tutorials/
    sys.path.insert(0, "..")
    import gsbnp
import matplotlib.pyplot as plt
import numpy as np

from gsbnp import pretrained
from gsbnp.data import channel_stats, load_digits
from gsbnp.models import DeiT
from gsbnp.train.augment import eval_transform
from gsbnp.train.pipeline import PipelineConfig, model_config_for, run_pipeline

plt.rcParams.update({"figure.dpi": 80})
print(f"gsbnp {gsbnp.__version__}, numpy {np.__version__}")

# %% [markdown]
# ## The data
#
# `load_digits()` returns the bundled data set in gsbnp's `.npz` format: uint8 images `(N, H, W, C)`
# with a fixed, stratified split of 1,437 training and 360 test images, 10 classes.

# %%
data = load_digits()
print("train", data.x_train.shape, data.x_train.dtype, " test", data.x_test.shape,
      " classes", data.class_names.tolist())
assert (len(data.y_train), len(data.y_test), data.num_classes) == (1437, 360, 10)
fig, axes = plt.subplots(2, 10, figsize=(11, 2.6), layout="constrained")
for ax, img, y in zip(axes.ravel(), data.x_train, data.y_train):
    im = ax.imshow(img[..., 0], cmap="gray_r", vmin=0, vmax=255)
    ax.set_title(f"label {y}", fontsize=9)
    ax.axis("off")
fig.colorbar(im, ax=axes, fraction=0.02, label="pixel value (uint8)")
fig.suptitle("the first 20 training images")
plt.show()

# %% [markdown]
# ## The model
#
# `DeiTConfig.preset("digits")` cuts each 8x8 image into 2x2 patches: 16 patch tokens plus the
# **[cls]** and **[dist]** tokens, N = 18 tokens of width D = 64, 4 blocks of 2 heads. The two heads
# read [cls] (trained on the labels) and [dist] (trained on the teacher); at inference the model
# averages them. `set_precision` switches between the three stages; patch embedding and heads stay
# full precision, as in the paper. The summary's last lines count the 1-bit and 32-bit parameters.

# %%
cfg = model_config_for(data, "digits")
print(cfg)
assert cfg.num_tokens == 18 and (cfg.embed_dim, cfg.depth, cfg.num_heads) == (64, 4, 2)
model = DeiT(cfg, rng=np.random.default_rng(0))
for stage in ("fp", "weights", "binary"):
    model.set_precision(stage)
    print(f"\n--- set_precision({stage!r})")
    print("\n".join(model.summary(print_fn=None).splitlines()[-3:]))

# %% [markdown]
# ## The bundled trained models
#
# gsbnp ships models trained on these digits by `data_scripts/build_pretrained.py` with the same
# pipeline as `gsbnp train`. `pretrained.info(name)` holds each one's recipe (every setting, the seed),
# the sha256 of its file and of the data, its training curve, and its test accuracy measured on the
# final weights. The cell prints them; the rest of this notebook trains the same recipe for a fraction
# of the epochs and compares.

# %%
bundled = {n: pretrained.info(n) for n in pretrained.names()}
for n, m in bundled.items():
    print(f"{n:16s} {m['precision']:8s} {m['epochs']:4d} epochs  test {m['test_correct']}/{m['test_n']} "
          f"= {m['test_acc']:.4f}   {m['description']}")
strongest = max(bundled, key=lambda n: bundled[n]["test_acc"])
print("strongest bundled model:", strongest)
assert strongest == "digits-fp", "the text below says the teacher is the strongest bundled model"
binary = [n for n, m in bundled.items() if m["precision"] == "binary"]
assert len(binary) == 4 and all(bundled["digits-stage1"]["test_acc"] > bundled[n]["test_acc"] for n in binary), \
    "stage 1 comes second, above the four stage-2 models"

# %% [markdown]
# The full-precision teacher `digits-fp` is the strongest model of the set, as a teacher should be.
# Stage 1 (`digits-stage1`, binary weights, full-precision activations) comes next, and the four
# stage-2 models, whose activations and attention are binary as well, follow it (the cell prints the
# order). The gap between full precision and stage 2 is the price of 1-bit activations that GSB sets
# out to reduce; notebooks 03 and 04 look at where it comes from.
#
# ## Training: teacher -> stage 1 -> stage 2
#
# `run_pipeline` runs the three stages with AdamW and a cosine schedule, evaluates on the test split
# after every epoch and writes checkpoints and per-epoch metrics into a folder (here a temporary one,
# removed at the end of the cell). We take the bundled models' recipe from `info()` and change only
# the number of epochs, so that the run takes well under a minute. Stage 2 is GSB (k_a = k_v = 2)
# with soft distillation from the teacher (Eq. 36, lambda = 0.5). `gsbnp train` runs the same pipeline
# from the command line.

# %%
recipe = dict(bundled["digits-fp"]["recipe"]["pipeline"])
short = dict(recipe, epochs_teacher=12, epochs_stage1=4, epochs_stage2=4)
print("bundled recipe:", {k: recipe[k] for k in ("epochs_teacher", "epochs_stage1", "epochs_stage2")})
print("this run      :", {k: short[k] for k in ("epochs_teacher", "epochs_stage1", "epochs_stage2")})
with tempfile.TemporaryDirectory(prefix="gsbnp-quickstart-") as out:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scales that start at their floor (see 04)
        results = run_pipeline(data, cfg, PipelineConfig(**short), out, progress=False, log=lambda line: None)
    curves = {}
    for stage in ("teacher", "stage1", "stage2"):
        with open(os.path.join(out, f"{stage}_metrics.jsonl")) as f:
            curves[stage] = [json.loads(line) for line in f]
    print("files written by the run:", sorted(os.listdir(out)))
pair = {"teacher": "digits-fp", "stage1": "digits-stage1", "stage2": "digits-gsb-kd"}
for stage, name in pair.items():
    r = results[stage]
    print(f"{stage:8s} {r['epochs']:3d} epochs  test accuracy {r['test_acc']:.3f}  ({r['time_s']:.0f} s)   "
          f"bundled {name}: {bundled[name]['epochs']} epochs, {bundled[name]['test_acc']:.3f}")
    assert bundled[name]["test_acc"] > r["test_acc"], f"the text says the bundled {name} is better"

# %% [markdown]
# The bundled models, trained with the same recipe for more epochs, beat the short run at every stage
# (the cell checks it). Below, the short run (solid) against the bundled models' recorded curves
# (`info(name)["history"]`, dashed; the epoch axis is logarithmic). Both runs follow a cosine schedule
# over their own length: the short run has cooled down to its smallest learning rate by its last
# epoch, while the long run is still near its peak there and goes on improving for many more epochs.
# The cell below the figure prints the long run's accuracy at the short run's last epoch and at its
# own end. Note also that the short stage 1 starts from random weights, as the bundled one does, and
# the short stage 2 distils from the short, weak teacher.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for ax, (stage, name) in zip(axes, pair.items()):
    long = bundled[name]["history"]
    ax.plot([h["epoch"] for h in long], [h["test_acc"] for h in long], "--", color="C1",
            label=f"bundled {name} ({len(long)} epochs)")
    ax.plot([h["epoch"] for h in curves[stage]], [h["test_acc"] for h in curves[stage]], "o-", color="C0",
            label=f"this run ({len(curves[stage])} epochs)")
    ax.set(title=stage, xlabel="epoch of the stage", ylabel="test accuracy", xscale="log", ylim=(0, 1))
    ax.legend(fontsize=8, loc="lower right")
plt.tight_layout()
plt.show()
for stage, name in pair.items():
    long = bundled[name]["history"]
    e = len(curves[stage])
    print(f"{stage:8s} test accuracy after {e} epochs: this run {curves[stage][-1]['test_acc']:.3f}, "
          f"bundled run at its epoch {e} {long[e - 1]['test_acc']:.3f}, at its end {long[-1]['test_acc']:.3f}")

# %% [markdown]
# ## Predictions of a bundled binarized model
#
# `pretrained.load(name)` returns the trained model in eval mode; `forward` then returns the mean of
# the two heads. Inputs are normalised with the training set's channel statistics
# (`eval_transform`). We use `digits-gsb-kd`, the distilled GSB model of stage 2: all its block
# weights, activations and attention maps are binary.

# %%
student = pretrained.load("digits-gsb-kd")
x = eval_transform(data.x_test, *channel_stats(data.x_train))  # (M, 1, 8, 8) float32
logits = student.forward(x)
pred = logits.argmax(axis=1)
acc = float(np.mean(pred == data.y_test))
print("precision stage:", student.precision, " training mode:", student.training, f" test accuracy: {acc:.4f}")
assert student.precision == "binary" and not student.training
assert acc == bundled["digits-gsb-kd"]["test_acc"], "the bundled accuracy is reproduced exactly"
wrong = np.flatnonzero(pred != data.y_test)
print(f"{len(wrong)} of {len(pred)} test images are misclassified")
fig, axes = plt.subplots(2, 8, figsize=(10, 3.2), layout="constrained")
for ax, j in zip(axes.ravel(), wrong):
    im = ax.imshow(data.x_test[j, ..., 0], cmap="gray_r", vmin=0, vmax=255)
    ax.set_title(f"{pred[j]} (true {data.y_test[j]})", color="r", fontsize=9)
    ax.axis("off")
for ax in axes.ravel()[len(wrong):]:
    ax.set_visible(False)
fig.colorbar(im, ax=axes, fraction=0.02, label="pixel value (uint8)")
fig.suptitle("misclassified test images: predicted (true)")
plt.show()

# %%
conf = np.zeros((10, 10), int)
np.add.at(conf, (data.y_test, pred), 1)
fig, ax = plt.subplots(figsize=(5.2, 4.4))
im = ax.imshow(conf, cmap="Blues")
ax.set(xticks=range(10), yticks=range(10), xlabel="predicted class", ylabel="true class",
       title="digits-gsb-kd: confusion matrix (test)")
for t in range(10):
    for p in range(10):
        if conf[t, p]:
            ax.text(p, t, conf[t, p], ha="center", va="center", fontsize=7,
                    color="w" if conf[t, p] > conf.max() / 2 else "k")
fig.colorbar(im, ax=ax, label="test images")
plt.show()
off = conf - np.diag(np.diag(conf))
t, p = np.unravel_index(off.argmax(), off.shape)
print(f"most frequent confusion: true {t} predicted as {p} ({off[t, p]} images)")
assert conf.sum() == len(data.y_test) and np.trace(conf) == len(data.y_test) - len(wrong)

# %% [markdown]
# ## Where the binarized model looks
#
# `model.inspect(x, block=i)` runs the model and returns the attention internals of block `i`. For a
# GSB model, `A` is the superposed binary map of Eq. 10: a sum of k_a + 1 binary matrices, each
# scaled by one learned alpha of the layer. So one layer's map can take at most 2^(k_a + 1) distinct
# values, while the teacher's softmax map takes a different real value almost everywhere. The row
# of the [cls] token (query 0), restricted to the 16 patch keys and laid out as the 4x4 patch grid,
# shows which patches feed the class head.

# %%
teacher = pretrained.load("digits-fp")
show = x[:4]
rec = student.inspect(show, block=-1)
rec_fp = teacher.inspect(show, block=-1)
A, A_fp = rec["A"], rec_fp["A"]  # (4, H, N, N)
k_a = student.cfg.k_a
n_gsb, n_fp = np.unique(A).size, np.unique(A_fp).size
print(f"last block, 4 images: distinct values of A  GSB {n_gsb} (bound 2^(k_a+1) = {2 ** (k_a + 1)}), "
      f"teacher {n_fp} of {A_fp.size} entries")
assert n_gsb <= 2 ** (k_a + 1), "Eq. 10: at most 2^(k_a+1) distinct values per layer"
assert n_fp > 0.9 * A_fp.size, "the teacher's map: a different value almost everywhere"

fig, axes = plt.subplots(3, 4, figsize=(10, 7.5), layout="constrained")
for j in range(4):
    im0 = axes[0, j].imshow(data.x_test[j, ..., 0], cmap="gray_r", vmin=0, vmax=255)
    axes[0, j].set_title(f"test image {j} (label {data.y_test[j]})", fontsize=9)
    axes[0, j].axis("off")
    for row, (a, who) in enumerate(((A_fp, "digits-fp"), (A, "digits-gsb-kd")), start=1):
        im = axes[row, j].imshow(a[j, :, 0, 2:].mean(axis=0).reshape(4, 4), cmap="magma")
        axes[row, j].set(title=f"{who}, [cls] row", xlabel="patch column", ylabel="patch row")
        axes[row, j].title.set_fontsize(9)
        fig.colorbar(im, ax=axes[row, j], fraction=0.046)
fig.colorbar(im0, ax=axes[0], fraction=0.02, label="pixel value")
fig.suptitle("last block: attention of the [cls] token to the 16 patches (mean over heads)")
plt.show()

# %% [markdown]
# ## Exercises
#
# 1. **Try: more epochs.** Double every epoch count of the short run (`short = dict(recipe, ...)`)
#    and rerun. How much of the gap to the bundled models closes at each stage, and which stage
#    gains most per extra second of training? Read the dashed curves first and predict.
# 2. **Try: a weak teacher.** The short run's stage 2 distils from the short run's own teacher, whose
#    test accuracy the training cell prints. Rerun with `short["distill"]` set to `"hard"` and to
#    `"none"`. With lambda = 0.5, Eq. 36 gives half the loss to the teacher's output: what does a
#    teacher that is wrong on many training images teach the [dist] head under hard targets, and why
#    do soft targets hurt less? Compare with the bundled teacher's `info("digits-fp")["train_acc"]`.
# 3. **Explain: how many values can A take?** The cell above bounds the number of distinct entries
#    of a GSB map by 2^(k_a + 1). Derive the bound from Eq. 10, and say when it is reached. What does
#    k_a = 0 reduce GSB attention to, and which failure of Section III (Figs. 6-7) does that bring back?
# 4. **Try: skip the stages.** Load `digits-fp`, call `set_precision("binary")` on it without any
#    training and evaluate it. Compare with `digits-stage1` evaluated the same way, and use the
#    binarization of Eqs. 1-3 to explain the paper's two-stage strategy (Section IV-D).
