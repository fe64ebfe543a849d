"""Learning-rate schedule: optional linear warm-up, then cosine decay to a floor, per optimizer step.

The paper trains with cosine annealing from 5e-4 and no warm-up (Section V-A); docs/conventions.md#training decays
to 1e-6. The schedule is a pure function of the step index, so resuming a run needs only the step
count (kept by the optimizer); ``CosineSchedule`` bundles the settings and can store them beside it.

With ``S = total_steps``, ``W = warmup_steps`` and step ``s`` (0-based, the index of the update about
to be made):

    s <  W:        lr = warmup_start + (base_lr - warmup_start) * s / W
    W <= s < S:    lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * (s - W) / (S - W))) / 2
    s >= S:        lr = min_lr

The cosine runs over the steps after the warm-up (timm's ``warmup_prefix=True``), so the curve is
continuous: step W gets exactly ``base_lr``. Step S (one past the last update) would reach
``min_lr``; the last update, S - 1, uses a value just above it, as timm's schedulers do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._validate import check_float, check_int

__all__ = ["cosine_lr", "CosineSchedule"]


def _validate(total_steps, base_lr, min_lr, warmup_steps, warmup_start):
    total_steps = check_int(total_steps, "total_steps", lo=1)
    base_lr = check_float(base_lr, "base_lr", lo=0.0, lo_open=True)
    min_lr = check_float(min_lr, "min_lr", lo=0.0, hi=base_lr)
    warmup_steps = check_int(warmup_steps, "warmup_steps", lo=0, hi=total_steps - 1)
    warmup_start = check_float(warmup_start, "warmup_start", lo=0.0)
    return total_steps, base_lr, min_lr, warmup_steps, warmup_start


def cosine_lr(step: int, total_steps: int, base_lr: float, min_lr: float = 1e-6,
              warmup_steps: int = 0, warmup_start: float = 0.0) -> float:
    """Learning rate of update ``step`` (0-based) under linear warm-up + cosine decay.

    Args:
        step: int >= 0; steps at or past ``total_steps`` get ``min_lr``.
        total_steps: number of updates in the run (>= 1).
        base_lr: peak rate, > 0 (the paper: 5e-4).
        min_lr: floor in [0, base_lr] reached at ``total_steps`` (docs/conventions.md#training: 1e-6).
        warmup_steps: in [0, total_steps); 0 = no warm-up (the binary stages).
        warmup_start: rate at step 0 of the warm-up, >= 0.
    Returns:
        the learning rate (Python float).
    """
    step = check_int(step, "step", lo=0)
    total_steps, base_lr, min_lr, warmup_steps, warmup_start = _validate(
        total_steps, base_lr, min_lr, warmup_steps, warmup_start)
    if step < warmup_steps:
        return warmup_start + (base_lr - warmup_start) * step / warmup_steps
    if step >= total_steps:
        return min_lr
    frac = (step - warmup_steps) / (total_steps - warmup_steps)  # in [0, 1)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * frac))


@dataclass
class CosineSchedule:
    """``cosine_lr`` with its settings bound: ``sched(step) -> lr``.

    ``state_dict()`` returns the settings as plain scalars (npz-storable); ``load_state_dict`` restores
    them, so a resumed run follows the curve it started on even if the command line changed.
    """

    total_steps: int            # updates in the run
    base_lr: float              # peak learning rate
    min_lr: float = 1e-6        # floor reached at total_steps
    warmup_steps: int = 0       # linear warm-up length (0: none)
    warmup_start: float = 0.0   # rate at step 0 of the warm-up

    def __post_init__(self):
        (self.total_steps, self.base_lr, self.min_lr, self.warmup_steps,
         self.warmup_start) = _validate(self.total_steps, self.base_lr, self.min_lr,
                                        self.warmup_steps, self.warmup_start)

    def __call__(self, step: int) -> float:
        return cosine_lr(step, self.total_steps, self.base_lr, self.min_lr, self.warmup_steps,
                         self.warmup_start)

    def state_dict(self) -> dict:
        return {"total_steps": self.total_steps, "base_lr": self.base_lr, "min_lr": self.min_lr,
                "warmup_steps": self.warmup_steps, "warmup_start": self.warmup_start}

    def load_state_dict(self, d) -> None:
        keys = set(d.files if hasattr(d, "files") else d.keys())
        want = set(self.state_dict())
        if keys != want:
            raise ValueError(f"schedule state keys must be {sorted(want)}, got {sorted(keys)}")
        vals = {k: d[k].item() if hasattr(d[k], "item") else d[k] for k in want}
        (self.total_steps, self.base_lr, self.min_lr, self.warmup_steps,
         self.warmup_start) = _validate(vals["total_steps"], vals["base_lr"], vals["min_lr"],
                                        vals["warmup_steps"], vals["warmup_start"])
