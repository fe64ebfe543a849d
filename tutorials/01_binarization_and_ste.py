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
# A binarized network replaces real numbers by one bit (times a scale). This notebook shows why that
# can *help* when data are scarce (Fig. 1), what the three discrete operations `sign`, `round` and
# `clip` do (Eqs. 3-4), how a network containing them is trained anyway — the **straight-through
# estimator** (STE, Eqs. 5-6) — and how gsbnp checks every STE numerically (the frozen-residual
# surrogate).

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
# ## Fig. 1: binarization limits the search space
#
# Take the quadratic model `y = a x^2 + b x + c`. With real `a, b, c` it can be any parabola; with
# `a, b, c` in {-1, +1} it can only be one of **2^3 = 8** functions. On few noisy samples the real
# model fits the noise, the binary one cannot — binarization acts as an implicit regularizer (the
# paper's motivation for limited data).

# %%
from itertools import product
xs = np.linspace(-2, 2, 201)
signs = np.array(list(product((-1, 1), repeat=3)))  # (8, 3): every (a, b, c)
powers = np.stack([xs**2, xs, np.ones_like(xs)], axis=1)  # (201, 3)
fig, ax = plt.subplots(1, 2, figsize=(11, 3.6))
for (a, b, c), y in zip(signs, signs @ powers.T):
    ax[0].plot(xs, y, label=f"a={a:+d} b={b:+d} c={c:+d}")
ax[0].set_title("the 8 functions of a binarized quadratic"); ax[0].legend(fontsize=7, ncol=2)

# Fit 3 noisy samples of y = x^2 + x - 1 (one of the eight), many times over.
rng = np.random.default_rng(0)
T, n, sigma = 2000, 3, 0.8
truth = np.array([1.0, 1.0, -1.0])
X = rng.uniform(-2, 2, (T, n))
V = np.stack([X**2, X, np.ones_like(X)], axis=-1)  # (T, n, 3) design matrices
Y = V @ truth + sigma * rng.standard_normal((T, n))
fp = np.linalg.solve(V, Y[..., None])[..., 0]  # (T, 3): real a, b, c interpolating the samples
train_err = ((np.einsum("tnk,sk->tsn", V, signs) - Y[:, None]) ** 2).mean(-1)  # (T, 8)
binary = signs[train_err.argmin(axis=1)]  # (T, 3): best of the eight on the training samples
test = lambda coef: (((coef @ powers.T) - truth @ powers.T) ** 2).mean(axis=1)  # error vs the truth
print(f"median test error over {T} draws: real a,b,c {np.median(test(fp)):.2f}   "
      f"binary a,b,c {np.median(test(binary)):.2f}")
t = 0
ax[1].plot(xs, truth @ powers.T, "k", label="truth")
ax[1].plot(xs, fp[t] @ powers.T, label="real a, b, c (fits the noise)")
ax[1].plot(xs, binary[t] @ powers.T, "--", label="binary a, b, c")
ax[1].plot(X[t], Y[t], "o", color="k"); ax[1].set_ylim(-6, 8); ax[1].legend(fontsize=8)
ax[1].set_title("one draw of 3 noisy samples")
plt.show()

# %% [markdown]
# The example is stacked in favour of the binary model (the truth is one of the eight); in a network
# the learnable scales below give the binary values their size, and the question becomes how much
# representational power is left — the rest of the paper.
#
# ## The discrete operations (Eqs. 3-4) and their STEs (Eqs. 5-6)
#
# * type-B activations (may be negative: inputs of q/k/v, proj, fc1; Q, K, V): `sign`, Eq. 4, with
#   `sign(0) = +1`;
# * type-A activations (non-negative: after GELU, the attention map): `clip(round(x), 0, 1)`, Eq. 3
#   (`0` if `x <= 0.5`, `1` otherwise — NumPy rounds half to even, so 0.5 goes to 0).
#
# Their derivatives are zero almost everywhere, so backpropagation uses the STE of Eq. 5: pass the
# gradient unchanged inside a window and stop it outside (`|x| <= 1` for sign, `0 <= x <= 1` for
# clip). gsbnp's learnable quantizers (BiT style) add a scale `alpha` and a bias `b`:
# `x_b = alpha * op(q)` with `q = (x + b) / alpha`, and a gradient for `alpha`:
# `d x_b / d alpha = op(q) - q * 1{window}` (Eqs. 14, 29). The cache of each forward holds `q`,
# `value = op(q)` and `window`.

# %%
from gsbnp.quant import act_round_backward, act_round_forward, act_sign_backward, act_sign_forward
x = np.linspace(-2, 2, 801)
fig, axes = plt.subplots(2, 3, figsize=(12, 5.5), sharex=True)
for row, (name, fwd, bwd) in enumerate((("type-B: alpha sign(q)", act_sign_forward, act_sign_backward),
                                        ("type-A: alpha clip(round(q), 0, 1)", act_round_forward,
                                         act_round_backward))):
    out, cache = fwd(x, 1.0, None)
    dx, dalpha, _ = bwd(np.ones_like(x), cache)
    axes[row, 0].plot(x, out); axes[row, 0].set_title(name + ", alpha = 1", fontsize=10)
    axes[row, 1].plot(x, dx, color="C1"); axes[row, 1].set_title("STE: dx_b/dx = 1{window}", fontsize=10)
    axes[row, 2].plot(x, cache["value"] - cache["q"] * cache["window"], color="C2")
    axes[row, 2].set_title("dx_b/dalpha = op(q) - q 1{window}", fontsize=10)
for ax in axes[1]:
    ax.set_xlabel("x")
plt.tight_layout(); plt.show()
out, cache = act_sign_forward(np.array([-1.0, 0.0, 1.0]), 1.0, None)
print("sign of [-1, 0, 1]:", out, "  window:", cache["window"])
out, cache = act_round_forward(np.array([0.0, 0.5, 0.50001, 1.0]), 1.0, None)
print("round-clip of [0, 0.5, 0.50001, 1]:", out, "  window:", cache["window"])

# %% [markdown]
# **Weights** are binarized with one scale per layer (Eqs. 1-2, 4): `W_b = mean|W| * sign(W - mean W)`.
# Their STE is the identity (Eq. 6): clipping the gradient at `|W| <= 1` would freeze the outliers
# for good, while an activation changes with every input.

# %%
from gsbnp.quant import weight_binarize_backward, weight_binarize_forward
rng = np.random.default_rng(1)
W = rng.standard_normal((64, 48)) * 0.02 + 0.003
W_b, wcache = weight_binarize_forward(W)
print(f"mean(W) = {wcache['mu']:.5f}, alpha = mean|W| = {wcache['alpha']:.5f}, "
      f"values of W_b: {np.unique(W_b)}")
dW_b = rng.standard_normal(W.shape)
print("Eq. 6, identity STE:", np.array_equal(weight_binarize_backward(dW_b, wcache), dW_b))
plt.hist(W.ravel(), 60, alpha=0.6, label="W (latent, real)")
plt.hist(W_b.ravel(), 60, alpha=0.8, label="W_b (two values)"); plt.legend(); plt.show()

# %% [markdown]
# ## Checking an STE numerically: the frozen-residual surrogate
#
# A finite difference of the real function is useless here: it is 0 almost everywhere and explodes
# across a step.

# %%
from gsbnp.gradcheck import FrozenResidual, numerical_gradient, rel_error
x = np.array([-0.7, -1e-7, 0.3, 1.2])
real = lambda _: act_sign_forward(x, 1.0, None)[0]
print("finite differences of the real sign at", x, "->", numerical_gradient(real, x, np.ones(4)))

# %% [markdown]
# gsbnp checks STEs against a smooth **surrogate** instead (docs/conventions.md, "Checking an STE backward numerically"). At the check point `x0`
# every discrete op records its residual `r = op(u0) - u0` and its window; the surrogate evaluates
# `op(u) := u + r` inside the recorded window and `op(u) := op(u0)` outside, with every threshold and
# statistic frozen. It equals the real function at `x0`, and its derivative is exactly the
# straight-through gradient — so a centred difference of the surrogate must match the hand-written
# backward to ~1e-10. Every quantizer calls two hooks, `discrete(...)` and `frozen(...)`, that do
# nothing outside a check; `FrozenResidual` records and replays them. Here the steps are written
# out; `gsbnp.gradcheck.check_surrogate(forward, backward, arrays)` packages them (tutorial 04 uses it).

# %%
rng = np.random.default_rng(2)
for name, fwd, bwd in (("type-B", act_sign_forward, act_sign_backward),
                       ("type-A", act_round_forward, act_round_backward)):
    x = rng.standard_normal((2, 5, 8))
    bias = rng.standard_normal(8) * 0.1
    alpha = np.array(0.6)
    sur = FrozenResidual()
    with sur.record():
        out0, cache = fwd(x, alpha, bias, scale_grad="sum")  # "sum": the true derivative for alpha
    g = rng.standard_normal(out0.shape)
    dx, dalpha, dbias = bwd(g, cache)

    def replay(_):
        with sur.replay():
            return fwd(x, alpha, bias, scale_grad="sum")[0]

    assert np.array_equal(replay(None), out0)  # the surrogate equals the function at x0
    errs = [rel_error(a, numerical_gradient(replay, p, g)) for a, p in ((dx, x), (dalpha, alpha), (dbias, bias))]
    print(f"{name}: rel errors dx {errs[0]:.1e}, dalpha {errs[1]:.1e}, dbias {errs[2]:.1e}")
    assert max(errs) < 1e-7

# %% [markdown]
# The same check runs on whole binarized models (notebook 04 does it for a GSB-DeiT).
#
# **Assignments 2.1 and 2.2** (`gsbnp assignments build --out DIR`) ask you to write the sign STE and
# the type-A quantizer of `gsbnp/quant/activations.py`; the tests above are part of their grading.
