"""Packed export and packed inference: identical to the float-simulated model, 32x smaller binary
weights, clear errors for corrupt, truncated, foreign or future files; the CLI verbs."""

import dataclasses
import json

import numpy as np
import pytest

from gsbnp.cli import main
from gsbnp.data.dataset import load_digits, save_dataset
from gsbnp.models import DeiT, DeiTConfig
from gsbnp.models.checkpoint import load_model
from gsbnp.models.packed import PACKED_FORMAT, export_packed, load_packed
from gsbnp.nn.module import load_npz, save_npz
from gsbnp.train.augment import Augment, eval_transform
from gsbnp.train.trainer import TrainConfig, Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A binarized digits model (GSB, stage 2) trained for two epochs, and its test images."""
    out = tmp_path_factory.mktemp("packed")
    d = load_digits()
    d = dataclasses.replace(d, x_train=d.x_train[:256], y_train=d.y_train[:256])
    cfg = DeiTConfig.preset("digits", embed_dim=64, depth=2)
    m = DeiT(cfg, rng=np.random.default_rng(0)).set_precision("binary")
    aug = Augment(crop_padding=0, hflip=False, randaug_num_ops=0, reprob=0.0)
    Trainer(m, d, TrainConfig(epochs=2, batch_size=64, augment=aug), out_dir=out, name="s2",
            progress=False).fit()
    return out, d


@pytest.mark.parametrize("av_bitwise", [False, True])
def test_packed_model_gives_identical_predictions(trained, av_bitwise):
    out, d = trained
    info = export_packed(out / "s2_last.npz", out / "packed.npz")
    model, meta = load_model(out / "s2_last.npz")
    packed, pmeta = load_packed(out / "packed.npz", av_bitwise=av_bitwise)
    x = eval_transform(d.x_test, meta["mean"], meta["std"])
    model.eval()
    a, b = model.forward(x), packed.forward(x)
    assert np.array_equal(a.argmax(1), b.argmax(1))
    assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()
    assert info["binarized_layers"] == 8 and pmeta["format"] == PACKED_FORMAT
    with pytest.raises(RuntimeError, match="no backward"):
        packed.blocks[0].attn.qkv.backward(np.zeros((1, 64 * 3), np.float32))


def test_binarized_weights_are_32x_smaller(trained):
    out, _ = trained
    info = export_packed(out / "s2_last.npz", out / "packed.npz")
    assert info["binary_weights_float32"] == 32 * info["binary_weights_packed"]  # widths 64, 256
    assert info["packed_file"] < info["checkpoint_float32"] / 4
    arrays, _ = load_npz(out / "packed.npz")
    assert arrays["bits/blocks.0.attn.qkv.W"].dtype == np.uint64
    assert arrays["bits/blocks.0.attn.qkv.W"].shape == (192, 1)  # (F, ceil(D/64))


def test_full_precision_checkpoint_is_refused(tmp_path):
    from gsbnp.models.checkpoint import save_checkpoint
    m = DeiT(DeiTConfig.preset("digits", depth=1), rng=np.random.default_rng(0))
    save_checkpoint(tmp_path / "fp.npz", m, {})
    with pytest.raises(ValueError, match="nothing to pack"):
        export_packed(tmp_path / "fp.npz", tmp_path / "p.npz")
    assert not (tmp_path / "p.npz").exists()


def test_corrupt_truncated_foreign_and_future_files(trained, tmp_path):
    out, _ = trained
    export_packed(out / "s2_last.npz", tmp_path / "good.npz")
    raw = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="trunc.npz"):
        load_packed(tmp_path / "trunc.npz")
    (tmp_path / "junk.npz").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="junk.npz"):
        load_packed(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="not a gsbnp packed model"):
        load_packed(out / "s2_last.npz")  # a training checkpoint, not a packed file
    arrays, meta = load_npz(tmp_path / "good.npz")
    save_npz(tmp_path / "future.npz", arrays, {**meta, "version": 99})
    with pytest.raises(ValueError, match="version 99 is not supported"):
        load_packed(tmp_path / "future.npz")
    bad = dict(arrays)
    bad["bits/blocks.0.attn.qkv.W"] = bad["bits/blocks.0.attn.qkv.W"][:5]
    save_npz(tmp_path / "rows.npz", bad, meta)
    with pytest.raises(ValueError, match="rows"):
        load_packed(tmp_path / "rows.npz")
    missing = {k: v for k, v in arrays.items() if k != "fp/pos_embed"}
    save_npz(tmp_path / "missing.npz", missing, meta)
    with pytest.raises(ValueError, match="fp/pos_embed"):
        load_packed(tmp_path / "missing.npz")


def test_cli_export_and_eval_packed(trained, tmp_path, capsys):
    out, d = trained
    data = tmp_path / "d.npz"
    save_dataset(data, d.x_train, d.y_train, d.x_test, d.y_test, d.class_names, {"source": "t"})
    assert main(["export", "--packed", str(out / "s2_last.npz"), "-o", str(tmp_path / "m.npz")]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["binary_weights_float32"] == 32 * info["binary_weights_packed"]
    assert main(["eval", "--packed", str(tmp_path / "m.npz"), "--data", str(data)]) == 0
    packed_res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["eval", str(out / "s2_last.npz"), "--data", str(data)]) == 0
    float_res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert packed_res["top1"] == float_res["top1"] and packed_res["top5"] == float_res["top5"]
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04broken")
    assert main(["eval", "--packed", str(tmp_path / "bad.npz"), "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gsbnp: error:") and len(err.splitlines()) == 1


def test_ops_command_reproduces_table_ix(capsys):
    assert main(["ops", "--preset", "deit_small"]) == 0
    text = capsys.readouterr().out
    for number in ("146.89", "233.57", "380.46", "267.33"):
        assert number in text


@pytest.mark.slow
def test_trained_tiny_preset_and_its_packed_export_agree(tmp_path):
    """The ``tiny`` preset itself (32x32x3, D 192, depth 6, 3 heads), trained a little in stage 2:
    identical test predictions and logits within 1e-5 relative, Eq. 35 dense or bitwise."""
    d = load_digits()

    def rgb32(x):  # (n, 8, 8, 1) -> (n, 32, 32, 3): each pixel a 4x4 block, grey in all channels
        return np.repeat(np.repeat(np.repeat(x, 4, axis=1), 4, axis=2), 3, axis=3)
    d = dataclasses.replace(d, x_train=rgb32(d.x_train[:128]), y_train=d.y_train[:128],
                            x_test=rgb32(d.x_test[:64]), y_test=d.y_test[:64])
    m = DeiT(DeiTConfig.preset("tiny", num_classes=10), rng=np.random.default_rng(0)).set_precision("binary")
    aug = Augment(crop_padding=0, hflip=False, randaug_num_ops=0, reprob=0.0)
    Trainer(m, d, TrainConfig(epochs=1, batch_size=64, augment=aug), out_dir=tmp_path, name="t",
            progress=False).fit()
    info = export_packed(tmp_path / "t_last.npz", tmp_path / "packed.npz")
    assert info["binarized_layers"] == 6 * 4
    model, meta = load_model(tmp_path / "t_last.npz")
    model.eval()
    x = eval_transform(d.x_test, meta["mean"], meta["std"])
    a = model.forward(x)
    for av_bitwise in (False, True):
        packed, _ = load_packed(tmp_path / "packed.npz", av_bitwise=av_bitwise)
        b = packed.forward(x)
        assert np.array_equal(a.argmax(1), b.argmax(1))
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()
