"""DeiT: whole-model float64 gradient check, presets, DeiT-Small at 224, summary, bad input, seeds."""

import dataclasses

import numpy as np
import pytest

from gsbnp.gradcheck import assert_close, check_module
from gsbnp.models import DeiT, DeiTConfig

TOL_MODEL = 1e-5


def small_cfg(**kw):
    base = dict(img_size=4, patch_size=2, in_chans=2, num_classes=3, embed_dim=8, depth=2, num_heads=2,
                mlp_ratio=1.5)
    return DeiTConfig(**{**base, **kw})


@pytest.mark.parametrize("drop", [0.0, 0.2])
def test_whole_deit_gradient_check(drop):
    cfg = small_cfg(drop_rate=drop, drop_path_rate=drop)
    m = DeiT(cfg, rng=np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, 2, 4, 4))
    errs = check_module(m, x, rng=np.random.default_rng(2))
    assert set(errs) == {"x", *m.params}
    assert_close(errs, TOL_MODEL)


def test_eval_mode_returns_mean_of_heads_and_its_gradient():
    m = DeiT(small_cfg(), rng=np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((2, 2, 4, 4))
    c, d = m.forward(x)
    m.eval()
    assert np.allclose(m.forward(x), (c + d) / 2)
    assert_close(check_module(m, x), TOL_MODEL)
    with pytest.raises(ValueError, match="ddist_logits"):
        m.train().forward(x)
        m.backward(np.ones((2, 3)))


def test_presets():
    for name, n_tokens in [("digits", 18), ("tiny", 66), ("small32", 66), ("deit_small", 198)]:
        assert DeiTConfig.preset(name).num_tokens == n_tokens
    cfg = DeiTConfig.preset("digits")
    assert (cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim, cfg.depth, cfg.num_heads,
            cfg.num_classes) == (8, 2, 1, 64, 4, 2, 10)
    assert DeiTConfig.preset("tiny", depth=2).depth == 2


@pytest.mark.slow
def test_deit_small_forward_backward_224():
    cfg = DeiTConfig.preset("deit_small")
    assert cfg.num_tokens == 198
    m = DeiT(cfg, rng=np.random.default_rng(0))
    text = m.summary(print_fn=None)
    assert 21.5e6 < m.num_params() < 23e6  # ~22 M (timm's distilled DeiT-S: 22.4 M with 1000 classes)
    assert "22.44 M" in text
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    c, d = m.forward(x)
    assert c.shape == d.shape == (2, 1000) and c.dtype == np.float32
    dx = m.backward(np.ones_like(c) / 2, np.ones_like(d) / 2)
    assert dx.shape == x.shape and np.isfinite(dx).all()
    assert all(np.isfinite(g).all() for g in m.grads.values())
    assert m.grads["pos_embed"].shape == (1, 198, 384)


def test_summary_counts_one_bit_weights_after_set_precision():
    m = DeiT(DeiTConfig.preset("tiny"), rng=np.random.default_rng(0))
    fp = m.summary(print_fn=None)
    assert "compression 1.00x" in fp
    m.set_precision("weights")
    text = m.summary(print_fn=None)
    n_bin = sum(m.params[k].size for k in m.binarized_weight_names())
    assert len(m.binarized_weight_names()) == 4 * 6
    assert f"1-bit parameters: {n_bin:,}" in text
    assert "compression" in text and "compression 1.00x" not in text


def test_same_seed_same_result_bit_for_bit():
    cfg = small_cfg(drop_rate=0.1, drop_path_rate=0.1)
    outs = []
    for _ in range(2):
        m = DeiT(cfg, rng=np.random.default_rng(5))
        x = np.random.default_rng(6).standard_normal((3, 2, 4, 4)).astype(np.float32)
        c, d = m.forward(x)
        m.backward(c, d)
        outs.append((c, d, m.grads))
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])
    for k in outs[0][2]:
        assert np.array_equal(outs[0][2][k], outs[1][2][k]), k


@pytest.mark.parametrize("x, err, match", [
    (np.zeros((2, 2, 4)), ValueError, "rank 4"),
    (np.zeros((2, 3, 4, 4)), ValueError, "2 channel"),
    (np.zeros((2, 2, 6, 6)), ValueError, "must be 4x4"),
    (np.zeros((2, 2, 5, 5)), ValueError, "not divisible by patch_size"),
    (np.full((2, 2, 4, 4), np.nan), ValueError, "NaN or inf"),
    (np.zeros((2, 2, 4, 4), dtype=np.uint8), TypeError, "floating dtype"),
    ([[0.0]], TypeError, "numpy.ndarray"),
])
def test_bad_input_names_the_argument(x, err, match):
    m = DeiT(small_cfg(), rng=np.random.default_rng(0))
    with pytest.raises(err, match=match):
        m.forward(x)


@pytest.mark.parametrize("kw, match", [
    (dict(embed_dim=10, num_heads=3), "divisible by num_heads"),
    (dict(img_size=5), "divisible by patch_size"),
    (dict(k_a=5), "k_a"),
    (dict(phi="HNNN"), "phi"),
    (dict(method="xnor"), "method"),
    (dict(depth=0), "depth"),
])
def test_invalid_config(kw, match):
    with pytest.raises(ValueError, match=match):
        small_cfg(**kw)


def test_unknown_preset_and_field():
    with pytest.raises(ValueError, match="unknown preset"):
        DeiTConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown DeiTConfig field"):
        DeiTConfig.preset("tiny", depht=3)
    with pytest.raises(TypeError, match="cfg must be a DeiTConfig"):
        DeiT({"depth": 2})
    with pytest.raises(TypeError, match="dtype"):
        DeiT(small_cfg(), dtype=np.int32)


def test_dataclass_replace_keeps_validation():
    cfg = DeiTConfig.preset("digits")
    assert dataclasses.replace(cfg, depth=2).depth == 2
    with pytest.raises(ValueError):
        dataclasses.replace(cfg, num_heads=3)


@pytest.mark.parametrize("precision,method", [("fp", "gsb"), ("binary", "gsb"), ("binary", "baseline")])
def test_inspect_returns_the_maps_the_block_used(precision, method):
    import dataclasses
    cfg = dataclasses.replace(DeiTConfig.preset("digits"), depth=2, embed_dim=16, num_heads=2, method=method)
    model = DeiT(cfg, rng=np.random.default_rng(0), dtype=np.float64).set_precision(precision)
    model.eval()
    x = np.random.default_rng(1).standard_normal((3, cfg.in_chans, cfg.img_size, cfg.img_size))
    rec = model.inspect(x, block=1)
    B, H, N, Dh = 3, cfg.num_heads, cfg.num_tokens, cfg.embed_dim // cfg.num_heads
    assert rec["A_re"].shape == rec["A"].shape == (B, H, N, N)
    assert rec["q"].shape == rec["V"].shape == (B, H, N, Dh)
    np.testing.assert_allclose(rec["A_re"].sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(rec["Y"], rec["A"] @ rec["V"], atol=1e-12)
    np.testing.assert_array_equal(rec["A"], model.blocks[1].attn.last_attention)
    np.testing.assert_array_equal(rec["logits"], model.forward(x))
    assert ("A_ret" in rec) == (precision == "binary" and method == "gsb")
    assert model.blocks[1].attn.recorded is None and not model.blocks[1].attn.record
    with pytest.raises(ValueError, match="block must be an int"):
        model.inspect(x, block=2)
