"""Fault injection: every file gsbnp writes is either the previous good file or the new good file.

Five write paths - checkpoints, metrics, results, packed exports, prepared data sets - all go through
``gsbnp._io.atomic_writer``, whose steps are: open the temp file, write it, fsync, chmod, rename (then
fsync the folder). Each path is hit at every step

- by an injected ``OSError`` (disk full, in-process: ``gsbnp._io`` sees an ``os`` whose call fails),
  with and without a previous file: the call raises ``WriteError`` naming the file, the destination
  is the previous version (or absent), and no temp file is left;
- by ``SIGKILL`` (a forked child kills itself at the step, and after the rename): the destination is
  the previous version (the new one once renamed), and the orphaned temp file is removed by
  ``remove_orphans``.

Then training itself: a disk-full failure at every step of an epoch's checkpoint and metrics writes,
and real ``kill -9`` of ``gsbnp train`` processes in the teacher and in stage 1, each followed by a
resume that ends with the same weights, bit for bit, as an uninterrupted run.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gsbnp._io
from gsbnp._io import TEMP_PREFIX, remove_orphans
from gsbnp.data.dataset import load_dataset, load_digits, save_dataset
from gsbnp.errors import WriteError
from gsbnp.models import DeiT, DeiTConfig
from gsbnp.models.checkpoint import read_checkpoint, save_checkpoint
from gsbnp.train.augment import Augment
from gsbnp.train.pipeline import write_json
from gsbnp.train.trainer import TrainConfig, Trainer

STEPS = ("open", "write", "fsync", "fchmod", "replace")
KILL_STEPS = (*STEPS, "after_replace")
REPO = Path(__file__).resolve().parents[1]


def _cfg():
    return DeiTConfig.preset("digits", embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0)


def _tiny_data(n_train=64, n_test=20):
    import dataclasses
    d = load_digits()
    return dataclasses.replace(d, x_train=d.x_train[:n_train], y_train=d.y_train[:n_train],
                               x_test=d.x_test[:n_test], y_test=d.y_test[:n_test])


# -- the five write paths: write version v, read the version back -------------------------------

def _checkpoint(dest, v):
    m = DeiT(_cfg(), rng=np.random.default_rng(v))
    save_checkpoint(dest, m, {"epoch": v})


def _checkpoint_version(dest):
    return read_checkpoint(dest)[2]["epoch"]


def _metrics(dest, v):
    tr = Trainer(DeiT(_cfg(), rng=np.random.default_rng(0)), _tiny_data(16, 8), TrainConfig(epochs=1),
                 out_dir=os.path.dirname(dest), name="m", progress=False)
    tr.history = [{"epoch": e + 1, "train_loss": 1.0 / (e + 1)} for e in range(v)]
    tr._append_metrics(tr.history[-1])  # writes m_metrics.jsonl, then m_metrics.csv


def _metrics_version(dest):
    jsonl = [json.loads(line) for line in Path(dest).read_text().splitlines()]
    assert [r["epoch"] for r in jsonl] == list(range(1, len(jsonl) + 1))
    csv = Path(dest).with_suffix(".csv")
    if csv.exists():  # the second file of the path: complete too (its own version)
        lines = csv.read_text().splitlines()
        assert lines[0] == "epoch,train_loss" and len(lines) - 1 in (1, 2)
    return len(jsonl)


def _results(dest, v):
    write_json(dest, {"version": v, "rows": list(range(100 * v))})


def _results_version(dest):
    r = json.loads(Path(dest).read_text())
    assert r["rows"] == list(range(100 * r["version"]))
    return r["version"]


def _export_inputs(folder):
    """The two checkpoints that exports pack (made before any fault is armed)."""
    for v in (1, 2):
        m = DeiT(_cfg(), rng=np.random.default_rng(v)).set_precision("binary")
        save_checkpoint(Path(folder) / f"ck{v}.npz", m, {"mean": [float(v)], "std": [1.0]})


def _export(dest, v):
    from gsbnp.models.packed import export_packed
    export_packed(Path(dest).with_name(f"ck{v}.npz"), dest)


def _export_version(dest):
    from gsbnp.models.packed import load_packed
    return int(load_packed(dest)[1]["mean"][0])


def _dataset(dest, v):
    d = _tiny_data(20 * v, 10)
    save_dataset(dest, d.x_train, d.y_train, d.x_test, d.y_test, d.class_names, {"version": v})


def _dataset_version(dest):
    d = load_dataset(dest)
    assert len(d.y_train) == 20 * d.meta["version"]
    return d.meta["version"]


PATHS = {"checkpoint": (_checkpoint, _checkpoint_version, "ck.npz"),
         "metrics": (_metrics, _metrics_version, "m_metrics.jsonl"),
         "results": (_results, _results_version, "results.json"),
         "export": (_export, _export_version, "packed.npz"),
         "dataset": (_dataset, _dataset_version, "data.npz")}


class _StepOs:
    """``os`` as ``gsbnp._io`` sees it, with ``action()`` run at one step of the atomic write."""

    def __init__(self, step, action):
        self.step, self.action, self.fsyncs = step, action, 0

    def __getattr__(self, attr):
        real = getattr(os, attr)
        step, action = self.step, self.action
        if attr == "open" and step == "open":
            def f(path, flags, *a):
                if flags & os.O_CREAT:
                    action()
                return real(path, flags, *a)
            return f
        if attr == "fdopen" and step == "write":
            def f(*a, **k):
                return _HalfWrite(real(*a, **k), action)
            return f
        if attr == "fsync" and step in ("fsync", "after_replace"):
            def f(fd):
                self.fsyncs += 1
                if step == "fsync" or self.fsyncs == 2:  # the file's fsync, or the folder's
                    action()
                return real(fd)
            return f
        if attr == step and step in ("fchmod", "replace"):
            def f(*a, **k):
                action()
                return real(*a, **k)
            return f
        return real


class _HalfWrite:
    """A file whose first ``write`` puts half of its bytes on disk, then runs ``action``."""

    def __init__(self, f, action):
        self._f, self._action, self._armed = f, action, True

    def write(self, b):
        if self._armed:
            self._armed = False
            b = bytes(b)
            self._f.write(b[:max(1, len(b) // 2)])
            self._f.flush()
            self._action()
        return self._f.write(b)

    def __getattr__(self, attr):
        return getattr(self._f, attr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


def _disk_full():
    raise OSError(errno.ENOSPC, "No space left on device")


def _temps(folder):
    return [p for p in Path(folder).iterdir() if p.name.startswith(TEMP_PREFIX)]


@pytest.mark.parametrize("previous", [True, False], ids=["over-a-file", "new-file"])
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("path", list(PATHS))
def test_oserror_at_every_step_keeps_the_previous_file(tmp_path, monkeypatch, path, step, previous):
    write, version, name = PATHS[path]
    dest = tmp_path / name
    if path == "export":
        _export_inputs(tmp_path)
    if previous:
        write(dest, 1)
        assert version(dest) == 1
    files_before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.setattr(gsbnp._io, "os", _StepOs(step, _disk_full))
    with pytest.raises(WriteError, match="No space left on device") as e:
        write(dest, 2)
    monkeypatch.undo()
    assert name in str(e.value) and e.value.errno == errno.ENOSPC
    assert not _temps(tmp_path)  # the temp file was removed
    if previous:
        assert version(dest) == 1
    else:
        assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == files_before  # nothing else appeared or went
    write(dest, 2)  # and once the disk has room, the same call succeeds
    assert version(dest) == 2


def _fork_and_die(step, fn):
    """Run ``fn`` in a forked child that SIGKILLs itself at ``step`` of the atomic write."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            gsbnp._io.os = _StepOs(step, lambda: os.kill(os.getpid(), signal.SIGKILL))
            fn()
        finally:
            os._exit(3)  # reached only if the kill did not happen
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:  # pragma: no cover - a hung child
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the child writing at step {step} hung")
        time.sleep(0.01)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("step", KILL_STEPS)
@pytest.mark.parametrize("path", list(PATHS))
def test_kill_at_every_step_leaves_the_old_or_the_new_file(tmp_path, path, step):
    write, version, name = PATHS[path]
    dest = tmp_path / name
    if path == "export":
        _export_inputs(tmp_path)
    write(dest, 1)
    status = _fork_and_die(step, lambda: write(dest, 2))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert version(dest) == (2 if step == "after_replace" else 1)
    orphans = _temps(tmp_path)
    assert len(orphans) == (0 if step in ("open", "after_replace") else 1)
    assert sorted(remove_orphans(tmp_path)) == sorted(str(p) for p in orphans)
    assert not _temps(tmp_path)


# -- training under faults: resume ends bit-identical ------------------------------------------------

AUG = Augment(crop_padding=1, hflip=False, randaug_num_ops=0, reprob=0.0)


def _trainer(out):
    m = DeiT(DeiTConfig.preset("digits", embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0, drop_rate=0.1,
                               drop_path_rate=0.1), rng=np.random.default_rng(0)).set_precision("binary")
    return m, Trainer(m, _tiny_data(), TrainConfig(epochs=3, batch_size=16, lr=1e-3, augment=AUG), out_dir=out,
                      name="run", seed=5, progress=False)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    m, tr = _trainer(tmp_path_factory.mktemp("straight"))
    tr.fit()
    return m.state_dict()


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("target", ["last.npz", "metrics.jsonl"])
def test_disk_full_in_an_epoch_then_resume_is_bit_identical(tmp_path, monkeypatch, straight, step, target):
    from gsbnp import _io
    real_writer = _io.atomic_writer
    hits = []

    def writer(path, *a, **k):  # arm the fault for the epoch-2 write of ``target`` only
        mine = str(path).endswith(target) and Path(path).exists()
        epoch1 = mine and (read_checkpoint(path)[2]["epoch"] == 1 if target == "last.npz" else
                           len(Path(path).read_text().splitlines()) == 1)
        if epoch1 and not hits:
            hits.append(path)
            monkeypatch.setattr(_io, "os", _StepOs(step, _disk_full))
        else:
            monkeypatch.setattr(_io, "os", os)
        return real_writer(path, *a, **k)
    monkeypatch.setattr(_io, "atomic_writer", writer)
    _, tr = _trainer(tmp_path)
    with pytest.raises(WriteError, match="No space left"):
        tr.fit()
    monkeypatch.undo()
    assert hits and read_checkpoint(tmp_path / "run_last.npz")[2]["epoch"] == 1
    assert not _temps(tmp_path)
    m, tr = _trainer(tmp_path)  # a new process after the disk was cleared
    tr.fit(resume=True)
    for k, v in straight.items():
        assert np.array_equal(v, m.state_dict()[k]), k
    assert len((tmp_path / "run_metrics.jsonl").read_text().splitlines()) == 3


def _cli(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "gsbnp", "train", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _model_arrays(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k.startswith("model/")}


@pytest.mark.slow
@pytest.mark.parametrize("kill_in", ["teacher", "stage1"])
def test_kill_9_of_gsbnp_train_then_resume_is_bit_identical(tmp_path, kill_in):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1", "GSBNP_NUM_THREADS": "1"}
    data = tmp_path / "d.npz"
    d = _tiny_data(128, 40)
    save_dataset(data, d.x_train, d.y_train, d.x_test, d.y_test, d.class_names, {"source": "t"})
    args = ["--data", str(data), "--embed-dim", "16", "--depth", "1", "--heads", "2", "--epochs-teacher", "6",
            "--epochs-stage1", "4", "--epochs-stage2", "2", "--batch-size", "16", "--no-progress", "-q"]
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    p = _cli([*args, "--out", str(straight)], env)
    q = _cli([*args, "--out", str(killed)], env)
    watch = killed / f"{kill_in}_metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (watch.exists() and len(watch.read_text().splitlines()) >= 2):
        assert q.poll() is None, q.communicate()
        assert time.monotonic() < deadline, "the run never reached the point to kill it"
        time.sleep(0.005)
    q.send_signal(signal.SIGKILL)  # mid-epoch or mid-write, wherever it is
    q.communicate()
    assert q.returncode == -signal.SIGKILL
    (killed / f"{TEMP_PREFIX}999999999-00000000.part").write_bytes(b"partial")  # as a kill mid-write leaves
    # the same command without --resume refuses, and changes nothing
    r = subprocess.run([sys.executable, "-m", "gsbnp", "train", *args, "--out", str(killed)], env=env, cwd=REPO,
                       capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "unfinished run" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "gsbnp", "train", *args, "--out", str(killed), "--resume"], env=env,
                       cwd=REPO, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert p.wait() == 0
    assert not _temps(killed)
    a, b = _model_arrays(killed / "stage2_last.npz"), _model_arrays(straight / "stage2_last.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    ra, rb = (json.loads((f / "results.json").read_text()) for f in (killed, straight))
    assert all(ra[s]["test_acc"] == rb[s]["test_acc"] for s in ("teacher", "stage1", "stage2"))
    assert json.loads((killed / "gsbnp-run.json").read_text())["sessions"] == 2
