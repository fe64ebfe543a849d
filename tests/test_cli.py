"""The gsbnp command: bad input gives one line and exit code 2, nothing is overwritten; a tiny
end-to-end train / eval run through the real entry point."""

import json

import numpy as np
import pytest

from gsbnp.cli import main
from gsbnp.data.dataset import load_digits, save_dataset

TINY = ["--set", "embed_dim=16", "--set", "depth=1", "--set", "num_heads=2", "--epochs-teacher", "1",
        "--epochs-stage1", "1", "--epochs-stage2", "1", "--no-progress", "--batch-size", "64"]


def _err(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    assert err.startswith("gsbnp: error:") or "error" in err
    return err


@pytest.fixture
def small_npz(tmp_path):
    d = load_digits()
    path = tmp_path / "small.npz"
    save_dataset(path, d.x_train[:128], d.y_train[:128], d.x_test[:40], d.y_test[:40], d.class_names,
                 {"source": "test"})
    return path


def test_train_eval_end_to_end(tmp_path, small_npz, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(small_npz), "--preset", "digits", "--out", str(out), *TINY]) == 0
    res = json.loads((out / "results.json").read_text())
    for stage in ("teacher", "stage1", "stage2"):
        assert 0.0 <= res[stage]["test_acc"] <= 1.0
    capsys.readouterr()
    assert main(["eval", str(out / "stage2_last.npz"), "--data", str(small_npz)]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["n"] == 40 and 0 <= r["top1"] <= r["top5"] <= 1
    # a finished run is not overwritten
    before = (out / "results.json").read_bytes()
    assert main(["train", "--data", str(small_npz), "--out", str(out), *TINY]) == 2
    assert "already holds a finished run" in _err(capsys)
    assert (out / "results.json").read_bytes() == before


def _bad_npz(tmp_path, **change):
    d = load_digits()
    arrays = dict(x_train=d.x_train[:20], y_train=d.y_train[:20], x_test=d.x_test[:10], y_test=d.y_test[:10],
                  class_names=d.class_names, meta=np.array(json.dumps({"source": "t"})))
    arrays.update(change)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("change, match", [
    (dict(y_train=None), "y_train"),
    (dict(x_train=np.zeros((20, 8, 8, 1), dtype=np.float32)), "uint8"),
    (dict(x_train=np.zeros((20, 8, 8), dtype=np.uint8)), "x_train"),
    (dict(y_test=np.full(10, 12)), "outside [0, 10)"),
])
def test_malformed_npz(tmp_path, capsys, change, match):
    path = _bad_npz(tmp_path, **change)
    out = tmp_path / "o"
    assert main(["train", "--data", str(path), "--out", str(out), *TINY]) == 2
    assert match in _err(capsys)
    assert not out.exists()


def test_image_size_not_matching_preset(tmp_path, small_npz, capsys):
    assert main(["train", "--data", str(small_npz), "--preset", "tiny", "--out", str(tmp_path / "o"), *TINY]) == 2
    assert "expects 32x32" in _err(capsys)


@pytest.mark.parametrize("argv, match", [
    (["train", "--data", "/nonexistent/file.npz"], "file.npz"),
    (["train", "--preset", "huge"], "unknown preset"),
    (["train", "--method", "xnor"], "invalid choice"),
    (["train", "--frobnicate"], "unrecognized arguments"),
    (["train", "--set", "depht=2"], "unknown DeiTConfig field"),
    (["train", "--k-a", "9"], "k_a"),
    (["eval"], "exactly one of"),
    (["ops", "--preset", "huge"], "unknown preset"),
    (["bogus"], "invalid choice"),
])
def test_bad_arguments(argv, match, capsys, tmp_path):
    assert main(argv + (["--out", str(tmp_path / "o")] if argv[0] == "train" else [])) == 2
    assert match in _err(capsys)


def test_checkpoint_from_another_config(tmp_path, small_npz, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(small_npz), "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    # resume with a different architecture: refused, the checkpoint is untouched
    ck = (out / "teacher_last.npz").read_bytes()
    argv = ["train", "--data", str(small_npz), "--out", str(out), "--resume", *TINY, "--set", "embed_dim=32"]
    assert main(argv) == 2
    assert "another model config" in _err(capsys)
    assert (out / "teacher_last.npz").read_bytes() == ck
    # a file that is not a checkpoint
    assert main(["eval", str(small_npz), "--data", str(small_npz)]) == 2
    assert "not a gsbnp checkpoint" in _err(capsys)


def test_summary_command(capsys):
    assert main(["summary", "--preset", "digits", "--precision", "binary"]) == 0
    assert "1-bit parameters" in capsys.readouterr().out
