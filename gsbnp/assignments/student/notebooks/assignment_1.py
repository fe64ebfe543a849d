# %% [markdown]
# For every task: **implement** the marked function in this copy of gsbnp (between `BEGIN YOUR CODE`
# and `END YOUR CODE`; nothing else you change is graded), **run** the check cell, compare with what to
# **expect**, then run the task's public tests. Restart the kernel after editing a module.


# %%
# the builder puts notebooks/_setup.py here
from _setup import np, numerical_gradient, public_tests, rel_error

# %% [markdown]
# {{heading 1.1}}
#
# The forward normalises each row of D features: `mu = mean(x)`, `var = mean((x - mu)^2)`,
# `x_hat = (x - mu) * rstd` with `rstd = 1 / sqrt(var + eps)`, then `y = x_hat * weight + bias`; the
# cache holds `(x_hat, rstd, weight)`.
#
# **Derive.** `dweight` and `dbias` come straight from the last line (sum over every leading axis).
# For `dx`, call `g = dout * weight` the gradient that reaches `x_hat`. The first step: `x_hat_j`
# depends on `x_i` three ways — directly, through `mu`, and through `var` (hence `rstd`). Write
# `d x_hat_j / d x_i` with `d mu / d x_i = 1/D` and `d var / d x_i = 2 (x_i - mu) / D`, contract it
# with `g_j`, and simplify using `x_hat`. Your result needs only `g`, `x_hat`, `rstd` and two row means.
# %%
import gsbnp.functional as F

rng = np.random.default_rng(0)
x = rng.standard_normal((2, 5, 8)) * 3 + 1
w, b = rng.standard_normal(8), rng.standard_normal(8)
y, cache = F.layernorm_forward(x, w, b)
dout = rng.standard_normal(y.shape)
dx, dw, db = F.layernorm_backward(dout, cache)
f = lambda _: F.layernorm_forward(x, w, b)[0]
for name, arr, ana in (("x", x, dx), ("weight", w, dw), ("bias", b, db)):
    print(f"d{name:6s} rel error {rel_error(ana, numerical_gradient(f, arr, dout)):.1e}")

# %% [markdown]
# **Expect** every relative error far below `1e-6` (a correct backward reaches about `1e-10`, the
# accuracy of the finite differences). Before you implement the task the cell stops with
# `NotImplementedError: Task 1.1: LayerNorm backward`.

# %%
public_tests("test_task_1_1.py")

# %% [markdown]
# {{heading 1.2}}
#
# The forward split q, k, v into H heads, then `S = q_h k_h^T * scale` (scale `1/sqrt(Dh)`),
# `A = softmax(S)` row by row, `Y = A @ v_h`, `out = merge_heads(Y)`. The cache holds `qh, kh, vh`
# (B, H, N, Dh), `A` and `scale`.
#
# **Derive.** Walk the four lines backwards, one matrix product at a time. The first step: `merge_heads`
# is a reshape, so `split_heads(dout, H)` is the gradient of `Y`. For `Y = A @ v_h` ask which of `dY`,
# `A`, `v_h` you must multiply (and transpose) to get a result of the shape of `A`, and of `v_h`.
# `softmax_backward(dA, A)` (already written, in `gsbnp/functional/activation.py`) gives `dS`.
#
# The binarized attention (`attention_product_backward` in `gsbnp/quant/product.py`) walks the same chain with
# its quantizers in between: two more marked blocks there, for your binary model to train. Grading
# checks `attention_backward`; the blocks in `quant/product.py` are yours to use.

# %%
rng = np.random.default_rng(1)
q, k, v = (rng.standard_normal((2, 5, 8)) for _ in range(3))
out, cache = F.attention_forward(q, k, v, 2)
dout = rng.standard_normal(out.shape)
grads = F.attention_backward(dout, cache)
f = lambda _: F.attention_forward(q, k, v, 2)[0]
for name, arr, ana in zip("qkv", (q, k, v), grads):
    print(f"d{name} rel error {rel_error(ana, numerical_gradient(f, arr, dout)):.1e}")

# %% [markdown]
# **Expect** three relative errors far below `1e-6`. A wrong `scale` shows in `dq` and `dk` only; a
# missing transpose usually raises a shape error or breaks all three.

# %%
public_tests("test_task_1_2.py")
