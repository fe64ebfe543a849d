"""Binarized layers and the binarized DeiT: frozen-residual gradient checks of whole models, stage
switching, the float fallback, first-batch initialisation that never repeats, the 1-bit summary."""

import numpy as np
import pytest

from gsbnp import functional as F
from gsbnp.gradcheck import assert_close, check_module
from gsbnp.models import DeiT, DeiTConfig
from gsbnp.nn import MHSA, Linear

TOL_MODEL = 1e-5


def small_cfg(**kw):
    base = dict(img_size=4, patch_size=2, in_chans=2, num_classes=3, embed_dim=8, depth=2, num_heads=2,
                mlp_ratio=1.5, scale_grad="sum")
    return DeiTConfig(**{**base, **kw})


def _perturb_quant_params(model, rng):
    """Move Phi, Omega and biases off zero so their gradients are exercised, and lift GSB scales that
    the first-batch initialisation left at the floor 1e-5 (max(s, floor) has a kink there, where a
    centred difference would see half the slope)."""
    for k, v in model.params.items():
        if k.endswith(("Phi", "Omega", "q_bias", "k_bias", "act_bias")):
            v[...] = rng.standard_normal(v.shape) * 0.05
        elif k.endswith(("alphas", "betas")):
            v[...] = np.where(v < 1e-3, rng.uniform(0.01, 0.1, v.shape), v)


@pytest.mark.parametrize("kw", [
    dict(method="gsb"),
    dict(method="baseline"),
    dict(method="gsb", phi="HN", k_a=1, k_v=3),
    dict(method="gsb", gsb_v=False, phi="mean"),
    dict(method="gsb", gsb_att=False, abin="mask"),
    dict(method="gsb", type_a="sign", phi="zero", threshold_scope="batch", v_grad="unmasked"),
])
@pytest.mark.slow
def test_binary_deit_frozen_residual_gradient_check(kw):
    cfg = small_cfg(**kw)
    m = DeiT(cfg, rng=np.random.default_rng(0), dtype=np.float64).set_precision("binary")
    x = np.random.default_rng(1).standard_normal((2, 2, 4, 4))
    m.forward(x)  # first batch: initialise the learnable scales
    _perturb_quant_params(m, np.random.default_rng(3))
    errs = check_module(m, x, rng=np.random.default_rng(2))
    assert set(errs) == {"x", *m.params}
    assert_close(errs, TOL_MODEL)


def test_weights_stage_gradient_check():
    m = DeiT(small_cfg(), rng=np.random.default_rng(0), dtype=np.float64).set_precision("weights")
    x = np.random.default_rng(1).standard_normal((2, 2, 4, 4))
    assert_close(check_module(m, x), TOL_MODEL)


def test_linear_with_quantizers_off_is_the_float_layer():
    rng = np.random.default_rng(0)
    lin = Linear(8, 12, rng=rng, dtype=np.float64)
    lin.set_quant(weights=True, act_mode="learnable")
    lin.set_quant(weights=False, act_mode=None)
    x = rng.standard_normal((2, 5, 8))
    ref, _ = F.linear_forward(x, lin.params["W"], lin.params["b"])
    assert np.array_equal(lin.forward(x), ref)


def test_stage_switching_and_which_layers_are_binary():
    m = DeiT(small_cfg(), rng=np.random.default_rng(0))
    m.set_precision("weights")
    names = m.binarized_weight_names()
    assert names == {f"blocks.{i}.{n}.W" for i in range(2)
                     for n in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")}
    assert "patch_embed.W" not in names and "head.W" not in names
    m2 = DeiT(small_cfg(stage1="official"), rng=np.random.default_rng(0)).set_precision("weights")
    assert m2.binarized_weight_names() == {f"blocks.{i}.mlp.{n}.W" for i in range(2) for n in ("fc1", "fc2")}
    m.set_precision("binary")
    assert {"blocks.0.attn.alphas", "blocks.0.attn.betas", "blocks.0.attn.Phi", "blocks.0.attn.Omega",
            "blocks.0.mlp.fc2.act_alpha"} <= set(m.params)
    assert m.params["blocks.0.attn.Phi"].shape == (2, 6, 6)  # (H, N, N), N = 4 patches + 2
    assert "blocks.0.attn.Phi" in m.no_weight_decay() and "blocks.0.attn.qkv.W" not in m.no_weight_decay()
    m.set_precision("fp")
    x = np.random.default_rng(1).standard_normal((2, 2, 4, 4)).astype(np.float32)
    fp = DeiT(small_cfg(), rng=np.random.default_rng(0))
    assert np.array_equal(m.forward(x)[0], fp.forward(x)[0])  # back to the float model exactly


def test_scales_initialised_once_and_not_after_load(tmp_path):
    from gsbnp.nn import load_npz, save_npz
    rng = np.random.default_rng(0)
    m = DeiT(small_cfg(), rng=rng).set_precision("binary")
    x1 = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    m.forward(x1)
    a1 = m.params["blocks.0.mlp.fc1.act_alpha"].copy()
    al1 = m.params["blocks.0.attn.alphas"].copy()
    assert a1 > 0 and np.all(al1 > 0)
    m.forward(x1 * 5)  # a different batch must not re-initialise
    assert m.params["blocks.0.mlp.fc1.act_alpha"] == a1
    save_npz(tmp_path / "m.npz", m.state_dict())
    m2 = DeiT(small_cfg(), rng=np.random.default_rng(9)).set_precision("binary")
    m2.load_state_dict(load_npz(tmp_path / "m.npz")[0])
    m2.forward(x1 * 5)
    assert m2.params["blocks.0.mlp.fc1.act_alpha"] == a1
    assert np.array_equal(m2.params["blocks.0.attn.alphas"], al1)


def test_summary_reports_compression_of_binary_stage():
    m = DeiT(DeiTConfig.preset("deit_small"), rng=np.random.default_rng(0)).set_precision("binary")
    text = m.summary(print_fn=None)
    n1 = sum(m.params[k].size for k in m.binarized_weight_names())
    assert n1 == 12 * (384 * 1152 + 384 * 384 + 2 * 384 * 1536)  # all block linear weights
    assert f"1-bit parameters: {n1:,}" in text
    ratio = float(text.split("compression ")[1].split("x")[0])
    assert 2.0 < ratio < 32.0


def test_mhsa_gsb_keeps_every_row_alive():
    """Fig. 7: with positive alphas no row of the GSB attention map is all zero (row max > Phi)."""
    rng = np.random.default_rng(0)
    att = MHSA(8, 2, 6, rng=rng, dtype=np.float64)
    att.set_quant("gsb")
    att.forward(rng.standard_normal((4, 6, 8)))
    A = att.last_attention
    assert A.shape == (4, 2, 6, 6)
    assert np.all(A.max(axis=-1) > 0)


def test_bad_quant_options():
    att = MHSA(8, 2, 6, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="k_a"):
        att.set_quant("gsb", k_a=7)
    with pytest.raises(ValueError, match="phi"):
        att.set_quant("gsb", phi="learned")
    with pytest.raises(ValueError, match="mode"):
        att.set_quant("xnor")
    m = DeiT(small_cfg(), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="stage"):
        m.set_precision("ternary")


@pytest.mark.parametrize("method", ["gsb", "baseline"])
def test_init_scales_is_the_explicit_first_batch_step(method):
    """model.init_scales(x) sets every scale from x and restores the generators: the forward that
    follows equals the first forward of a model left to initialise itself, dropout masks included
    (training from a seed gives the numbers it gave before the step existed)."""
    cfg = small_cfg(method=method, drop_rate=0.2, drop_path_rate=0.2)
    x = np.random.default_rng(1).standard_normal((3, 2, 4, 4)).astype(np.float32)
    lazy = DeiT(cfg, rng=np.random.default_rng(0)).set_precision("binary")
    explicit = DeiT(cfg, rng=np.random.default_rng(0)).set_precision("binary")
    assert lazy.scales_pending() is explicit.scales_pending() is (method == "gsb")  # the baseline has none
    state = explicit.rng.bit_generator.state
    assert explicit.init_scales(x) is explicit
    assert not explicit.scales_pending() and explicit.rng.bit_generator.state == state
    out_lazy, out_explicit = lazy.forward(x), explicit.forward(x)
    for a, b in zip(out_lazy, out_explicit):
        assert np.array_equal(a, b)
    for k, v in lazy.state_dict().items():
        assert np.array_equal(v, explicit.state_dict()[k]), k
    before = explicit.state_dict()
    explicit.init_scales(x * 3)  # nothing pending: nothing changes
    assert all(np.array_equal(v, explicit.state_dict()[k]) for k, v in before.items())
    assert not DeiT(cfg, rng=np.random.default_rng(0)).set_precision("weights").scales_pending()
