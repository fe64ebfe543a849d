"""What one epoch of each stage costs, before a long run: teacher, stage 1 and stage 2 of a preset on a
synthetic dataset of the size the run will use (random uint8 images; the cost does not depend on them).

    python bench/bench_epoch_cost.py                      # tiny, 32x32x3, 100 classes, 5,000 train / 10,000 test
    python bench/bench_epoch_cost.py --train 10000 --steps 20 --full-epoch

Each stage trains ``--steps`` optimizer steps of the real ``Trainer`` (augmentation of the data's
default, AdamW, the Eq. 36 loss; stage 2: GSB with hard distillation from a teacher) and evaluates
``--eval-images`` test images; the epoch cost is then steps_per_epoch x seconds per step + test
images x seconds per evaluated image (the trainer evaluates the whole test split after every epoch).
``--full-epoch`` times a whole epoch instead of extrapolating. The per-run estimate is for
``gsbnp reproduce`` with the given epochs and seeds: per seed one teacher, one stage 1 and four
stage-2 rows. All numbers are measured in this run; the thread count is the process's (set
OPENBLAS_NUM_THREADS / GSBNP_NUM_THREADS as the real run will have them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from gsbnp.data.dataset import Dataset
from gsbnp.models import DeiT, DeiTConfig
from gsbnp.train.pipeline import PipelineConfig, default_augment
from gsbnp.train.trainer import Trainer, evaluate


def synthetic(cfg: DeiTConfig, n_train: int, n_test: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    shape = (cfg.img_size, cfg.img_size, cfg.in_chans)
    x_tr = rng.integers(0, 256, (n_train, *shape), dtype=np.uint8)
    x_te = rng.integers(0, 256, (n_test, *shape), dtype=np.uint8)
    k = cfg.num_classes
    return Dataset(x_tr, np.arange(n_train) % k, x_te, np.arange(n_test) % k,
                   np.array([f"c{i}" for i in range(k)]), {"source": "synthetic"})


def stage_cost(stage: str, cfg, data, pc, steps: int, eval_images: int, full: bool, out: str) -> dict:
    """Seconds per epoch of ``stage`` (train + evaluation of the whole test split)."""
    b = pc.batch(stage)
    n_train = len(data.y_train) if full else min(len(data.y_train), steps * b)
    part = dataclasses.replace(data, x_train=data.x_train[:n_train], y_train=data.y_train[:n_train])
    model = DeiT(cfg, rng=np.random.default_rng(0)).set_precision(
        {"teacher": "fp", "stage1": "weights", "stage2": "binary"}[stage])
    teacher = DeiT(cfg, rng=np.random.default_rng(1)).eval() if stage == "stage2" else None
    distill = pc.distill if stage == "stage2" else "none"
    tc = dataclasses.replace(pc.stage(stage, default_augment(data, binary=stage != "teacher"), distill), epochs=1)
    tr = Trainer(model, part, tc, out_dir=out, name=stage, teacher=teacher, progress=False)
    t0 = time.perf_counter()
    tr.train_epoch()
    train_s = time.perf_counter() - t0
    m_eval = len(data.y_test) if full else min(eval_images, len(data.y_test))
    t0 = time.perf_counter()
    evaluate(model, data.x_test[:m_eval], data.y_test[:m_eval], tr.mean, tr.std)
    eval_s = time.perf_counter() - t0
    per_step = train_s / math.ceil(n_train / b)
    per_image = eval_s / m_eval
    epoch_train = per_step * math.ceil(len(data.y_train) / b)
    epoch_eval = per_image * len(data.y_test)
    return {"stage": stage, "batch": b, "timed_steps": math.ceil(n_train / b), "timed_eval_images": m_eval,
            "s_per_step": per_step, "epoch_train_s": epoch_train, "epoch_eval_s": epoch_eval,
            "epoch_s": epoch_train + epoch_eval}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--train", type=int, default=5000, help="training images (e.g. 50 per class x 100)")
    ap.add_argument("--test", type=int, default=10000, help="test images (CIFAR-100: 10,000)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps timed per stage")
    ap.add_argument("--eval-images", type=int, default=1000)
    ap.add_argument("--full-epoch", action="store_true", help="time whole epochs (no extrapolation)")
    ap.add_argument("--epochs", type=int, nargs=3, default=(100, 50, 50), metavar=("TEACHER", "STAGE1", "STAGE2"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    cfg = DeiTConfig.preset(args.preset)
    data = synthetic(cfg, args.train, args.test)
    pc = PipelineConfig(batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as out:
        rows = [stage_cost(s, cfg, data, pc, args.steps, args.eval_images, args.full_epoch, out)
                for s in ("teacher", "stage1", "stage2")]
    threads = {v: os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "GSBNP_NUM_THREADS")}
    print(f"{args.preset}: {cfg.img_size}x{cfg.img_size}x{cfg.in_chans}, {cfg.num_tokens} tokens, "
          f"{args.train} train / {args.test} test images, batch {args.batch_size}, threads {threads}, "
          f"{os.cpu_count()} CPUs")
    print("| stage | s / step | train s / epoch | eval s / epoch | total s / epoch |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['s_per_step']:.2f} | {r['epoch_train_s']:.0f} | {r['epoch_eval_s']:.0f} | "
              f"{r['epoch_s']:.0f} |")
    e_t, e_1, e_2 = args.epochs
    per_seed = e_t * rows[0]["epoch_s"] + e_1 * rows[1]["epoch_s"] + 4 * e_2 * rows[2]["epoch_s"]
    total = args.seeds * per_seed
    extrapolated = f" (extrapolated from {args.steps} steps and {args.eval_images} test images per stage)"
    print(f"gsbnp reproduce with epochs {e_t}/{e_1}/{e_2} and {args.seeds} seeds (per seed: 1 teacher, 1 stage 1, "
          f"4 stage-2 rows): {per_seed / 3600:.1f} h per seed, {total / 3600:.1f} h in all"
          f"{'' if args.full_epoch else extrapolated}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": rows, "per_seed_s": per_seed, "total_s": total, "args": vars(args)}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
