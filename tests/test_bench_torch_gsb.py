"""bench/torch_gsb.py (the PyTorch autograd GSB reference of the benchmarks) computes gsbnp's GSB step.

Skipped without torch (an optional benchmark dependency). In float64, from the same parameters, the
autograd model must give gsbnp's logits and every parameter gradient of gsbnp's hand-written backward.
"""

import dataclasses
import os
import sys

import numpy as np
import pytest

from gsbnp.functional import cross_entropy
from gsbnp.models import DeiT, DeiTConfig

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
torch_gsb = pytest.importorskip("torch_gsb")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_torch_autograd_gsb_matches_gsbnp_forward_and_backward():
    cfg = dataclasses.replace(DeiTConfig.preset("digits"), depth=2)
    rng = np.random.default_rng(3)
    m = DeiT(cfg, rng=np.random.default_rng(0), dtype=np.float64).set_precision("binary")
    x = rng.standard_normal((5, 1, 8, 8))
    y = rng.integers(0, 10, 5)
    m.forward(x)  # initialises the scales from the first batch
    for k, v in m.params.items():
        if k.endswith(("act_bias", "q_bias", "k_bias", "Omega", "Phi")):
            v[...] = rng.standard_normal(v.shape) * 0.01
    cls, dist = m.forward(x)
    l1, d1 = cross_entropy(cls, y)
    l2, d2 = cross_entropy(dist, y)
    m.backward(0.5 * d1, 0.5 * d2)

    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tm = torch_gsb.TorchGSBDeiT(cfg)
        torch_gsb.load_gsbnp(tm, m)
        c, d = tm(torch.from_numpy(x))
        yt = torch.from_numpy(y)
        loss = 0.5 * (torch.nn.functional.cross_entropy(c, yt) + torch.nn.functional.cross_entropy(d, yt))
        loss.backward()
    finally:
        torch.set_default_dtype(default)
    assert np.abs(c.detach().numpy() - cls).max() < 1e-12
    assert np.abs(d.detach().numpy() - dist).max() < 1e-12
    assert abs(float(loss.detach()) - 0.5 * (l1 + l2)) < 1e-12
    tp = {}
    for name, p in tm.named_parameters():
        tp[name] = p
    checked = 0
    for name, g in m.grads.items():
        t = torch_gsb.torch_name(name)
        tg = tp[t].grad
        assert tg is not None, name
        tg = tg.numpy().reshape(g.shape)
        err = np.abs(tg - g).max() / max(1e-8, np.abs(g).max() + np.abs(tg).max())
        assert err < 1e-9, (name, err)
        checked += 1
    assert checked == len(m.params)
