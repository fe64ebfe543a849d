"""The gsbnp command: every mistake gives one line and exit code 2 before anything is written, nothing
on disk is lost, a run folder is a contract, output fits a terminal and a log file; the researcher's
flags (limited samples, per-stage recipe, augmentation, model shape, --config, statistics)."""

import errno
import json
import os
import stat

import numpy as np
import pytest

import gsbnp._io
from gsbnp.cli import build_parser, main
from gsbnp.data.dataset import load_digits, save_dataset
from gsbnp.models import DeiT, DeiTConfig
from gsbnp.models.checkpoint import save_checkpoint

MODEL = ["--embed-dim", "16", "--depth", "1", "--heads", "2"]
EPOCHS = ["--epochs-teacher", "1", "--epochs-stage1", "1", "--epochs-stage2", "1"]
TINY = [*MODEL, *EPOCHS, "--no-progress", "--batch-size", "64"]


def _err(capsys):
    """The single stderr line of a failed command (no traceback, no usage block)."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("gsbnp: error: "), err
    assert "Traceback" not in err and err.count("gsbnp:") == 1, err
    return err


def _snapshot(folder):
    """Every file under ``folder`` with its bytes and mode: proves that nothing changed."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = (fh.read(), os.stat(p).st_mode)
    return out


def _digits_subset(tmp_path, name="small.npz", n_train=128, n_test=40, **meta):
    d = load_digits()
    path = tmp_path / name
    save_dataset(path, d.x_train[:n_train], d.y_train[:n_train], d.x_test[:n_test], d.y_test[:n_test],
                 d.class_names, {"source": "test", **meta})
    return path


@pytest.fixture
def small_npz(tmp_path):
    return _digits_subset(tmp_path)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished tiny run (shared, read-only for the tests that use it)."""
    tmp = tmp_path_factory.mktemp("finished")
    data = _digits_subset(tmp)
    out = tmp / "run"
    assert main(["train", "--data", str(data), "--out", str(out), *TINY]) == 0
    return data, out


# -- end to end ------------------------------------------------------------------------------------

def test_train_eval_end_to_end(finished_run, capsys):
    data, out = finished_run
    res = json.loads((out / "results.json").read_text())
    for stage in ("teacher", "stage1", "stage2"):
        assert 0.0 <= res[stage]["test_acc"] <= 1.0
    man = json.loads((out / "gsbnp-run.json").read_text())
    assert man["state"] == "finished" and man["identity"]["seeds"] == [0] and man["command"][:2] == ["gsbnp", "train"]
    assert set(man["versions"]) == {"gsbnp", "numpy", "python"}
    capsys.readouterr()
    assert main(["eval", str(out / "stage2_last.npz"), "--data", str(data)]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["n"] == 40 and 0 <= r["top1"] <= r["top5"] <= 1


def test_files_get_the_users_umask(tmp_path, small_npz):
    old = os.umask(0o027)
    try:
        assert main(["train", "--data", str(small_npz), "--out", str(tmp_path / "r"), *TINY, "-q"]) == 0
        gsbnp._io.atomic_write_bytes(tmp_path / "x.bin", b"x")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "r").iterdir()}
    assert set(modes.values()) == {0o640}, modes  # 0666 & ~027, not mkstemp's 0600
    assert stat.S_IMODE((tmp_path / "x.bin").stat().st_mode) == 0o640


# -- the run folder contract --------------------------------------------------------------------

def _interrupted_run(tmp_path, small_npz, monkeypatch, at_stage="stage1"):
    """A run killed (KeyboardInterrupt) at the start of ``at_stage``: teacher done, later stages not."""
    from gsbnp.train import pipeline
    out = tmp_path / "run"
    real = pipeline.train_stage1

    def dying(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(pipeline, "train_stage1", dying)
    assert main(["train", "--data", str(small_npz), "--out", str(out), *TINY]) == 130
    monkeypatch.setattr(pipeline, "train_stage1", real)
    return out


def test_interrupted_run_is_not_overwritten_without_resume(tmp_path, small_npz, monkeypatch, capsys):
    out = _interrupted_run(tmp_path, small_npz, monkeypatch)
    assert "--resume" in capsys.readouterr().err
    before = _snapshot(out)
    assert main(["train", "--data", str(small_npz), "--out", str(out), *TINY]) == 2
    err = _err(capsys)
    assert "unfinished run" in err and "--resume" in err and "new --out" in err and "--force" in err
    assert _snapshot(out) == before
    # --resume finishes it; --force discards it (gsbnp's files only) and starts again
    assert main(["train", "--data", str(small_npz), "--out", str(out), "--resume", *TINY]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["train", "--data", str(small_npz), "--out", str(out), "--force", *TINY]) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "gsbnp-run.json").read_text())["sessions"] == 1


def test_finished_run_is_not_overwritten(finished_run, capsys):
    data, out = finished_run
    before = _snapshot(out)
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--out", str(out), *TINY]) == 2
    err = _err(capsys)
    assert "already holds a finished run" in err and "--force" in err
    # --resume of a finished run reports it and changes nothing (not even wall times)
    assert main(["train", "--data", str(data), "--out", str(out), "--resume", *TINY]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert _snapshot(out) == before


@pytest.mark.parametrize("change, match", [
    (["--seed", "5"], "seed(s)"),
    (["--lr-teacher", "0.002"], "lr_teacher"),
    (["--depth", "2"], "depth"),
    (["--train-per-class", "5"], "train_per_class"),
])
def test_resume_with_other_settings_is_refused(finished_run, capsys, change, match):
    data, out = finished_run
    before = _snapshot(out)
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--out", str(out), "--resume", *TINY, *change]) == 2
    err = _err(capsys)
    assert match in err and "new --out" in err
    assert _snapshot(out) == before


def test_resume_with_other_data_is_refused(finished_run, tmp_path, capsys):
    _, out = finished_run
    other = _digits_subset(tmp_path, "other.npz", n_train=100)
    before = _snapshot(out)
    capsys.readouterr()
    assert main(["train", "--data", str(other), "--out", str(out), "--resume", *TINY]) == 2
    err = _err(capsys)
    assert "another data" in err and "sha256" in err
    assert _snapshot(out) == before


def test_orphaned_temp_files_are_removed_at_start_and_resume(tmp_path, small_npz, monkeypatch):
    out = _interrupted_run(tmp_path, small_npz, monkeypatch)
    dead = out / ".gsbnp-tmp-999999999-deadbeef.part"  # no such pid
    legacy = out / ".tmp-abc123.part"
    alive = out / f".gsbnp-tmp-{os.getppid()}-cafe0000.part"  # a live process: maybe mid-write, kept
    for p in (dead, legacy, alive):
        p.write_bytes(b"x" * 100)
    assert main(["train", "--data", str(small_npz), "--out", str(out), "--resume", *TINY]) == 0
    assert not dead.exists() and not legacy.exists() and alive.exists()


def test_export_never_writes_onto_its_input(finished_run, capsys, tmp_path):
    _, out = finished_run
    ck = out / "stage2_last.npz"
    before = ck.read_bytes()
    capsys.readouterr()
    assert main(["export", "--packed", str(ck), "-o", str(ck)]) == 2
    assert "is the checkpoint being packed" in _err(capsys)
    link = tmp_path / "same.npz"
    link.symlink_to(ck)
    assert main(["export", "--packed", str(ck), "-o", str(link)]) == 2
    _err(capsys)
    assert ck.read_bytes() == before


# -- boundary checks -------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, match", [
    (["eval", "CK", "--batch-size", "-1"], "--batch-size must be >= 1, got -1"),
    (["eval", "CK", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["train", "--epochs-teacher", "-3"], "--epochs-teacher must be >= 1, got -3"),
    (["train", "--lr-teacher", "-1"], "--lr-teacher must be > 0, got -1"),
    (["train", "--lr-teacher", "nan"], "--lr-teacher must be a finite number, got nan"),
    (["train", "--lr-stage1", "inf"], "--lr-stage1 must be a finite number"),
    (["train", "--batch-size", "x"], "--batch-size must be an integer, got 'x'"),
    (["train", "--train-per-class", "0"], "--train-per-class must be >= 1, got 0"),
    (["train", "--train-fraction", "1.5"], "--train-fraction must be <= 1"),
    (["train", "--train-fraction", "0"], "--train-fraction must be > 0"),
    (["train", "--train-per-class", "2", "--train-fraction", "0.5"], "at most one of --train-per-class"),
    (["train", "--train-per-class", "500"], "class '0' has only"),
    (["train", "--crop-padding", "-1"], "--crop-padding must be >= 0"),
    (["train", "--augment", "heavy"], "--augment: invalid choice"),
    (["train", "--threads", "0"], "--threads must be >= 1, got 0"),
    (["--threads", "0", "train"], "--threads must be >= 1, got 0"),
    (["reproduce", "--seeds", "0"], "--seeds count must be >= 1"),
    (["reproduce", "--seeds", "1,1"], "--seeds list must hold distinct seeds"),
    (["train", "--data", "/nonexistent/file.npz"], "file.npz"),
    (["train", "--preset", "huge"], "--preset: invalid choice: 'huge'"),
    (["train", "--method", "xnor"], "--method must be one of 'gsb', 'baseline', got 'xnor'"),
    (["train", "--phi", "max"], "--phi must be one of"),
    (["train", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["train", "--set", "depht=2"], "unknown DeiTConfig field"),
    (["train", "--k-a", "9"], "--k-a must be in [0, 4], got 9"),
    (["train", "--embed-dim", "30", "--heads", "4"], "--embed-dim (30) must be divisible by --heads (4)"),
    (["train", "--patch-size", "3"], "--img-size (8) must be divisible by --patch-size (3)"),
    (["train", "--preset", "tiny"], "expects 32x32"),
    (["eval"], "exactly one of"),
    (["eval", "/nonexistent.npz"], "no such file"),
    (["ops", "--preset", "huge"], "invalid choice"),
    (["ops", "--k-a", "7"], "--k-a must be in 0..4"),
    (["bogus"], "invalid choice"),
])
def test_bad_values_give_one_line_and_make_no_folder(argv, match, capsys, tmp_path):
    out = tmp_path / "o"
    extra = ["--out", str(out)] if "train" in argv or "reproduce" in argv else []
    assert main(argv + extra) == 2
    err = _err(capsys)
    assert match in err, err
    assert "gsbnp: error: gsbnp" not in err  # the prefix once
    assert not out.exists()


@pytest.mark.parametrize("content, match", [
    (b"hello, this is text\n", "it is a text file"),
    (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "does not start like a zip"),
    (b"", "the file is empty"),
])
def test_data_that_is_not_an_npz(tmp_path, capsys, content, match):
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "o"), *TINY]) == 2
    err = _err(capsys)
    assert "not a valid .npz file" in err and match in err and "pickle" not in err
    assert not (tmp_path / "o").exists()


def _bad_npz(tmp_path, **change):
    d = load_digits()
    arrays = {"x_train": d.x_train[:20], "y_train": d.y_train[:20], "x_test": d.x_test[:10], "y_test": d.y_test[:10],
                  "class_names": d.class_names, "meta": np.array(json.dumps({"source": "t"}))}
    arrays.update(change)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("change, match", [
    ({"y_train": None}, "y_train"),
    ({"x_train": np.zeros((20, 8, 8, 1), dtype=np.float32)}, "uint8"),
    ({"x_train": np.zeros((20, 8, 8), dtype=np.uint8)}, "x_train"),
    ({"y_test": np.full(10, 12)}, "outside [0, 10)"),
    ({"meta": np.array([{"a": 1}], dtype=object)}, "pickled Python objects"),
])
def test_malformed_npz(tmp_path, capsys, change, match):
    path = _bad_npz(tmp_path, **change)
    out = tmp_path / "o"
    assert main(["train", "--data", str(path), "--out", str(out), *TINY]) == 2
    assert match in _err(capsys)
    assert not out.exists()


def test_non_finite_checkpoint_names_the_file_and_the_array(tmp_path, small_npz, capsys):
    m = DeiT(DeiTConfig.preset("digits", embed_dim=16, depth=1, num_heads=2), rng=np.random.default_rng(0))
    m.params["blocks.0.attn.qkv.W"][0, :3] = np.nan
    ck = tmp_path / "nan.npz"
    save_checkpoint(ck, m, {"mean": [0.5], "std": [0.2]})
    assert main(["eval", str(ck), "--data", str(small_npz)]) == 2
    err = _err(capsys)
    assert str(ck) in err and "'model/blocks.0.attn.qkv.W' holds 3 NaN/inf" in err


def test_checkpoint_from_another_config(finished_run, capsys):
    data, out = finished_run
    before = _snapshot(out)
    capsys.readouterr()
    assert main(["eval", str(data), "--data", str(data)]) == 2
    assert "not a gsbnp checkpoint" in _err(capsys)
    assert _snapshot(out) == before


# -- file-system failures: one line, nothing lost -------------------------------------------------

def test_out_that_is_a_file_or_lies_under_one(tmp_path, small_npz, capsys):
    f = tmp_path / "file"
    f.write_text("keep")
    for out, match in ((f, "is a file, expected a folder"), (f / "sub", "which is a file, not a folder")):
        assert main(["train", "--data", str(small_npz), "--out", str(out), *TINY]) == 2
        assert match in _err(capsys)
    assert f.read_text() == "keep"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_out_in_a_read_only_folder(tmp_path, small_npz, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["train", "--data", str(small_npz), "--out", str(ro / "run"), *TINY]) == 2
        assert "not writable" in _err(capsys)
    finally:
        ro.chmod(0o700)


class _FailingOs:
    """``os`` as ``gsbnp._io`` sees it, with one call failing with ``err`` (after ``after`` good calls)."""

    def __init__(self, name, err, after=0):
        self.name, self.err, self.after = name, err, after

    def __getattr__(self, attr):
        real = getattr(os, attr)
        if attr != self.name:
            return real

        def failing(*a, **k):
            if self.after > 0:
                self.after -= 1
                return real(*a, **k)
            raise self.err
        return failing


def test_read_only_location_is_one_line(tmp_path, small_npz, capsys, monkeypatch):
    monkeypatch.setattr(gsbnp._io, "os", _FailingOs("open", OSError(errno.EROFS, "Read-only file system")))
    assert main(["train", "--data", str(small_npz), "--out", str(tmp_path / "run"), *TINY]) == 2
    assert "Read-only file system" in _err(capsys)


def test_disk_full_during_training_keeps_the_run_and_resume_finishes_it(tmp_path, small_npz, capsys,
                                                                          monkeypatch):
    out = tmp_path / "run"
    argv = ["train", "--data", str(small_npz), "--out", str(out), *MODEL, "--epochs-teacher", "3",
            "--epochs-stage1", "1", "--epochs-stage2", "1", "--no-progress", "--batch-size", "64"]
    # the manifest, then metrics + best + last of epoch 1 and metrics of epoch 2 succeed; fsync #6 fails
    monkeypatch.setattr(gsbnp._io, "os", _FailingOs("fsync", OSError(errno.ENOSPC, "No space left on device"),
                                                    after=2 * 5))
    assert main(argv) == 2
    err = _err(capsys)
    assert "No space left on device" in err and "--resume" in err and str(out) in err
    assert not [p for p in out.iterdir() if p.name.startswith(".gsbnp-tmp-")]
    from gsbnp.models.checkpoint import read_checkpoint
    assert read_checkpoint(out / "teacher_last.npz")[2]["epoch"] >= 1  # the last good checkpoint is kept
    monkeypatch.undo()
    assert main(argv + ["--resume"]) == 0
    straight = tmp_path / "straight"
    assert main([*argv[:4], str(straight), *argv[5:]]) == 0
    a, b = (np.load(p / "stage2_last.npz") for p in (out, straight))
    for k in a.files:
        if k.startswith("model/"):
            assert np.array_equal(a[k], b[k]), k


def test_export_to_a_read_only_path_is_one_line(finished_run, tmp_path, capsys, monkeypatch):
    _, out = finished_run
    monkeypatch.setattr(gsbnp._io, "os", _FailingOs("open", PermissionError(errno.EACCES, "Permission denied")))
    capsys.readouterr()
    assert main(["export", "--packed", str(out / "stage2_last.npz"), "-o", str(tmp_path / "p.npz")]) == 2
    assert "Permission denied" in _err(capsys)
    assert not (tmp_path / "p.npz").exists()


def test_a_real_bug_keeps_its_traceback(tmp_path, small_npz, monkeypatch):
    from gsbnp.train import pipeline

    def buggy(*a, **k):
        raise ValueError("an internal mistake")
    monkeypatch.setattr(pipeline, "run_pipeline", buggy)
    with pytest.raises(ValueError, match="an internal mistake"):
        main(["train", "--data", str(small_npz), "--out", str(tmp_path / "o"), *TINY])
    monkeypatch.setattr(pipeline, "run_pipeline", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["train", "--data", str(small_npz), "--out", str(tmp_path / "o2"), *TINY])
    monkeypatch.setattr(pipeline, "run_pipeline", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EAGAIN, "x")))
    with pytest.raises(OSError):  # not a file-system failure a command anticipates
        main(["train", "--data", str(small_npz), "--out", str(tmp_path / "o3"), *TINY])


# -- output --------------------------------------------------------------------------------------

def test_no_progress_bars_off_a_terminal_but_the_epoch_lines(tmp_path, small_npz, capsys):
    assert main(["train", "--data", str(small_npz), "--out", str(tmp_path / "a"), *TINY[:-3],
                 "--batch-size", "64"]) == 0
    cap = capsys.readouterr()
    assert "\r" not in cap.err and "img/s]" not in cap.err  # pytest's stderr is not a terminal: no bars
    assert "teacher epoch 1/1" in cap.out and "stage2 epoch 1/1" in cap.out
    assert main(["train", "--data", str(small_npz), "--out", str(tmp_path / "b"), *TINY, "--progress"]) == 0
    assert "teacher 1/1" in capsys.readouterr().err  # forced: the tqdm bar is there
    assert main(["train", "--data", str(small_npz), "--out", str(tmp_path / "c"), *TINY, "--quiet"]) == 0
    cap = capsys.readouterr()
    assert cap.err == "" and len(cap.out.strip().splitlines()) == 1  # the final accuracies only
    assert set(json.loads(cap.out)) == {"teacher", "stage1", "stage2"}


def test_warnings_are_in_words_and_the_detail_is_verbose(capsys):
    import warnings

    from gsbnp.cli import _CONTEXT, _show_warning
    _CONTEXT.clear()
    msg = "gsb_attention_init: alpha_1 = -0.000235 is not positive; set to the floor 1e-05"
    for _ in range(3):
        _show_warning(warnings.WarningMessage(msg, RuntimeWarning, "x.py", 1).message, RuntimeWarning, "x.py", 1)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "harmless" in err[0] and "alpha_1" not in err[0] and "--verbose" in err[0]
    _CONTEXT.clear()
    _CONTEXT["verbose"] = True
    _show_warning(msg, RuntimeWarning, "x.py", 1)
    err = capsys.readouterr().err
    assert "detail: " + msg in err


def test_help_shows_defaults(capsys):
    assert main(["train", "--help"]) == 0
    h = " ".join(capsys.readouterr().out.split())
    for text in ("(default: 200)", "(default: 0.001)", "(default: 32)", "(default: 0.0005, the paper's)",
                 "(default: --lr-binary)", "--train-per-class N", "--augment {none,crop,deit}", "--threads N"):
        assert text in h, text


# -- issue 16: the researcher's flags -----------------------------------------------------------

def test_train_per_class_draws_a_seeded_stratified_subset(tmp_path, small_npz):
    out = tmp_path / "r"
    assert main(["train", "--data", str(small_npz), "--out", str(out), *TINY, "-q", "--train-per-class", "5",
                 "--subset-seed", "3"]) == 0
    res = json.loads((out / "results.json").read_text())
    sub = res["data"]["subset"]
    assert sub["per_class_counts"] == [5] * 10 and sub["train_images"] == 50 and sub["of"] == 128
    assert sub["seed"] == 3 and res["data"]["train"] == 50 and res["data"]["test"] == 40
    assert res["config"]["pipeline"]["train_per_class"] == 5
    # the same seed draws the same images, another seed others; the test split is never touched
    from gsbnp.data.dataset import load_dataset, subset_train
    d = load_dataset(small_npz)
    a, b, c = (subset_train(d, per_class=5, seed=s) for s in (3, 3, 4))
    assert a.meta["subset"]["indices_sha256"] == sub["indices_sha256"] == b.meta["subset"]["indices_sha256"]
    assert c.meta["subset"]["indices_sha256"] != sub["indices_sha256"]
    assert np.array_equal(a.x_test, d.x_test) and np.array_equal(a.y_test, d.y_test)
    f = subset_train(d, fraction=0.25, seed=0)
    counts = np.bincount(d.y_train, minlength=10)
    assert f.meta["subset"]["per_class_counts"] == np.maximum(1, np.rint(0.25 * counts)).astype(int).tolist()


def test_per_stage_recipe_is_used_and_recorded(tmp_path, small_npz):
    out = tmp_path / "r"
    assert main(["train", "--data", str(small_npz), "--out", str(out), *MODEL, "-q", "--epochs-teacher", "2",
                 "--epochs-stage1", "1", "--epochs-stage2", "1", "--lr-binary", "7e-4", "--lr-stage1", "1e-3",
                 "--batch-size", "32", "--batch-size-stage2", "16", "--warmup-stage1", "0.5",
                 "--weight-decay", "0.01"]) == 0
    rec = json.loads((out / "results.json").read_text())["config"]["recipe"]
    assert (rec["teacher"]["epochs"], rec["stage1"]["epochs"], rec["stage2"]["epochs"]) == (2, 1, 1)
    assert (rec["stage1"]["lr"], rec["stage2"]["lr"]) == (1e-3, 7e-4)
    assert (rec["teacher"]["batch_size"], rec["stage2"]["batch_size"]) == (32, 16)
    assert rec["stage1"]["warmup_epochs"] == 0.5 and rec["teacher"]["weight_decay"] == 0.01
    steps = [json.loads(line)["lr"] for line in (out / "stage2_metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 1
    from gsbnp.models.checkpoint import read_checkpoint
    assert read_checkpoint(out / "stage2_last.npz")[2]["step"] == 8  # 128 images / batch 16


def _aug(out, stage):
    return json.loads((out / "results.json").read_text())["config"]["recipe"][stage]["augment"]


def test_augmentation_defaults_come_from_the_metadata(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    names = ["a", "b", "c", "d"]
    m32 = [*MODEL, "--patch-size", "8", *EPOCHS, "-q", "--batch-size", "20"]
    for meta, flip, randaug in (({}, True, 2), ({"hflip": False}, False, 0)):
        p = tmp_path / f"d{len(meta)}.npz"
        save_dataset(p, x, y, x[:8], y[:8], names, {"source": "t", **meta})
        out = tmp_path / f"r{len(meta)}"
        assert main(["train", "--data", str(p), "--out", str(out), *m32]) == 0
        a = _aug(out, "teacher")
        assert (a["hflip"], a["randaug_num_ops"], a["crop_padding"]) == (flip, randaug, 4)
    # the bundled digits say "hflip": false; the flags override any default, per stage
    assert load_digits().meta["hflip"] is False
    out = tmp_path / "flags"
    assert main(["train", "--data", str(p), "--out", str(out), *m32, "--augment-teacher", "deit", "--hflip",
                 "--crop-padding", "2", "--augment-binary", "none"]) == 0
    t, s1 = _aug(out, "teacher"), _aug(out, "stage1")
    assert (t["hflip"], t["randaug_num_ops"], t["crop_padding"]) == (True, 2, 2)
    assert (s1["crop_padding"], s1["hflip"], s1["randaug_num_ops"], s1["reprob"]) == (0, False, 0, 0.0)


def test_model_for_any_data_derived_flags_and_config_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 28, 28, 1), dtype=np.uint8)
    y = np.arange(30) % 3
    p = tmp_path / "chars.npz"
    save_dataset(p, x, y, x[:6], y[:6], ["a", "b", "c"], {"source": "t", "hflip": False})
    run = [*EPOCHS, "--no-progress", "--batch-size", "30", "--embed-dim", "16", "--depth", "1", "--heads", "2"]
    assert main(["train", "--data", str(p), "--out", str(tmp_path / "a"), *run]) == 0
    out = capsys.readouterr().out
    assert "derived from the data" in out and "28x28x1, patch 4 (51 tokens)" in out
    cfg = json.loads((tmp_path / "a" / "results.json").read_text())["config"]["model"]
    assert (cfg["img_size"], cfg["in_chans"], cfg["patch_size"], cfg["num_classes"]) == (28, 1, 4, 3)
    # a JSON and a TOML config file; flags override the file
    (tmp_path / "c.json").write_text(json.dumps({"model": {"patch_size": 7, "embed_dim": 24, "num_heads": 3},
                                                 "recipe": {"lr_stage2": 0.002}}))
    (tmp_path / "c.toml").write_text('patch_size = 14\nembed_dim = 8\nnum_heads = 2\n[recipe]\nlr_teacher = 0.003\n')
    assert main(["train", "--data", str(p), "--out", str(tmp_path / "b"), *run[:-6], "--depth", "1", "-q",
                 "--config", str(tmp_path / "c.json")]) == 0
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert (res["config"]["model"]["patch_size"], res["config"]["model"]["embed_dim"]) == (7, 24)
    assert res["config"]["recipe"]["stage2"]["lr"] == 0.002
    assert main(["train", "--data", str(p), "--out", str(tmp_path / "c"), *run, "-q", "--embed-dim", "12",
                 "--config", str(tmp_path / "c.toml")]) == 0
    res = json.loads((tmp_path / "c" / "results.json").read_text())
    assert (res["config"]["model"]["patch_size"], res["config"]["model"]["embed_dim"]) == (14, 12)
    assert res["config"]["recipe"]["teacher"]["lr"] == 0.003
    capsys.readouterr()
    (tmp_path / "bad.json").write_text('{"depht": 2}')
    assert main(["train", "--data", str(p), "--out", str(tmp_path / "d"), "--config", str(tmp_path / "bad.json")]) == 2
    assert "unknown field 'depht'" in _err(capsys)
    (tmp_path / "bad.toml").write_text('depth = ')
    assert main(["train", "--data", str(p), "--out", str(tmp_path / "d"), "--config", str(tmp_path / "bad.toml")]) == 2
    assert "not valid TOML" in _err(capsys)
    assert not (tmp_path / "d").exists()


def test_reproduce_on_limited_digits_gives_per_seed_values_and_paired_differences(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "--train-per-class", "20", "--seeds", "3", "--out", str(out), *TINY, "-q"]) == 0
    table = capsys.readouterr().out
    head = table.splitlines()[0]
    assert "mean ± std (3 seeds)" in head and "seed 0 | seed 1 | seed 2" in head and "− baseline (± s.e.)" in head
    saved = json.loads((out / "reproduce.json").read_text())
    assert saved["seeds"] == [0, 1, 2] and saved["data"]["subset"]["per_class_counts"] == [20] * 10
    from gsbnp.train.pipeline import REPRODUCE_ROWS
    for row in REPRODUCE_ROWS:  # reproduce.json: the per-seed lists, and beside them the statistics
        a = np.array(saved["rows"][row])
        st = saved["statistics"][row]
        assert st["per_seed"] == {str(s): v for s, v in zip((0, 1, 2), a)} and st["n"] == 3
        assert np.isclose(st["mean"], a.mean()) and np.isclose(st["std"], a.std(ddof=1))
    assert set(saved["paired_vs_baseline"]) == set(REPRODUCE_ROWS[2:])
    for row in REPRODUCE_ROWS:
        a = np.array(saved["rows"][row])
        line = next(t for t in table.splitlines() if t.startswith(f"| {row} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3] == f"{a.mean() * 100:.2f} ± {a.std(ddof=1) * 100:.2f}"
        assert cells[4:7] == [f"{v * 100:.2f}" for v in a]
        if row in REPRODUCE_ROWS[2:]:
            d = a - np.array(saved["rows"]["baseline binary"])
            assert cells[7] == f"{d.mean() * 100:+.2f} ± {d.std(ddof=1) / np.sqrt(3) * 100:.2f}"
        else:
            assert cells[7] == ""
    assert (out / "reproduce.md").read_text().strip() == table.strip()


def test_seeds_as_a_list(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "--train-per-class", "3", "--seeds", "4,2", "--out", str(out), *TINY, "-q"]) == 0
    saved = json.loads((out / "reproduce.json").read_text())
    assert saved["seeds"] == [4, 2] and sorted(p.name for p in out.glob("seed*")) == ["seed2", "seed4"]
    assert "| seed 4 | seed 2 |" in capsys.readouterr().out


def test_threads_flag_calls_the_thread_policy(monkeypatch, capsys):
    from gsbnp import _threads
    calls = []
    monkeypatch.setattr(_threads, "set_num_threads", calls.append, raising=False)
    assert main(["--threads", "2", "summary", "--preset", "digits"]) == 0
    assert main(["eval", "--threads", "3", "--help"]) == 0
    assert calls == [2]
    assert "1-bit parameters" in capsys.readouterr().out


def test_summary_command(capsys):
    assert main(["summary", "--preset", "digits", "--precision", "binary"]) == 0
    assert "1-bit parameters" in capsys.readouterr().out


def test_every_option_has_a_name_in_the_field_table():
    """FIELD_FLAGS maps config fields to real options of gsbnp train (error messages depend on it)."""
    from gsbnp.cli import FIELD_FLAGS
    p = build_parser()
    train = p._subparsers._group_actions[0].choices["train"]
    flags = {s for a in train._actions for s in a.option_strings}
    assert set(FIELD_FLAGS.values()) <= flags


def test_readme_documents_every_option_with_an_example_that_parses():
    """Every option of train / reproduce appears in an example command of the README, and every
    example command of the command-line section parses."""
    import re
    import shlex
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## The command line for experiments"):readme.index("## Measured on the bundled")]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.DOTALL)
    cmds = [line.split("#")[0].split(" 2>")[0].strip() for b in blocks for line in b.replace("\\\n", " ").splitlines()
            if line.startswith("gsbnp ") and line.split()[1] in ("train", "reproduce", "--threads")]
    assert len(cmds) >= 25
    used = set()
    p = build_parser()
    for c in cmds:
        args = shlex.split(c)[1:]
        p.parse_args(args)  # raises UsageError if an example is wrong
        used |= {a.split("=")[0] for a in args if a.startswith("-")}
    sub = p._subparsers._group_actions[0].choices
    flags = {s for name in ("train", "reproduce") for a in sub[name]._actions for s in a.option_strings
             if s.startswith("--") and s != "--help"}
    missing = sorted(flags - used)
    assert not missing, missing
