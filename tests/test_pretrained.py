"""The bundled trained models: each reaches exactly its recorded test accuracy, the metadata is complete
and true, a corrupted / truncated / missing file or an unknown name gives a clear error, and
``gsbnp eval --pretrained NAME`` reports what ``gsbnp eval FILE`` does."""

import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import gsbnp
from gsbnp import pretrained
from gsbnp.cli import main
from gsbnp.data.dataset import bundled_digits_path, channel_stats, load_digits
from gsbnp.models import DeiT, DeiTConfig
from gsbnp.train.pipeline import PipelineConfig
from gsbnp.train.trainer import TrainConfig, evaluate

REQUIRED = ["digits-fp", "digits-stage1", "digits-baseline", "digits-gsb", "digits-gsb-kd", "digits-gsb-att"]
PRECISION = {"teacher": "fp", "stage1": "weights", "stage2": "binary"}
README = Path(__file__).resolve().parents[1] / "README.md"


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture
def copy_root(tmp_path, monkeypatch):
    """A copy of the bundled folder that a test may damage; ``pretrained`` reads it instead."""
    root = tmp_path / "pretrained"
    shutil.copytree(pretrained.ROOT, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(pretrained, "ROOT", root)
    return root


def test_names_cover_the_pipeline_and_reproduce_rows():
    got = pretrained.names()
    assert got[:len(REQUIRED)] == REQUIRED
    assert len(set(got)) == len(got)


@pytest.mark.parametrize("name", REQUIRED)
def test_model_reaches_exactly_its_recorded_accuracy(name, digits):
    meta = pretrained.info(name)
    model = pretrained.load(name)
    assert isinstance(model, DeiT)
    assert model.training is False, "load must return the model in eval mode"
    assert model.precision == meta["precision"] == PRECISION[meta["stage"]]
    assert model.cfg == DeiTConfig.from_dict(meta["model_config"])
    assert all(v.dtype == np.float32 for v in model.params.values())
    mean, std = channel_stats(digits.x_train)
    np.testing.assert_array_equal(mean, meta["mean"])
    np.testing.assert_array_equal(std, meta["std"])
    r = evaluate(model, digits.x_test, digits.y_test, np.array(meta["mean"]), np.array(meta["std"]))
    assert r["n"] == meta["test_n"] == 360
    assert round(r["top1"] * r["n"]) == meta["test_correct"]
    assert r["top1"] == meta["test_acc"]
    assert model.training is False


def test_metadata_is_complete_and_true(digits):
    data_sha = _sha(bundled_digits_path())
    pipeline_fields = {f.name for f in dataclasses.fields(PipelineConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in pretrained.names():
        m = pretrained.info(name)
        assert m["name"] == name and m["file"] == f"{name}.npz"
        assert isinstance(m["description"], str) and len(m["description"]) > 20
        path = Path(pretrained.ROOT) / m["file"]
        assert m["sha256"] == _sha(path) and m["size_bytes"] == path.stat().st_size
        assert m["preset"] == "digits" and isinstance(m["seed"], int)
        assert set(m["recipe"]["pipeline"]) == pipeline_fields, "every pipeline value is recorded"
        assert set(m["recipe"]["train_config"]) == train_fields, "every training value of the stage is recorded"
        assert m["recipe"]["train_config"]["epochs"] == m["epochs"] == len(m["history"])
        assert m["recipe"]["train_config"]["distill"] == m["distill"]
        assert m["data"] == {"name": "bundled digits", "file": "gsbnp/data/digits.npz", "sha256": data_sha,
                             "train": len(digits.y_train), "test": len(digits.y_test), "classes": 10}
        assert m["test_correct"] == round(m["test_acc"] * m["test_n"])
        assert m["history"][-1]["test_acc"] == m["test_acc"], "the recorded accuracy is the last epoch's"
        assert [h["epoch"] for h in m["history"]] == list(range(1, m["epochs"] + 1))
        assert 0.0 < m["train_acc"] <= 1.0 and m["test_acc"] <= m["test_top5"] <= 1.0
        assert m["environment"]["gsbnp_version"] == gsbnp.__version__
        if m["init_from"] not in (None, "scratch"):
            assert m["init_from"] in pretrained.names()
        if m["distill"] != "none":
            assert m["teacher"] in pretrained.names()
    sizes = sum(pretrained.info(n)["size_bytes"] for n in pretrained.names())
    assert sizes < 10 * 2 ** 20, f"the bundled models take {sizes / 2 ** 20:.1f} MiB"


def test_info_is_a_copy():
    m = pretrained.info("digits-gsb")
    m["test_acc"] = -1.0
    m["history"].clear()
    assert pretrained.info("digits-gsb")["test_acc"] >= 0.0
    assert pretrained.info("digits-gsb")["history"]


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as e:
        pretrained.load("digits-nope")
    for n in pretrained.names():
        assert n in str(e.value)
    with pytest.raises(ValueError, match="digits-fp"):
        pretrained.info("digits-nope")
    with pytest.raises(TypeError, match="name must be a str"):
        pretrained.load(3)


def test_corrupted_file_is_reported_by_name(copy_root):
    path = copy_root / "digits-gsb.npz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"digits-gsb\.npz is corrupted or truncated"):
        pretrained.load("digits-gsb")
    pretrained.load("digits-baseline")  # the others still load


def test_truncated_file_is_reported_by_name(copy_root):
    path = copy_root / "digits-fp.npz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"digits-fp\.npz is corrupted or truncated .*1000 of \d+ bytes"):
        pretrained.load("digits-fp")


def test_unreadable_file_with_a_matching_index_is_reported_by_name(copy_root):
    path = copy_root / "digits-stage1.npz"
    path.write_bytes(b"not a zip file at all")
    index = json.loads((copy_root / "index.json").read_text())
    index["models"]["digits-stage1"]["sha256"] = _sha(path)
    (copy_root / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"digits-stage1.*digits-stage1\.npz is not a readable \.npz"):
        pretrained.load("digits-stage1")


def test_missing_file_and_broken_index(copy_root):
    (copy_root / "digits-gsb-att.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"digits-gsb-att\.npz"):
        pretrained.load("digits-gsb-att")
    (copy_root / "index.json").write_text("{ not json")
    with pytest.raises(ValueError, match=r"index\.json is corrupted"):
        pretrained.names()


def test_cli_eval_pretrained_matches_eval_of_the_file(capsys):
    m = pretrained.info("digits-gsb")
    assert main(["eval", "--pretrained", "digits-gsb"]) == 0
    by_name = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["eval", str(Path(pretrained.ROOT) / m["file"])]) == 0
    by_file = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert by_name == by_file
    assert by_name["top1"] == m["test_acc"] and by_name["top5"] == m["test_top5"] and by_name["n"] == 360


def test_cli_eval_pretrained_errors(capsys):
    assert main(["eval", "--pretrained", "digits-nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gsbnp: error:") and "digits-gsb" in err
    assert main(["eval", "--pretrained", "digits-gsb", "--packed", "x.npz"]) == 2
    assert "exactly one of" in capsys.readouterr().err


def test_readme_table_is_the_index():
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^## Bundled trained models\n(.*?)(?=^## )", text, flags=re.DOTALL | re.MULTILINE)
    assert m, "README has no '## Bundled trained models' section"
    assert pretrained.markdown_table() in m.group(1), \
        "README table differs from the index: paste python data_scripts/build_pretrained.py --table"


@pytest.mark.slow
def test_build_script_writes_loadable_models(tmp_path, monkeypatch):
    """data_scripts/build_pretrained.py end to end with one epoch per stage, into a temporary folder."""
    import importlib.util
    script = Path(__file__).resolve().parents[1] / "data_scripts" / "build_pretrained.py"
    spec = importlib.util.spec_from_file_location("_build_pretrained", script)
    bp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bp)
    monkeypatch.setitem(bp.RECIPE, "pipeline", dict(bp.RECIPE["pipeline"], epochs_teacher=1, epochs_stage1=1,
                                                    epochs_stage2=1))
    full = load_digits()
    d = dataclasses.replace(full, x_train=full.x_train[:200], y_train=full.y_train[:200], x_test=full.x_test[:60],
                            y_test=full.y_test[:60])
    monkeypatch.setattr(bp, "load_digits", lambda: d)  # a slice, to keep the test short
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir()
    with pytest.warns(RuntimeWarning):  # GSB scales raised to their floor at initialisation (expected)
        index = bp.build(out, str(work), progress=False, log=lambda line: None)
    monkeypatch.setattr(pretrained, "ROOT", out)
    assert pretrained.names() == list(bp.MODELS) == REQUIRED
    for name in REQUIRED:
        m = pretrained.info(name)
        assert m == index["models"][name] and m["epochs"] == 1 and m["test_n"] == 60
        model = pretrained.load(name)
        r = evaluate(model, d.x_test, d.y_test, np.array(m["mean"]), np.array(m["std"]))
        assert r["top1"] == m["test_acc"]
    assert pretrained.info("digits-gsb-kd")["teacher"] == "digits-fp"
    assert pretrained.info("digits-baseline")["model_config"]["method"] == "baseline"
    assert pretrained.info("digits-gsb-att")["model_config"]["gsb_v"] is False
