"""gsbnp.quant.options: every option's choices and bounds are defined once and are what the config,
the layers and the op counter accept."""

import numpy as np
import pytest

from gsbnp.bitops import count_block_ops
from gsbnp.models import DeiTConfig
from gsbnp.nn import MHSA, Linear
from gsbnp.quant import options as O

FIELDS = {"method": O.METHODS, "phi": O.PHI_MODES, "type_a": O.TYPE_A_CHOICES, "abin": O.ABIN_CHOICES,
          "scale_grad": O.SCALE_GRAD_CHOICES, "threshold_scope": O.ATTN_THRESHOLD_SCOPES,
          "v_grad": O.V_GRAD_CHOICES, "baseline_attn": O.BASELINE_MODES, "init": O.INIT_CHOICES,
          "stage1": O.STAGE1_CHOICES}


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_config_accepts_exactly_the_vocabulary(field):
    for value in FIELDS[field]:
        assert getattr(DeiTConfig.preset("digits", **{field: value}), field) == value
    with pytest.raises(ValueError, match=field):
        DeiTConfig.preset("digits", **{field: "no-such-choice"})


def test_k_bounds_are_shared_by_config_layers_and_op_counter():
    for k in (O.K_MIN, O.K_MAX):
        DeiTConfig.preset("digits", k_a=k, k_v=k)
        MHSA(8, 2, 5, rng=np.random.default_rng(0)).set_quant("gsb", k_a=k, k_v=k)
        count_block_ops(k_a=k, k_v=k)
    for bad in (O.K_MIN - 1, O.K_MAX + 1):
        with pytest.raises(ValueError, match="k_a"):
            DeiTConfig.preset("digits", k_a=bad)
        with pytest.raises(ValueError, match="k_a"):
            MHSA(8, 2, 5, rng=np.random.default_rng(0)).set_quant("gsb", k_a=bad)
        with pytest.raises(ValueError, match="k_a"):
            count_block_ops(k_a=bad)


def test_layers_use_the_vocabulary():
    att = MHSA(8, 2, 5, rng=np.random.default_rng(0))
    for phi in O.PHI_MODES:
        att.set_quant("gsb", phi=phi)
    lin = Linear(4, 3, rng=np.random.default_rng(0))
    for mode in O.ACT_MODES:
        for rule in O.ACT_RULES:
            lin.set_quant(weights=True, act_mode=mode, act_rule=rule)
            assert lin.act_mode == mode
    with pytest.raises(ValueError, match="scale_grad"):
        lin.set_quant(weights=True, act_mode="learnable", scale_grad="median")
    assert O.value_threshold_scope("row") == "sample" and O.value_threshold_scope("batch") == "batch"
    assert set(map(O.value_threshold_scope, O.ATTN_THRESHOLD_SCOPES)) == set(O.VALUE_THRESHOLD_SCOPES)
