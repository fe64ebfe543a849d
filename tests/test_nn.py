"""Modules: float64 gradient checks of every layer, purity, no accumulation, state dict round trip."""

import numpy as np
import pytest

from gsbnp.gradcheck import assert_close, check_module
from gsbnp.nn import (GELU, MHSA, MLP, Block, Dropout, DropPath, LayerNorm, Linear, Module,
                      PatchEmbed, load_npz, save_npz)

from conftest import B, D, F, H, N

TOL_LAYER, TOL_BLOCK = 1e-6, 1e-5
f64 = np.float64


def _layers(rng, p):
    return {
        "Linear": (Linear(D, F, rng=rng, dtype=f64), (B, N, D)),
        "LayerNorm": (LayerNorm(D, dtype=f64), (B, N, D)),
        "GELU": (GELU(), (B, N, D)),
        "Dropout": (Dropout(p, rng), (B, N, D)),
        "DropPath": (DropPath(p, rng), (B, N, D)),
        "MLP": (MLP(D, F, rng=rng, dtype=f64, drop=p), (B, N, D)),
        "MHSA": (MHSA(D, H, N, rng=rng, dtype=f64, proj_drop=p), (B, N, D)),
        "PatchEmbed": (PatchEmbed(6, 2, 3, D, rng=rng, dtype=f64), (B, 3, 6, 6)),
    }


@pytest.mark.parametrize("p", [0.0, 0.25])
@pytest.mark.parametrize("name", ["Linear", "LayerNorm", "GELU", "Dropout", "DropPath", "MLP", "MHSA",
                                  "PatchEmbed"])
def test_layer_gradients(name, p, rng):
    layer, shape = _layers(rng, p)[name]
    for k, v in layer.params.items():  # non-trivial LN weights / biases
        v[...] = rng.standard_normal(v.shape) * (0.5 if k.endswith("W") else 1.0)
    errs = check_module(layer, rng.standard_normal(shape), rng=rng)
    assert set(errs) == {"x", *layer.params}
    assert_close(errs, TOL_LAYER)


@pytest.mark.parametrize("p", [0.0, 0.2])
def test_block_gradients(p, rng):
    blk = Block(D, H, N, mlp_ratio=F / D, drop=p, drop_path=p, rng=rng, dtype=f64)
    for v in blk.params.values():
        v[...] += rng.standard_normal(v.shape) * 0.3
    assert_close(check_module(blk, rng.standard_normal((B, N, D)), rng=rng), TOL_BLOCK)


def test_check_module_catches_a_wrong_backward(rng):
    class Broken(Linear):
        def backward(self, dout):
            dx = super().backward(dout)
            self._grads["W"] = self._grads["W"] * 1.01  # a 1% error must be caught
            return dx
    errs = check_module(Broken(D, F, rng=rng, dtype=f64), rng.standard_normal((B, N, D)))
    assert errs["W"] > 1e-3 and errs["x"] < 1e-8
    with pytest.raises(AssertionError, match="W"):
        assert_close(errs, TOL_LAYER)


def test_backward_is_pure_and_does_not_accumulate(rng):
    blk = Block(D, H, N, mlp_ratio=F / D, rng=rng, dtype=f64)
    x = rng.standard_normal((B, N, D))
    dout = rng.standard_normal((B, N, D))
    dcopy = dout.copy()
    blk.forward(x)
    dx1 = blk.backward(dout)
    g1 = {k: v.copy() for k, v in blk.grads.items()}
    blk.forward(x)
    dx2 = blk.backward(dout)
    assert np.array_equal(dout, dcopy)
    assert np.array_equal(dx1, dx2)
    for k, v in blk.grads.items():
        assert np.array_equal(v, g1[k]), k


def test_params_are_live_and_names_dotted(rng):
    blk = Block(D, H, N, rng=rng, dtype=f64)
    names = set(blk.params)
    assert {"attn.qkv.W", "attn.proj.b", "mlp.fc1.W", "mlp.fc2.b", "norm1.weight"} <= names
    assert set(blk.grads) == names
    blk.params["attn.qkv.W"][...] = 0.0
    assert np.all(blk.attn.qkv._params["W"] == 0.0)
    assert "attn.qkv.W" not in blk.no_weight_decay() and "attn.qkv.b" in blk.no_weight_decay()


def test_state_dict_roundtrip_npz(tmp_path, rng):
    a = Block(D, H, N, rng=np.random.default_rng(1), dtype=np.float32)
    b = Block(D, H, N, rng=np.random.default_rng(2), dtype=np.float32)
    path = tmp_path / "blk.npz"
    save_npz(path, a.state_dict(), meta={"kind": "block"})
    arrays, meta = load_npz(path)
    assert meta == {"kind": "block"}
    b.load_state_dict(arrays)
    x = rng.standard_normal((B, N, D)).astype(np.float32)
    assert np.array_equal(a.forward(x), b.forward(x))
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert "attn.qkv.W" in z.files


def test_load_state_dict_rejects_mismatches(rng):
    a = Linear(D, F, rng=rng)
    sd = a.state_dict()
    with pytest.raises(ValueError, match="missing keys"):
        a.load_state_dict({"W": sd["W"]})
    with pytest.raises(ValueError, match="unexpected keys"):
        a.load_state_dict({**sd, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="shape"):
        a.load_state_dict({**sd, "W": np.zeros((F, D + 1))})


def test_corrupt_npz_gives_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_npz(bad)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_npz(tmp_path / "missing.npz")


def test_train_eval_switch_reaches_children(rng):
    m = MLP(D, F, rng=rng, drop=0.5)
    m.eval()
    assert all(not mod.training for _, mod in m.named_modules())
    x = rng.standard_normal((B, N, D)).astype(np.float32)
    assert np.array_equal(m.forward(x), m.forward(x))  # no dropout in eval
    m.train()
    assert all(mod.training for _, mod in m.named_modules())
    assert isinstance(m, Module)
