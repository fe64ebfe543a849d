"""Build the bundled trained models of ``gsbnp.pretrained`` (``gsbnp/pretrained/*.npz`` + ``index.json``).

The models are trained by the same code as ``gsbnp train`` / ``gsbnp reproduce``
(``gsbnp.train.pipeline.train_teacher / train_stage1 / train_stage2``) on the bundled digits with the
``digits`` preset and one fixed seed, and the test accuracy written to the index is measured on the
final weights (the last epoch, never the best-on-test checkpoint):

    digits-fp        full-precision teacher (stage 0), random 1-pixel crop
    digits-stage1    stage 1: binary weights of every block linear layer, full-precision activations
    digits-baseline  stage 2 from digits-stage1: the Section III baseline (Eqs. 1-8), no distillation
    digits-gsb       stage 2 from digits-stage1: GSB attention and value (Eqs. 9-35), no distillation
    digits-gsb-kd    as digits-gsb, plus distillation from digits-fp (Eq. 36, soft targets)
    digits-gsb-att   as digits-gsb with GSB attention only (baseline V; a Table IV ablation row)

The recipe is ``RECIPE`` below (every value is also written into each model's metadata). Rebuild with

    OPENBLAS_NUM_THREADS=1 nice -n 10 python data_scripts/build_pretrained.py

(about 15 minutes of one CPU core). ``--table`` prints the README's Markdown table from the index
without training. The BLAS thread count changes the summation order and so the trained weights; the
index records the one used.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gsbnp
from gsbnp.data.dataset import bundled_digits_path, channel_stats, load_digits
from gsbnp.models.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from gsbnp.nn.module import atomic_write_bytes
from gsbnp.pretrained import INDEX_FILE, INDEX_FORMAT, markdown_table
from gsbnp.train.pipeline import (
    PipelineConfig,
    default_augment,
    model_config_for,
    train_stage1,
    train_stage2,
    train_teacher,
)
from gsbnp.train.trainer import evaluate

OUT = Path(__file__).resolve().parents[1] / "gsbnp" / "pretrained"

# Every value of the recipe. Teacher: the pipeline's default (200 epochs, AdamW 1e-3, 5 warm-up epochs,
# random 1-pixel crop). Stage 1 starts from scratch, as in the paper (Section IV-D: the binary model is
# trained from scratch; the teacher is a separate model), so it does not inherit the teacher's training
# and the teacher stays the strongest model. Stage 2 (all four variants) starts from stage 1 with a fresh
# optimizer. Distillation uses soft targets: the teacher labels (almost) every training image correctly,
# so hard targets (its argmax) would be the labels again and digits-gsb-kd would repeat digits-gsb.
RECIPE = {
    "preset": "digits",
    "seed": 0,
    "pipeline": {"epochs_teacher": 200, "epochs_stage1": 60, "epochs_stage2": 40, "lr_teacher": 1e-3,
                 "lr_binary": 5e-4, "batch_size": 32, "weight_decay": 0.05, "warmup_epochs_teacher": 5.0,
                 "distill": "soft", "stage1_init": "scratch", "seed": 0},
}

# name -> (stage, DeiTConfig overrides, distillation, description)
MODELS = {
    "digits-fp": ("teacher", {}, "none",
                  "full-precision DeiT (stage 0), the teacher of digits-gsb-kd"),
    "digits-stage1": ("stage1", {}, "none",
                      "stage 1: binary weights of every block linear layer, full-precision activations"),
    "digits-baseline": ("stage2", {"method": "baseline"}, "none",
                        "stage 2 baseline (Section III, Eqs. 1-8): binary weights and activations, no KD"),
    "digits-gsb": ("stage2", {"method": "gsb"}, "none",
                   "stage 2 GSB (Eqs. 9-35, k_a = k_v = 2): binary weights and activations, no KD"),
    "digits-gsb-kd": ("stage2", {"method": "gsb"}, "soft",
                      "stage 2 GSB with distillation from digits-fp (Eq. 36, soft targets, lambda 0.5)"),
    "digits-gsb-att": ("stage2", {"method": "gsb", "gsb_v": False}, "none",
                       "stage 2 GSB attention only, baseline value matrix (Table IV ablation), no KD"),
}

HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "test_top5")


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_model(path: Path, model, meta: dict) -> None:
    """The checkpoint layout of ``gsbnp.models.checkpoint`` (``model/<key>`` arrays + ``__meta__``), float32,
    compressed, written atomically; ``gsbnp.models.checkpoint.load_model`` reads it."""
    arrays = {f"model/{k}": np.asarray(v) for k, v in model.state_dict().items()}
    for k, v in arrays.items():
        if v.dtype.kind == "f" and v.dtype != np.float32:
            raise TypeError(f"{k} is {v.dtype}; the bundled models are float32")
    meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model_config": model.cfg.to_dict(),
            "precision": model.precision, "dtype": str(model.dtype), **meta}
    arrays["__meta__"] = np.array(json.dumps(meta, sort_keys=True))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    os.chmod(path, 0o644)  # package data: readable by everyone (the atomic write's temp file is 0600)


def build(out: Path, work: str, progress: bool, log=print) -> dict:
    data = load_digits()
    cfg = model_config_for(data, RECIPE["preset"])
    pc = PipelineConfig(**RECIPE["pipeline"])
    mean, std = channel_stats(data.x_train)
    data_info = {"name": "bundled digits", "file": "gsbnp/data/digits.npz",
                 "sha256": sha256_file(bundled_digits_path()), "train": len(data.y_train),
                 "test": len(data.y_test), "classes": int(data.num_classes)}
    env = {"gsbnp_version": gsbnp.__version__, "numpy": np.__version__, "python": platform.python_version(),
           "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}
    index = {"format": INDEX_FORMAT, "models": {}}
    trained = {}
    t_all = time.perf_counter()
    for name, (stage, over, distill, desc) in MODELS.items():
        mcfg = dataclasses.replace(cfg, **over)
        seed = RECIPE["seed"]
        if stage == "teacher":
            model, res = train_teacher(data, mcfg, pc, work, progress=progress, seed=seed, name=name)
            aug = pc.augment or default_augment(data)
            tcfg, init = pc.stage("teacher", aug), None
        elif stage == "stage1":
            init = "digits-fp" if pc.stage1_init == "teacher" else "scratch"
            model, res = train_stage1(data, mcfg, pc, work, init_from=trained.get("digits-fp")
                                      if init == "digits-fp" else None, progress=progress, seed=seed, name=name)
            aug = pc.augment_binary or default_augment(data, binary=True)
            tcfg = pc.stage("stage1", aug)
        else:
            model, res = train_stage2(data, mcfg, pc, work, stage1=trained["digits-stage1"],
                                      teacher=trained["digits-fp"], distill=distill, progress=progress,
                                      seed=seed, name=name)
            aug = pc.augment_binary or default_augment(data, binary=True)
            tcfg, init = pc.stage("stage2", aug, distill), "digits-stage1"
        model.eval()
        trained[name] = model
        ev = evaluate(model, data.x_test, data.y_test, mean, std)
        ev_train = evaluate(model, data.x_train, data.y_train, mean, std, topk=(1,))
        if ev["top1"] != res["test_acc"]:
            raise RuntimeError(f"{name}: re-evaluated accuracy {ev['top1']} != trainer's {res['test_acc']}")
        with open(os.path.join(work, f"{name}_metrics.jsonl")) as f:
            history = [{k: json.loads(line)[k] for k in HISTORY_KEYS} for line in f if line.strip()]
        entry = {
            "name": name, "description": desc, "file": f"{name}.npz", "precision": model.precision,
            "stage": stage, "init_from": init, "teacher": "digits-fp" if distill != "none" else None,
            "distill": distill, "seed": seed, "preset": RECIPE["preset"], "model_config": mcfg.to_dict(),
            "recipe": {"pipeline": json.loads(json.dumps(dataclasses.asdict(pc), default=str)),
                       "train_config": json.loads(json.dumps(tcfg.to_dict(), default=str)),
                       "script": "data_scripts/build_pretrained.py"},
            "data": data_info, "mean": mean.tolist(), "std": std.tolist(),
            "test_acc": ev["top1"], "test_correct": round(ev["top1"] * ev["n"]), "test_n": int(ev["n"]),
            "test_top5": ev["top5"], "test_loss": ev["loss"], "train_acc": ev_train["top1"],
            "epochs": int(res["epochs"]), "train_time_s": round(res["time"], 1), "history": history,
            "environment": env,
        }
        path = out / entry["file"]
        write_model(path, model, {"pretrained": name, "mean": entry["mean"], "std": entry["std"],
                                  "epoch": entry["epochs"], "gsbnp_version": gsbnp.__version__})
        entry["sha256"] = sha256_file(path)
        entry["size_bytes"] = path.stat().st_size
        index["models"][name] = entry
        log(f"{name:16s} test {entry['test_correct']}/{entry['test_n']} = {entry['test_acc']:.4f}  "
            f"train {entry['train_acc']:.4f}  {res['time']:.0f} s")
    index["order"] = list(MODELS)
    index["build_time_s"] = round(time.perf_counter() - t_all, 1)
    atomic_write_bytes(out / INDEX_FILE, (json.dumps(index, indent=1, sort_keys=True) + "\n").encode())
    os.chmod(out / INDEX_FILE, 0o644)
    return index


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(OUT), help="folder of the .npz files and index.json (default: the package)")
    ap.add_argument("--work", help="keep the training runs (checkpoints, metrics) here (default: a temp folder)")
    ap.add_argument("--table", action="store_true", help="only print the README table of the bundled models")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown_table())
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.work:
        build(out, args.work, not args.no_progress)
    else:
        with tempfile.TemporaryDirectory(prefix="gsbnp-pretrained-") as work:
            build(out, work, not args.no_progress)
    if out.resolve() == OUT.resolve():
        print(markdown_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
