"""The training loop: shuffled mini-batches, augmentation, Eq. 36 loss, AdamW + cosine schedule,
evaluation every epoch, metrics files, atomic checkpoints and exact resume.

Legend: B batch, C channels, K classes.

One ``Trainer`` trains one stage of the GSB recipe (teacher, stage 1 or stage 2) into ``out_dir``:

    <name>_last.npz     model + optimizer + schedule position + RNG states, after every epoch
    <name>_best.npz     the model of the best test accuracy so far
    <name>_metrics.csv / <name>_metrics.jsonl   one row per epoch

Checkpoints are written to a temp file and renamed, so an interrupted write never replaces the previous
good file. ``fit(resume=True)`` restores model, optimizer, schedule position and both generators (data
order/augmentation and dropout), so an interrupted and resumed run ends with the same weights, bit for
bit, as an uninterrupted one.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from .._io import atomic_write_bytes
from .._validate import check_choice, check_float, check_int
from ..data.dataset import Dataset, channel_stats
from ..errors import TrainingError
from ..functional import log_softmax
from ..models import DeiT
from ..models.checkpoint import read_checkpoint, save_checkpoint
from .augment import Augment, build_train_transform, eval_transform
from .losses import classification_loss, distillation_loss
from .optim import SGD, Adam, AdamW, clip_grad_norm
from .schedule import CosineSchedule


@dataclass
class TrainConfig:
    """Settings of one training stage (paper Section V-A and docs/conventions.md#training)."""

    epochs: int = 100                 # passes over the training set
    batch_size: int = 64
    lr: float = 5e-4                  # peak learning rate (paper: 5e-4)
    min_lr: float = 1e-6              # cosine floor
    warmup_epochs: float = 0.0        # linear warm-up (0 for the binary stages)
    weight_decay: float = 0.05        # AdamW decoupled decay (not on biases, norms, tokens, scales...)
    optimizer: str = "adamw"          # "adamw" | "adam" | "sgd"
    clip_grad: float = 0.0            # global grad-norm clip (0: off)
    distill: str = "none"             # "none" | "hard" (teacher argmax, released recipe) | "soft"
    lam: float = 0.5                  # Eq. 36 lambda
    tau: float = 1.0                  # soft-distillation temperature
    eval_batch_size: int = 500
    augment: Augment = field(default_factory=Augment)

    def __post_init__(self):
        check_int(self.epochs, "epochs", lo=1)
        check_int(self.batch_size, "batch_size", lo=1)
        check_int(self.eval_batch_size, "eval_batch_size", lo=1)
        check_float(self.lr, "lr", lo=0.0, lo_open=True)
        check_float(self.min_lr, "min_lr", lo=0.0)
        check_float(self.warmup_epochs, "warmup_epochs", lo=0.0)
        check_float(self.weight_decay, "weight_decay", lo=0.0)
        check_choice(self.optimizer, ("adamw", "adam", "sgd"), "optimizer")
        check_float(self.clip_grad, "clip_grad", lo=0.0)
        check_choice(self.distill, ("none", "hard", "soft"), "distill")
        check_float(self.lam, "lam", lo=0.0, hi=1.0)
        check_float(self.tau, "tau", lo=0.0, lo_open=True)
        if isinstance(self.augment, dict):
            self.augment = Augment(**self.augment)
        if not isinstance(self.augment, Augment):
            raise TypeError(f"augment must be an Augment, got {type(self.augment).__name__}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def evaluate(model: DeiT, x_uint8: np.ndarray, y: np.ndarray, mean, std, *, batch_size: int = 500,
             topk=(1, 5)) -> dict:
    """Top-k accuracy and mean cross-entropy of ``model`` (eval mode, mean of both heads).

    Args:
        x_uint8: (M, H, W, C) uint8 images; y: (M,) labels; mean/std per channel in [0, 1] units.
    Returns:
        ``{"top1": float, "top5": float, "loss": float, "n": M}`` (top-k capped at K classes).
    """
    check_int(batch_size, "batch_size", lo=1)
    was_training = model.training
    model.eval()
    correct = {k: 0 for k in topk}
    loss_sum = 0.0
    try:
        for s in range(0, len(y), batch_size):
            xb = eval_transform(x_uint8[s:s + batch_size], mean, std).astype(model.dtype, copy=False)
            yb = y[s:s + batch_size]
            logits = model.forward(xb).astype(np.float64)  # (b, K)
            logp = log_softmax(logits)  # (b, K)
            loss_sum += float(-logp[np.arange(len(yb)), yb].sum())
            order = np.argsort(-logits, axis=1, kind="stable")
            for k in topk:
                correct[k] += int((order[:, :k] == yb[:, None]).any(axis=1).sum())
    finally:
        model.train(was_training)
    n = len(y)
    out = {f"top{k}": correct[k] / n for k in topk}
    out.update(loss=loss_sum / n, n=n)
    return out


class Trainer:
    """Train one stage. ``Trainer(model, data, cfg, out_dir=..., name=..., seed=..., teacher=None)``.

    Args:
        model: the DeiT to train, already in its precision stage (``set_precision``).
        data: a ``gsbnp.data.Dataset`` (uint8 NHWC images, int labels) matching the model config.
        cfg: ``TrainConfig``.
        out_dir: where checkpoints and metrics go; name: file prefix (``teacher``, ``stage1``...).
        seed: seeds the data generator (shuffling, augmentation). Dropout uses ``model.rng``.
        teacher: a frozen model giving the distillation targets (``cfg.distill`` != "none").
        progress: show a tqdm bar (loss, accuracy, lr, images/s) on stderr during each epoch.
        log: called with one line per finished epoch (loss, accuracies, lr, speed); ``None``: the line
            is written with ``tqdm.write`` when ``progress`` is on, else nowhere.
    """

    def __init__(self, model: DeiT, data: Dataset, cfg: TrainConfig, *, out_dir, name: str,
                 seed: int = 0, teacher: DeiT | None = None, progress: bool = True, log=None):
        if not isinstance(model, DeiT):
            raise TypeError(f"model must be a DeiT, got {type(model).__name__}")
        if not isinstance(cfg, TrainConfig):
            raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
        mc = model.cfg
        if data.image_size != mc.img_size or data.channels != mc.in_chans:
            raise ValueError(f"data has {data.image_size}x{data.image_size}x{data.channels} images, the model "
                             f"expects {mc.img_size}x{mc.img_size}x{mc.in_chans} (choose a matching preset)")
        if data.num_classes != mc.num_classes:
            raise ValueError(f"data has {data.num_classes} classes, the model has {mc.num_classes}")
        if cfg.distill != "none" and teacher is None:
            raise ValueError(f"distill={cfg.distill!r} needs a teacher model")
        self.model, self.data, self.cfg, self.name = model, data, cfg, name
        self.teacher = teacher if cfg.distill != "none" else None
        self.out_dir = os.fspath(out_dir)
        self.progress = progress
        self.log = log
        self.rng = np.random.default_rng(seed)
        self.mean, self.std = channel_stats(data.x_train)
        self.transform = build_train_transform(cfg.augment, self.mean, self.std, mc.num_classes)
        self.steps_per_epoch = math.ceil(len(data.y_train) / cfg.batch_size)
        total = cfg.epochs * self.steps_per_epoch
        warmup = min(round(cfg.warmup_epochs * self.steps_per_epoch), total - 1)
        self.schedule = CosineSchedule(total, cfg.lr, min(cfg.min_lr, cfg.lr), warmup)
        self.optimizer = self._build_optimizer()
        self.epoch, self.step, self.best_acc = 0, 0, -1.0
        self.elapsed = 0.0  # seconds of training and evaluation, summed over interrupted sessions
        self.history: list[dict] = []

    def _build_optimizer(self):
        params, nd, c = self.model.params, self.model.no_weight_decay(), self.cfg
        if c.optimizer == "adamw":
            return AdamW(params, c.lr, weight_decay=c.weight_decay, no_decay=nd)
        if c.optimizer == "adam":
            return Adam(params, c.lr, weight_decay=c.weight_decay, no_decay=nd)
        return SGD(params, c.lr, momentum=0.9, weight_decay=c.weight_decay, no_decay=nd)

    def path(self, kind: str) -> str:
        return os.path.join(self.out_dir, f"{self.name}_{kind}")

    # ------------------------------------------------------------------------------------------
    def _state_meta(self) -> dict:
        return {"name": self.name, "epoch": self.epoch, "step": self.step, "best_acc": self.best_acc,
                "train_config": self.cfg.to_dict(), "rng_data": _rng_state(self.rng),
                "rng_model": _rng_state(self.model.rng), "schedule": self.schedule.state_dict(),
                "history": self.history, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "elapsed_s": self.elapsed}

    def resume(self) -> bool:
        """Restore from ``<name>_last.npz`` if it exists; returns whether it did."""
        path = self.path("last.npz")
        if not os.path.exists(path):
            return False
        state, optim, meta = read_checkpoint(path)
        if meta.get("model_config") != self.model.cfg.to_dict() or meta.get("precision") != self.model.precision:
            raise TrainingError(f"{path} was written for another model config or precision stage")
        if meta.get("train_config") != json.loads(json.dumps(self.cfg.to_dict())):
            raise TrainingError(f"{path} was written with other training settings; "
                                f"resume with the same options or use a new --out")
        self.model.load_state_dict(state)
        self.optimizer.load_state_dict(optim)
        self.rng.bit_generator.state = meta["rng_data"]
        self.model.rng.bit_generator.state = meta["rng_model"]
        self.epoch, self.step, self.best_acc = meta["epoch"], meta["step"], meta["best_acc"]
        self.history = meta["history"]
        self.elapsed = float(meta.get("elapsed_s", 0.0))
        return True

    def _loss(self, x, targets):
        model = self.model
        cls, dist = model.forward(x)
        if not (np.isfinite(cls).all() and np.isfinite(dist).all()):
            return math.nan, cls, None, None  # reported by train_epoch as a non-finite loss
        if self.teacher is not None:
            t_logits = self.teacher.forward(x)  # teacher in eval mode: mean of its heads
            loss, dcls, ddist = distillation_loss(cls, dist, targets, t_logits, lam=self.cfg.lam,
                                                  kind=self.cfg.distill, tau=self.cfg.tau)
        else:
            loss, dcls, ddist = classification_loss(cls, dist, targets)
        return loss, cls, dcls, ddist

    def train_epoch(self) -> dict:
        """One pass over the shuffled training set. Returns loss, accuracy, lr, images/s."""
        model, cfg, data = self.model, self.cfg, self.data
        model.train()
        if self.teacher is not None:
            self.teacher.eval()
        order = self.rng.permutation(len(data.y_train))
        t0 = time.perf_counter()
        loss_sum = correct = seen = 0
        bar = tqdm(total=len(order), desc=f"{self.name} {self.epoch + 1}/{cfg.epochs}", unit="img",
                   leave=False, disable=not self.progress, dynamic_ncols=True)
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            x, targets = self.transform(data.x_train[idx], data.y_train[idx], self.rng)
            x = x.astype(model.dtype, copy=False)
            lr = self.schedule(self.step)
            if model.scales_pending():  # first batch of a binarized stage: the initial scales
                model.init_scales(x)
            loss, cls, dcls, ddist = self._loss(x, targets)
            if not math.isfinite(loss):
                raise TrainingError(f"{self.name}: loss became {loss} at epoch {self.epoch + 1}, step "
                                    f"{self.step} (lr {lr:.2e}); lower --lr or enable --clip-grad")
            model.backward(dcls, ddist)
            grads = model.grads
            if cfg.clip_grad > 0:
                clip_grad_norm(grads, cfg.clip_grad)
            self.optimizer.step(grads, lr=lr)
            self.step += 1
            b = len(idx)
            loss_sum += loss * b
            seen += b
            correct += int((cls.argmax(1) == data.y_train[idx]).sum())
            bar.update(b)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", lr=f"{lr:.1e}",
                            ips=f"{seen / (time.perf_counter() - t0):.0f}")
        bar.close()
        dt = time.perf_counter() - t0
        return {"train_loss": loss_sum / seen, "train_acc": correct / seen, "lr": lr,
                "images_per_s": seen / dt, "epoch_time": dt}

    def fit(self, resume: bool = False) -> dict:
        """Train ``cfg.epochs`` epochs (continuing from ``<name>_last.npz`` with ``resume``).

        Returns ``{"test_acc": last top-1, "top5", "best_acc", "epochs", "time"}`` (``time``: seconds
        summed over the sessions of an interrupted and resumed run); the per-epoch rows are in
        ``self.history``.
        """
        os.makedirs(self.out_dir, exist_ok=True)
        if resume:
            self.resume()
        t0 = time.perf_counter() - self.elapsed
        while self.epoch < self.cfg.epochs:
            row = self.train_epoch()
            ev = evaluate(self.model, self.data.x_test, self.data.y_test, self.mean, self.std,
                          batch_size=self.cfg.eval_batch_size)
            self.epoch += 1
            row = {"epoch": self.epoch, **row, "test_loss": ev["loss"], "test_acc": ev["top1"],
                   "test_top5": ev["top5"]}
            self.history.append(row)
            self._append_metrics(row)
            self.elapsed = time.perf_counter() - t0
            if ev["top1"] > self.best_acc:
                self.best_acc = ev["top1"]
                save_checkpoint(self.path("best.npz"), self.model, self._state_meta())
            save_checkpoint(self.path("last.npz"), self.model, self._state_meta(), self.optimizer)
            line = (f"{self.name} epoch {self.epoch}/{self.cfg.epochs}  loss {row['train_loss']:.4f}  "
                    f"train {row['train_acc']:.3f}  test {ev['top1']:.4f}  lr {row['lr']:.2e}  "
                    f"{row['images_per_s']:.0f} img/s")
            if self.log is not None:
                self.log(line)
            elif self.progress:
                tqdm.write(line)
        last = self.history[-1] if self.history else {}
        return {"test_acc": last.get("test_acc"), "top5": last.get("test_top5"), "best_acc": self.best_acc,
                "epochs": self.epoch, "time": self.elapsed}

    def _append_metrics(self, row: dict) -> None:
        """Append one row to ``<name>_metrics.csv`` and ``.jsonl`` (rewritten atomically)."""
        jsonl = self.path("metrics.jsonl")
        csvp = self.path("metrics.csv")
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.history)
        atomic_write_bytes(jsonl, lines.encode())
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(row))
        w.writeheader()
        for r in self.history:
            w.writerow(r)
        atomic_write_bytes(csvp, buf.getvalue().encode())
