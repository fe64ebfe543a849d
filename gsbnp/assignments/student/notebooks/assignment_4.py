# %% [markdown]
# **Implement** the marked code (between `BEGIN YOUR CODE` and `END YOUR CODE`), **run** the check
# cell, compare with what to **expect**, then run the public tests. Tutorials 02 and 06 show the packed
# bit layout and what xnor/popcount saves.


# %%
# the builder puts notebooks/_setup.py here
from _setup import np, public_tests

# %% [markdown]
# {{heading 4.1}}
#
# The kernel already computes, for every output entry, the number of set bits of `a xor b` (for
# `matmul_sign_sign`) or of `a and b` (for `matmul_mask_sign`) over the K packed positions, and hands
# them to the local `post(counts, o, extra)` function, which must write the integer product into `o`
# (int32, in place). Bit 1 encodes +1 of a sign vector and 1 of a mask.
#
# **Derive** (Figs. 2, 3): for ±1 x ±1, a position contributes +1 when the bits agree and -1 when they
# differ — write the dot product with the number of differing positions and K. For {0,1} x ±1 only the
# positions with `a = 1` contribute; `extra` holds `popcount(a)` of each row. The third marked place,
# `matmul_mask_ternary`, applies the same idea to the ternary value planes of Fig. 10 (`t = m (2s - 1)`).
# Write into `o` with `out=` arguments or `o[...] = ...`; `counts` is a small unsigned type.
# %%
from gsbnp.bitops import matmul_mask_sign, matmul_sign_sign, pack_mask, pack_signs

rng = np.random.default_rng(7)
a, w = rng.choice([-1, 1], size=(3, 70)), rng.choice([-1, 1], size=(4, 70))
m = rng.integers(0, 2, size=(3, 70))
print("±1 x ±1 :", np.array_equal(matmul_sign_sign(pack_signs(a), pack_signs(w)), a @ w.T))
print("0/1 x ±1:", np.array_equal(matmul_mask_sign(pack_mask(m), pack_signs(w)), m @ w.T))

# %% [markdown]
# **Expect** `True` twice: the popcount products equal the float matrix products exactly (K = 70 also
# checks the zero padding of the last 64-bit word).

# %%
public_tests("test_task_4_1.py")
