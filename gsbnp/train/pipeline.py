"""The GSB recipe end to end (paper Section IV-D, V-A): teacher -> stage 1 -> stage 2, and the
miniature Table I/IV comparison.

    teacher  full-precision DeiT trained on the data (no distillation)
    stage 1  binary weights of every block linear layer, activations full precision (TSTS stage 1)
    stage 2  starts from stage-1 weights; weights and activations binary with the configured method
             (GSB by default), a fresh optimizer and schedule, distillation from the teacher (Eq. 36)

``run_pipeline`` returns (and writes to ``OUT/results.json``) the test accuracy of each stage with the
configuration, the per-stage recipe actually used and the training times. ``run_reproduce`` trains,
per seed, full precision (no KD), baseline binary, GSB without KD, GSB with KD and GSB-att only,
sharing the full-precision model (the teacher) and stage 1 between the binary rows, and returns a
Markdown table of mean +- sample std, the per-seed values and each binary row's paired difference to
the baseline with its standard error.

An output folder is a contract (see ``open_run_folder``): a manifest ``gsbnp-run.json`` written when
a run starts records what runs there; an unfinished run is continued only with ``resume=True`` and
only with the same seed(s), data, model and recipe; a finished run is never retrained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass

import numpy as np

from .._io import atomic_write_bytes, remove_orphans
from .._validate import check_choice, check_float, check_int
from ..data.dataset import Dataset, channel_stats, subset_train
from ..errors import RunFolderError, UsageError
from ..models import DeiT, DeiTConfig
from .augment import Augment
from .trainer import TrainConfig, Trainer, evaluate

AUGMENT_KINDS = ("none", "crop", "deit")


def default_crop_padding(data: Dataset) -> int:
    """Zero padding of the random crop: 1 pixel up to 16 px images, else 1/8 of the side (4 at 32 px)."""
    return 1 if data.image_size <= 16 else max(1, data.image_size // 8)


def default_hflip(data: Dataset) -> bool:
    """Whether a mirrored image is still an image of its class: the data's ``meta["hflip"]`` when it
    says so (the bundled digits say ``false``), else ``True`` for images larger than 16 px."""
    flip = data.meta.get("hflip")
    return flip if isinstance(flip, bool) else data.image_size > 16


def default_augment_kind(data: Dataset, binary: bool = False) -> str:
    """``meta["augment"]`` when the data recommends one; else small images (<= 16 px): "crop" for the
    teacher and "none" for the binary stages; data that says it must not be flipped (characters):
    "crop"; photographs: "deit" (crop, flip, RandAugment, random erasing)."""
    kind = data.meta.get("augment")
    if kind in AUGMENT_KINDS:
        return kind
    if data.image_size <= 16:
        return "none" if binary else "crop"
    return "crop" if data.meta.get("hflip") is False else "deit"


def make_augment(kind: str, data: Dataset, *, hflip: bool | None = None,
                 crop_padding: int | None = None) -> Augment:
    """The ``Augment`` of one of ``AUGMENT_KINDS``; ``hflip`` / ``crop_padding`` default from the data.

    none: identity. crop: random crop (and flip if allowed). deit: crop, flip if allowed, RandAugment
    (2 ops, magnitude 9), random erasing (p = 0.25).
    """
    check_choice(kind, AUGMENT_KINDS, "augment")
    flip = default_hflip(data) if hflip is None else hflip
    pad = default_crop_padding(data) if crop_padding is None else check_int(crop_padding, "crop_padding", lo=0)
    if kind == "none":
        return Augment(crop_padding=0, hflip=False, randaug_num_ops=0, reprob=0.0)
    if kind == "crop":
        return Augment(crop_padding=pad, hflip=flip, randaug_num_ops=0, reprob=0.0)
    return Augment(crop_padding=pad, hflip=flip)


def default_augment(data: Dataset, binary: bool = False) -> Augment:
    """Default augmentation for the data and the stage (see ``default_augment_kind``).

    Digits (8x8): random crop with 1 pixel of padding for the full-precision teacher (it overfits
    1,437 images without it) and no augmentation for the binary stages, which underfit (binarization
    is itself a strong regulariser, Section IV-D); never a flip (a mirrored digit is another symbol).
    """
    return make_augment(default_augment_kind(data, binary), data)


STAGES = ("teacher", "stage1", "stage2")


@dataclass
class PipelineConfig:
    """The recipe of the three stages (defaults: the bundled digits in minutes).

    Per-stage values left at ``None`` fall back to the shared one: ``lr_stage1`` / ``lr_stage2`` to
    ``lr_binary``, ``batch_size_<stage>`` to ``batch_size``. ``train_per_class`` / ``train_fraction``
    train on a seeded, stratified subset of the training split (``subset_seed``; the same subset for
    every seed of ``run_reproduce``); the test split is never touched.

    The teacher's 200 epochs with a 1-pixel random crop reach 0.964-0.975 on the digits test split
    (seed 0; the BLAS thread count changes the summation order and so the trajectory) and
    0.969 +- 0.004 over seeds 0-2; 100 epochs gave 0.939, 40 epochs without the crop 0.956.
    """

    epochs_teacher: int = 200
    epochs_stage1: int = 30
    epochs_stage2: int = 40
    lr_teacher: float = 1e-3
    lr_binary: float = 5e-4        # the paper's learning rate; both binary stages unless set below
    lr_stage1: float | None = None
    lr_stage2: float | None = None
    batch_size: int = 32
    batch_size_teacher: int | None = None
    batch_size_stage1: int | None = None
    batch_size_stage2: int | None = None
    weight_decay: float = 0.05
    warmup_epochs_teacher: float = 5.0
    warmup_epochs_stage1: float = 0.0
    warmup_epochs_stage2: float = 0.0
    distill: str = "hard"          # stage 2: "hard" | "soft" | "none"
    stage1_init: str = "teacher"   # stage 1 starts from the teacher's weights or from "scratch"
    seed: int = 0
    augment: Augment | None = None         # teacher; None: default_augment(data)
    augment_binary: Augment | None = None  # stages 1 and 2; None: default_augment(data, binary=True)
    train_per_class: int | None = None     # N training images per class (None: all)
    train_fraction: float | None = None    # or this fraction of each class
    subset_seed: int = 0

    def __post_init__(self):
        for n in ("epochs_teacher", "epochs_stage1", "epochs_stage2", "batch_size", "seed", "subset_seed"):
            check_int(getattr(self, n), n, lo=0 if n in ("seed", "subset_seed") else 1)
        for n in ("batch_size_teacher", "batch_size_stage1", "batch_size_stage2", "train_per_class"):
            if getattr(self, n) is not None:
                check_int(getattr(self, n), n, lo=1)
        for n in ("lr_teacher", "lr_binary", "lr_stage1", "lr_stage2"):
            if getattr(self, n) is not None:
                check_float(getattr(self, n), n, lo=0.0, lo_open=True)
        for n in ("weight_decay", "warmup_epochs_teacher", "warmup_epochs_stage1", "warmup_epochs_stage2"):
            check_float(getattr(self, n), n, lo=0.0)
        if self.train_fraction is not None:
            check_float(self.train_fraction, "train_fraction", lo=0.0, hi=1.0, lo_open=True)
        if self.train_per_class is not None and self.train_fraction is not None:
            raise UsageError("give at most one of train_per_class and train_fraction")
        check_choice(self.distill, ("hard", "soft", "none"), "distill")
        check_choice(self.stage1_init, ("teacher", "scratch"), "stage1_init")
        for n in ("augment", "augment_binary"):
            a = getattr(self, n)
            if isinstance(a, dict):
                setattr(self, n, Augment(**a))
            elif a is not None and not isinstance(a, Augment):
                raise TypeError(f"{n} must be an Augment or None, got {type(a).__name__}")

    def lr(self, which: str) -> float:
        if which == "teacher":
            return self.lr_teacher
        own = self.lr_stage1 if which == "stage1" else self.lr_stage2
        return self.lr_binary if own is None else own

    def batch(self, which: str) -> int:
        own = getattr(self, f"batch_size_{which}")
        return self.batch_size if own is None else own

    def epochs(self, which: str) -> int:
        return getattr(self, f"epochs_{which}")

    def augment_for(self, which: str, data: Dataset) -> Augment:
        if which == "teacher":
            return self.augment or default_augment(data)
        return self.augment_binary or default_augment(data, binary=True)

    def stage(self, which: str, aug: Augment, distill: str = "none") -> TrainConfig:
        """The ``TrainConfig`` of one stage (``which``: teacher, stage1 or stage2)."""
        check_choice(which, STAGES, "stage")
        return TrainConfig(epochs=self.epochs(which), batch_size=self.batch(which), lr=self.lr(which),
                           warmup_epochs=getattr(self, f"warmup_epochs_{which}"),
                           weight_decay=self.weight_decay, distill=distill, augment=aug)

    def recipe(self, data: Dataset) -> dict:
        """Every value each stage trains with (the resolved ``TrainConfig`` of each), JSON-ready."""
        out = {}
        for which in STAGES:
            distill = self.distill if which == "stage2" else "none"
            out[which] = _to_json(self.stage(which, self.augment_for(which, data), distill).to_dict())
        return out

    def train_data(self, data: Dataset) -> Dataset:
        """``data`` with the training split reduced to the configured subset (unchanged if none)."""
        if self.train_per_class is None and self.train_fraction is None:
            return data
        return subset_train(data, per_class=self.train_per_class, fraction=self.train_fraction,
                            seed=self.subset_seed)


def model_config_for(data: Dataset, preset: str | DeiTConfig, **overrides) -> DeiTConfig:
    """The preset with ``num_classes`` taken from the data; image size and channels must match."""
    cfg = preset if isinstance(preset, DeiTConfig) else DeiTConfig.preset(preset)
    cfg = dataclasses.replace(cfg, num_classes=data.num_classes, **overrides)
    if (data.image_size, data.channels) != (cfg.img_size, cfg.in_chans):
        raise UsageError(f"the data has {data.image_size}x{data.image_size} images with {data.channels} "
                         f"channel(s); the model expects {cfg.img_size}x{cfg.img_size} with {cfg.in_chans} "
                         f"(choose a matching --preset, set --img-size/--in-chans, or give no --preset to "
                         f"derive a config from the data)")
    return cfg


def derive_model_config(data: Dataset, **overrides) -> tuple[DeiTConfig, str]:
    """A sensible config for data that no preset takes; returns ``(config, how it was chosen)``.

    The first preset whose image size and channels match the data is used as is. Otherwise the widths
    come from ``digits`` (images up to 16 px) or ``tiny`` (larger), ``img_size`` / ``in_chans`` /
    ``num_classes`` from the data, and the patch size is the smallest divisor of the image side that
    leaves at most 8 patches per side (28 px: patch 4, 7x7 = 49 patches, 51 tokens).
    """
    from ..models.config import PRESETS
    for name, p in PRESETS.items():
        if (p["img_size"], p["in_chans"]) == (data.image_size, data.channels):
            return model_config_for(data, name, **overrides), f"preset {name} (matches the data)"
    side = data.image_size
    base = "digits" if side <= 16 else "tiny"
    patch = overrides.pop("patch_size", None)
    if patch is None:
        patch = next(p for p in range(1, side + 1) if side % p == 0 and side // p <= 8)
        if side // patch < 2:
            raise UsageError(f"cannot derive a patch size for {side}x{side} images (a prime side); "
                             f"pass --patch-size")
    over = dict(img_size=side, in_chans=data.channels, patch_size=patch, **overrides)
    return model_config_for(data, base, **over), (f"derived from the data: widths of preset {base}, "
                                                   f"patch {patch} ({(side // patch) ** 2} patches)")


def _summary(res: dict) -> dict:
    return {"test_acc": res["test_acc"], "top5": res["top5"], "best_acc": res["best_acc"],
            "epochs": res["epochs"], "time_s": round(res["time"], 2)}


def train_teacher(data, cfg: DeiTConfig, pc: PipelineConfig, out: str, *, resume=False, progress=True,
                  seed=None, name="teacher", log=None):
    seed = pc.seed if seed is None else seed
    model = DeiT(cfg, rng=np.random.default_rng(seed))
    res = Trainer(model, data, pc.stage("teacher", pc.augment_for("teacher", data)), out_dir=out, name=name,
                  seed=seed, progress=progress, log=log).fit(resume=resume)
    return model, res


def train_stage1(data, cfg, pc, out, *, init_from: DeiT | None, resume=False, progress=True, seed=None,
                 name="stage1", log=None):
    seed = pc.seed if seed is None else seed
    model = DeiT(cfg, rng=np.random.default_rng(seed + 1))
    if init_from is not None:
        model.load_state_dict(init_from.state_dict())
    model.set_precision("weights")
    res = Trainer(model, data, pc.stage("stage1", pc.augment_for("stage1", data)), out_dir=out, name=name,
                  seed=seed + 1, progress=progress, log=log).fit(resume=resume)
    return model, res


def train_stage2(data, cfg, pc, out, *, stage1: DeiT, teacher: DeiT | None, distill: str, resume=False,
                 progress=True, seed=None, name="stage2", log=None):
    seed = pc.seed if seed is None else seed
    model = DeiT(cfg, rng=np.random.default_rng(seed + 2)).set_precision("weights")
    model.load_state_dict(stage1.state_dict())
    model.set_precision("binary")
    if teacher is not None:
        teacher.eval()
    res = Trainer(model, data, pc.stage("stage2", pc.augment_for("stage2", data), distill), out_dir=out,
                  name=name, seed=seed + 2, teacher=teacher if distill != "none" else None, progress=progress,
                  log=log).fit(resume=resume)
    return model, res


def write_json(path: str, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _to_json(obj):
    return json.loads(json.dumps(obj, default=str))


def _jsonable(pc: PipelineConfig) -> dict:
    return _to_json(dataclasses.asdict(pc))


# -- the run folder --------------------------------------------------------------------------------
MANIFEST = "gsbnp-run.json"
_OUTPUT_SUFFIXES = ("_last.npz", "_best.npz", "_metrics.csv", "_metrics.jsonl")
_OUTPUT_NAMES = ("results.json", "reproduce.json", "reproduce.md", MANIFEST)


def data_fingerprint(data: Dataset) -> str:
    """SHA-256 over the four arrays (shapes, dtypes and bytes): the same data wherever the file lies."""
    h = hashlib.sha256()
    for a in (data.x_train, data.y_train, data.x_test, data.y_test):
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def run_identity(kind: str, data: Dataset, cfg: DeiTConfig, pc: PipelineConfig, seeds) -> dict:
    """What a run folder is bound to: a resume must agree on every entry."""
    return {"kind": kind, "seeds": [int(s) for s in seeds], "data": data_fingerprint(data),
            "model": cfg.to_dict(), "recipe": _jsonable(pc)}


def _outputs(out: str) -> list[str]:
    """gsbnp's own files in ``out`` and its ``seed*`` subfolders."""
    found = []
    for d in [out] + [os.path.join(out, e) for e in sorted(os.listdir(out))
                      if e.startswith("seed") and os.path.isdir(os.path.join(out, e))]:
        for e in sorted(os.listdir(d)):
            if e.endswith(_OUTPUT_SUFFIXES) or e in _OUTPUT_NAMES:
                found.append(os.path.join(d, e))
    return found


def _first_difference(a, b, where=""):
    """The dotted key of the first entry where ``a`` and ``b`` differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{where}.{k}" if where else k)
    return where, a, b


def _pid_running(pid) -> bool:
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_manifest(out: str) -> dict | None:
    """The folder's manifest, or None when there is none (a corrupt one is an error)."""
    path = os.path.join(out, MANIFEST)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise RunFolderError(f"{path} is not a gsbnp run manifest ({e}); move the folder away or use a new "
                             f"--out") from None
    if not isinstance(m, dict) or m.get("format") != "gsbnp-run":
        raise RunFolderError(f"{path} is not a gsbnp run manifest; use a new --out")
    return m


def open_run_folder(out: str, identity: dict, *, resume: bool = False, force: bool = False,
                    command: list[str] | None = None) -> dict | None:
    """Claim ``out`` for the run ``identity`` before anything is trained or written.

    - a new or empty folder (or one without gsbnp files): the run starts;
    - an unfinished run without ``resume``: refused (``--resume``, a new ``--out``, or ``--force``);
    - ``resume`` with another seed, data, model or recipe: refused, naming the first difference;
    - a finished run: with ``resume`` it is returned unchanged (nothing is written), without it refused;
    - ``force``: gsbnp's own files of the old run are deleted first (nothing else in the folder);
    - a folder another live gsbnp process is writing to: always refused.

    Orphaned temp files of gsbnp's writer are removed. Returns the manifest of a finished run when
    resuming one (the caller reports it and stops), else None after writing a "running" manifest.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunFolderError(f"--out {out} is a file, expected a folder")
    if not os.path.isdir(out):
        if resume:
            raise RunFolderError(f"--resume: {out} does not exist, so there is no run to resume (drop --resume "
                                 f"to start one)")
        os.makedirs(out)
    m = read_manifest(out)
    if m is not None and m.get("state") == "running" and m.get("host") == socket.gethostname() \
            and _pid_running(m.get("pid")):
        raise RunFolderError(f"{out}: another gsbnp process (pid {m['pid']}) is running in this folder; "
                             f"wait for it or use a new --out")
    old = _outputs(out)
    if force and not resume:
        for f in old:
            os.unlink(f)
        m, old = None, []
    remove_orphans(out)
    if old and not resume:
        finished = (m or {}).get("state") == "finished" or (m is None and os.path.exists(
            os.path.join(out, "results.json" if identity["kind"] == "train" else "reproduce.json")))
        what = "a finished run" if finished else "an unfinished run"
        raise RunFolderError(f"{out} already holds {what}; pass --resume to "
                             f"{'report it' if finished else 'continue it'}, choose a new --out, or pass "
                             f"--force to discard it")
    if resume:
        if m is None and not old:
            raise RunFolderError(f"--resume: {out} holds no run to resume (drop --resume to start one)")
        if m is not None:
            mine = m.get("identity", {})
            for part in ("kind", "seeds", "data", "model", "recipe"):
                if mine.get(part) == identity[part]:
                    continue
                key, was, now = _first_difference(mine.get(part), identity[part], part)
                if part == "data":
                    what, was, now = "data", f"sha256 {str(was)[:12]}...", f"sha256 {str(now)[:12]}..."
                elif part in ("kind", "seeds"):
                    what = {"kind": "command", "seeds": "seed(s)"}[part]
                else:
                    what = f"{part} field '{key.split('.', 1)[-1]}'"
                raise RunFolderError(f"--resume: {out} was started with another {what}: {was!r} there, "
                                     f"{now!r} now; resume with the same options or use a new --out")
            if m.get("state") == "finished":
                return m
    import gsbnp
    manifest = {"format": "gsbnp-run", "state": "running", "identity": identity,
                "command": list(sys.argv if command is None else command),
                "started": (m or {}).get("started", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
                "sessions": int((m or {}).get("sessions", 0)) + 1, "pid": os.getpid(),
                "host": socket.gethostname(),
                "versions": {"gsbnp": gsbnp.__version__, "numpy": np.__version__,
                             "python": platform.python_version()}}
    write_json(os.path.join(out, MANIFEST), manifest)
    return None


def _finish_run_folder(out: str) -> None:
    m = read_manifest(out)
    m.update(state="finished", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    write_json(os.path.join(out, MANIFEST), m)


def _data_record(data: Dataset, train: Dataset) -> dict:
    rec = {"path": str(data.path) if data.path else None, "sha256": data_fingerprint(data),
           "train": len(train.y_train), "test": len(data.y_test), "classes": data.num_classes,
           "image": [data.image_size, data.image_size, data.channels]}
    if "subset" in train.meta:
        rec["subset"] = train.meta["subset"]
    return rec


def _quiet(*_):
    pass


def run_pipeline(data: Dataset, cfg: DeiTConfig, pc: PipelineConfig, out: str, *, resume: bool = False,
                 progress: bool = True, log=print, epoch_log=None, force: bool = False,
                 command: list[str] | None = None) -> dict:
    """Teacher -> stage 1 -> stage 2 on ``data``; writes ``out/results.json`` and returns it.

    ``log`` gets one line per stage, ``epoch_log`` one per epoch (None: the trainer's default).
    ``resume`` / ``force`` follow the run-folder contract of ``open_run_folder``; resuming a finished
    run returns its ``results.json`` and writes nothing.
    """
    log = log or _quiet
    done = open_run_folder(out, run_identity("train", data, cfg, pc, [pc.seed]), resume=resume, force=force,
                           command=command)
    if done is not None:
        with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
            res = json.load(f)
        log(f"{out}: this run finished on {done.get('finished', '?')}; nothing to do (nothing was changed)")
        return res
    t0 = time.perf_counter()
    train = pc.train_data(data)
    teacher, r0 = train_teacher(train, cfg, pc, out, resume=resume, progress=progress, log=epoch_log)
    log(f"teacher  test accuracy {r0['test_acc']:.4f}")
    s1, r1 = train_stage1(train, cfg, pc, out, init_from=teacher if pc.stage1_init == "teacher" else None,
                          resume=resume, progress=progress, log=epoch_log)
    log(f"stage 1  test accuracy {r1['test_acc']:.4f}  (binary weights)")
    _, r2 = train_stage2(train, cfg, pc, out, stage1=s1, teacher=teacher, distill=pc.distill, resume=resume,
                          progress=progress, log=epoch_log)
    log(f"stage 2  test accuracy {r2['test_acc']:.4f}  (binary weights and activations, {cfg.method}"
        f"{', KD ' + pc.distill if pc.distill != 'none' else ''})")
    summaries = {"teacher": _summary(r0), "stage1": _summary(r1), "stage2": _summary(r2)}
    session = time.perf_counter() - t0  # this session; the stages' times add up earlier sessions too
    results = {**summaries,
               "config": {"model": cfg.to_dict(), "pipeline": _jsonable(pc), "recipe": pc.recipe(train)},
               "data": _data_record(data, train),
               "wall_time_s": round(max(session, sum(v["time_s"] for v in summaries.values())), 2)}
    write_json(os.path.join(out, "results.json"), results)
    _finish_run_folder(out)
    return results


REPRODUCE_ROWS = ("full precision (no KD)", "baseline binary", "GSB w/o KD", "GSB + KD", "GSB-att only")
BASELINE_ROW = REPRODUCE_ROWS[1]


def seed_statistics(acc: dict[str, list[float]], seeds) -> dict:
    """Mean, sample std (ddof 1; None for one seed) and per-seed values of every row, and for every
    binary row after the baseline its paired difference to the baseline (same seed: same teacher and
    stage 1) with the standard error ``std(d, ddof=1) / sqrt(n)``."""
    seeds = [int(s) for s in seeds]
    n = len(seeds)
    rows = {}
    for row, vals in acc.items():
        a = np.asarray(vals, dtype=np.float64)
        rows[row] = {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if n > 1 else None, "n": n,
                     "per_seed": dict(zip(map(str, seeds), map(float, a)))}
    paired = {}
    base = np.asarray(acc[BASELINE_ROW], dtype=np.float64)
    for row in list(acc)[list(acc).index(BASELINE_ROW) + 1:]:
        d = np.asarray(acc[row], dtype=np.float64) - base
        paired[row] = {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else None,
                       "per_seed": dict(zip(map(str, seeds), map(float, d)))}
    return {"rows": rows, "paired_vs_baseline": paired}


def _pct(v, signed=False) -> str:
    return "n/a" if v is None else (f"{v * 100:+.2f}" if signed else f"{v * 100:.2f}")


def format_reproduce_table(stats: dict, seeds) -> str:
    """The Markdown table: mean ± sample std, one column per seed, paired difference ± s.e."""
    seeds = [int(s) for s in seeds]
    n = len(seeds)
    head = (f"| model | W-A | KD | mean ± std ({n} seed{'s' if n > 1 else ''}) | "
            + " | ".join(f"seed {s}" for s in seeds) + " | − baseline (± s.e.) |")
    lines = [head, "|---|---|---|---|" + "---|" * n + "---|"]
    for row, r in stats["rows"].items():
        wa = "32-32" if row.startswith("full") else "1-1"
        kd = "✓" if "KD" in row and "w/o" not in row and "no KD" not in row else ""
        p = stats["paired_vs_baseline"].get(row)
        diff = "" if p is None else f"{_pct(p['mean'], True)} ± {_pct(p['se'])}"
        lines.append(f"| {row} | {wa} | {kd} | {_pct(r['mean'])} ± {_pct(r['std'])} | "
                     + " | ".join(_pct(r["per_seed"][str(s)]) for s in seeds) + f" | {diff} |")
    lines += ["", ("Test accuracy in %. ± after the mean: sample standard deviation over seeds (ddof 1). "
                   "− baseline: the mean over seeds of the row minus the baseline binary row of the same seed "
                   "(same teacher, same stage 1) ± its standard error.")]
    return "\n".join(lines)


def run_reproduce(data: Dataset, cfg: DeiTConfig, pc: PipelineConfig, out: str, *, seeds=(0, 1, 2),
                  resume: bool = False, progress: bool = True, log=print, epoch_log=None, force: bool = False,
                  command: list[str] | None = None) -> tuple[dict, str]:
    """Table I/IV in miniature. Returns ``(results, markdown_table)``; writes both under ``out``."""
    log = log or _quiet
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"seeds must be distinct and at least one, got {seeds}")
    for s in seeds:
        check_int(s, "seed", lo=0)
    done = open_run_folder(out, run_identity("reproduce", data, cfg, pc, seeds), resume=resume, force=force,
                           command=command)
    if done is not None:
        with open(os.path.join(out, "reproduce.json"), encoding="utf-8") as f:
            res = json.load(f)
        with open(os.path.join(out, "reproduce.md"), encoding="utf-8") as f:
            table = f.read().rstrip("\n")
        log(f"{out}: this run finished on {done.get('finished', '?')}; nothing to do (nothing was changed)")
        return res, table
    train = pc.train_data(data)
    acc = {r: [] for r in REPRODUCE_ROWS}
    agreement = []  # per seed: share of training images whose teacher argmax is the label
    mean, std = channel_stats(train.x_train)
    t0 = time.perf_counter()
    for seed in seeds:
        d = os.path.join(out, f"seed{seed}")
        fp, r_fp = train_teacher(train, cfg, pc, d, resume=resume, progress=progress, seed=seed, log=epoch_log)
        s1, _ = train_stage1(train, cfg, pc, d, init_from=fp if pc.stage1_init == "teacher" else None,
                             resume=resume, progress=progress, seed=seed, log=epoch_log)
        acc[REPRODUCE_ROWS[0]].append(r_fp["test_acc"])
        agreement.append(evaluate(fp, train.x_train, train.y_train, mean, std, topk=(1,))["top1"])
        variants = [
            (REPRODUCE_ROWS[1], {"method": "baseline"}, "none"),
            (REPRODUCE_ROWS[2], {"method": "gsb"}, "none"),
            (REPRODUCE_ROWS[3], {"method": "gsb"}, pc.distill if pc.distill != "none" else "hard"),
            (REPRODUCE_ROWS[4], {"method": "gsb", "gsb_v": False}, "none"),
        ]
        for row, over, distill in variants:
            vcfg = dataclasses.replace(cfg, **over)
            name = "stage2_" + row.split(" (")[0].replace(" ", "_").replace("/", "").replace("+", "plus")
            _, r = train_stage2(train, vcfg, pc, d, stage1=s1, teacher=fp, distill=distill, resume=resume,
                                progress=progress, seed=seed, name=name, log=epoch_log)
            acc[row].append(r["test_acc"])
            log(f"seed {seed}  {row:24s} {r['test_acc']:.4f}")
    stats = seed_statistics(acc, seeds)
    lines = [format_reproduce_table(stats, seeds)]
    kd = pc.distill if pc.distill != "none" else "hard"
    lines.append("")
    lines.append(f"KD: {kd} distillation from the full-precision model of the same seed, whose argmax equals "
                 f"the label on {np.mean(agreement) * 100:.2f}% of the training images (mean over seeds).")
    aug2 = pc.augment_for("stage2", train)
    if kd == "hard" and min(agreement) == 1.0 and aug2.is_identity:
        lines.append("With every hard target equal to its label and no augmentation in stage 2, GSB + KD "
                     "optimises exactly the loss of GSB w/o KD: the two rows coincide by construction.")
    if "subset" in train.meta:
        sub = train.meta["subset"]
        rule = f"{sub['per_class']} per class" if sub["per_class"] else f"fraction {sub['fraction']:g}"
        lines.append(f"Training images: {sub['train_images']} of {sub['of']} (a stratified subset, {rule}, "
                     f"subset seed {sub['seed']}, the same for every seed); test images: {len(data.y_test)}.")
    table = "\n".join(lines)
    results = {"rows": {r: acc[r] for r in REPRODUCE_ROWS}, "seeds": seeds, "statistics": stats["rows"],
               "paired_vs_baseline": stats["paired_vs_baseline"],
               "teacher_train_agreement": agreement,
               "config": {"model": cfg.to_dict(), "pipeline": _jsonable(pc), "recipe": pc.recipe(train)},
               "data": _data_record(data, train),
               "wall_time_s": round(time.perf_counter() - t0, 2)}
    write_json(os.path.join(out, "reproduce.json"), results)
    atomic_write_bytes(os.path.join(out, "reproduce.md"), (table + "\n").encode())
    _finish_run_folder(out)
    return results, table
