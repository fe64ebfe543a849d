"""Training: optimizers and schedules, augmentation, losses (Eq. 36), and the trainer.

- ``optim``: ``SGD``, ``Adam``, ``AdamW`` (in-place updates of the model's flat ``params`` dict,
  npz-storable state) and ``clip_grad_norm``.
- ``schedule``: ``cosine_lr`` / ``CosineSchedule`` (linear warm-up, cosine decay to a floor).
- ``augment``: ``Augment`` config, ``build_train_transform``, ``eval_transform`` and the individual
  vectorised ops (crop, flip, RandAugment, random erasing, mixup/cutmix).
- ``losses``: ``distillation_loss`` (Eq. 36, hard or soft) and ``classification_loss`` (no teacher).
"""

from .augment import (RAND_AUGMENT_OPS, Augment, Normalize, TrainTransform, build_train_transform,
                      eval_transform, mixup_cutmix, one_hot, rand_augment, random_crop,
                      random_erasing, random_hflip, to_model_input)
from .losses import classification_loss, distillation_loss, soft_distillation
from .optim import SGD, Adam, AdamW, Optimizer, clip_grad_norm
from .schedule import CosineSchedule, cosine_lr

__all__ = [
    "SGD", "Adam", "AdamW", "Optimizer", "clip_grad_norm", "cosine_lr", "CosineSchedule",
    "Augment", "TrainTransform", "build_train_transform", "eval_transform", "Normalize",
    "to_model_input", "random_crop", "random_hflip", "rand_augment", "random_erasing", "one_hot",
    "mixup_cutmix", "RAND_AUGMENT_OPS", "distillation_loss", "classification_loss",
    "soft_distillation",
]
