# %% [markdown]
# **Implement** the marked code (between `BEGIN YOUR CODE` and `END YOUR CODE`), **run** the check
# cell, compare with what to **expect**, then run the public tests. Tutorial 05 trains with this loss.


# %%
# the builder puts notebooks/_setup.py here
from _setup import np, numerical_gradient, public_tests, rel_error

# %% [markdown]
# {{heading 5.1}}
#
# Eq. 36 mixes the class head's cross-entropy with a distillation term on the [dist] head, with weight
# `lam`. `cross_entropy(logits, target, label_smoothing=...)` and `soft_distillation(...)` (same module)
# return a loss and its gradient. **Derive** how the two gradients scale when the two losses are mixed,
# and which labels the hard distillation term uses (the teacher's argmax; the teacher's labels are never
# smoothed). Return `(loss, dcls_logits, ddist_logits)`.
# %%
from gsbnp.train.losses import distillation_loss

rng = np.random.default_rng(8)
cls, dist, teacher = rng.standard_normal((3, 5)), rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
y = np.array([4, 1, 0])
for kind in ("hard", "soft"):
    def L(c, d, kind=kind):
        return distillation_loss(c, d, y, teacher, lam=0.3, kind=kind, tau=2.0)
    loss, dcls, ddist = L(cls, dist)
    num_c = numerical_gradient(lambda z: L(z, dist)[0], cls)
    num_d = numerical_gradient(lambda z: L(cls, z)[0], dist)
    print(f"{kind}: loss {loss:.4f}  dcls err {rel_error(dcls, num_c):.1e}  ddist err {rel_error(ddist, num_d):.1e}")

# %% [markdown]
# **Expect** both gradient errors below `1e-6` for "hard" and "soft".

# %%
public_tests("test_task_5_1.py")
