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
# # 01 · Binarization and the straight-through estimator
#
# A binarized network replaces each real number by one bit times a scale. This notebook follows
# Sections I and III-A of the paper with the real gsbnp code:
#
# 1. why restricting a model to binary parameters can *help* when training data are scarce (Fig. 1);
# 2. the two discrete operations of the paper, `sign` (Eq. 4) and `clip(round(x), 0, 1)` (Eq. 3), and
#    which activations get which (type-A and type-B);
# 3. how a network containing them is trained anyway: the **straight-through estimator** (STE) of
#    Eq. 5 for activations and the identity of Eq. 6 for weights, seen on the trained `digits-gsb`
#    model bundled with gsbnp;
# 4. how gsbnp checks every STE numerically: the frozen-residual surrogate.
#
# Every number the text mentions is printed by the cell above it and checked there with `assert`.

# %%
import sys
from itertools import product

try:
    import gsbnp
except ImportError:  # a checkout without `pip install -e .`: use the package next to tutorials/
    sys.path.insert(0, "..")
    import gsbnp
import matplotlib.pyplot as plt
import numpy as np

print(f"gsbnp {gsbnp.__version__}, numpy {np.__version__}")

# %% [markdown]
# ## Fig. 1: binarization limits the search space
#
# Fig. 1 of the paper takes the quadratic model `y = a x^2 + b x + c`. With real `a, b, c` it can be
# any parabola; with `a, b, c` in {-1, +1} it can only be one of **2^3 = 8** functions (left panel
# below). The paper's claim is that this restriction acts as an implicit regularizer when training
# data are insufficient.
#
# We test that claim on a toy problem where the binary model is at a *disadvantage*: the true function
# `y = 0.6 x^2 + 1.3 x - 0.4` is **not** one of the eight, so even with infinitely many samples the
# binary model keeps an error (its best of the eight). We draw `n` noisy samples many times, fit both
# models by least squares on the samples (real: solve for `a, b, c`; binary: pick the best of the eight)
# and measure their error against the true function on the whole interval.

# %%
xs = np.linspace(-2, 2, 201)
powers = np.stack([xs**2, xs, np.ones_like(xs)], axis=1)  # (201, 3): x^2, x, 1
signs = np.array(list(product((-1, 1), repeat=3)))  # (8, 3): every binary (a, b, c)
truth = np.array([0.6, 1.3, -0.4])
sigma, T = 0.8, 2000  # noise level, draws per sample size
sizes = np.array([3, 4, 5, 7, 10, 15, 20, 30, 50])
rng = np.random.default_rng(0)


def test_error(coef):
    """Mean squared distance to the true function on [-2, 2], per row of coef (..., 3)."""
    return ((coef @ powers.T - truth @ powers.T) ** 2).mean(axis=-1)


floor = test_error(signs).min()  # the best the eight functions can do
err_real, err_bin, draws = [], [], {}
for n in sizes:
    X = rng.uniform(-2, 2, (T, n))
    V = np.stack([X**2, X, np.ones_like(X)], axis=-1)  # (T, n, 3) design matrices
    Y = V @ truth + sigma * rng.standard_normal((T, n))
    real = np.linalg.solve(V.swapaxes(1, 2) @ V, (V.swapaxes(1, 2) @ Y[..., None]))[..., 0]  # (T, 3)
    fit = ((np.einsum("tnk,sk->tsn", V, signs) - Y[:, None]) ** 2).mean(-1)  # (T, 8) training error
    binary = signs[fit.argmin(axis=1)]  # (T, 3): the best of the eight on the samples
    err_real.append(np.median(test_error(real)))
    err_bin.append(np.median(test_error(binary)))
    draws[n] = X[0], Y[0], real[0], binary[0]
err_real, err_bin = np.array(err_real), np.array(err_bin)
crossover = sizes[np.argmax(err_real < err_bin)]
for n, r, b in zip(sizes, err_real, err_bin):
    print(f"n = {n:2d} samples: median test error  real a,b,c {r:6.3f}   binary a,b,c {b:6.3f}")
print(f"best of the eight functions: {floor:.3f};  the real model wins from n = {crossover} on")

assert 3 * err_bin[0] < err_real[0], "with 3 samples the binary model should beat the real one by far"
assert err_real[-1] < err_bin[-1], "with many samples the real model should win"
assert np.isclose(err_bin[-1], floor), "with many samples the binary model should find its best function"

fig, ax = plt.subplots(1, 3, figsize=(15, 4))
for (a, b, c), y in zip(signs, signs @ powers.T):
    ax[0].plot(xs, y, label=f"a={a:+d} b={b:+d} c={c:+d}")
ax[0].set(title="Fig. 1: the 8 functions of a binarized quadratic", xlabel="x", ylabel="y")
ax[0].legend(fontsize=7, ncol=2)
X0, Y0, real0, bin0 = draws[sizes[0]]
ax[1].plot(xs, truth @ powers.T, "k", label="truth (not one of the 8)")
ax[1].plot(xs, real0 @ powers.T, label="real a, b, c (fits the noise)")
ax[1].plot(xs, bin0 @ powers.T, "--", label="binary a, b, c")
ax[1].plot(X0, Y0, "o", color="k", label=f"the {sizes[0]} samples")
ax[1].set(title=f"one draw of {sizes[0]} noisy samples", xlabel="x", ylabel="y", ylim=(-6, 8))
ax[1].legend(fontsize=8)
ax[2].plot(sizes, err_real, "o-", label="real a, b, c")
ax[2].plot(sizes, err_bin, "s-", label="binary a, b, c")
ax[2].axhline(floor, color="gray", ls=":", label="best of the 8 (binarization error)")
ax[2].set(title="error against the truth (median of 2000 draws)", xlabel="training samples n",
          ylabel="mean squared error", xscale="log", yscale="log")
ax[2].set_xticks(sizes, [str(n) for n in sizes])
ax[2].minorticks_off()
ax[2].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The cell above prints the whole trade-off. With the fewest samples the real model interpolates the
# noise and its error is far above the binary model's; the binary model cannot follow the noise, but
# it also cannot reach the truth, so its error levels off at the best of the eight (the dotted line:
# the *binarization error*). From the printed crossover on, data are plentiful enough for the real
# model to win. Binarization trades variance for bias, which pays off exactly in the paper's setting
# of limited training samples. (In a network the binary values also get a learned scale `alpha`,
# below, a freedom the eight functions here lack.)
#
# ## The discrete operations (Eqs. 3-4) and the two types of activations
#
# Following BiT, Section III-A sorts a transformer's activations into two types:
#
# * **type-A** activations contain only non-negative elements; the paper names the attention maps
#   and vectors after a ReLU. They are binarized to {0, 1} with Eq. 3,
#   `B_round(x) = clip(round(x), 0, 1)`: 0 if `x <= 0.5`, 1 otherwise.
# * **type-B** activations contain positive, negative and zero elements. They are binarized to
#   {-1, +1} with Eq. 4, `sign(x)`: +1 if `x >= 0` (so `sign(0) = +1`), -1 otherwise.
#
# gsbnp's DeiT follows BiT and the authors' released code and treats the input of the second MLP layer
# `fc2` as type-A (docs/conventions.md, "Activations of linear layers"). That input comes out of a
# **GELU**, not a ReLU, and GELU is *not* non-negative: it dips below zero for negative inputs.
# The next cell computes how far.

# %%
from gsbnp.functional import gelu_forward

z = np.linspace(-4, 4, 80001)
g = gelu_forward(z)[0]
gelu_min, gelu_argmin = g.min(), z[g.argmin()]
print(f"min GELU(x) = {gelu_min:.4f} at x = {gelu_argmin:.3f}")
assert -0.18 < gelu_min < -0.16 and -0.8 < gelu_argmin < -0.7

# %% [markdown]
# So type-A at `fc2` means *mostly* non-negative: values down to the printed minimum occur. Eq. 3
# sends them, with everything else at or below the threshold, to 0; gsbnp's learnable bias (next
# paragraph) could in principle lift some over it. A trained model below shows how many there are
# and where they go.
#
# gsbnp's learnable quantizers (BiT style) add a scale `alpha` and a per-feature bias `b`:
# `x_b = alpha * op(q)` with `q = (x + b) / alpha`, `op` = sign (type-B) or clip(round) (type-A).
#
# ## The straight-through estimator (Eq. 5)
#
# `sign`, `round` and `clip` have derivative zero almost everywhere, so plain backpropagation would
# send no gradient through them. Eq. 5 replaces their derivatives by *pseudo-gradients*: pass the
# gradient unchanged inside a window and stop it outside. For `sign` the window is `|q| <= 1`; for
# `round` the pseudo-gradient is 1 away from the integers, and for `clip` it is 1 inside `[0, 1]`, so
# the type-A quantizer passes gradient for `0 <= q <= 1`. The scale `alpha` gets a gradient too
# (Eqs. 14, 29 use the same form for GSB's scales).
#
# Below, the library's own forward and backward (`gsbnp.quant.act_sign_*`, `act_round_*`) with
# `alpha = 1` and no bias: the output, `d x_b / d x`, and `d x_b / d alpha` of each element (the
# backward called with a one-hot upstream gradient, `scale_grad="sum"` so that nothing is averaged).

# %%
from gsbnp.quant import act_round_backward, act_round_forward, act_sign_backward, act_sign_forward

x = np.linspace(-2, 2, 401)
quantizers = (("type-B: sign(q), Eq. 4", act_sign_forward, act_sign_backward),
              ("type-A: clip(round(q), 0, 1), Eq. 3", act_round_forward, act_round_backward))
fig, axes = plt.subplots(2, 3, figsize=(13, 6))
for row, (name, fwd, bwd) in enumerate(quantizers):
    out, cache = fwd(x, 1.0, None, scale_grad="sum")
    dx = bwd(np.ones_like(x), cache)[0]  # elementwise: d x_b / d x
    dalpha = np.array([bwd(np.eye(1, x.size, i)[0], cache)[1] for i in range(x.size)])  # one element each
    for ax, y, what in zip(axes[row], (out, dx, dalpha), ("x_b", "d x_b / d x (STE)", "d x_b / d alpha")):
        ax.plot(x, y, color=f"C{row}")
        ax.set(title=f"{name}\n{what}", xlabel="x (alpha = 1, b = 0)", ylabel=what)
plt.tight_layout()
plt.show()

for name, fwd, probe in (("sign", act_sign_forward, [-1.0, 0.0, 1.0, 1.01]),
                         ("clip(round)", act_round_forward, [-0.01, 0.0, 0.5, 0.50001, 1.0, 1.5])):
    out, cache = fwd(np.array(probe), 1.0, None)
    print(f"{name:11s} of {probe}: {out.tolist()}   window (gradient passes): {cache['window'].tolist()}")
out, cache = act_sign_forward(np.array([0.0]), 1.0, None)
assert out[0] == 1.0, "Eq. 4: sign(0) = +1"
out, cache = act_round_forward(np.array([0.5, 0.50001, 1.5]), 1.0, None)
assert out.tolist() == [0.0, 1.0, 1.0], "Eq. 3: 0 for x <= 0.5, 1 above"

# %% [markdown]
# The printed edges follow the paper: `sign(0) = +1`, and `0.5` goes to 0 (NumPy's `round` rounds
# half to even, which agrees with Eq. 3's `x <= 0.5`). Both windows are inclusive
# (docs/conventions.md, "Exact edges").
#
# ## The STE on a trained model
#
# `gsbnp.pretrained.load("digits-gsb")` returns a GSB-DeiT trained on the bundled 8x8 digits with
# binary weights and activations. To see what its quantizers receive, we record the inputs of `fc1`
# (type-B) and `fc2` (type-A, after the GELU) in every block during one forward pass of the test
# images: a temporary wrapper around each layer's `forward` keeps a copy of its input (the same idea
# as a forward hook in PyTorch) and is removed afterwards. Then we feed those inputs to the library's
# quantizers with the layer's learned `alpha` and `b`.

# %%
from gsbnp import pretrained
from gsbnp.data import load_digits
from gsbnp.train.augment import eval_transform

model = pretrained.load("digits-gsb")
meta = pretrained.info("digits-gsb")
data = load_digits()
x_test = eval_transform(data.x_test, meta["mean"], meta["std"])  # (M, 1, 8, 8)
print(f"digits-gsb: precision stage {model.precision!r}, recorded test accuracy {meta['test_acc']:.3f}")

seen = {}
layers = {f"block {i} {name}": getattr(blk.mlp, name) for i, blk in enumerate(model.blocks)
          for name in ("fc1", "fc2")}
try:
    for key, layer in layers.items():
        def recording(h, _key=key, _forward=layer.forward):
            seen[_key] = h.copy()
            return _forward(h)
        layer.forward = recording  # an instance attribute shadows the class's forward
    logits = model.forward(x_test)
finally:
    for layer in layers.values():
        layer.__dict__.pop("forward", None)
acc = np.mean(logits.argmax(axis=1) == data.y_test)
print(f"test accuracy of this forward pass: {acc:.3f}")
assert acc == meta["test_acc"], "the recording wrappers must not change the model"

stats = {}
for key, h in seen.items():
    layer, p = layers[key], layers[key].params
    fwd = act_round_forward if layer.act_type == "A" else act_sign_forward
    x_b, cache = fwd(h, float(p["act_alpha"]), p["act_bias"])
    stats[key] = {"type": layer.act_type, "neg": np.mean(h < 0), "min": h.min(),
                  "ones": np.mean(cache["value"] > 0), "window": np.mean(cache["window"]),
                  "alpha": float(p["act_alpha"]), "q": cache["q"], "neg_to_one": np.mean(cache["value"][h < 0] > 0)}
    s = stats[key]
    print(f"{key}  type-{s['type']}  alpha {s['alpha']:.3f}  input < 0: {s['neg']:6.1%}  min {s['min']:7.3f}"
          f"  codes +1/1: {s['ones']:6.1%}  in the STE window: {s['window']:6.1%}")

fc2 = [s for s in stats.values() if s["type"] == "A"]
assert all(s["neg"] > 0.2 for s in fc2), "a large share of every fc2 input is negative (GELU is not >= 0)"
assert all(s["min"] >= gelu_min - 1e-5 for s in fc2), "a GELU output cannot go below GELU's minimum"
print("share of negative fc2 inputs coded 1 (the bias b lifted them over the threshold):",
      [f"{s['neg_to_one']:.1%}" for s in fc2])
assert all(s["neg_to_one"] < 0.1 for s in fc2), "nearly all negative type-A inputs are coded 0"

# %% [markdown]
# The table shows the correction to the type-A story in numbers: a large share of every `fc2` input
# is negative (the cell prints it and asserts more than a fifth), though none goes below GELU's
# minimum. The last line prints the share of negative inputs that are nevertheless coded 1 because
# the learned per-feature bias `b` lifted them over the threshold. It is small (asserted below a
# tenth), so in practice the quantizer treats GELU's negative outputs as zeros. The last column is the
# share of entries whose gradient passes the quantizer (Eq. 5's window); outside it, the entry gets
# no gradient at all from this step, however wrong its bit is.

# %%
last = len(model.blocks) - 1
fig, ax = plt.subplots(1, 2, figsize=(12, 3.8))
for a, key, edges in ((ax[0], f"block {last} fc1", (-1, 0, 1)), (ax[1], f"block {last} fc2", (0, 0.5, 1))):
    s = stats[key]
    a.hist(s["q"].ravel(), bins=120, range=(-3, 3), color="C0" if s["type"] == "B" else "C1",
           label=f"q = (x + b) / alpha, type-{s['type']}")
    for e, style in zip(edges, (":", "-", ":")):
        a.axvline(e, color="k", ls=style, lw=1,
                  label="bit threshold" if style == "-" else ("STE window" if e == edges[0] else None))
    a.set(title=f"{key}: quantizer input on the test images", xlabel="q", ylabel="entries", yscale="log")
    a.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Weights: Eqs. 1-2, 4 and Eq. 6
#
# A weight matrix is binarized with one scale per layer: `W_b = alpha * sign(W - mean(W))` with
# `alpha = mean|W|` (Eqs. 1, 2, 4). The network keeps the real ("latent") `W` and trains it; the
# forward uses only `W_b`. Eq. 6 makes the weight STE the identity, `dW = dW_b`: the paper argues that
# a clipped window would stop the gradient of outlying weights for good, while an activation changes
# with every input. The next cell binarizes a trained weight of `digits-gsb` with the library and
# measures how many weights such a window would freeze — in the raw units of `W` and in the
# normalized units `W_ts = (W - mean W) / alpha` of Eq. 1.

# %%
from gsbnp.quant import weight_binarize_backward, weight_binarize_forward

name = "blocks.0.attn.qkv.W"
W = model.params[name].astype(np.float64)
W_b, wcache = weight_binarize_forward(W)
alpha, mu = float(wcache["alpha"]), float(wcache["mu"])
W_ts = (W - mu) / alpha
raw_out, ts_out = np.mean(np.abs(W) > 1), np.mean(np.abs(W_ts) > 1)
print(f"{name} {W.shape}: mean(W) = {mu:.5f}, alpha = mean|W| = {alpha:.5f}, "
      f"values of W_b: {np.unique(W_b).round(5).tolist()}")
print(f"share of weights outside [-1, 1]: raw W {raw_out:.2%},  normalized W_ts {ts_out:.1%}")
dW_b = np.random.default_rng(1).standard_normal(W.shape)
assert np.array_equal(weight_binarize_backward(dW_b, wcache), dW_b), "Eq. 6: the weight STE is the identity"
assert np.allclose(np.unique(W_b), [-alpha, alpha]), "W_b takes exactly two values, -alpha and +alpha"
assert raw_out < 0.01, "trained weights are small: a raw |W| <= 1 window would stop almost nothing"
assert ts_out > 0.1, "a window on the normalized weights would freeze a sizeable share of them"

fig, ax = plt.subplots(figsize=(7, 3.8))
ax.hist(W.ravel(), bins=80, alpha=0.7, label="latent W (trained, real)")
ax.axvline(-alpha, color="C3", label="-alpha, +alpha (the two values of W_b)")
ax.axvline(alpha, color="C3")
ax.axvline(mu, color="k", ls=":", label="mean(W): the sign threshold")
ax.set(title=f"{name}: latent weights and their binary image", xlabel="weight value", ylabel="count")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The printed shares say where Eq. 6 matters. The trained weights are small, so a window in raw units
# (`|W| <= 1`) would stop almost nothing here; a window on the normalized weights `W_ts` — the ones
# Eq. 1 actually binarizes — would freeze the printed share of this layer for as long as they stay out.
#
# ## Checking an STE numerically: the frozen-residual surrogate
#
# Gradient checks compare a hand-written backward with centred finite differences. For a quantizer
# that is useless: the finite difference of the real function is 0 almost everywhere and explodes
# when the step crosses a threshold.

# %%
from gsbnp.gradcheck import FrozenResidual, check_surrogate, numerical_gradient, rel_error

x = np.array([-0.7, -1e-7, 0.3, 1.2])
fd = numerical_gradient(lambda _: act_sign_forward(x, 1.0, None)[0], x, np.ones(4))
print("finite differences of the real sign at", x.tolist(), "->", fd.tolist())
assert fd[0] == fd[2] == fd[3] == 0 and abs(fd[1]) > 1e5

# %% [markdown]
# gsbnp checks STEs against a smooth **surrogate** instead (docs/conventions.md, "Checking an STE
# backward numerically"). At the check point `x0` every discrete op records its residual
# `r = op(u0) - u0` and its window; the surrogate evaluates `op(u) := u + r` inside the recorded window
# and `op(u) := op(u0)` outside, with every threshold and statistic frozen. It equals the real function
# at `x0`, and its derivative is exactly the straight-through gradient, so a centred difference of the
# surrogate must match the hand-written backward to rounding error. Every quantizer calls two hooks
# that do nothing outside a check; `FrozenResidual` records and replays them. The steps written out:

# %%
rng = np.random.default_rng(2)
x = rng.standard_normal((2, 5, 8))
bias = rng.standard_normal(8) * 0.1
alpha = np.array(0.6)
sur = FrozenResidual()
with sur.record():
    out0, cache = act_sign_forward(x, alpha, bias, scale_grad="sum")  # "sum": the true alpha derivative
g = rng.standard_normal(out0.shape)
dx, dalpha, dbias = act_sign_backward(g, cache)


def replay(_):
    with sur.replay():
        return act_sign_forward(x, alpha, bias, scale_grad="sum")[0]


assert np.array_equal(replay(None), out0), "the surrogate equals the function at the check point"
errs = {n: rel_error(a, numerical_gradient(replay, p, g)) for n, a, p in
        (("dx", dx, x), ("dalpha", dalpha, alpha), ("dbias", dbias, bias))}
print("type-B by hand:", {k: f"{v:.1e}" for k, v in errs.items()})
assert max(errs.values()) < 1e-7

# %% [markdown]
# `gsbnp.gradcheck.check_surrogate(forward, backward, arrays)` packages those steps. A check that
# cannot fail proves nothing, so the cell also runs it on a **wrong** backward: one that passes the
# gradient of `x` everywhere, i.e. Eq. 6's identity used for an activation instead of Eq. 5's window.

# %%
for name, fwd, bwd in (("type-B", act_sign_forward, act_sign_backward),
                       ("type-A", act_round_forward, act_round_backward)):
    x = rng.standard_normal((2, 5, 8)) + (0.5 if name == "type-A" else 0.0)
    bias, alpha = rng.standard_normal(8) * 0.1, np.array(0.6)
    def forward(_fwd=fwd, _x=x, _alpha=alpha, _bias=bias):  # check_surrogate perturbs x, alpha, bias in place
        return _fwd(_x, _alpha, _bias, scale_grad="sum")

    errs = check_surrogate(forward, bwd, [x, alpha, bias])
    print(f"{name}: rel errors dx {errs[0]:.1e}, dalpha {errs[1]:.1e}, dbias {errs[2]:.1e}")
    assert max(errs) < 1e-7

    def identity_ste(dout, cache, _bwd=bwd):  # wrong on purpose: no window for dx
        return (dout, *_bwd(dout, cache)[1:])

    wrong = check_surrogate(forward, identity_ste, [x, alpha, bias])
    print(f"{name} with an identity STE for x: rel error dx {wrong[0]:.1e}  <- caught")
    assert wrong[0] > 1e-2

# %% [markdown]
# The same check runs on whole binarized models (notebook 04 does it for a GSB-DeiT). Notebook 02
# puts binary weights and activations together in a linear layer and computes it on bits.
#
# **Assignments 2.1 and 2.2** (`gsbnp assignments build --out DIR`) ask you to write the sign STE and
# the type-A quantizer of `gsbnp/quant/activations.py`; checks like the ones above grade them.
#
# ## Exercises
#
# 1. **Try (Fig. 1).** Change `sigma` in the Fig. 1 cell to 0.2 and then to 2.0 and rerun it. How does
#    the crossover sample size move, and why? Then set `truth` to one of the eight functions, e.g.
#    `[1.0, 1.0, -1.0]`: what happens to the binary model's error, and why is that version of the
#    experiment unfair to the real model?
# 2. **Explain (Eq. 3).** NumPy's `np.round` rounds halves to the nearest even integer
#    (`np.round(0.5) = 0`, `np.round(1.5) = 2`, `np.round(2.5) = 2`). Show that `clip(round(q), 0, 1)`
#    nevertheless equals Eq. 3 for every real `q`. Would "round half up" still match Eq. 3?
# 3. **Try (Eq. 5).** From `stats`, plot the share of entries in the STE window for `fc1` and `fc2`
#    against the block index. Which quantizer passes more gradient? Using Eq. 5, explain what happens
#    to the latent value of an activation whose `q` lies outside the window, and why the learnable
#    bias `b` can still move it.
# 4. **Explain (Eq. 6).** The weight cell prints two shares: weights with `|W| > 1` and with
#    `|W_ts| > 1`. Which of the two would a clipped weight STE `1{|W_ts| <= 1}` freeze? Use Eq. 1 to say
#    why the normalized one is the relevant one, and explain why a frozen weight is worse off than an
#    activation outside its window (what changes from one batch to the next?).
