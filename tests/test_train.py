"""Trainer and pipeline: every stage and method trains, the loss falls, exact resume, atomic
checkpoints, non-finite loss stops clearly."""

import dataclasses
import os

import numpy as np
import pytest

from gsbnp.data.dataset import Dataset, load_digits
from gsbnp.models import DeiT, DeiTConfig
from gsbnp.train.augment import Augment
from gsbnp.train.pipeline import REPRODUCE_ROWS, PipelineConfig, model_config_for, run_pipeline, run_reproduce
from gsbnp.models import load_model
from gsbnp.train.trainer import TrainConfig, Trainer, TrainingError, evaluate, read_checkpoint, save_checkpoint

AUG = Augment(crop_padding=1, hflip=False, randaug_num_ops=0, reprob=0.0)


def tiny_data(n_train=96, n_test=40) -> Dataset:
    d = load_digits()
    return dataclasses.replace(d, x_train=d.x_train[:n_train], y_train=d.y_train[:n_train],
                               x_test=d.x_test[:n_test], y_test=d.y_test[:n_test])


def tiny_cfg(**kw) -> DeiTConfig:
    return DeiTConfig.preset("digits", embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0, **kw)


def test_loss_falls_on_a_short_run(tmp_path):
    data = tiny_data(128)
    m = DeiT(tiny_cfg(), rng=np.random.default_rng(0))
    tc = TrainConfig(epochs=20, batch_size=16, lr=3e-3, augment=Augment(crop_padding=0, hflip=False,
                                                                        randaug_num_ops=0, reprob=0.0))
    tr = Trainer(m, data, tc, out_dir=tmp_path, name="fp", progress=False)
    tr.fit()
    losses = [h["train_loss"] for h in tr.history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert os.path.exists(tmp_path / "fp_metrics.csv") and os.path.exists(tmp_path / "fp_metrics.jsonl")
    assert len((tmp_path / "fp_metrics.jsonl").read_text().splitlines()) == 20


@pytest.mark.parametrize("stage, method, distill", [
    ("fp", "gsb", "none"), ("weights", "gsb", "none"), ("binary", "gsb", "none"),
    ("binary", "gsb", "hard"), ("binary", "gsb", "soft"), ("binary", "baseline", "none"),
])
def test_every_stage_and_method_trains_a_few_steps(tmp_path, stage, method, distill):
    data = tiny_data(64, 20)
    m = DeiT(tiny_cfg(method=method), rng=np.random.default_rng(0)).set_precision(stage)
    teacher = DeiT(tiny_cfg(), rng=np.random.default_rng(1)) if distill != "none" else None
    before = {k: v.copy() for k, v in m.params.items()}
    tc = TrainConfig(epochs=1, batch_size=32, lr=1e-3, distill=distill, augment=AUG)
    res = Trainer(m, data, tc, out_dir=tmp_path, name="s", teacher=teacher, progress=False).fit()
    assert 0.0 <= res["test_acc"] <= 1.0
    changed = [k for k in m.params if not np.array_equal(before.get(k, m.params[k] * 0 + 1), m.params[k])]
    assert "blocks.0.attn.qkv.W" in changed and "head.W" in changed
    if stage == "binary" and method == "gsb":
        assert "blocks.0.attn.Phi" in changed and "blocks.0.mlp.fc2.act_alpha" in changed


def _run(tmp_path, name, epochs_run, interrupt_at=None):
    """Train 3 epochs; with interrupt_at=k the run dies at the start of epoch k+1 and is resumed."""
    data = tiny_data(64, 20)
    cfg = tiny_cfg(drop_rate=0.1, drop_path_rate=0.1)
    tc = TrainConfig(epochs=epochs_run, batch_size=16, lr=1e-3, augment=AUG)
    out = tmp_path / name

    def make():
        m = DeiT(cfg, rng=np.random.default_rng(0)).set_precision("binary")
        return m, Trainer(m, data, tc, out_dir=out, name="run", seed=5, progress=False)
    m, tr = make()
    if interrupt_at is not None:
        orig = tr.train_epoch

        def dying():
            if tr.epoch == interrupt_at:
                raise KeyboardInterrupt
            return orig()
        tr.train_epoch = dying
        with pytest.raises(KeyboardInterrupt):
            tr.fit()
        m, tr = make()  # a fresh process: new model, new trainer
        tr.fit(resume=True)
    else:
        tr.fit()
    return m


def test_resume_gives_the_same_weights_bit_for_bit(tmp_path):
    a = _run(tmp_path, "straight", 3)
    b = _run(tmp_path, "resumed", 3, interrupt_at=2)
    for k, v in a.state_dict().items():
        assert np.array_equal(v, b.state_dict()[k]), k


def test_interrupted_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    m = DeiT(tiny_cfg(), rng=np.random.default_rng(0))
    path = tmp_path / "ck.npz"
    save_checkpoint(path, m, {"epoch": 1})
    good = path.read_bytes()
    m.params["head.W"][...] += 1.0

    def crash(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", crash)  # dies after writing part of the temp file
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, m, {"epoch": 2})
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]  # no temp file left behind
    monkeypatch.undo()
    _, _, meta = read_checkpoint(path)
    assert meta["epoch"] == 1


def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
    data = tiny_data(32, 10)
    m = DeiT(tiny_cfg(), rng=np.random.default_rng(0))
    m.params["head.W"][...] = np.inf
    tr = Trainer(m, data, TrainConfig(epochs=1, batch_size=16, augment=AUG), out_dir=tmp_path, name="x",
                 progress=False)
    with pytest.raises(TrainingError, match="loss became"), np.errstate(invalid="ignore"):
        tr.fit()  # inf weights: NumPy's own "invalid value" warning is not the point here


def test_resume_refuses_other_settings(tmp_path):
    data = tiny_data(32, 10)
    m = DeiT(tiny_cfg(), rng=np.random.default_rng(0))
    Trainer(m, data, TrainConfig(epochs=1, batch_size=16, augment=AUG), out_dir=tmp_path, name="r",
            progress=False).fit()
    tr = Trainer(m, data, TrainConfig(epochs=2, batch_size=8, augment=AUG), out_dir=tmp_path, name="r",
                 progress=False)
    with pytest.raises(TrainingError, match="other training settings"):
        tr.fit(resume=True)


def test_checkpoint_roundtrip_and_evaluate(tmp_path):
    data = tiny_data(32, 20)
    m = DeiT(tiny_cfg(), rng=np.random.default_rng(0)).set_precision("binary")
    Trainer(m, data, TrainConfig(epochs=1, batch_size=16, augment=AUG), out_dir=tmp_path, name="c",
            progress=False).fit()
    m2, meta = load_model(tmp_path / "c_last.npz")
    assert m2.precision == "binary" and meta["epoch"] == 1
    r1 = evaluate(m, data.x_test, data.y_test, meta["mean"], meta["std"])
    r2 = evaluate(m2, data.x_test, data.y_test, meta["mean"], meta["std"])
    assert r1 == r2 and 0 <= r1["top1"] <= r1["top5"] <= 1


def test_trainer_rejects_mismatched_data(tmp_path):
    data = tiny_data(32, 10)
    m = DeiT(DeiTConfig.preset("tiny", depth=1), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="expects 32x32x3"):
        Trainer(m, data, TrainConfig(epochs=1), out_dir=tmp_path, name="x")
    with pytest.raises(ValueError, match="needs a teacher"):
        Trainer(DeiT(tiny_cfg(), rng=np.random.default_rng(0)), data, TrainConfig(epochs=1, distill="hard"),
                out_dir=tmp_path, name="x")


def test_pipeline_writes_results(tmp_path):
    data = tiny_data(64, 20)
    cfg = model_config_for(data, tiny_cfg())
    pc = PipelineConfig(epochs_teacher=1, epochs_stage1=1, epochs_stage2=1, batch_size=32)
    res = run_pipeline(data, cfg, pc, str(tmp_path), progress=False, log=lambda *_: None)
    import json
    saved = json.loads((tmp_path / "results.json").read_text())
    for stage in ("teacher", "stage1", "stage2"):
        assert 0.0 <= saved[stage]["test_acc"] <= 1.0
        assert saved[stage]["test_acc"] == res[stage]["test_acc"]
    assert saved["config"]["model"]["method"] == "gsb" and saved["wall_time_s"] > 0
    with pytest.raises(ValueError, match="expects 32x32"):
        model_config_for(data, "tiny")


def test_reproduce_writes_table_and_json(tmp_path):
    import json
    data = tiny_data(64, 20)
    cfg = model_config_for(data, tiny_cfg())
    pc = PipelineConfig(epochs_teacher=1, epochs_stage1=1, epochs_stage2=1, batch_size=32)
    res, table = run_reproduce(data, cfg, pc, str(tmp_path), seeds=(0, 1), progress=False, log=lambda *_: None)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "model" not in line]
    assert [r.split(" | ")[0][2:] for r in rows] == list(REPRODUCE_ROWS)
    assert "KD: hard distillation" in table
    saved = json.loads((tmp_path / "reproduce.json").read_text())
    assert saved["seeds"] == [0, 1] and set(saved["rows"]) == set(REPRODUCE_ROWS)
    for accs in saved["rows"].values():
        assert len(accs) == 2 and all(0.0 <= a <= 1.0 for a in accs)
    assert all(0.0 <= a <= 1.0 for a in saved["teacher_train_agreement"])
    assert (tmp_path / "reproduce.md").read_text().strip() == table.strip()
    assert res["rows"] == saved["rows"]


# -- issue 16: per-stage recipe, subsets, derived configs, augmentation defaults, statistics -------

def test_pipeline_config_resolves_per_stage_values():
    from gsbnp.errors import UsageError
    pc = PipelineConfig(lr_binary=1e-3, lr_stage2=2e-3, batch_size=32, batch_size_teacher=8,
                        warmup_epochs_stage1=0.5, epochs_stage1=3)
    t, s1, s2 = (pc.stage(w, AUG) for w in ("teacher", "stage1", "stage2"))
    assert (t.lr, s1.lr, s2.lr) == (1e-3, 1e-3, 2e-3)
    assert (t.batch_size, s1.batch_size, s2.batch_size) == (8, 32, 32)
    assert (t.warmup_epochs, s1.warmup_epochs, s2.warmup_epochs) == (5.0, 0.5, 0.0) and s1.epochs == 3
    for bad, match in (({"lr_stage1": -1.0}, "lr_stage1 must be > 0"), ({"lr_teacher": float("nan")}, "finite"),
                       ({"batch_size_stage2": 0}, "batch_size_stage2"), ({"train_fraction": 1.5}, "train_fraction"),
                       ({"train_per_class": 2, "train_fraction": 0.5}, "at most one")):
        with pytest.raises(UsageError, match=match):
            PipelineConfig(**bad)


def test_seed_statistics_by_hand():
    from gsbnp.train.pipeline import seed_statistics
    acc = {"full precision (no KD)": [0.9, 0.92, 0.94], "baseline binary": [0.5, 0.6, 0.7],
           "GSB w/o KD": [0.55, 0.6, 0.8]}
    st = seed_statistics(acc, [0, 1, 2])
    b = st["rows"]["baseline binary"]
    assert np.isclose(b["mean"], 0.6) and np.isclose(b["std"], 0.1)  # ddof 1: sqrt(0.02 / 2)
    assert b["per_seed"] == {"0": 0.5, "1": 0.6, "2": 0.7}
    p = st["paired_vs_baseline"]["GSB w/o KD"]  # d = (0.05, 0, 0.1): mean 0.05, sd 0.05, se 0.05 / sqrt(3)
    assert np.isclose(p["mean"], 0.05) and np.isclose(p["se"], 0.05 / np.sqrt(3))
    assert set(st["paired_vs_baseline"]) == {"GSB w/o KD"}
    one = seed_statistics({k: v[:1] for k, v in acc.items()}, [7])
    assert one["rows"]["baseline binary"]["std"] is None and one["paired_vs_baseline"]["GSB w/o KD"]["se"] is None


def test_run_folder_contract_in_the_python_api(tmp_path):
    import json

    from gsbnp.errors import RunFolderError
    data = tiny_data(64, 20)
    cfg = model_config_for(data, tiny_cfg())
    pc = PipelineConfig(epochs_teacher=1, epochs_stage1=1, epochs_stage2=1, batch_size=32)
    res = run_pipeline(data, cfg, pc, str(tmp_path), progress=False, log=None)
    with pytest.raises(RunFolderError, match="already holds a finished run"):
        run_pipeline(data, cfg, pc, str(tmp_path), progress=False, log=None)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    again = run_pipeline(data, cfg, pc, str(tmp_path), resume=True, progress=False, log=None)
    assert again == json.loads(json.dumps(res)) and before == {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert res["teacher"]["time_s"] > 0
    with pytest.raises(RunFolderError, match="seed"):
        run_pipeline(data, cfg, dataclasses.replace(pc, seed=5), str(tmp_path), resume=True, progress=False)
    with pytest.raises(RunFolderError, match="no run to resume|does not exist"):
        run_pipeline(data, cfg, pc, str(tmp_path / "new"), resume=True, progress=False)
    assert not (tmp_path / "new").exists()


def test_pipeline_trains_on_the_subset_and_records_it(tmp_path):
    import json
    data = tiny_data(200, 20)
    cfg = model_config_for(data, tiny_cfg())
    pc = PipelineConfig(epochs_teacher=1, epochs_stage1=1, epochs_stage2=1, batch_size=16, train_per_class=3,
                        subset_seed=1)
    run_pipeline(data, cfg, pc, str(tmp_path), progress=False, log=None)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["data"]["train"] == 30 and saved["data"]["subset"]["per_class_counts"] == [3] * 10
    rows = [json.loads(line) for line in (tmp_path / "teacher_metrics.jsonl").read_text().splitlines()]
    from gsbnp.models.checkpoint import read_checkpoint
    assert read_checkpoint(tmp_path / "teacher_last.npz")[2]["step"] == 2 and len(rows) == 1  # 30 / 16


def test_derived_model_config():
    from gsbnp.errors import UsageError
    from gsbnp.train.pipeline import derive_model_config
    d = tiny_data(20, 10)

    def like(side, chans):
        x = np.zeros((10, side, side, chans), dtype=np.uint8)
        return dataclasses.replace(d, x_train=x, x_test=x, y_train=d.y_train[:10], y_test=d.y_train[:10])
    cfg, how = derive_model_config(like(28, 1))
    assert (cfg.img_size, cfg.in_chans, cfg.patch_size, cfg.embed_dim, cfg.num_tokens) == (28, 1, 4, 192, 51)
    assert "derived" in how
    assert derive_model_config(like(32, 3))[1].startswith("preset tiny")
    assert derive_model_config(like(12, 3))[0].patch_size == 2 and derive_model_config(like(12, 3))[0].embed_dim == 64
    with pytest.raises(UsageError, match="--patch-size"):
        derive_model_config(like(31, 1))
    assert derive_model_config(like(31, 1), patch_size=31)[0].num_patches == 1


def test_augmentation_defaults_follow_the_metadata():
    from gsbnp.train.pipeline import default_augment, make_augment
    d = tiny_data(20, 10)
    assert default_augment(d) == Augment(crop_padding=1, hflip=False, randaug_num_ops=0, reprob=0.0)
    assert default_augment(d, binary=True).is_identity
    x = np.zeros((10, 28, 28, 1), dtype=np.uint8)
    chars = dataclasses.replace(d, x_train=x, x_test=x, y_train=d.y_train[:10], y_test=d.y_train[:10],
                                meta={"hflip": False})
    a = default_augment(chars)
    assert (a.crop_padding, a.hflip, a.randaug_num_ops, a.reprob) == (3, False, 0, 0.0)
    photos = dataclasses.replace(chars, meta={})
    a = default_augment(photos, binary=True)
    assert (a.hflip, a.randaug_num_ops, a.reprob) == (True, 2, 0.25)
    assert default_augment(dataclasses.replace(chars, meta={"augment": "none"})).is_identity
    assert make_augment("crop", photos, hflip=False, crop_padding=2) == Augment(crop_padding=2, hflip=False,
                                                                                randaug_num_ops=0, reprob=0.0)
    with pytest.raises(ValueError, match="augment must be one of"):
        make_augment("heavy", photos)


def test_resumed_time_counts_every_session(tmp_path):
    data = tiny_data(32, 10)
    tc = TrainConfig(epochs=2, batch_size=16, augment=AUG)
    first = Trainer(DeiT(tiny_cfg(), rng=np.random.default_rng(0)), data, tc, out_dir=tmp_path, name="t",
                    progress=False).fit()
    again = Trainer(DeiT(tiny_cfg(), rng=np.random.default_rng(0)), data, tc, out_dir=tmp_path, name="t",
                    progress=False).fit(resume=True)
    assert again["time"] == first["time"] > 0 and again["epochs"] == 2


def test_evaluate_rejects_a_bad_batch_size():
    data = tiny_data(16, 10)
    m = DeiT(tiny_cfg(), rng=np.random.default_rng(0))
    for bad in (0, -1):
        with pytest.raises(ValueError, match="batch_size must be in"):
            evaluate(m, data.x_test, data.y_test, [0.5], [0.2], batch_size=bad)
