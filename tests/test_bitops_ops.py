"""Operation counts (gsbnp.bitops.ops): Table IX numbers, OPs = BOPs/64 + FLOPs, model totals."""

import pytest

from gsbnp.bitops import COUNTING_RULE, count_block_ops, count_model_ops, format_ops_table

N_, D_, R_ = 198, 384, 4  # DeiT-Small, Table IX


def test_table_ix_full_precision():
    r = count_block_ops(N_, D_, R_, "fp")
    assert r["attention"]["FLOPs"] == 2 * N_ * D_ * (2 * D_ + N_) == 146_893_824
    assert r["mlp"]["FLOPs"] == 2 * N_ * D_ * R_ * D_ == 233_570_304
    assert round(r["attention"]["FLOPs"] / 1e6, 1) == 146.9
    assert round(r["mlp"]["FLOPs"] / 1e6, 1) == 233.6
    assert round(r["block"]["OPs"] / 1e6) == 380
    assert r["attention"]["BOPs"] == r["mlp"]["BOPs"] == 0


def test_table_ix_baseline_and_gsb_bops():
    base = count_block_ops(N_, D_, R_, "baseline")
    assert round(base["attention"]["BOPs"] / 1e6) == 147
    assert int(base["mlp"]["BOPs"] / 1e6) == 233
    gsb = count_block_ops(N_, D_, R_, "gsb", k_a=2, k_v=2)
    assert gsb["attention"]["BOPs"] == 4 * N_ * D_ ** 2 + N_ ** 2 * D_ + 9 * N_ ** 2 * D_ == 267_328_512
    assert round(gsb["attention"]["BOPs"] / 1e6) == 267
    assert gsb["mlp"]["BOPs"] == base["mlp"]["BOPs"]
    # with one component each, Eq. 35 is the baseline's single A V product
    one = count_block_ops(N_, D_, R_, "gsb", k_a=0, k_v=0)
    assert one["attention"]["BOPs"] == base["attention"]["BOPs"]


def test_gsb_mlp_residual_matches_table_ix_and_rule_is_pinned():
    """gsbnp's rule gives the paper's 1.14 M for the GSB MLP; the other residuals are pinned here."""
    gsb = count_block_ops(method="gsb")
    base = count_block_ops(method="baseline")
    assert round(gsb["mlp"]["FLOPs"] / 1e6, 2) == 1.14
    assert gsb["attention"]["FLOPs"] == 4_005_940
    assert base["attention"]["FLOPs"] == 2_939_112
    assert base["mlp"]["FLOPs"] == 1_292_544
    # efficiency vs full precision close to the paper's 37.2x and ~30x
    fp = count_block_ops(method="fp")["block"]["OPs"]
    assert 36 < fp / base["block"]["OPs"] < 39
    assert 28 < fp / gsb["block"]["OPs"] < 31


@pytest.mark.parametrize("method", ("fp", "baseline", "gsb"))
@pytest.mark.parametrize("common", (False, True))
def test_parts_are_consistent(method, common):
    r = count_block_ops(66, 96, 3, method, 3, 1, num_heads=4, include_common=common)
    for part in ("attention", "mlp", "block"):
        p = r[part]
        assert p["OPs"] == pytest.approx(p["BOPs"] / 64 + p["FLOPs"])
    for key in ("BOPs", "FLOPs"):
        assert r["block"][key] == r["attention"][key] + r["mlp"][key]
    assert sum(r["flops_detail"]["attention"].values()) == r["attention"]["FLOPs"]
    assert sum(r["flops_detail"]["mlp"].values()) == r["mlp"]["FLOPs"]


def test_include_common_adds_the_same_to_binarized_methods():
    extra = {}
    for m in ("baseline", "gsb"):
        extra[m] = (count_block_ops(method=m, include_common=True)["block"]["FLOPs"]
                    - count_block_ops(method=m)["block"]["FLOPs"])
    assert extra["baseline"] == extra["gsb"] > 0
    fp_extra = (count_block_ops(method="fp", include_common=True)["block"]["FLOPs"]
                - count_block_ops(method="fp")["block"]["FLOPs"])
    assert fp_extra > extra["gsb"]  # plus the softmax and logits scaling the fp row omits


def test_model_totals():
    m = count_model_ops("gsb", depth=12)
    assert m["config"]["n_tokens"] == 198
    blk = m["block"]["block"]
    assert m["blocks"]["BOPs"] == 12 * blk["BOPs"]
    assert m["patch_embed"]["FLOPs"] == 196 * 3 * 16 * 16 * 384
    assert m["heads"]["FLOPs"] == 2 * 384 * 1000
    assert m["total"]["FLOPs"] == m["blocks"]["FLOPs"] + m["patch_embed"]["FLOPs"] + m["heads"]["FLOPs"]
    assert m["total"]["OPs"] == pytest.approx(m["total"]["BOPs"] / 64 + m["total"]["FLOPs"])
    small = count_model_ops("fp", img_size=32, patch_size=4, embed_dim=192, depth=2, num_heads=3,
                            mlp_ratio=4.0, num_classes=100)
    assert small["config"]["n_tokens"] == 66


def test_format_ops_table():
    rows = [count_block_ops(method=m) for m in ("fp", "baseline", "gsb")]
    text = format_ops_table(rows)
    lines = text.splitlines()
    assert len(lines) == 5
    assert "146.89" in lines[2] and "233.57" in lines[2] and "380.46" in lines[2]
    assert lines[2].split()[2] == "-"  # no BOPs in full precision
    assert "267.33" in lines[4] and "k_a=2" in lines[4]
    model = format_ops_table([count_model_ops(m) for m in ("fp", "gsb")])
    assert "depth 12" in model and len(model.splitlines()) == 4
    with pytest.raises(ValueError, match="mix"):
        format_ops_table([rows[0], count_model_ops("fp")])
    with pytest.raises(TypeError, match="results"):
        format_ops_table("gsb")


def test_counting_rule_text():
    assert isinstance(COUNTING_RULE, str)
    assert "OPs = BOPs/64 + FLOPs" in COUNTING_RULE


def test_bad_input():
    with pytest.raises(ValueError, match="method"):
        count_block_ops(method="xnor")
    with pytest.raises(ValueError, match="k_a"):
        count_block_ops(k_a=5)
    with pytest.raises(ValueError, match="n"):
        count_block_ops(n=0)
    with pytest.raises(ValueError, match="r"):
        count_block_ops(r=0)
    with pytest.raises(TypeError, match="d"):
        count_block_ops(d=384.0)
    with pytest.raises(ValueError, match="patch_size"):
        count_model_ops("fp", img_size=8, patch_size=16)
