"""Checkpoints: one ``.npz`` (no pickles) holding a model's parameters and buffers, optionally an
optimizer state, and JSON metadata (format, version, model config, precision stage, dtype, plus what the
trainer adds: epoch, RNG states, normalisation statistics). Written atomically (``gsbnp._io``).

Reading raises ``gsbnp.errors.CheckpointError`` (a ``ValueError``) naming the file: not a checkpoint,
another version, a config that does not build, weights that do not fit, or an array holding NaN/inf.
"""

from __future__ import annotations

import numpy as np

from .._io import load_npz, save_npz
from ..errors import CheckpointError, DataError
from .config import DeiTConfig
from .deit import DeiT

CHECKPOINT_FORMAT = "gsbnp-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path, model: DeiT, meta: dict, optimizer=None) -> None:
    """Atomically write ``model`` (and optionally the optimizer state) with JSON ``meta``."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        for k, v in optimizer.state_dict().items():
            arrays[f"optim/{k}"] = np.asarray(v)
    meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "model_config": model.cfg.to_dict(), "precision": model.precision,
            "dtype": str(model.dtype), **meta}
    save_npz(path, arrays, meta)


def check_format(path, meta: dict | None, fmt: str, version: int, what: str, version_name: str) -> None:
    """Clear errors for a file that is not a gsbnp ``what`` or was written in another format version."""
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise CheckpointError(f"{path} is not a gsbnp {what}")
    if meta.get("version") != version:
        raise CheckpointError(f"{path}: {version_name} version {meta.get('version')} is not supported "
                         f"(this gsbnp reads version {version})")


def read_checkpoint(path) -> tuple[dict, dict, dict]:
    """Read a checkpoint: returns ``(model_state, optimizer_state, meta)``; clear errors if not one."""
    try:
        arrays, meta = load_npz(path)
    except DataError as e:
        raise CheckpointError(str(e)) from None
    check_format(path, meta, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "checkpoint", "checkpoint")
    _check_finite(path, arrays)
    model = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    optim = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
    return model, optim, meta


def load_model(path, *, dtype=None) -> tuple[DeiT, dict]:
    """Rebuild the model stored in a checkpoint (config, precision stage, weights, scales)."""
    state, _, meta = read_checkpoint(path)
    try:
        cfg = DeiTConfig.from_dict(meta["model_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid model config in checkpoint ({e})") from None
    model = DeiT(cfg, rng=np.random.default_rng(0), dtype=dtype or np.dtype(meta.get("dtype", "float32")))
    model.set_precision(meta.get("precision", "fp"))
    try:
        model.load_state_dict(state)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return model, meta


def _check_finite(path, arrays: dict) -> None:
    """Refuse a checkpoint with a NaN or inf in any float array, naming the file and the array."""
    bad = [(k, int(np.count_nonzero(~np.isfinite(v))), v.size) for k, v in arrays.items()
           if v.dtype.kind == "f" and not np.isfinite(v).all()]
    if bad:
        k, n, size = bad[0]
        more = f" (and {len(bad) - 1} more arrays)" if len(bad) > 1 else ""
        raise CheckpointError(f"{path}: array '{k}' holds {n} NaN/inf value(s) of {size}{more}; the model "
                              f"diverged before this checkpoint was written - use an earlier checkpoint "
                              f"or retrain with a lower learning rate")
