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
# # 05 · Training: two stages, distillation, and limited data
#
# The paper trains GSB-ViT in two stages (TSTS, Section IV-D): stage 1 binarizes the weights only,
# stage 2 starts from those weights and binarizes everything. Stage 2 learns from a full-precision
# teacher through DeiT's extra [dist] token (Eq. 36):
#
# `L = (1 - lambda) L_cls + lambda L_dis`,  lambda = 0.5,
#
# where `L_cls` is the cross-entropy of the [cls] head with the label and `L_dis` a cross-entropy
# between the teacher's output and the [dist] head's.
#
# Fig. 11 asks why one would train a binary ViT on a small data set at all: there, the
# full-precision ViT drives its training loss towards zero while its test loss stays high
# (overfitting), and the binarized model, which cannot fit as tightly, does better on the test set.
# This notebook asks the same question in miniature, on 200 digits, reads the answer out of the
# curves with numbers, and then measures what distillation does here and why. Every number the text
# talks about is printed by a cell and checked there with `assert`.

# %%
import dataclasses
import sys
import tempfile
import time
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
from gsbnp.train.augment import Augment, eval_transform
from gsbnp.train.losses import distillation_loss
from gsbnp.train.trainer import TrainConfig, Trainer

plt.rcParams.update({"figure.dpi": 80})
print(f"gsbnp {gsbnp.__version__}, numpy {np.__version__}")

# %% [markdown]
# ## Eq. 36
#
# `distillation_loss` returns the loss and the gradients of both heads. "hard" distillation (DeiT's
# and the released code's choice) trains the [dist] head on the teacher's argmax; "soft" uses
# `tau^2 KL(softmax(teacher/tau) || softmax(student/tau))`, the teacher's whole distribution. With
# lambda = 0 the [dist] head gets no gradient at all; with a teacher whose argmax is the label,
# hard distillation is plain cross-entropy on the label for both heads. (Assignment 5.1 of
# `gsbnp assignments build` asks you to write `distillation_loss` yourself.)

# %%
cls_logits = np.array([[2.0, 0.5, -1.0]])
dist_logits = np.array([[0.1, 1.5, 0.0]])
teacher_logits = np.array([[0.2, 3.0, -0.5]])
y = np.array([0])
for kind in ("hard", "soft"):
    loss, dcls, ddist = distillation_loss(cls_logits, dist_logits, y, teacher_logits, kind=kind, tau=2.0)
    print(f"{kind}: L = {loss:.4f}  dL/dcls = {dcls.round(3)}  dL/ddist = {ddist.round(3)}")
_, _, ddist0 = distillation_loss(cls_logits, dist_logits, y, teacher_logits, lam=0.0)
assert np.all(ddist0 == 0), "lambda = 0: no gradient reaches the [dist] head"
_, dcls_h, ddist_h = distillation_loss(cls_logits, dist_logits, np.array([1]), teacher_logits, kind="hard")
_, dcls_l, ddist_l = distillation_loss(cls_logits, dist_logits, np.array([1]), np.eye(3)[[1]], kind="hard")
assert np.allclose(ddist_h, ddist_l), "hard targets equal to the label: the same gradient as label training"

# %% [markdown]
# ## Limited data
#
# The students see a balanced subset of the training set, 20 images per class, and are tested on the
# full test set. The teacher stands in for the paper's ImageNet-pretrained DeiT: the bundled
# `digits-fp`, a full-precision model trained on all 1,437 training images, i.e. with more data than
# the students see.

# %%
data = load_digits()
per_class = 20
rng = np.random.default_rng(0)
keep = np.concatenate([rng.choice(np.flatnonzero(data.y_train == c), per_class, replace=False)
                       for c in range(10)])
few = dataclasses.replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep])
teacher = pretrained.load("digits-fp")
t_info = pretrained.info("digits-fp")
cfg = dataclasses.replace(teacher.cfg, method="gsb")  # the digits preset; GSB with k_a = k_v = 2
print(f"{len(few.y_train)} training images for the students, {len(data.y_test)} test images; "
      f"teacher digits-fp ({t_info['data']['train']} training images): test accuracy {t_info['test_acc']:.4f}")
assert len(few.y_train) == 10 * per_class and t_info["data"]["train"] == len(data.y_train) == 1437

# %% [markdown]
# ## Fig. 11 in miniature: one stage from scratch
#
# Three runs with the same 200 images, schedule, epochs and initial weights, each one training stage
# from random weights (as in Fig. 11): full precision without distillation, GSB without
# distillation, and GSB with soft distillation from the teacher. No data augmentation, so that the
# curves show how closely each model can fit the few images it has. Each run's checkpoints go to a
# temporary folder that is removed at the end of the cell.

# %%
EPOCHS = 30
no_aug = Augment(crop_padding=0, hflip=False, randaug_num_ops=0, reprob=0.0)


def run(name, precision, distill="none", epochs=EPOCHS, lr=1e-3):
    """Train a fresh DeiT (seed 1) on the 200 images; returns the trained model and its per-epoch history."""
    model = DeiT(cfg, rng=np.random.default_rng(1)).set_precision(precision)
    tc = TrainConfig(epochs=epochs, lr=lr, batch_size=20, warmup_epochs=2.0, augment=no_aug, distill=distill)
    with tempfile.TemporaryDirectory(prefix="gsbnp-05-") as out, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GSB scales that start at their floor (see 04)
        trainer = Trainer(model, few, tc, out_dir=out, name=name, seed=1,
                          teacher=teacher if distill != "none" else None, progress=False)
        trainer.fit()
    return model, trainer.history


t0 = time.perf_counter()
runs = {"full precision": run("fp", "fp"), "GSB w/o KD": run("gsb", "binary"),
        "GSB + KD (soft)": run("gsb_kd", "binary", distill="soft")}
curves = {name: hist for name, (_, hist) in runs.items()}
print(f"three runs of {EPOCHS} epochs: {time.perf_counter() - t0:.0f} s")
fig, ax = plt.subplots(1, 2, figsize=(12.5, 4))
for (name, hist), color in zip(curves.items(), ("C0", "C1", "C2")):
    ep = [h["epoch"] for h in hist]
    ax[0].plot(ep, [h["train_loss"] for h in hist], color=color, label=f"{name}: training objective")
    ax[0].plot(ep, [h["test_loss"] for h in hist], "--", color=color, label=f"{name}: test loss")
    ax[1].plot(ep, [h["test_acc"] for h in hist], color=color, label=name)
ax[0].set(title="Fig. 11 in miniature: loss", xlabel="epoch", ylabel="loss (cross-entropy)", yscale="log")
ax[1].set(title="test accuracy", xlabel="epoch", ylabel="test accuracy (360 images)")
ax[0].legend(fontsize=7)
ax[1].legend(fontsize=8)
plt.tight_layout()
plt.show()
summary = {}
for name, hist in curves.items():
    last, best = hist[-1], min(hist, key=lambda h: h["test_loss"])
    summary[name] = {"train": last["train_loss"], "test": last["test_loss"],
                     "gap": last["test_loss"] - last["train_loss"],
                     "acc": last["test_acc"], "best_epoch": best["epoch"], "best_test": best["test_loss"]}
    s = summary[name]
    print(f"{name:16s} final: training objective {s['train']:.3f}, test loss {s['test']:.3f} "
          f"(gap {s['gap']:+.3f}), test accuracy {s['acc']:.3f}; lowest test loss {s['best_test']:.3f} "
          f"at epoch {s['best_epoch']}")

# %% [markdown]
# How to read it (the printout above gives each quantity). The gap between the test loss and the
# training loss measures overfitting; a lowest test loss reached well before the last epoch means
# the test loss turned back up while the training loss kept falling.
#
# **What the runs show here.** The test-accuracy ranking of Fig. 11 appears: GSB without distillation
# ends well above full precision on the test set. Its mechanism does not: the full-precision model
# has *not* overfitted the 200 images. Its training objective is still the highest of the three at
# the end, its test loss was still falling (its lowest test loss is at one of the last epochs), and
# its test-minus-training gap is smaller than GSB's, simply because it has fitted less.
# On 8x8 digits with this short schedule the full-precision ViT is slow to fit rather than overfitting,
# and GSB both fits the training images faster and generalises better. Fig. 11's picture (training
# loss near zero, test loss flat or rising) needs a model that has fitted its data, i.e. many more
# epochs than this notebook can afford: exercise 1 asks you to look for it. The cell below checks each
# of these statements.
#
# The "training objective" of the distilled run is Eq. 36 (half of it fits the teacher), so only its
# test loss and accuracy compare directly with the other two.

# %%
fp_s, gsb_s = summary["full precision"], summary["GSB w/o KD"]
print(f"test accuracy: GSB {gsb_s['acc']:.3f} vs full precision {fp_s['acc']:.3f}; training objective at the "
      f"end: full precision {fp_s['train']:.3f}, GSB {gsb_s['train']:.3f}; full precision's lowest test loss at "
      f"epoch {fp_s['best_epoch']} of {EPOCHS}")
assert gsb_s["acc"] > fp_s["acc"] + 0.03, "GSB ends well above full precision on the test set"
assert fp_s["train"] == max(s["train"] for s in summary.values()), "full precision fits the 200 images least"
assert fp_s["best_epoch"] >= EPOCHS - 3, "full precision's test loss is still falling at the end"
assert fp_s["gap"] < gsb_s["gap"], "full precision's test-minus-training gap is the smaller one"

# %% [markdown]
# ## The two stages of the bundled models
#
# The bundled models follow the paper's recipe on the full training set: `digits-stage1` (binary
# weights, from scratch), then four stage-2 runs that all start from its weights with a fresh
# optimizer and schedule. `info(name)["history"]` holds every epoch; the figure puts stage 2 after
# stage 1 on one axis, with the teacher's test accuracy for reference.

# %%
names = ["digits-baseline", "digits-gsb", "digits-gsb-kd", "digits-gsb-att"]
info = {n: pretrained.info(n) for n in ["digits-fp", "digits-stage1", *names]}
h1 = info["digits-stage1"]["history"]
fig, ax = plt.subplots(figsize=(9, 4))
ax.plot([h["epoch"] for h in h1], [h["test_acc"] for h in h1], color="k", label="digits-stage1 (binary weights)")
for n, color in zip(names, ("C3", "C1", "C2", "C4")):
    h = info[n]["history"]
    ax.plot([len(h1) + r["epoch"] for r in h], [r["test_acc"] for r in h], color=color, label=n)
ax.axhline(info["digits-fp"]["test_acc"], color="C0", ls=":", label="digits-fp (teacher), final")
ax.set(title="bundled models: stage 1, then stage 2 from its weights", xlabel="epoch (stage 1, then stage 2)",
       ylabel="test accuracy", ylim=(0.5, 1.0))
ax.legend(fontsize=8, loc="lower right")
plt.show()
for n in ["digits-fp", "digits-stage1", *names]:
    m = info[n]
    print(f"{n:16s} {m['precision']:8s} {m['epochs']:3d} epochs, distill {m['distill']:5s}: "
          f"test {m['test_correct']}/{m['test_n']} = {m['test_acc']:.4f}, train {m['train_acc']:.4f}")
first = info["digits-gsb"]["history"][0]["test_acc"]
print(f"digits-gsb after its first stage-2 epoch: {first:.4f} (stage 1 ended at {h1[-1]['test_acc']:.4f})")

# %% [markdown]
# Reading the curves and the printout: switching on binary activations and attention costs accuracy
# at once (the first stage-2 epoch of `digits-gsb` is far below where stage 1 ended), and stage 2
# wins most of it back, but no stage-2 model reaches stage 1, and stage 1 stays below the teacher.
# Among the stage-2 rows, the baseline ends above full GSB here, unlike the paper's Table I; with one
# model per row and 360 test images the difference is about one standard error (the cell below
# prints both), so this single run does not rank them. `gsbnp reproduce` runs several seeds for that;
# the README's measured table over 5 seeds points the same way, and suggests that the 18 tokens of an
# 8x8 image leave binarized attention too little to lose.

# %%
se = np.sqrt(info["digits-gsb"]["test_acc"] * (1 - info["digits-gsb"]["test_acc"]) / info["digits-gsb"]["test_n"])
diff = info["digits-baseline"]["test_acc"] - info["digits-gsb"]["test_acc"]
print(f"baseline - GSB: {diff * 100:+.2f} points; one standard error of a 360-image accuracy near "
      f"{info['digits-gsb']['test_acc']:.3f}: {se * 100:.2f} points")
stage2_best = max(info[n]["test_acc"] for n in names)
drop = h1[-1]["test_acc"] - first
assert drop > 0.1, "binarizing the activations drops accuracy at once"
assert info["digits-gsb"]["test_acc"] - first > drop / 2, "stage 2 wins most of the drop back"
assert info["digits-fp"]["test_acc"] > info["digits-stage1"]["test_acc"] > stage2_best
assert 0 < diff < 1.5 * se, "the baseline ends above GSB by about one standard error"
#
# ## What distillation did, and why
#
# Eq. 36 can only help when the teacher tells the student something the labels do not. The cell
# below measures how much there is to tell: the bundled teacher's argmax equals the label on almost
# every training image, and it puts almost all of its probability on the true class, so its soft
# targets are nearly the one-hot labels (and hard targets would be the labels themselves, the case of
# the second cell of this notebook). With the full data and two stages, distillation adds nothing
# measurable: `digits-gsb-kd` and `digits-gsb` end within two standard errors of a 360-image accuracy
# of each other. The 200-image runs above differ by the amount the cell prints. As the soft targets
# are nearly the labels, those two runs optimise nearly the same loss; they part in the small
# remainder of the teacher's probabilities and, from there, in every later step, and one pair of
# short runs on 200 images cannot tell that apart from the variation between runs (exercise 2 asks
# you to repeat it). In the paper the teacher is an ImageNet-pretrained DeiT fine-tuned on each data
# set, which knows much more than the students' labels; a teacher trained on the same 1,437 digits
# does not.

# %%
x_train = eval_transform(data.x_train, *channel_stats(data.x_train))
p_t = teacher.forward(x_train).astype(np.float64)
p_t = np.exp(p_t - p_t.max(axis=1, keepdims=True))
p_t /= p_t.sum(axis=1, keepdims=True)
agree = float(np.mean(p_t.argmax(axis=1) == data.y_train))
p_true = float(np.mean(p_t[np.arange(len(data.y_train)), data.y_train]))
kd_gain = info["digits-gsb-kd"]["test_acc"] - info["digits-gsb"]["test_acc"]
kd_gain_few = summary["GSB + KD (soft)"]["acc"] - summary["GSB w/o KD"]["acc"]
print(f"teacher on the 1,437 training images: argmax = label on {agree:.2%}, "
      f"mean probability of the true class {p_true:.3f}")
print(f"KD gain, bundled (full data, two stages): {kd_gain * 100:+.2f} points "
      f"({info['digits-gsb-kd']['test_correct'] - info['digits-gsb']['test_correct']:+d} test images)")
print(f"KD gain, the 200-image runs above:        {kd_gain_few * 100:+.2f} points; two standard errors of a "
      f"360-image accuracy: {2 * se * 100:.2f} points")
assert agree > 0.99 and p_true > 0.95, "the teacher's targets are nearly the labels"
assert abs(kd_gain) < 2 * se, "full data, two stages: distillation has no measurable effect"

# %% [markdown]
# ## Exercises
#
# 1. **Try: more data (Fig. 11).** Set `per_class` to 50 and then 100 and rerun the three runs. Does
#    the full-precision model's test-minus-training loss gap shrink faster than GSB's? At which size,
#    if any, does full precision overtake GSB on test accuracy here? Relate the answer to the paper's
#    claim that binarization regularises a ViT on limited data (Section V, Fig. 11).
# 2. **Try: is the 200-image KD difference real?** Rerun the two GSB runs with two other seeds
#    (the `seed=1` of `DeiT` and `Trainer` in `run`) and with `EPOCHS = 40`. Does the sign of the
#    difference hold? Then try `distill="hard"` and soft targets at `tau` = 4 (`TrainConfig(...,
#    tau=4.0)`): using the teacher's agreement with the labels printed above and Eq. 36, predict before
#    you run which of the two can change the result at all.
# 3. **Explain: the training objective.** Why is the distilled run's training curve not comparable
#    with the others, and what is its smallest possible value with soft targets? (Write Eq. 36 with
#    `L_dis` as a KL divergence and ask when each term is zero.)
# 4. **Explain: stage 2 starts from stage 1.** The stage-2 curves above start well above chance at
#    their first epoch. Which parameters does stage 2 inherit from stage 1, which does it initialise
#    itself (Eqs. 25 and 34), and why does a fresh optimizer and schedule make sense there?
