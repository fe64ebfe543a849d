"""Tests of gsbnp.data.dataset: the .npz format, its validating loader, channel stats, bundled digits."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from gsbnp.data import (
    Dataset,
    bundled_digits_path,
    channel_stats,
    load_dataset,
    load_digits,
    save_dataset,
)

REPO = Path(__file__).resolve().parents[1]


def _arrays(rng, n_train=6, n_test=4, size=5, channels=3, classes=3):
    return {
        "x_train": rng.integers(0, 256, (n_train, size, size, channels), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.int64) % classes,
        "x_test": rng.integers(0, 256, (n_test, size, size, channels), dtype=np.uint8),
        "y_test": (np.arange(n_test, dtype=np.int64) + 1) % classes,
        "class_names": np.array([f"c{i}" for i in range(classes)]),
        "meta": np.array(json.dumps({"source": "test"})),
    }


def _write_raw(path: Path, arrays: dict) -> Path:
    """Write arrays with plain np.savez (no validation), to build malformed files."""
    np.savez(path, **arrays)
    return path


def test_roundtrip_keeps_arrays_meta_and_extras(tmp_path):
    rng = np.random.default_rng(0)
    a = _arrays(rng)
    extra = np.array([2, 0, 1, 1, 0, 2], dtype=np.int64)
    old_mask = os.umask(0o022)
    try:
        out = save_dataset(tmp_path / "sub" / "d.npz", a["x_train"], a["y_train"].astype(np.int32),
                           a["x_test"], a["y_test"], ["c0", "c1", "c2"],
                           {"source": "unit", "size": 5}, extras={"y_train_coarse": extra})
    finally:
        os.umask(old_mask)
    ds = load_dataset(out)
    assert isinstance(ds, Dataset)
    np.testing.assert_array_equal(ds.x_train, a["x_train"])
    np.testing.assert_array_equal(ds.x_test, a["x_test"])
    np.testing.assert_array_equal(ds.y_train, a["y_train"])
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.class_names.tolist() == ["c0", "c1", "c2"]
    assert ds.meta == {"source": "unit", "size": 5}
    np.testing.assert_array_equal(ds.extras["y_train_coarse"], extra)
    assert (ds.image_size, ds.channels, ds.num_classes) == (5, 3, 3)
    assert ds.path == out
    # written atomically: no temp file left beside it; the file holds no pickled object
    assert [p.name for p in out.parent.iterdir()] == ["d.npz"]
    assert out.stat().st_mode & 0o777 == 0o644  # the umask's mode, not mkstemp's 0600
    with np.load(out, allow_pickle=False) as npz:
        assert npz["meta"].shape == () and npz["class_names"].dtype.kind == "U"


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_dataset(path)


def test_not_an_npz(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"text\.npz: not a valid \.npz"):
        load_dataset(path)
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy"):
        load_dataset(single)


@pytest.mark.parametrize("key", ["x_train", "y_train", "x_test", "y_test", "class_names", "meta"])
def test_missing_key_is_named(tmp_path, key):
    a = _arrays(np.random.default_rng(1))
    del a[key]
    path = _write_raw(tmp_path / "m.npz", a)
    with pytest.raises(ValueError, match=rf"m\.npz: missing required key '{key}'"):
        load_dataset(path)


def _malformed(case: str, a: dict) -> str:
    """Mutate ``a`` for one malformed case and return the expected message fragment."""
    if case == "x float":
        a["x_train"] = a["x_train"].astype(np.float32)
        return "'x_train' must have dtype uint8"
    if case == "y float":
        a["y_test"] = a["y_test"].astype(np.float64)
        return "'y_test' must have an integer dtype"
    if case == "x rank 3":
        a["x_test"] = a["x_test"][..., 0]
        return r"'x_test' must have shape \(N, H, W, C\)"
    if case == "y length":
        a["y_train"] = a["y_train"][:-1]
        return r"'y_train' must have shape \(6,\)"
    if case == "train/test size":
        a["x_test"] = np.zeros((4, 4, 4, 3), dtype=np.uint8)
        return "H, W, C must match"
    if case == "channels differ":
        a["x_test"] = a["x_test"][..., :1].copy()
        return "H, W, C must match"
    if case == "not square":
        a["x_train"] = a["x_train"][:, :, :4]
        return "must be square"
    if case == "label too big":
        a["y_train"][2] = 3
        return r"labels in \[0, 3\], outside \[0, 3\)"
    if case == "label negative":
        a["y_test"][0] = -1
        return r"'y_test' has labels in \[-1, "
    if case == "empty train":
        a["x_train"] = a["x_train"][:0]
        a["y_train"] = a["y_train"][:0]
        return "'x_train' is empty"
    if case == "names bytes":
        a["class_names"] = a["class_names"].astype("S")
        return "'class_names' must be a 1-D unicode string array"
    if case == "names duplicate":
        a["class_names"] = np.array(["a", "b", "a"])
        return "duplicate"
    if case == "meta not json":
        a["meta"] = np.array("{oops")
        return "'meta' is not valid JSON"
    if case == "meta not object":
        a["meta"] = np.array("[1, 2]")
        return "'meta' must be a JSON object"
    if case == "meta not 0-d":
        a["meta"] = np.array(["{}"])
        return "'meta' must be a 0-d string array"
    raise AssertionError(case)


CASES = ["x float", "y float", "x rank 3", "y length", "train/test size", "channels differ",
         "not square", "label too big", "label negative", "empty train", "names bytes",
         "names duplicate", "meta not json", "meta not object", "meta not 0-d"]


@pytest.mark.parametrize("case", CASES)
def test_malformed_file_gives_one_line_error(tmp_path, case):
    a = _arrays(np.random.default_rng(2))
    fragment = _malformed(case, a)
    path = _write_raw(tmp_path / "bad.npz", a)
    with pytest.raises(ValueError, match=fragment) as info:
        load_dataset(path)
    message = str(info.value)
    assert "bad.npz" in message and "\n" not in message


def test_pickled_object_array_is_refused(tmp_path):
    a = _arrays(np.random.default_rng(3))
    a["class_names"] = np.array(["c0", "c1", {"not": "a string"}], dtype=object)
    path = _write_raw(tmp_path / "obj.npz", a)  # np.savez pickles object arrays
    with pytest.raises(ValueError, match="'class_names' holds pickled Python objects"):
        load_dataset(path)


@pytest.mark.parametrize("case", ["x float", "label too big", "names duplicate", "not square"])
def test_save_validates_and_writes_nothing(tmp_path, case):
    a = _arrays(np.random.default_rng(4))
    fragment = _malformed(case, a)
    with pytest.raises(ValueError, match=fragment):
        save_dataset(tmp_path / "out.npz", a["x_train"], a["y_train"], a["x_test"], a["y_test"],
                     a["class_names"], {"source": "t"})
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_bad_meta_and_extras(tmp_path):
    a = _arrays(np.random.default_rng(5))
    args = (a["x_train"], a["y_train"], a["x_test"], a["y_test"], a["class_names"])
    with pytest.raises(TypeError, match="meta must be a dict"):
        save_dataset(tmp_path / "o.npz", *args, "not a dict")
    with pytest.raises(ValueError, match="meta must be JSON-serialisable"):
        save_dataset(tmp_path / "o.npz", *args, {"x": object()})
    with pytest.raises(ValueError, match=r"extras\['bad'\] must be a numeric or unicode"):
        save_dataset(tmp_path / "o.npz", *args, {}, extras={"bad": np.array([None], dtype=object)})
    with pytest.raises(ValueError, match="clashes"):
        save_dataset(tmp_path / "o.npz", *args, {}, extras={"meta": np.zeros(2)})
    with pytest.raises(ValueError, match="'class_names' must be a 1-D unicode string array"):
        save_dataset(tmp_path / "o.npz", *args[:4], [0, 1, 2], {})
    with pytest.raises(TypeError, match="x_train must be a numpy.ndarray"):
        save_dataset(tmp_path / "o.npz", [[1]], *args[1:], {})
    (tmp_path / "adir.npz").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        save_dataset(tmp_path / "adir.npz", *args, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.npz"]


def test_save_replaces_an_existing_file(tmp_path):
    a = _arrays(np.random.default_rng(6))
    path = tmp_path / "d.npz"
    path.write_bytes(b"old")
    save_dataset(path, a["x_train"], a["y_train"], a["x_test"], a["y_test"], a["class_names"],
                 {"v": 2})
    assert load_dataset(path).meta == {"v": 2}


def test_channel_stats_matches_float_reference():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (9, 5, 4, 3), dtype=np.uint8)
    x[..., 2] = 255  # a constant channel has std 0
    mean, std = channel_stats(x)
    ref = x.astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, ref.mean(axis=(0, 1, 2)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(std, ref.std(axis=(0, 1, 2)), rtol=0, atol=1e-12)
    assert mean.shape == (3,) and std[2] == 0.0 and mean[2] == 1.0


def test_channel_stats_rejects_bad_input():
    with pytest.raises(TypeError, match="uint8"):
        channel_stats(np.zeros((2, 3, 3, 1), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        channel_stats(np.zeros((3, 3, 1), dtype=np.uint8))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        channel_stats([[1, 2]])


def test_bundled_digits_have_the_stated_sizes():
    ds = load_digits()
    assert bundled_digits_path().name == "digits.npz"
    assert bundled_digits_path().stat().st_size < 100_000  # a few tens of KB
    assert ds.x_train.shape == (1437, 8, 8, 1) and ds.x_test.shape == (360, 8, 8, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert ds.class_names.tolist() == [str(d) for d in range(10)]
    assert (ds.image_size, ds.channels, ds.num_classes) == (8, 1, 10)
    # values are rint(v * 255 / 16) for v in 0..16
    levels = set(np.rint(np.arange(17) * 255 / 16).astype(int).tolist())
    assert set(np.unique(ds.x_train).tolist()) <= levels
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0
    # stratified 20% test: every class gets floor or ceil of its quota
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_test]), minlength=10)
    test_counts = np.bincount(ds.y_test, minlength=10)
    assert np.all(np.abs(test_counts - 0.2 * counts) < 1)
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    meta = ds.meta
    assert meta["licence"] == "CC BY 4.0"
    assert "Alpaydin" in meta["credit"] and "Kaynak" in meta["credit"]
    for key in ("x_train", "y_train", "x_test", "y_test"):
        digest = hashlib.sha256(np.ascontiguousarray(getattr(ds, key)).tobytes()).hexdigest()
        assert meta["checksums"]["sha256"][key] == digest


def test_digits_build_is_deterministic(tmp_path):
    pytest.importorskip("sklearn")
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_digits", REPO / "data_scripts" /
                                                  "build_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rebuilt = load_dataset(module.build(tmp_path / "digits.npz"))
    bundled = load_digits()
    for key in ("x_train", "y_train", "x_test", "y_test", "class_names"):
        np.testing.assert_array_equal(getattr(rebuilt, key), getattr(bundled, key))
    assert rebuilt.meta == bundled.meta


# -- limited training samples --------------------------------------------------------------------

def test_subset_train_is_stratified_seeded_and_keeps_the_test_split():
    from gsbnp.data.dataset import Dataset, subset_train
    d = load_digits()
    d = Dataset(d.x_train, d.y_train, d.x_test, d.y_test, d.class_names, d.meta,
                extras={"y_train_coarse": d.y_train // 5, "test_only": np.arange(3)})
    s = subset_train(d, per_class=7, seed=2)
    assert np.bincount(s.y_train, minlength=10).tolist() == [7] * 10 and len(s.x_train) == 70
    assert np.array_equal(s.extras["y_train_coarse"], s.y_train // 5)  # train extras follow the subset
    assert np.array_equal(s.extras["test_only"], np.arange(3))
    assert s.x_test is d.x_test and s.y_test is d.y_test
    # each chosen image is the original one (rows kept in file order)
    idx = [int(np.flatnonzero((d.x_train == x).all(axis=(1, 2, 3)) & (d.y_train == y))[0])
           for x, y in zip(s.x_train[:5], s.y_train[:5])]
    assert idx == sorted(idx)
    assert subset_train(d, per_class=7, seed=2).meta["subset"] == s.meta["subset"]
    assert subset_train(d, per_class=7, seed=3).meta["subset"]["indices_sha256"] != s.meta["subset"]["indices_sha256"]
    f = subset_train(d, fraction=0.1, seed=0)
    want = np.maximum(1, np.rint(0.1 * np.bincount(d.y_train, minlength=10))).astype(int)
    assert np.bincount(f.y_train, minlength=10).tolist() == want.tolist()
    assert subset_train(d, fraction=1.0).meta["subset"]["train_images"] == len(d.y_train)


@pytest.mark.parametrize("kw, match", [
    ({}, "exactly one of"), ({"per_class": 2, "fraction": 0.5}, "exactly one of"),
    ({"per_class": 0}, "per_class must be in"), ({"fraction": 0.0}, "fraction must be >"),
    ({"per_class": 10_000}, "class '0' has only"), ({"per_class": 2, "seed": -1}, "seed"),
])
def test_subset_train_rejects_bad_requests(kw, match):
    from gsbnp.data.dataset import subset_train
    with pytest.raises(ValueError, match=match):
        subset_train(load_digits(), **kw)


@pytest.mark.parametrize("content, match", [
    (b"label,pixel0\n1,0\n", "it is a text file"),
    (bytes(range(256)) * 4, "does not start like a zip"),
    (b"\x93NUMPY\x01\x00v\x00", "single .npy array"),
])
def test_files_that_are_not_npz_say_so_without_pickle_advice(tmp_path, content, match):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as e:
        load_dataset(path)
    assert "pickle" not in str(e.value)
