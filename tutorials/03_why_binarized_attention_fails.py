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
# Section III of the paper builds a *baseline* binary ViT. Its attention map is binarized like any
# type-A activation (Eq. 7):
#
# `A_re = softmax(B(Q) B(K)^T / sqrt(d))`,   `A_bin = clip(round(A_re / gamma), 0, 1)`,
#
# and the layer passes on the scaled matrix `gamma * A_bin` (the scale comes back, as in Eq. 1). The
# paper reports a failure for each choice of the scale gamma:
#
# - **Eq. 2**, gamma = the mean of the map. At initialization almost all values of `A_re` are below
#   0.5 and very concentrated (Fig. 4a), and dividing by gamma "turns almost all values into 1"
#   (Fig. 4b): attention no longer tells the tokens apart.
# - **Eq. 8**, gamma = the mean of the values above 0.5. "Almost 99%" of the entries round to 0
#   (Fig. 6b), and a row left without a single 1 erases its token's features: the **vanishing
#   feature** problem (Fig. 7).
#
# The baseline therefore trains with a **switch** (Section III-B): a map for which Eq. 8 leaves fewer
# ones than there are tokens is binarized with Eq. 2 instead.
#
# This notebook measures each claim on the bundled, trained `digits-baseline` model (and on a freshly
# initialized copy of it for Fig. 4), compares with the full-precision teacher `digits-fp`, and says
# where the paper's effect appears at this scale and where it does not. Every number the text
# mentions is printed by a cell and checked there with `assert`.

# %%
import dataclasses
import sys

try:
    import gsbnp
except ImportError:  # a checkout without `pip install -e .`: use the package next to tutorials/
    sys.path.insert(0, "..")
    import gsbnp
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm

from gsbnp import pretrained
from gsbnp import quant as Q
from gsbnp.data import channel_stats, load_digits
from gsbnp.models import DeiT
from gsbnp.train.augment import eval_transform

print(f"gsbnp {gsbnp.__version__}, numpy {np.__version__}")

data = load_digits()
x = eval_transform(data.x_test, *channel_stats(data.x_train))  # all test images, (M, 1, 8, 8)
base = pretrained.load("digits-baseline")
fp = pretrained.load("digits-fp")
cfg = base.cfg
N, Dh, L = cfg.num_tokens, cfg.head_dim, cfg.depth


def accuracy(model):
    return float(np.mean(model.forward(x).argmax(axis=1) == data.y_test))


acc_base, acc_fp = accuracy(base), accuracy(fp)
print(f"{len(x)} test images; N = {N} tokens ({cfg.num_patches} patches + [cls] + [dist]), head dim Dh = {Dh}, "
      f"{L} blocks, {cfg.num_heads} heads")
print(f"test accuracy: digits-fp {acc_fp:.3f}, digits-baseline {acc_base:.3f}")
assert acc_base == pretrained.info("digits-baseline")["test_acc"]

# %% [markdown]
# `model.inspect(x, block=i)` runs the model's own forward pass and returns the attention internals of
# block `i`: `Q_b`, `K_b` (the binarized queries and keys), `A_re` (Eq. 7), `A` (the map that
# multiplies V: `gamma * A_bin` in the baseline) and more. The paper's Figs. 4 and 6 use the attention
# layer closest to the output, the last block here.
#
# ## Two facts about every softmax map
#
# Each row of `A_re` is a softmax, so it sums to 1. Two consequences decide almost everything below:
#
# 1. The mean of a map is exactly `1/N`, so **Eq. 2's gamma is `1/N` for every map**, and
#    `round(A_re / gamma) = 1` exactly where `A_re > 1/(2N)`: Eq. 2 keeps the keys that get more than
#    half of the uniform attention.
# 2. **At most one entry per row can exceed 0.5.** A map of N rows has at most N entries above 0.5,
#    the entries Eq. 8 averages.
#
# And one fact about the baseline: `Q_b K_b^T` is a sum of `Dh` products of ±1, an integer of the same
# parity as `Dh`, so before the softmax a row takes at most `Dh + 1` distinct values.

# %%
r_base = base.inspect(x, block=-1)
A_base = r_base["A_re"].astype(np.float64)  # (M, H, N, N)
A_fp = fp.inspect(x, block=-1)["A_re"].astype(np.float64)
gamma2 = Q.baseline_attention_forward(A_base, mode="eq2")[1]["gamma"]  # (M, H, 1, 1)
assert np.allclose(A_base.sum(axis=-1), 1) and np.allclose(gamma2, 1 / N)
for A in (A_base, A_fp):
    assert (A > 0.5).sum(axis=-1).max() <= 1  # fact 2, in both models

scores = r_base["Q_b"] @ r_base["K_b"].swapaxes(-1, -2)  # (M, H, N, N), the integers before / sqrt(Dh)
assert np.array_equal(scores, np.round(scores)) and np.all((scores - Dh) % 2 == 0)
n_levels = np.unique(scores).size
n_base_row = np.mean([np.unique(row).size for row in scores.reshape(-1, N)])
n_fp_row = np.mean([np.unique(row).size for row in A_fp.reshape(-1, N)])
print(f"Eq. 2's gamma is 1/N = {1 / N:.4f} in every map; no row of either model has two entries > 0.5")
print(f"baseline: the scores Q_b K_b^T take {n_levels} distinct values (at most Dh + 1 = {Dh + 1}); a row "
      f"has {n_base_row:.1f} distinct values on average, a full-precision row {n_fp_row:.1f} (of N = {N})")
assert n_levels <= Dh + 1 and n_base_row < n_fp_row

# %% [markdown]
# ## Fig. 4: the baseline at initialization
#
# Fig. 4 shows the baseline *at initialization*. We build a fresh model with the same configuration
# (binarized weights, activations and attention, random weights) and binarize its last attention map
# with Eq. 2.

# %%
init = DeiT(cfg, rng=np.random.default_rng(0)).set_precision("binary").eval()
r_init = init.inspect(x, block=-1)
A_init = r_init["A_re"].astype(np.float64)
ones2_init = Q.baseline_attention_forward(A_init, mode="eq2")[1]["A_bin"].mean()
below_init = np.mean(A_init < 0.5)
near_init = np.mean((A_init > 0.5 / N) & (A_init < 2 / N))
print(f"initialization: {below_init:.2%} of A_re < 0.5, largest value {A_init.max():.3f}; "
      f"{near_init:.1%} within a factor 2 of 1/N")
print(f"ones after Eq. 2 scaling: {ones2_init:.1%}")
assert below_init > 0.99  # Fig. 4a holds: almost all values are below 0.5
assert ones2_init < 0.75  # ...but Fig. 4b does not: far from "almost all" become 1

fig, ax = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
ax[0].hist(A_init.ravel(), 60, color="C0", label="A_re")
ax[0].axvline(0.5, color="r", label="0.5")
ax[0].axvline(1 / N, color="k", ls="--", label="1/N (the mean)")
ax[0].set(yscale="log", title="(a) A_re at initialization", xlabel="attention value", ylabel="entries")
ax[0].legend()
ax[1].hist(np.clip(A_init * N, 0, 4).ravel(), 60, color="C1", label="A_re / gamma")
ax[1].axvline(0.5, color="r", label="round: right of 0.5 -> 1")
ax[1].set(yscale="log", title=f"(b) A_re / gamma, Eq. 2 (clipped at 4): {ones2_init:.0%} -> 1",
          xlabel="scaled attention value", ylabel="entries")
ax[1].legend()
plt.show()

# %% [markdown]
# Fig. 4a's claim holds: the printed share of values below 0.5 is above 99%. Fig. 4b's does not at this
# scale: the cell prints how many entries Eq. 2 turns into 1, well short of "almost all". Why? With
# random weights, `sign(q)` and `sign(k)` are close to independent, so a score `Q_b K_b^T / sqrt(Dh)` is
# a sum of `Dh` random ±1 terms divided by `sqrt(Dh)`: spread about 1 whatever `Dh` is. If the scores
# of a row are normal with standard deviation `s`, `exp(score)` is log-normal and the share of entries
# above half the row mean is `P(z > ln(1/2) + s^2/2)`, `z ~ N(0, s^2)`. The cell below measures `s` and
# compares this prediction with the measured share. Only scores that are much more alike than that
# (small `s`) would give "almost all ones"; the share depends on `s`, not on N, so the paper's
# N = 198 does not change it by itself.

# %%
scores_init = r_init["Q_b"] @ r_init["K_b"].swapaxes(-1, -2) / np.sqrt(Dh)  # (M, H, N, N)
s = float(scores_init.std(axis=-1).mean())  # spread of the scores within a row
predicted = norm.sf((np.log(0.5) + s ** 2 / 2) / s)
print(f"score spread s = {s:.2f}; log-normal prediction of the ones share {predicted:.1%}, "
      f"measured {ones2_init:.1%}")
assert abs(predicted - ones2_init) < 0.1
for s_try in (0.25, 0.5, 1.0, 2.0):
    print(f"  s = {s_try:4.2f} -> Eq. 2 would keep {norm.sf((np.log(0.5) + s_try ** 2 / 2) / s_try):.1%}")

# %% [markdown]
# ## Fig. 6: the trained baseline
#
# Now the trained `digits-baseline`, last block, all test images. Fig. 6 shows (a) `A_re`, (b) `A_re`
# scaled by Eq. 8's gamma and (c) scaled by Eq. 2's gamma. Eq. 8 is defined only for a map with at
# least one value above 0.5; its gamma is the mean of those values. The library's
# `baseline_attention_forward(A_re, mode="eq8")` applies Eq. 8 *with* the switch, so for the panels we
# compute Eq. 8's gamma alone (one line), and check it against the library on the maps the switch left
# on Eq. 8.

# %%
big = A_base > 0.5
n_big = big.sum(axis=(-2, -1), keepdims=True)  # (M, H, 1, 1) values above 0.5 per map
has8 = n_big[..., 0, 0] > 0  # (M, H): maps where Eq. 8 is defined
gamma8 = np.sum(A_base, axis=(-2, -1), keepdims=True, where=big) / np.maximum(n_big, 1)  # Eq. 8
gamma8 = np.where(n_big > 0, gamma8, np.nan)  # undefined without a value > 0.5 (comparisons give False)
_, c8 = Q.baseline_attention_forward(A_base, mode="eq8")
kept8 = ~c8["switched"]  # (M, H): maps the switch left on Eq. 8
assert np.allclose(c8["gamma"][kept8], gamma8[kept8])

ones8_alone = (A_base / gamma8 > 0.5)[has8]  # Eq. 8 alone, on the maps where it is defined
below = np.mean(A_base < 0.5)
ones2 = np.mean(A_base > 1 / (2 * N))
ones2_fp = np.mean(A_fp > 1 / (2 * N))
print(f"trained baseline: {below:.2%} of A_re < 0.5; Eq. 8 is defined on {has8.mean():.1%} of the maps")
print(f"Eq. 8 alone rounds {1 - ones8_alone.mean():.1%} of their entries to 0")
print(f"Eq. 2 turns {ones2:.1%} of the entries into 1 (at initialization: {ones2_init:.1%}); "
      f"on digits-fp's maps it would be {ones2_fp:.1%}")
assert below > 0.98
assert 1 - ones8_alone.mean() > 0.95  # Fig. 6b: "almost 99%" become 0
peak, peak_init = A_base.max(axis=-1).mean(), A_init.max(axis=-1).mean()
print(f"mean largest value of a row: trained {peak:.3f}, at initialization {peak_init:.3f}")
assert ones2 < ones2_init and peak > peak_init  # training sharpened the rows: Eq. 2 keeps fewer keys
assert ones2_fp > ones2

fig, ax = plt.subplots(1, 3, figsize=(15, 3.6), layout="constrained")
ax[0].hist(A_base.ravel(), 60, color="C0", label="digits-baseline")
ax[0].hist(A_fp.ravel(), 60, color="C2", histtype="step", lw=1.5, label="digits-fp")
ax[0].axvline(0.5, color="r", label="0.5")
ax[0].set(yscale="log", title="(a) A_re, trained", xlabel="attention value", ylabel="entries")
ax[0].legend()
ax[1].hist((A_base / gamma8)[has8].ravel(), 60, color="C3", label="A_re / gamma")
ax[1].axvline(0.5, color="r", label="round: right of 0.5 -> 1")
ax[1].set(yscale="log", title=f"(b) Eq. 8 alone: {1 - ones8_alone.mean():.1%} -> 0",
          xlabel="scaled attention value", ylabel="entries")
ax[1].legend()
ax[2].hist(np.clip(A_base * N, 0, 6).ravel(), 60, color="C1", label="A_re / gamma")
ax[2].axvline(0.5, color="r", label="round: right of 0.5 -> 1")
ax[2].set(yscale="log", title=f"(c) Eq. 2 (clipped at 6): {ones2:.1%} -> 1",
          xlabel="scaled attention value", ylabel="entries")
ax[2].legend()
plt.show()

# %% [markdown]
# Both of Fig. 6's observations hold on the trained model: almost every value of `A_re` is below 0.5
# (panel a), and Eq. 8 rounds almost every entry to 0 (panel b; the cell prints the share). Eq. 2 is
# again far from "almost all ones", and *fewer* entries pass it than at initialization: training with
# the binarizer in the loop made the rows more peaked, so fewer keys get more than half of the uniform
# attention. The full-precision teacher (green outline in panel a), trained without any binarizer,
# would put the printed, larger share of its entries above Eq. 2's threshold.

# %% [markdown]
# ## The switch: how often it falls back to Eq. 2, and what that means
#
# The switch (Section III-B) fires when Eq. 8 would leave fewer than N ones in a map, and always when
# no value exceeds 0.5 (Eq. 8 is then undefined). Fact 2 above makes it fire often: Eq. 8's gamma is a
# mean of values above 0.5, so a 1 of `A_bin` needs `A_re > gamma / 2 > 0.25`, and a softmax row has at
# most three entries above 0.25. To keep Eq. 8, a map needs N such entries: on average one peak above
# a quarter in *every* row. The library's cache says, per map, whether it switched; we count per block
# and split the switched maps by reason.

# %%
rows = []
for b in range(L):
    rb = base.inspect(x, block=b)
    Ab = rb["A_re"].astype(np.float64)
    _, cb = Q.baseline_attention_forward(Ab, mode="eq8")
    assert np.allclose(cb["gamma"] * cb["A_bin"], rb["A"])  # the library reproduces the layer's own map
    undefined = ~(Ab > 0.5).any(axis=(-2, -1))  # (M, H) no value > 0.5
    assert (Ab > 0.25).sum(axis=-1).max() <= 3  # a softmax row has at most three entries above 1/4
    rows.append((cb["switched"].mean(), undefined.mean(), (cb["switched"] & ~undefined).mean()))
    print(f"block {b}: {rows[-1][0]:6.1%} of the maps switched to Eq. 2  ({rows[-1][1]:5.1%} have no value"
          f" > 0.5, {rows[-1][2]:5.1%} have fewer than N = {N} ones under Eq. 8)")
switched = np.array(rows)
assert np.allclose(switched[:, 0], switched[:, 1] + switched[:, 2])
assert switched[:, 0].min() > 0.5  # in every block most maps run on Eq. 2

fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
blocks = np.arange(L)
ax.bar(blocks, switched[:, 1], color="C0", label="no value > 0.5 (Eq. 8 undefined)")
ax.bar(blocks, switched[:, 2], bottom=switched[:, 1], color="C1", label=f"fewer than N = {N} ones")
ax.set(title="digits-baseline: maps the switch sends back to Eq. 2", xlabel="block",
       ylabel="share of the maps", xticks=blocks, ylim=(0, 1.3))
ax.legend(loc="upper center", ncol=2, fontsize=8)
plt.show()

# %% [markdown]
# In every block most maps fall back to Eq. 2 (the cell prints the shares). At this scale the trained
# baseline is therefore, for most of its maps, an *Eq. 2* baseline: a map keeps each key above
# `1/(2N)` with the same weight `1/N` and drops the rest. Whatever distinguished a strong key from a
# weak one inside that set is gone, which is the failure of Eq. 2 that Section IV-A describes ("the
# difference between the similarity values ... will be reduced").
#
# One way to see how little Eq. 8 still does: rebuild the same trained weights with
# `baseline_attn="eq2"` (Eq. 2 in every map, no switch) and compare the predictions.

# %%
eq2_model = DeiT(dataclasses.replace(cfg, baseline_attn="eq2"), rng=np.random.default_rng(0))
eq2_model.set_precision("binary").load_state_dict(base.state_dict())
eq2_model.eval()
acc_eq2 = accuracy(eq2_model)
agree = np.mean(eq2_model.forward(x).argmax(axis=1) == base.forward(x).argmax(axis=1))
print(f"test accuracy with the switch (as trained) {acc_base:.3f}, with Eq. 2 everywhere {acc_eq2:.3f}; "
      f"the two agree on {agree:.1%} of the test images")
assert agree > 0.8

# %% [markdown]
# ## Fig. 7: vanishing features
#
# The attention output is `Y = A V`. A row of `A_bin` without a 1 gives an all-zero row of `Y`: that
# token receives nothing from any token in this block, and if it is the [cls] token, the class head
# gets no information from this block's attention. (In a DeiT block the residual connection
# `x + proj(Y)` still carries the token's own features past the block, so the token is not zeroed,
# but it learns nothing from the other tokens there.) The toy case of Fig. 7, N = 6 tokens and C = 2
# channels, with gamma from Eq. 8:

# %%
A_toy = np.array([[0.05, 0.6, 0.1, 0.1, 0.1, 0.05],
                  [0.2, 0.2, 0.2, 0.15, 0.15, 0.1],  # a flat row: no value above the threshold
                  [0.7, 0.1, 0.05, 0.05, 0.05, 0.05],
                  [0.1, 0.1, 0.55, 0.1, 0.1, 0.05],
                  [0.3, 0.3, 0.1, 0.1, 0.1, 0.1],  # flat again
                  [0.05, 0.05, 0.05, 0.05, 0.2, 0.6]])
V_toy = np.arange(12, dtype=float).reshape(6, 2) - 5
gamma_toy = A_toy[A_toy > 0.5].mean()  # Eq. 8
A_bin_toy = np.clip(np.round(A_toy / gamma_toy), 0, 1)
Y_toy = A_bin_toy @ V_toy
print(f"gamma (Eq. 8) = {gamma_toy:.3f}\nA_bin =\n{A_bin_toy.astype(int)}\nY = A_bin V =\n{Y_toy}")
assert np.array_equal(~A_bin_toy.any(axis=1), ~Y_toy.any(axis=1))  # zero rows of A_bin -> zero rows of Y
assert (~A_bin_toy.any(axis=1)).sum() == 2

# %% [markdown]
# On the trained model, last block: the share of rows that Eq. 8 alone would erase (on the maps where
# it is defined), the rows that the baseline actually erases with its switch (rows of the layer's own
# `A` that are all zero, with the matching rows of its own output `Y`), and Eq. 2. Eq. 2 can never
# erase a row: a row's largest value is at least its mean `1/N`, above the threshold `1/(2N)`.

# %%
erased8_rows = ~(A_base / gamma8 > 0.5).any(axis=-1)  # (M, H, N) Eq. 8 alone
erased8 = erased8_rows[has8].mean()
erased8_cls = erased8_rows[..., 0][has8].mean()
erased_sw = ~(r_base["A"] > 0).any(axis=-1)  # (M, H, N) the baseline as trained (with the switch)
assert np.array_equal(erased_sw, ~r_base["Y"].any(axis=-1))  # a zero row of A is a zero row of Y
erased2 = ~(A_base > 1 / (2 * N)).any(axis=-1)
print(f"Eq. 8 alone erases {erased8:.1%} of the rows ({erased8_cls:.1%} of the [cls] rows)")
print(f"with the switch {erased_sw.mean():.2%} of the rows are erased "
      f"({erased_sw[..., 0].mean():.2%} of the [cls] rows); Eq. 2 erases {erased2.mean():.0%}")
assert erased8 > 0.2 and erased2.sum() == 0 and erased_sw.mean() < erased8

# %% [markdown]
# The switch trades Fig. 7's failure for Eq. 2's: Eq. 8 alone would erase the printed share of rows,
# the switch brings it down to a small remainder. That remainder exists because the switch counts the
# ones of a whole map, not of each row: a map with N ones can hold them in a few peaked rows and leave
# other rows empty.
#
# Two maps of the last block, drawn, each chosen by code: (top) among the maps where Eq. 8 is
# defined, the one that Eq. 8 alone leaves with the most empty rows; (bottom) among the maps the
# switch kept on Eq. 8, the one with the most rows erased anyway. The binary panels share one colour
# scale (white 0, black 1); red marks on the left edge flag the erased rows.

# %%
n_erased8 = np.where(has8, erased8_rows.sum(axis=-1), -1)  # (M, H) rows erased by Eq. 8 alone
n_erased_kept = np.where(kept8, erased_sw.sum(axis=-1), -1)  # (M, H) rows erased on the maps kept on Eq. 8
picks = [np.unravel_index(np.argmax(n_erased8), n_erased8.shape),
         np.unravel_index(np.argmax(n_erased_kept), n_erased_kept.shape)]
assert n_erased_kept.max() > 0  # some maps keep Eq. 8 and still lose rows

fig, axes = plt.subplots(2, 4, figsize=(18, 8.5), gridspec_kw={"wspace": 0.3, "hspace": 0.35})
for ax, (img, head) in zip(axes, picks):
    A_map = A_base[img, head]
    panels = {"Eq. 8 alone": A_map / gamma8[img, head] > 0.5,
              "Eq. 8 + switch (baseline)": c8["A_bin"][img, head],
              "Eq. 2": A_map > 1 / (2 * N)}
    assert panels["Eq. 8 alone"].any()  # the panel is not blank
    print(f"image {img} (digit {data.y_test[img]}), head {head}: the switch "
          f"{'fell back to Eq. 2' if c8['switched'][img, head] else 'kept Eq. 8'}; erased rows: "
          + ", ".join(f"{k} {(~v.any(axis=1)).sum()}" for k, v in panels.items()))
    im = ax[0].imshow(A_map, cmap="viridis")
    fig.colorbar(im, ax=ax[0], label="A_re")
    ax[0].set(title=f"A_re (image {img}, head {head})", xlabel="key token", ylabel="query token")
    for a, (name, Ab) in zip(ax[1:], panels.items()):
        im_b = a.imshow(Ab, cmap="gray_r", vmin=0, vmax=1)
        empty = np.flatnonzero(~Ab.any(axis=1))
        a.plot(np.full(empty.size, -0.5), empty, "r>", ms=7, clip_on=False)
        a.set(title=f"{name}\n{empty.size} rows erased", xlabel="key token", ylabel="query token")
    fig.colorbar(im_b, ax=list(ax[1:]), ticks=[0, 1], label="A_bin", fraction=0.02)
    for a in ax:
        a.set(xticks=range(0, N, 3), yticks=range(0, N, 3))
    if c8["switched"][img, head]:
        assert np.array_equal(panels["Eq. 8 + switch (baseline)"], panels["Eq. 2"])
plt.show()
assert c8["switched"][picks[0]] and n_erased8[picks[0]] >= 0.8 * N

# %% [markdown]
# In the top map the switch fell back to Eq. 2, so its panel *is* the Eq. 2 panel (the cell checks
# that they are equal): Eq. 8 alone would have erased almost every row of that map. In the bottom map
# the switch kept Eq. 8, and the rows Eq. 8 erases stay erased in the trained baseline.

# %% [markdown]
# ## What this means
#
# With softmax maps of N tokens, Eq. 2 always binarizes at `1/(2N)` and keeps every key above it with
# one common weight, and Eq. 8 can only keep the few entries above a quarter, erasing a large share of
# the rows; the switch picks Eq. 2 for most maps. Either way a binary map has two levels, 0 and gamma, and
# the order among the kept keys is lost. GSB (notebook 04) keeps several thresholds relative to each
# row's own maximum (Eq. 13), so a row whose maximum is positive is never erased and larger attention
# values stay larger than smaller ones.
#
# ## Exercises
#
# 1. **Try** (Eq. 2, Fig. 4b). Build fresh baseline models with other head sizes (e.g.
#    `dataclasses.replace(cfg, embed_dim=32)` or `embed_dim=128`) and other image sizes
#    (`img_size=16`, four times as many patches), measure the share of ones after Eq. 2 in the last block at
#    initialization, and compare with the log-normal prediction. Which quantity decides the share?
# 2. **Explain** (Eqs. 7, 8 and the switch). Show that Eq. 8's gamma is at least 0.5, that a 1 of
#    `A_bin` under Eq. 8 needs `A_re > 0.25`, and that a softmax row holds at most three such entries.
#    What does a map need so that the switch keeps Eq. 8? Check your answer against the shares the
#    switch cell prints for each block.
# 3. **Try** (Fig. 7). Pick the [cls] row (query 0) of the map drawn above and compute `Y = A V` for it
#    with each of the three binarizations, using `V` from `base.inspect(x, block=-1)["V"]`. Which rule
#    gives the [cls] token no information from the image, and why does the model still classify that
#    image (look at the residual connection of the block)?
# 4. **Explain** (Section IV-A). Under Eq. 2, every kept key of a row gets the weight `1/N`. Take the
#    row of the drawn map with the largest `A_re` value: how much of its attention mass sat on its
#    strongest key before binarization, and how much after? What does that do to the "similarity
#    values" the paper talks about?
