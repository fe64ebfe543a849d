# %% [markdown]
# For every task: **implement** the marked code (between `BEGIN YOUR CODE` and `END YOUR CODE`),
# **run** the check cell, compare with what to **expect**, then run the public tests. Restart the
# kernel after editing a module. Tutorial 01 introduces binarizers and straight-through estimators.


# %%
# the builder puts notebooks/_setup.py here
from _setup import check_surrogate, np, public_tests

# %% [markdown]
# {{heading 2.1}}
#
# A learnable type-B binarizer outputs `alpha * sign(q)` with `q = (x + bias) / alpha` and
# `sign(0) = +1` (Eq. 4). The backward (`_act_backward`, already written) multiplies the upstream
# gradient by the STE `window` your forward stores, and uses `value` for `dalpha`.
#
# **Derive** which `q` the straight-through estimator lets through: Eq. 5 of the paper replaces the
# derivative of `sign` by that of a clipped identity. Decide whether the edges belong to the window
# (read Eq. 5 carefully), then write the same rule in the two other places marked for this task: the
# baseline binarizer of Section III-A and the value window of Eq. 32 (there per component, and only
# where the mask `M_i` is set).
# %%
from gsbnp.quant import act_sign_backward, act_sign_forward

x = np.array([[-1.5, -1.0, -0.0, 0.0, 0.3, 1.0, 1.2]])
xb, cache = act_sign_forward(x, 1.0, None)
print("x_b   ", xb[0])
print("window", cache["window"][0].astype(int))
rng = np.random.default_rng(2)
x, alpha = rng.standard_normal((2, 5, 8)) * 1.5, np.array(0.8)
errs = check_surrogate(lambda: act_sign_forward(x, alpha, None, scale_grad="sum"),
                       lambda d, c: act_sign_backward(d, c)[:2], [x, alpha], rng=rng)
print("dx, dalpha rel errors", [f"{e:.1e}" for e in errs])

# %% [markdown]
# **Expect** `x_b` to be `-1` for the two negative entries and `+1` for the rest (zero and minus zero
# included), a window that your reading of Eq. 5 explains at `q = -1` and `q = 1`, and both relative
# errors below `1e-8`. The surrogate check cannot tell you whether the edges are right (it agrees with
# any window): the public tests compare the edges with the paper's.

# %%
public_tests("test_task_2_1.py")

# %% [markdown]
# {{heading 2.2}}
#
# A type-A binarizer outputs `alpha * clip(round(q), 0, 1)` (Eq. 3), rounding half to even as NumPy
# does. **Derive** (1) the set of `q` for which the output is `alpha`: what does `np.round(0.5)` give?
# and (2) the STE window of a clipped identity on `[0, 1]` (Eq. 5). Compute `value` directly as a 0/1
# array of `q`'s dtype, without calling `np.round`. Then write the same window in the baseline type-A
# binarizer and in the baseline attention of Eqs. 7-8 (there `u = A_re / gamma`).

# %%
from gsbnp.quant import act_round_forward

x = np.array([[-0.1, 0.0, 0.25, 0.5, 0.500001, 1.0, 1.3]])
xb, cache = act_round_forward(x, 1.0, None)
print("x_b   ", xb[0])
print("window", cache["window"][0].astype(int))

# %% [markdown]
# **Expect** `x_b` to switch from 0 to 1 strictly after `0.5`, and a window that your reading of Eq. 5
# explains at `q = 0` and `q = 1`.

# %%
public_tests("test_task_2_2.py")

# %% [markdown]
# {{heading 2.3}}
#
# Section III-B: the baseline binarizes the attention with one scale gamma per map (sample and head).
# Eq. 2 takes the mean of the map; Eq. 8 the mean of the entries strictly above 0.5. Fig. 7 shows what
# goes wrong with Eq. 8 alone, and the paper switches back to Eq. 2 in that case. **Derive** the switch
# from the text: when does Eq. 8 leave rows of `A_bin` empty? Count the ones of `A_bin` under Eq. 8
# (`A_re / gamma8 > 0.5`) and compare with the number of tokens N; a map with no entry above 0.5 has no
# Eq. 8 at all. Set `gamma` (B, H, 1, 1) and `switched` (B, H) as the docstring says, without a Python
# loop over maps.

# %%
from gsbnp.quant import baseline_attention_forward

rng = np.random.default_rng(3)
z = rng.standard_normal((1, 3, 6, 6)) * np.array([0.3, 6.0, 0.3]).reshape(1, 3, 1, 1)
A = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
A[0, 2, :2] = np.eye(6)[:2] * 0.9 + 0.02
out, cache = baseline_attention_forward(A, mode="eq8")
print("switched", cache["switched"][0], " gamma", cache["gamma"][0, :, 0, 0].round(3))
print("ones per map", (out > 0).sum(axis=(-2, -1))[0])

# %% [markdown]
# **Expect** the flat first map to switch (nothing above 0.5), the peaked second map to keep Eq. 8
# when it still has at least N ones, and the third map (only two rows above 0.5) to switch.

# %%
public_tests("test_task_2_3.py")
