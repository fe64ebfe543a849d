# %% [markdown]
# For every task: **implement** the marked code (between `BEGIN YOUR CODE` and `END YOUR CODE`),
# **run** the check cell, compare with what to **expect**, then run the public tests. Restart the
# kernel after editing a module. Tutorial 04 walks through GSB step by step; Tasks 2.1 and 2.2 come
# first (the value forward uses the window of Task 2.1).


# %%
# the builder puts notebooks/_setup.py here
from _setup import check_surrogate, np, public_tests

# %% [markdown]
# {{heading 3.1}}
#
# The forward (Eqs. 10-13) built `A_gsb = alpha_0 A_bin + sum_i alpha_i M_i` with
# `A_bin = clip(round(A_ret / alpha_0), 0, 1)` and `M_i = 1{A_ret > Theta_i}`; thresholds are held
# constant. The cache holds the windows it needs: `window0` for `A_bin` (strict, Eqs. 14, 17),
# `windows` (k, ...) for the masks (Eqs. 19, 20), `A_bin`, `M`, `u = A_ret / alpha_0`, `alphas`, `k`,
# `abin`, `scale_grad`.
#
# **Derive** each term with the straight-through rule: inside its window a step function is replaced by
# the identity of its argument. The first step: in `alpha_0 * clip(round(A_ret / alpha_0), 0, 1)` the
# argument depends on `alpha_0` too — differentiate `alpha_0 * (A_ret / alpha_0)` inside the window and
# `alpha_0 * A_bin` outside, and compare with Eq. 14. A mask term `alpha_i M_i` is a step of
# `A_ret - Theta_i`: what reaches `A_ret`, and what reaches `alpha_i`? For the default
# `scale_grad="mean"` every scale gradient is divided by the number of entries of `A_ret` (Eqs. 14, 15).
# The options `abin="mask"` and `scale_grad="sqrt"` (see the docstring) are a bonus.
# %%
from gsbnp.quant import gsb_attention_backward, gsb_attention_forward

rng = np.random.default_rng(4)
A = rng.random((2, 2, 5, 5))
A_ret = A / A.sum(axis=-1, keepdims=True) - 0.05
alphas = np.array([0.3, 0.1, 0.05])
err_A, err_alphas = check_surrogate(lambda: gsb_attention_forward(A_ret, alphas, 2, scale_grad="sum"),
                                    gsb_attention_backward, [A_ret, alphas], rng=rng)
print("dA_ret  rel error", f"{err_A:.1e}")
print("dalphas rel error", f"{err_alphas:.1e}")

# %% [markdown]
# **Expect** both errors below `1e-8`: with thresholds and windows frozen at the check point, the
# numerical derivative of the surrogate (tutorial 01) *is* the straight-through gradient. This check
# uses `scale_grad="sum"`; the public tests check the default `"mean"` against frozen numbers.

# %%
public_tests("test_task_3_1.py")

# %% [markdown]
# {{heading 3.2}}
#
# The forward (Eqs. 26, 27) built `V_gsb = sum_i beta_i sign(V0) M_i` with `M_0 = 1` and cached `M`
# (k+1, B, H, N, Dh), `window` (the Eq. 32 window of each component, inside its mask), `q`
# (`V0 / beta_i`, stacked), `sign`, `k`, `v_grad`, `scale_grad`, `dtype`.
#
# **Derive** as in Task 3.1: component i is `beta_i * sign(V0 / beta_i)` on its mask. Inside its window
# the sign is replaced by its argument — what is then the derivative with respect to `V0`, and with
# respect to `beta_i` (careful: `beta_i * (V0 / beta_i)` does not depend on `beta_i`, but the window's
# complement does)? Compare with Eqs. 28-32 and sum over the components. Default: `v_grad="masked"`,
# `scale_grad="mean"`; `v_grad="unmasked"` and `scale_grad="sqrt"` are a bonus.

# %%
from gsbnp.quant import gsb_value_backward, gsb_value_forward

rng = np.random.default_rng(5)
V0 = rng.standard_normal((2, 2, 5, 4))
betas = np.array([0.8, 0.4, 0.2])
err_V0, err_betas = check_surrogate(lambda: gsb_value_forward(V0, betas, 2, scale_grad="sum"),
                                    gsb_value_backward, [V0, betas], rng=rng)
print("dV0    rel error", f"{err_V0:.1e}")
print("dbetas rel error", f"{err_betas:.1e}")

# %% [markdown]
# **Expect** both errors below `1e-8`.

# %%
public_tests("test_task_3_2.py")

# %% [markdown]
# {{heading 3.3}}
#
# Section IV-C initialises the scales from the first batch by least squares. The masks are nested
# (`M_0 ⊇ M_1 ⊇ ... ⊇ M_k`), so the entries fall into disjoint regions `R_i` (in `M_i`, not in
# `M_{i+1}`; the top region is `M_k`), and an entry of `R_i` is represented by the sum of the first
# i + 1 scales. **Derive**: minimise the squared error of that representation over the entries of one
# region — what must the sum of the first i + 1 scales equal? Then read Eqs. 23-25 and 33-34 (they
# have typos that your derivation fixes). Implement the region sums and counts in `_region_stats`
# (Eq. 34 counts only non-zero entries when `count_nonzero` is set) and the step of `_cumulative_scales`
# that turns region means into scales (`total` holds the stored scales before index i).

# %%
from gsbnp.quant import gsb_attention_init, gsb_value_init

V0 = np.array([1.0, -1.0, 3.0, -3.0, 1.0, 1.0]).reshape(1, 1, 2, 3)
print("betas", gsb_value_init(V0, 1))
rng = np.random.default_rng(6)
A = rng.random((2, 2, 6, 6))
print("alphas", gsb_attention_init(A / A.sum(axis=-1, keepdims=True), 2))

# %% [markdown]
# **Expect** betas whose first entry is the mean magnitude of the inner entries and whose sum is that of
# the outer ones, and three positive alphas.

# %%
public_tests("test_task_3_3.py")
