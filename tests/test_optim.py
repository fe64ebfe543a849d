"""Tests of gsbnp.train.optim (SGD, Adam, AdamW, clip_grad_norm) and gsbnp.train.schedule."""

import math

import numpy as np
import pytest

from gsbnp.train.optim import SGD, Adam, AdamW, clip_grad_norm
from gsbnp.train.schedule import CosineSchedule, cosine_lr

SHAPES = {"blocks.0.attn.qkv.W": (12, 8), "blocks.0.attn.qkv.b": (12,), "cls_token": (1, 1, 8)}
NO_DECAY = {"blocks.0.attn.qkv.b", "cls_token"}


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def grad_seq(n, dtype=np.float64, seed=1):
    rng = np.random.default_rng(seed)
    return [{k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()} for _ in range(n)]


# --- references: the update rules as printed in the PyTorch documentation, one parameter at a time.
def ref_adam(p, grads, lrs, b1, b2, eps, wd, decoupled):
    p = p.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        if decoupled:
            p = p - lr * wd * p
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def ref_sgd(p, grads, lr, mu, wd, nesterov):
    p = p.copy()
    buf = None
    for g in grads:
        g = g + wd * p
        if mu:
            buf = g.copy() if buf is None else mu * buf + g
            g = g + mu * buf if nesterov else buf
        p = p - lr * g
    return p


@pytest.mark.parametrize("cls, wd", [(Adam, 0.0), (Adam, 0.1), (AdamW, 0.05), (AdamW, 0.3)])
def test_adam_matches_reference(cls, wd):
    params = make_params()
    start = {k: v.copy() for k, v in params.items()}
    seq = grad_seq(5)
    opt = cls(params, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=wd, no_decay=NO_DECAY)
    lrs = [1e-2, 5e-3, 2e-3, 2e-3, 1e-3]
    for g, lr in zip(seq, lrs):
        opt.step(g, lr=lr)
    for name in SHAPES:
        wd_n = 0.0 if name in NO_DECAY else wd
        ref = ref_adam(start[name], [g[name] for g in seq], lrs, 0.8, 0.99, 1e-6, wd_n, cls is AdamW)
        np.testing.assert_allclose(params[name], ref, rtol=1e-12, atol=1e-14, err_msg=name)
    assert opt.step_count == 5 and opt.lr == 1e-3


@pytest.mark.parametrize("mu, wd, nesterov", [(0.0, 0.0, False), (0.9, 0.0, False),
                                              (0.9, 1e-2, False), (0.5, 1e-2, True)])
def test_sgd_matches_reference(mu, wd, nesterov):
    params = make_params()
    start = {k: v.copy() for k, v in params.items()}
    seq = grad_seq(4)
    opt = SGD(params, lr=0.1, momentum=mu, weight_decay=wd, nesterov=nesterov, no_decay=NO_DECAY)
    for g in seq:
        opt.step(g)
    for name in SHAPES:
        wd_n = 0.0 if name in NO_DECAY else wd
        ref = ref_sgd(start[name], [g[name] for g in seq], 0.1, mu, wd_n, nesterov)
        np.testing.assert_allclose(params[name], ref, rtol=1e-13, atol=1e-15, err_msg=name)


def test_adam_first_step_moves_by_lr():
    # Bias correction makes m_hat / sqrt(v_hat) = g / |g| at step 1: every entry moves by lr.
    params = make_params()
    start = {k: v.copy() for k, v in params.items()}
    g = grad_seq(1)[0]
    Adam(params, lr=1e-3, eps=1e-12).step(g)
    for name in SHAPES:
        np.testing.assert_allclose(params[name] - start[name], -1e-3 * np.sign(g[name]), rtol=1e-8)
    np.testing.assert_allclose(params["cls_token"], ref_adam(start["cls_token"], [g["cls_token"]],
                                                             [1e-3], 0.9, 0.999, 1e-12, 0.0, False))


def test_adamw_decay_is_decoupled_and_respects_no_decay():
    # Zero gradients: Adam's moments stay 0, so AdamW only shrinks p by (1 - lr wd) ...
    params = make_params()
    start = {k: v.copy() for k, v in params.items()}
    zeros = {k: np.zeros(s) for k, s in SHAPES.items()}
    AdamW(params, lr=0.1, weight_decay=0.5, no_decay=NO_DECAY).step(zeros)
    np.testing.assert_allclose(params["blocks.0.attn.qkv.W"], start["blocks.0.attn.qkv.W"] * 0.95,
                               rtol=1e-15)
    for name in NO_DECAY:
        np.testing.assert_array_equal(params[name], start[name])
    # ... while Adam's L2 term passes through the normalised moments: a step of ~lr * sign(p).
    params = make_params()
    Adam(params, lr=0.1, weight_decay=0.5).step(zeros)
    W0 = start["blocks.0.attn.qkv.W"]
    np.testing.assert_allclose(params["blocks.0.attn.qkv.W"], W0 - 0.1 * np.sign(W0), rtol=0, atol=1e-6)


def test_updates_in_place_and_grads_untouched():
    params = make_params(np.float32)
    arrays = dict(params)
    view = params["blocks.0.attn.qkv.W"][:2]  # a layer holding a view must see the update
    before = view.copy()
    g = grad_seq(1, np.float32)[0]
    g_copy = {k: v.copy() for k, v in g.items()}
    for cls in (SGD, Adam, AdamW):
        cls(params, lr=1e-2, no_decay=NO_DECAY).step(g)
    assert all(params[k] is arrays[k] for k in SHAPES)
    assert all(params[k].dtype == np.float32 for k in SHAPES)
    assert not np.array_equal(view, before)
    for k in SHAPES:
        np.testing.assert_array_equal(g[k], g_copy[k])


def test_float32_moments():
    params = make_params(np.float32)
    opt = AdamW(params, lr=1e-3)
    opt.step(grad_seq(1, np.float32)[0])
    sd = opt.state_dict()
    assert all(sd[f"{b}/{k}"].dtype == np.float32 for b in "mv" for k in SHAPES)
    # float32 run tracks the float64 reference to float32 precision
    p64 = make_params()
    AdamW(p64, lr=1e-3).step(grad_seq(1)[0])
    for k in SHAPES:
        np.testing.assert_allclose(params[k], p64[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda p: AdamW(p, lr=1e-2, no_decay=NO_DECAY),
    lambda p: Adam(p, lr=1e-2, weight_decay=0.01),
    lambda p: SGD(p, lr=1e-2, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda p: SGD(p, lr=1e-2, momentum=0.0),
])
def test_resume_is_bit_identical(make, tmp_path):
    seq = grad_seq(6, np.float32)
    lrs = [1e-2, 8e-3, 6e-3, 4e-3, 2e-3, 1e-3]
    # Uninterrupted run.
    params = make_params(np.float32)
    opt = make(params)
    for g, lr in zip(seq, lrs):
        opt.step(g, lr=lr)
    # Interrupted after 3 steps: save weights + optimizer state to npz, rebuild, continue.
    params2 = make_params(np.float32)
    opt2 = make(params2)
    for g, lr in zip(seq[:3], lrs[:3]):
        opt2.step(g, lr=lr)
    path = tmp_path / "ckpt.npz"
    np.savez(path, **{f"param/{k}": v for k, v in params2.items()},
             **{f"optim/{k}": v for k, v in opt2.state_dict().items()})
    with np.load(path, allow_pickle=False) as z:
        params3 = make_params(np.float32, seed=99)  # different values: all must come from the file
        for k in params3:
            np.copyto(params3[k], z[f"param/{k}"])
        opt3 = make(params3)
        opt3.load_state_dict({k[6:]: z[k] for k in z.files if k.startswith("optim/")})
    assert opt3.step_count == 3 and opt3.lr == lrs[2]
    for g, lr in zip(seq[3:], lrs[3:]):
        opt3.step(g, lr=lr)
    for k in SHAPES:
        np.testing.assert_array_equal(params3[k], params[k], err_msg=k)


def test_state_dict_is_a_snapshot_and_flat():
    params = make_params()
    opt = AdamW(params, lr=1e-3)
    opt.step(grad_seq(1)[0])
    sd = opt.state_dict()
    assert set(sd) == ({"type", "step", "lr", "beta1", "beta2", "eps", "weight_decay"}
                       | {f"{b}/{k}" for b in "mv" for k in SHAPES})
    m_before = sd["m/cls_token"].copy()
    opt.step(grad_seq(1, seed=5)[0])
    np.testing.assert_array_equal(sd["m/cls_token"], m_before)


def test_load_state_dict_errors():
    opt = AdamW(make_params(), lr=1e-3)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="optimizer 'AdamW', this is 'SGD'"):
        SGD(make_params(), lr=1e-3).load_state_dict(sd)
    bad = dict(sd)
    del bad["m/cls_token"]
    with pytest.raises(ValueError, match=r"missing \['m/cls_token'\]"):
        opt.load_state_dict(bad)
    bad = dict(sd, **{"m/cls_token": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="m/cls_token has shape"):
        opt.load_state_dict(bad)
    bad = dict(sd, **{"m/cls_token": sd["m/cls_token"].astype(np.float32)})
    with pytest.raises(ValueError, match="dtype float32"):
        opt.load_state_dict(bad)
    bad = dict(sd, beta1=1.5)
    with pytest.raises(ValueError, match=r"betas\[0\]"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="momentum"):
        SGD(make_params(), lr=1e-3, momentum=0.9).load_state_dict(
            SGD(make_params(), lr=1e-3, momentum=0.0).state_dict())


@pytest.mark.parametrize("make, exc, match", [
    (lambda p: AdamW(p, lr=0.0), ValueError, "lr must be >"),
    (lambda p: AdamW(p, lr=-1e-3), ValueError, "lr must be >"),
    (lambda p: AdamW(p, lr="1e-3"), TypeError, "lr must be a number"),
    (lambda p: AdamW(p, lr=1e-3, betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in \[0, 1\)"),
    (lambda p: AdamW(p, lr=1e-3, betas=(-0.1, 0.9)), ValueError, r"betas\[0\]"),
    (lambda p: AdamW(p, lr=1e-3, betas=0.9), TypeError, "betas must be a pair"),
    (lambda p: AdamW(p, lr=1e-3, eps=0.0), ValueError, "eps must be >"),
    (lambda p: Adam(p, lr=1e-3, weight_decay=-1.0), ValueError, "weight_decay"),
    (lambda p: AdamW(p, lr=1e-3, no_decay={"nope"}), ValueError, "no_decay names not in params"),
    (lambda p: AdamW(p, lr=1e-3, no_decay="cls_token"), TypeError, "not a single str"),
    (lambda p: SGD(p, lr=1e-3, momentum=1.0), ValueError, "momentum"),
    (lambda p: SGD(p, lr=1e-3, momentum=0.0, nesterov=True), ValueError, "nesterov"),
    (lambda p: SGD([1.0], lr=1e-3), TypeError, "params must be a dict"),
    (lambda p: SGD({}, lr=1e-3), ValueError, "params is empty"),
    (lambda p: SGD({"a": np.zeros(3, dtype=np.int32)}, lr=1e-3), TypeError, r"params\['a'\]"),
])
def test_bad_hyperparameters(make, exc, match):
    with pytest.raises(exc, match=match):
        make(make_params())


def test_bad_grads():
    opt = AdamW(make_params(), lr=1e-3)
    good = grad_seq(1)[0]
    missing = {k: v for k, v in good.items() if k != "cls_token"}
    with pytest.raises(ValueError, match=r"missing \['cls_token'\]"):
        opt.step(missing)
    with pytest.raises(ValueError, match=r"extra \['pos_embed'\]"):
        opt.step(dict(good, pos_embed=np.zeros(3)))
    with pytest.raises(ValueError, match=r"grads\['cls_token'\] has shape \(8,\)"):
        opt.step(dict(good, cls_token=np.zeros(8)))
    with pytest.raises(ValueError, match="NaN or inf"):
        opt.step(dict(good, cls_token=np.full((1, 1, 8), np.nan)))
    with pytest.raises(TypeError, match="floating"):
        opt.step(dict(good, cls_token=np.zeros((1, 1, 8), dtype=np.int64)))
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.step(good, lr=-1.0)
    assert opt.step_count == 0  # nothing was applied by the failed calls
    opt.step(good, lr=0.0)  # a schedule may reach 0: allowed, and nothing moves except the moments


def test_clip_grad_norm():
    g = grad_seq(1)[0]
    total = math.sqrt(sum(float(np.sum(v ** 2)) for v in g.values()))
    orig = {k: v.copy() for k, v in g.items()}
    assert clip_grad_norm(g, max_norm=total * 2) == pytest.approx(total, rel=1e-14)
    for k in g:  # below the limit: untouched
        np.testing.assert_array_equal(g[k], orig[k])
    arrays = dict(g)
    assert clip_grad_norm(g, max_norm=1.0) == pytest.approx(total, rel=1e-14)
    new_total = math.sqrt(sum(float(np.sum(v ** 2)) for v in g.values()))
    assert new_total == pytest.approx(1.0, rel=1e-5)
    for k in g:  # scaled in place, every array by the same factor
        assert g[k] is arrays[k]
        np.testing.assert_allclose(g[k], orig[k] / (total + 1e-6), rtol=1e-12)
    # float32 gradients keep their dtype
    g32 = {k: v.astype(np.float32) for k, v in orig.items()}
    clip_grad_norm(g32, 0.5)
    assert all(v.dtype == np.float32 for v in g32.values())


def test_clip_grad_norm_errors():
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm({"a": np.ones(3)}, 0.0)
    with pytest.raises(TypeError, match="grads must be a dict"):
        clip_grad_norm([np.ones(3)], 1.0)
    bad = {"a": np.array([1.0, np.inf])}
    with pytest.raises(ValueError, match="total gradient norm is inf"):
        clip_grad_norm(bad, 1.0)
    assert clip_grad_norm(bad, 1.0, error_if_nonfinite=False) == np.inf
    np.testing.assert_array_equal(bad["a"], [1.0, np.inf])


# ------------------------------------------------------------------------------------ schedule
def test_cosine_endpoints_and_midpoint():
    base, floor, T = 5e-4, 1e-6, 100
    assert cosine_lr(0, T, base, floor) == base
    assert cosine_lr(T, T, base, floor) == pytest.approx(floor, rel=1e-12)
    assert cosine_lr(T + 50, T, base, floor) == floor
    assert cosine_lr(T // 2, T, base, floor) == pytest.approx((base + floor) / 2, rel=1e-12)
    assert floor < cosine_lr(T - 1, T, base, floor) < cosine_lr(T - 2, T, base, floor)


def test_cosine_monotonic_decay():
    lrs = np.array([cosine_lr(s, 37, 1e-3, 1e-5) for s in range(38)])
    assert np.all(np.diff(lrs) < 0)
    assert lrs.max() == 1e-3 and lrs[-1] == pytest.approx(1e-5, rel=1e-12)


def test_warmup():
    T, W, base = 50, 10, 1e-3
    lrs = [cosine_lr(s, T, base, 0.0, warmup_steps=W, warmup_start=1e-5) for s in range(T + 1)]
    assert lrs[0] == 1e-5
    np.testing.assert_allclose(np.diff(lrs[:W + 1]), (base - 1e-5) / W, rtol=1e-9)  # linear
    assert lrs[W] == base  # continuous: the cosine starts at base where the warm-up ends
    assert all(a > b for a, b in zip(lrs[W:-1], lrs[W + 1:]))
    assert lrs[T] == pytest.approx(0.0, abs=1e-18)
    # The cosine spans the post-warm-up steps: its midpoint is at W + (T - W) / 2.
    assert lrs[W + (T - W) // 2] == pytest.approx(base / 2, rel=1e-12)


def test_cosine_schedule_object(tmp_path):
    sched = CosineSchedule(total_steps=20, base_lr=5e-4, warmup_steps=3, warmup_start=1e-6)
    assert [sched(s) for s in range(21)] == [
        cosine_lr(s, 20, 5e-4, 1e-6, 3, 1e-6) for s in range(21)]
    np.savez(tmp_path / "s.npz", **sched.state_dict())
    other = CosineSchedule(total_steps=5, base_lr=1.0)
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        other.load_state_dict(z)
    assert other == sched and other(7) == sched(7)
    with pytest.raises(ValueError, match="schedule state keys"):
        other.load_state_dict({"total_steps": 3})


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(step=-1, total_steps=10, base_lr=1e-3), ValueError, "step must be in"),
    (dict(step=1.0, total_steps=10, base_lr=1e-3), TypeError, "step must be an int"),
    (dict(step=0, total_steps=0, base_lr=1e-3), ValueError, "total_steps"),
    (dict(step=0, total_steps=10, base_lr=0.0), ValueError, "base_lr"),
    (dict(step=0, total_steps=10, base_lr=1e-3, min_lr=2e-3), ValueError, "min_lr"),
    (dict(step=0, total_steps=10, base_lr=1e-3, warmup_steps=10), ValueError, "warmup_steps"),
    (dict(step=0, total_steps=10, base_lr=1e-3, warmup_start=-1.0), ValueError, "warmup_start"),
])
def test_schedule_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cosine_lr(**kwargs)
    if "step" in kwargs and kwargs["step"] == 0:
        with pytest.raises(exc, match=match):
            CosineSchedule(**{k: v for k, v in kwargs.items() if k != "step"})
