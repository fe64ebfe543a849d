"""Bundled trained models: DeiTs trained by gsbnp on the bundled digits, ready to load.

    from gsbnp import pretrained
    pretrained.names()                    # ['digits-fp', 'digits-stage1', 'digits-baseline', 'digits-gsb', ...]
    model = pretrained.load("digits-gsb") # a DeiT in eval mode, in its precision stage (here "binary")
    meta = pretrained.info("digits-gsb")  # description, recipe, seed, data, measured test accuracy, sha256

Each model is one ``.npz`` in this folder in the checkpoint layout of ``gsbnp.models.checkpoint``
(float32 parameters and buffers, JSON metadata, no pickles), so ``gsbnp eval`` and
``gsbnp.models.checkpoint.load_model`` read it like any checkpoint. ``index.json`` beside them holds,
per model, what ``info`` returns: ``name``, ``description``, ``file``, ``sha256`` and ``size_bytes`` of the
file, ``precision`` (stage), ``stage``, ``init_from``, ``teacher``, ``distill``, ``seed``, ``preset``,
``model_config``, ``recipe`` (the pipeline settings and the stage's training settings: every value
used), ``data`` (the bundled digits, its sha256, split sizes), ``mean`` / ``std`` (the normalisation
of ``gsbnp.train.augment.eval_transform``), ``test_acc`` with ``test_correct`` of ``test_n`` (top-1 on
the 360 test images, the final weights), ``test_top5``, ``test_loss``, ``train_acc``, ``epochs``,
``train_time_s``, ``history`` (one row per epoch: lr, train loss/accuracy, test loss/accuracy) and
``environment`` (gsbnp, NumPy and Python versions, BLAS threads of the build).

``load`` checks the file's sha256 against the index first, so a corrupted or truncated file is reported
by name instead of loading wrong weights. ``data_scripts/build_pretrained.py`` rebuilds everything.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

from ..errors import DataError, UsageError, UsageTypeError

ROOT = Path(__file__).resolve().parent  # where the .npz files and index.json live (tests point it elsewhere)
INDEX_FILE = "index.json"
INDEX_FORMAT = "gsbnp-pretrained-index-1"

__all__ = ["info", "load", "markdown_table", "names"]


def _index() -> dict:
    path = Path(ROOT) / INDEX_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no bundled-model index at {path}; rebuild the models with "
                                f"python data_scripts/build_pretrained.py") from None
    try:
        index = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is corrupted (not JSON: {e})") from None
    if (not isinstance(index, dict) or index.get("format") != INDEX_FORMAT
            or not isinstance(index.get("models"), dict)):
        raise DataError(f"{path} is not a gsbnp pretrained-model index (expected format {INDEX_FORMAT!r})")
    return index


def names() -> list[str]:
    """Names of the bundled models, in build order (teacher, stage 1, then the stage-2 variants)."""
    index = _index()
    return list(index.get("order") or index["models"])


def _entry(name) -> dict:
    if not isinstance(name, str):
        raise UsageTypeError(f"name must be a str (one of {', '.join(names())}), got {type(name).__name__}")
    models = _index()["models"]
    if name not in models:
        raise UsageError(f"unknown pretrained model {name!r}; the bundled models are: {', '.join(models)}")
    return models[name]


def info(name: str) -> dict:
    """Metadata of a bundled model (a copy: changing it changes nothing); see the module docstring."""
    return copy.deepcopy(_entry(name))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(name: str, *, dtype=None):
    """The bundled model ``name`` as a ``DeiT`` in eval mode and its precision stage.

    Args:
        name: one of ``names()``.
        dtype: parameter dtype (default float32, as stored; ``numpy.float64`` for gradient checks).
    Raises:
        ValueError: unknown name (the message lists the known ones); a file whose sha256 differs from
            the index (corrupted, truncated or replaced) or that is not a readable checkpoint.
        FileNotFoundError: the file is missing.
    """
    from ..models.checkpoint import load_model

    entry = _entry(name)
    path = Path(ROOT) / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"bundled model {name!r}: missing file {path}; reinstall gsbnp or rebuild "
                                f"with python data_scripts/build_pretrained.py")
    got = _sha256(path)
    if got != entry["sha256"]:
        raise DataError(f"bundled model {name!r}: {path} is corrupted or truncated (sha256 {got}, the index "
                         f"expects {entry['sha256']}, {os.path.getsize(path)} of {entry['size_bytes']} bytes); "
                         f"reinstall gsbnp or rebuild with python data_scripts/build_pretrained.py")
    try:
        model, _ = load_model(path, dtype=dtype)
    except ValueError as e:
        raise DataError(f"bundled model {name!r}: {e}") from None
    if model.precision != entry["precision"]:
        raise DataError(f"bundled model {name!r}: {path} holds a {model.precision!r} model, the index says "
                         f"{entry['precision']!r}")
    model.eval()
    return model


def _augment_text(aug: dict) -> str:
    parts = []
    if aug.get("crop_padding"):
        parts.append(f"random crop, {aug['crop_padding']} px padding")
    if aug.get("hflip"):
        parts.append("horizontal flip")
    if aug.get("randaug_num_ops"):
        parts.append(f"RandAugment {aug['randaug_num_ops']} ops, M {aug['randaug_magnitude']:g}")
    if aug.get("reprob"):
        parts.append(f"random erasing p {aug['reprob']:g}")
    for k, label in (("mixup_alpha", "mixup"), ("cutmix_alpha", "cutmix"), ("label_smoothing", "label smoothing")):
        if aug.get(k):
            parts.append(f"{label} {aug[k]:g}")
    return ", ".join(parts) or "none"


def markdown_table() -> str:
    """The README's table of the bundled models (measured accuracy and per-model recipe) and the shared
    settings, generated from the index."""
    header = ("| name | precision | starts from | epochs | peak lr (warm-up) | augmentation | distillation "
              "| test accuracy (top-1, 360 images) |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    shared = set()
    for n in names():
        e = _entry(n)
        tc = e["recipe"]["train_config"]
        init = {None: "random init", "scratch": "random init"}.get(e["init_from"], f"`{e['init_from']}`")
        kd = "none" if e["distill"] == "none" else f"{e['distill']} from `{e['teacher']}`, lambda {tc['lam']:g}" + (
            f", tau {tc['tau']:g}" if e["distill"] == "soft" else "")
        lr = f"{tc['lr']:g} ({tc['warmup_epochs']:g} epochs)" if tc["warmup_epochs"] else f"{tc['lr']:g}"
        lines.append(f"| `{n}` | {e['precision']} | {init} | {e['epochs']} | {lr} | {_augment_text(tc['augment'])} "
                     f"| {kd} | {e['test_acc'] * 100:.2f}% ({e['test_correct']}/{e['test_n']}) |")
        shared.add((e["preset"], e["seed"], tc["optimizer"], tc["weight_decay"], tc["batch_size"], tc["min_lr"],
                    e["environment"]["OPENBLAS_NUM_THREADS"]))
    lines.append("")
    train_s = sum(_entry(n)["train_time_s"] for n in names())
    for preset, seed, opt, wd, bs, min_lr, threads in sorted(shared, key=str):
        lines.append(f"All: preset `{preset}`, seed {seed}, {opt} with weight decay {wd:g}, batch {bs}, cosine "
                     f"schedule to {min_lr:g}, the bundled digits, the final weights (not the best epoch), "
                     f"OPENBLAS_NUM_THREADS={threads}; {train_s / 60:.1f} minutes of training (wall time) in all.")
    return "\n".join(lines)
