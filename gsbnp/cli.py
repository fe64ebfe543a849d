"""The ``gsbnp`` command.

    gsbnp train                      teacher -> stage 1 -> stage 2 on the bundled digits (offline)
    gsbnp train --data F.npz --train-per-class 20 --augment crop --lr-stage1 1e-3 ...
    gsbnp reproduce --seeds 3        Table I/IV in miniature: mean ± sample std, per-seed values,
                                     paired differences to the baseline (Markdown + JSON)
    gsbnp eval CKPT --data F.npz     top-1 / top-5 of a checkpoint (or --packed model.npz)
    gsbnp eval --pretrained NAME     top-1 / top-5 of a bundled trained model (gsbnp.pretrained)
    gsbnp export --packed CKPT -o model.npz
    gsbnp ops --preset deit_small    Table IX operation counts
    gsbnp summary --preset tiny      per-parameter table, 1-bit vs 32-bit
    gsbnp data prepare NAME ...      CIFAR-100, Oxford-Flowers102, Chaoyang -> .npz

Errors the user can fix - gsbnp's own exceptions (``gsbnp.errors``) and the file-system errors a
command anticipates (missing file, not a folder, read-only, permission, disk full) - are reported on
one line as ``gsbnp: error: ...`` with exit code 2. Every option is checked, under its own name,
before any folder is made. Any other exception is a bug in gsbnp and keeps its traceback.

A run folder is a contract (``gsbnp.train.pipeline.open_run_folder``): rerunning a command on a folder
with an unfinished run needs ``--resume`` (or ``--force`` to discard it), ``--resume`` refuses other
settings, and a finished run is never retrained.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import math
import os
import re
import sys
import time
import warnings

import numpy as np

from .errors import DataError, GsbnpError, RunFolderError, UsageError, WriteError

# -- option values ------------------------------------------------------------------------------


def _int_at_least(lo: int):
    def conv(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v
    conv.__name__ = f"int>={lo}"
    return conv


def _float_in(lo: float, hi: float = math.inf, *, lo_open: bool = False):
    def conv(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if v < lo or (lo_open and v == lo):
            raise argparse.ArgumentTypeError(f"must be {'>' if lo_open else '>='} {lo:g}, got {text}")
        if v > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi:g}, got {text}")
        return v
    conv.__name__ = "number"
    return conv


POS_INT, NONNEG_INT = _int_at_least(1), _int_at_least(0)
POS_FLOAT, NONNEG_FLOAT = _float_in(0.0, lo_open=True), _float_in(0.0)


def _seeds(text: str) -> list[int] | int:
    """``--seeds 3`` (a count, from --seed on) or ``--seeds 0,4,7`` (a list)."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a count (3) or a comma-separated list (0,4,7), got {text!r}") \
            from None
    if not vals:
        raise argparse.ArgumentTypeError("must not be empty")
    if len(vals) == 1 and "," not in text:
        if vals[0] < 1:
            raise argparse.ArgumentTypeError(f"count must be >= 1, got {vals[0]}")
        return vals[0]
    if min(vals) < 0 or len(set(vals)) != len(vals):
        raise argparse.ArgumentTypeError(f"list must hold distinct seeds >= 0, got {text!r}")
    return vals


# -- the parser -----------------------------------------------------------------------------------


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows ``(default: X)`` where an option has a real default and its help does not say it."""

    def _get_help_string(self, action):
        h = action.help or ""
        if "default" in h or action.default is None or action.default is False \
                or action.default == argparse.SUPPRESS or not action.option_strings:
            return h
        return f"{h} (default: {action.default})"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *a, **kw):
        kw.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*a, **kw)

    def error(self, message):  # one line, exit 2 (argparse would print the usage first)
        if message.startswith("argument "):
            opt, _, rest = message[len("argument "):].partition(": ")
            opt = opt.split("/")[0]
            message = f"{opt} {rest}" if rest.startswith(("must", "count", "list")) else f"{opt}: {rest}"
        raise UsageError(f"{message} (see {self.prog} --help)")


def _defaults():
    from .train.pipeline import PipelineConfig
    return PipelineConfig()


def _add_output_options(p):
    g = p.add_argument_group("output")
    g.add_argument("--progress", dest="progress", action="store_const", const=True, default=None,
                   help="progress bars on stderr even when it is not a terminal (default: only on a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                   help="no progress bars (the per-epoch lines stay)")
    g.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors and the final result")
    g.add_argument("--verbose", "-v", action="store_true", help="also print the details behind notes")


def _add_model_options(p):
    from .models.config import PRESETS
    from .quant import K_MAX
    g = p.add_argument_group("model and binarization (DeiTConfig fields; default: from --preset, --config or "
                             "the data)")
    g.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="start from a preset (default: the preset whose image size and channels match the "
                   "data - digits for 8x8x1, tiny for 32x32x3 - else a config derived from the data)")
    g.add_argument("--config", metavar="FILE", help="a JSON or TOML file: DeiTConfig fields at the top level or "
                   "under \"model\", PipelineConfig fields under \"recipe\"; flags override it")
    for flag, field, typ in (("--img-size", "img_size", POS_INT), ("--patch-size", "patch_size", POS_INT),
                             ("--in-chans", "in_chans", POS_INT), ("--embed-dim", "embed_dim", POS_INT),
                             ("--depth", "depth", POS_INT), ("--heads", "num_heads", POS_INT),
                             ("--mlp-ratio", "mlp_ratio", POS_FLOAT),
                             ("--drop-path", "drop_path_rate", _float_in(0.0, 0.99))):
        g.add_argument(flag, dest=field, type=typ, metavar="N" if typ is POS_INT else "X",
                       help=f"DeiTConfig.{field} (default: the preset's or the derived one)")
    g.add_argument("--method", default=None, help="gsb (Section IV) or baseline (Section III) (default: gsb)")
    g.add_argument("--k-a", dest="k_a", type=_int_at_least(0), metavar="K",
                   help=f"GSB attention components, 0..{K_MAX} (default: 2)")
    g.add_argument("--k-v", dest="k_v", type=_int_at_least(0), metavar="K",
                   help=f"GSB value components, 0..{K_MAX} (default: 2)")
    g.add_argument("--phi", default=None, help="offset Phi: zero, mean, HN or HNN (default: HNN)")
    g.add_argument("--no-gsb-att", action="store_true", help="baseline attention instead of GSB (ablation)")
    g.add_argument("--no-gsb-v", action="store_true", help="baseline V instead of GSB-V (ablation)")
    g.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any other DeiTConfig field, e.g. --set threshold_scope=batch (applied last)")


def _add_train_options(p):
    d = _defaults()
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="FILE", help="dataset .npz (default: the bundled 8x8 digits)")
    g.add_argument("--train-per-class", type=POS_INT, metavar="N",
                   help="train on N images of every class: a seeded, stratified subset (test split untouched)")
    g.add_argument("--train-fraction", type=_float_in(0.0, 1.0, lo_open=True), metavar="F",
                   help="train on this fraction of every class (0 < F <= 1)")
    g.add_argument("--subset-seed", type=NONNEG_INT, metavar="S",
                   help=f"seed of the subset draw, the same for every --seeds (default: {d.subset_seed})")
    g = p.add_argument_group("run folder")
    g.add_argument("--out", metavar="DIR", help="output folder (default: runs/<timestamp>)")
    g.add_argument("--resume", action="store_true",
                   help="continue the unfinished run in --out (same options); a finished run is reported")
    g.add_argument("--force", action="store_true", help="discard the run already in --out and start again")
    g.add_argument("--seed", type=NONNEG_INT, default=0, help="seed of initialisation, data order and dropout")
    g = p.add_argument_group("recipe (per stage; every value used is written to results.json)")
    for stage in ("teacher", "stage1", "stage2"):
        g.add_argument(f"--epochs-{stage}", dest=f"epochs_{stage}", type=POS_INT, metavar="N",
                       help=f"(default: {getattr(d, f'epochs_{stage}')})")
    g.add_argument("--lr-teacher", type=POS_FLOAT, metavar="LR", help=f"(default: {d.lr_teacher:g})")
    g.add_argument("--lr-binary", type=POS_FLOAT, metavar="LR",
                   help=f"both binary stages (default: {d.lr_binary:g}, the paper's)")
    g.add_argument("--lr-stage1", type=POS_FLOAT, metavar="LR", help="stage 1 only (default: --lr-binary)")
    g.add_argument("--lr-stage2", type=POS_FLOAT, metavar="LR", help="stage 2 only (default: --lr-binary)")
    g.add_argument("--batch-size", type=POS_INT, metavar="B", help=f"every stage (default: {d.batch_size})")
    for stage in ("teacher", "stage1", "stage2"):
        g.add_argument(f"--batch-size-{stage}", dest=f"batch_size_{stage}", type=POS_INT, metavar="B",
                       help="(default: --batch-size)")
    for stage in ("teacher", "stage1", "stage2"):
        g.add_argument(f"--warmup-{stage}", dest=f"warmup_epochs_{stage}", type=NONNEG_FLOAT, metavar="E",
                       help=f"linear warm-up epochs (default: {getattr(d, f'warmup_epochs_{stage}'):g})")
    g.add_argument("--weight-decay", type=NONNEG_FLOAT, metavar="WD", help=f"(default: {d.weight_decay:g})")
    g.add_argument("--distill", choices=["hard", "soft", "none"], help=f"stage 2 (default: {d.distill})")
    g.add_argument("--stage1-init", choices=["teacher", "scratch"], help=f"(default: {d.stage1_init})")
    g = p.add_argument_group("augmentation (defaults from the data's metadata; see the README)")
    from .train.pipeline import AUGMENT_KINDS
    g.add_argument("--augment", choices=AUGMENT_KINDS, help="every stage (default: by data, see README)")
    g.add_argument("--augment-teacher", choices=AUGMENT_KINDS, help="the teacher only")
    g.add_argument("--augment-binary", choices=AUGMENT_KINDS, help="stages 1 and 2 only")
    g.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=None,
                   help="random horizontal flips (default: the data's meta \"hflip\"; digits: off)")
    g.add_argument("--crop-padding", type=NONNEG_INT, metavar="P",
                   help="random-crop padding in pixels (default: 1 up to 16 px, else side/8)")
    _add_output_options(p)


def _add_global_options(p, top: bool):
    p.add_argument("--threads", type=POS_INT, metavar="N", default=None if top else argparse.SUPPRESS,
                   help="threads for BLAS and gsbnp's kernels (default: GSBNP_NUM_THREADS, else the CPUs)")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="gsbnp", description="GSB binarized vision transformers in pure NumPy.")
    _add_global_options(ap, top=True)
    sub = ap.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    p = sub.add_parser("train", help="teacher -> stage 1 -> stage 2 (the main job)")
    _add_train_options(p)
    _add_model_options(p)
    _add_global_options(p, top=False)
    p = sub.add_parser("reproduce", help="Table I/IV in miniature over several seeds")
    _add_train_options(p)
    _add_model_options(p)
    _add_global_options(p, top=False)
    p.add_argument("--seeds", type=_seeds, default=3,
                   help="a count (from --seed on) or a comma-separated list, e.g. 0,1,2")
    p = sub.add_parser("eval", help="evaluate a checkpoint or a packed model on a dataset's test split")
    p.add_argument("checkpoint", nargs="?", help="checkpoint .npz written by gsbnp train")
    p.add_argument("--packed", help="packed model .npz written by gsbnp export --packed")
    p.add_argument("--pretrained", metavar="NAME", help="a bundled trained model (gsbnp.pretrained.names())")
    p.add_argument("--data", help="dataset .npz (default: the bundled digits)")
    p.add_argument("--batch-size", type=POS_INT, default=500)
    _add_global_options(p, top=False)
    p = sub.add_parser("export", help="write a bit-packed inference model")
    p.add_argument("--packed", required=True, metavar="CKPT", help="checkpoint to pack")
    p.add_argument("-o", "--output", required=True, help="packed model .npz to write (not the checkpoint)")
    _add_global_options(p, top=False)
    p = sub.add_parser("ops", help="operation counts of Table IX", description=_ops_rule_text())
    from .models.config import PRESETS
    from .quant import K_MAX
    p.add_argument("--preset", choices=list(PRESETS), default="deit_small")
    p.add_argument("--method", choices=["fp", "baseline", "gsb"], default=None,
                   help="one method (default: all three)")
    p.add_argument("--k-a", type=_int_at_least(0), default=2, help=f"0..{K_MAX}")
    p.add_argument("--k-v", type=_int_at_least(0), default=2, help=f"0..{K_MAX}")
    p = sub.add_parser("summary", help="per-parameter table of a preset (1-bit vs 32-bit)")
    p.add_argument("--preset", choices=list(PRESETS), default="tiny")
    p.add_argument("--precision", choices=["fp", "weights", "binary"], default="binary")
    p.add_argument("--method", choices=["gsb", "baseline"], default="gsb")
    p = sub.add_parser("data", help="prepare data sets")
    p.add_argument("action", choices=["prepare"])
    p.add_argument("rest", nargs=argparse.REMAINDER, help="NAME and its options (see gsbnp data prepare NAME -h)")
    p = sub.add_parser("assignments", add_help=False,
                       help="course assignments: build a student copy, grade it, list the tasks")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="build --out DIR | grade DIR | list (see -h)")
    return ap


def _ops_rule_text() -> str:
    try:
        from .bitops.ops import COUNTING_RULE
    except ImportError:  # pragma: no cover
        return "Operation counts of Table IX."
    return "Operation counts of Table IX.\n\n" + COUNTING_RULE


# -- building the configs from the options --------------------------------------------------------

#: DeiTConfig / PipelineConfig field -> the option that sets it (error messages speak in options)
FIELD_FLAGS = {"img_size": "--img-size", "patch_size": "--patch-size", "in_chans": "--in-chans",
               "embed_dim": "--embed-dim", "depth": "--depth", "num_heads": "--heads", "mlp_ratio": "--mlp-ratio",
               "drop_path_rate": "--drop-path", "method": "--method", "k_a": "--k-a", "k_v": "--k-v",
               "phi": "--phi", "gsb_att": "--no-gsb-att", "gsb_v": "--no-gsb-v",
               "train_per_class": "--train-per-class", "train_fraction": "--train-fraction",
               "subset_seed": "--subset-seed", "seed": "--seed", "lr_teacher": "--lr-teacher",
               "lr_binary": "--lr-binary", "lr_stage1": "--lr-stage1", "lr_stage2": "--lr-stage2",
               "batch_size": "--batch-size", "weight_decay": "--weight-decay", "distill": "--distill",
               "stage1_init": "--stage1-init",
               **{f"epochs_{s}": f"--epochs-{s}" for s in ("teacher", "stage1", "stage2")},
               **{f"batch_size_{s}": f"--batch-size-{s}" for s in ("teacher", "stage1", "stage2")},
               **{f"warmup_epochs_{s}": f"--warmup-{s}" for s in ("teacher", "stage1", "stage2")}}
_RECIPE_FIELDS = tuple(k for k in FIELD_FLAGS if k not in ("img_size", "patch_size", "in_chans", "embed_dim",
                                                           "depth", "num_heads", "mlp_ratio", "drop_path_rate",
                                                           "method", "k_a", "k_v", "phi", "gsb_att", "gsb_v",
                                                           "seed"))


def _in_option_words(err: Exception, source: str = "") -> UsageError:
    """A config error as a ``UsageError`` whose message names the option, not the field."""
    msg = " ".join(str(err).split())
    if source:
        return UsageError(f"{source}: {msg}")
    return UsageError(re.sub(r"\b(" + "|".join(FIELD_FLAGS) + r")\b(?=[ :(,]|$)",
                             lambda m: FIELD_FLAGS[m.group(1)], msg))


def _parse_value(v: str):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    return v


def _read_config_file(path: str) -> dict:
    if not os.path.isfile(path):
        raise UsageError(f"--config {path}: no such file")
    try:
        if path.endswith(".toml"):
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise UsageError("--config: TOML needs Python >= 3.11 (tomllib); use a .json file") from None
            with open(path, "rb") as f:
                cfg = tomllib.load(f)
        else:
            with open(path, encoding="utf-8") as f:
                cfg = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:  # json.JSONDecodeError and tomllib.TOMLDecodeError
        raise UsageError(f"--config {path}: not valid {'TOML' if path.endswith('.toml') else 'JSON'} "
                         f"({' '.join(str(e).split())})") from None
    if not isinstance(cfg, dict):
        raise UsageError(f"--config {path}: expected an object of fields, got {type(cfg).__name__}")
    from .models.config import DeiTConfig
    model_fields = {f.name for f in dataclasses.fields(DeiTConfig)}
    model = dict(cfg.get("model", {}))
    recipe = dict(cfg.get("recipe", {}))
    for k, v in cfg.items():
        if k in ("model", "recipe"):
            continue
        if k not in model_fields:
            raise UsageError(f"--config {path}: unknown field {k!r} (DeiTConfig fields at the top level or under "
                             f"\"model\", PipelineConfig fields under \"recipe\")")
        model[k] = v
    return {"model": model, "recipe": recipe, "path": path}


def _model_overrides(args, file_model: dict) -> dict:
    over = dict(file_model)
    for field in ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio",
                  "drop_path_rate", "method", "k_a", "k_v", "phi"):
        if getattr(args, field) is not None:
            over[field] = getattr(args, field)
    if args.no_gsb_att:
        over["gsb_att"] = False
    if args.no_gsb_v:
        over["gsb_v"] = False
    for item in args.set:
        if "=" not in item:
            raise UsageError(f"--set expects FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        over[k.strip()] = _parse_value(v.strip())
    from .models.config import DeiTConfig
    fields = {f.name for f in dataclasses.fields(DeiTConfig)}
    bad = sorted(set(over) - fields)
    if bad:
        raise UsageError(f"unknown DeiTConfig field(s): {', '.join(bad)} (in --set or --config)")
    return over


def _model_config(args, data, file_model: dict):
    """The model config and a line saying how it was chosen (preset, config file, derived)."""
    from .train.pipeline import derive_model_config, model_config_for
    over = _model_overrides(args, file_model)
    try:
        if args.preset:
            return model_config_for(data, args.preset, **over), f"preset {args.preset}"
        return derive_model_config(data, **over)
    except (ValueError, TypeError) as e:  # DeiTConfig's own checks of the values given above
        raise _in_option_words(e) from None


def _augment_options(args, data) -> dict:
    from .train.pipeline import default_augment_kind, make_augment
    kinds = {"teacher": args.augment_teacher or args.augment, "binary": args.augment_binary or args.augment}
    if all(k is None for k in kinds.values()) and args.hflip is None and args.crop_padding is None:
        return {}
    out = {}
    for which, key in (("teacher", "augment"), ("binary", "augment_binary")):
        kind = kinds[which] or default_augment_kind(data, binary=which == "binary")
        out[key] = make_augment(kind, data, hflip=args.hflip, crop_padding=args.crop_padding)
    return out


def _pipeline_config(args, data, file_recipe: dict):
    from .train.pipeline import PipelineConfig
    over = dict(file_recipe)
    for k in _RECIPE_FIELDS:
        if getattr(args, k, None) is not None:
            over[k] = getattr(args, k)
    if args.train_per_class is not None and args.train_fraction is not None:
        raise UsageError("give at most one of --train-per-class and --train-fraction")
    if args.train_per_class is not None:
        over.pop("train_fraction", None)
    if args.train_fraction is not None:
        over.pop("train_per_class", None)
    over.update(_augment_options(args, data))
    try:
        return PipelineConfig(seed=args.seed, **over)
    except UsageError as e:
        raise _in_option_words(e) from None
    except TypeError as e:  # an unknown field in the config file's "recipe"
        raise UsageError(f"--config: {' '.join(str(e).split())}") from None


def _load_data(path):
    from .data.dataset import load_dataset, load_digits
    if path is not None and os.path.isdir(path):
        raise UsageError(f"--data {path} is a folder, expected a dataset .npz file")
    return load_digits() if path is None else load_dataset(path)


def _check_out(out: str, resume: bool) -> None:
    """``--out`` must be (or be creatable as) a writable folder; checked before anything is written."""
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise UsageError(f"--out {out} is a file, expected a folder")
        if not os.access(out, os.W_OK | os.X_OK):
            raise UsageError(f"--out {out}: the folder is not writable (permission denied)")
        return
    if resume:
        raise UsageError(f"--resume: {out} does not exist, so there is no run to resume (drop --resume)")
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError(f"--out {out} lies under {parent}, which is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: cannot create it, {parent} is not writable (permission denied)")


def _out_dir(args) -> str:
    return args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))


class _Output:
    """Where a training command's lines go: stdout, nothing with --quiet; bars on a terminal."""

    def __init__(self, args):
        self.quiet, self.verbose = args.quiet, args.verbose
        self.progress = (sys.stderr.isatty() if args.progress is None else args.progress) and not args.quiet

    def __call__(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)


def _describe(cfg, how: str, pc, data) -> list[str]:
    model = (f"model: {how}: {cfg.img_size}x{cfg.img_size}x{cfg.in_chans}, patch {cfg.patch_size} "
             f"({cfg.num_tokens} tokens), embed_dim {cfg.embed_dim}, depth {cfg.depth}, heads {cfg.num_heads}, "
             f"mlp_ratio {cfg.mlp_ratio:g}, {cfg.method} (k_a {cfg.k_a}, k_v {cfg.k_v}, phi {cfg.phi}"
             f"{', no GSB attention' if not cfg.gsb_att else ''}{', no GSB-V' if not cfg.gsb_v else ''})")
    lines = [model]
    for which in ("teacher", "stage1", "stage2"):
        a = pc.augment_for(which, data)
        aug = ("none" if a.is_identity else
               f"crop {a.crop_padding}" + (", flip" if a.hflip else ", no flip")
               + (f", RandAugment {a.randaug_num_ops}" if a.randaug_num_ops else "")
               + (f", erasing {a.reprob:g}" if a.reprob else ""))
        lines.append(f"{which:8s} {pc.epochs(which)} epochs, lr {pc.lr(which):g}, batch {pc.batch(which)}, "
                     f"warm-up {getattr(pc, f'warmup_epochs_{which}'):g}, augmentation: {aug}")
    return lines


def _prepare_run(args):
    """Everything that can fail on the user's input, before any folder is made."""
    file_cfg = _read_config_file(args.config) if args.config else {"model": {}, "recipe": {}}
    out = _out_dir(args)
    _check_out(out, args.resume)
    data = _load_data(args.data)
    cfg, how = _model_config(args, data, file_cfg["model"])
    if args.config:
        how += f" + {args.config}"
    pc = _pipeline_config(args, data, file_cfg["recipe"])
    train = pc.train_data(data)  # a subset that cannot be drawn fails here, not after the teacher
    return data, train, cfg, how, pc, out


def _announce(args, first: str, cfg, how, pc, data, out) -> "_Output":
    """Print what a run is about to do (its first line, the model and recipe) and remember its folder
    for the interruption message; returns the run's output channel."""
    say = _Output(args)
    say(first)
    for line in _describe(cfg, how, pc, data):
        say(line)
    _CONTEXT["out"] = out
    return say


def _command(args) -> list[str]:
    """The command line recorded in the run folder's manifest."""
    return ["gsbnp", *sys.argv[1:]] if args.argv is None else args.argv


def cmd_train(args) -> int:
    from .train.pipeline import run_pipeline
    data, train, cfg, how, pc, out = _prepare_run(args)
    say = _announce(args, f"gsbnp train: {len(train.y_train)} train / {len(data.y_test)} test images, "
                    f"{data.image_size}x{data.image_size}x{data.channels}, {data.num_classes} classes -> {out}",
                    cfg, how, pc, data, out)
    res = run_pipeline(data, cfg, pc, out, resume=args.resume, force=args.force, progress=say.progress,
                       log=say, epoch_log=say, command=_command(args))
    print(json.dumps({k: res[k]["test_acc"] for k in ("teacher", "stage1", "stage2")}))
    if not args.quiet:
        print(f"results: {os.path.join(out, 'results.json')}  ({res['wall_time_s']:.0f} s)")
    return 0


def cmd_reproduce(args) -> int:
    from .train.pipeline import run_reproduce
    data, train, cfg, how, pc, out = _prepare_run(args)
    seeds = list(range(args.seed, args.seed + args.seeds)) if isinstance(args.seeds, int) else args.seeds
    say = _announce(args, f"gsbnp reproduce: seeds {', '.join(map(str, seeds))}; {len(train.y_train)} train / "
                    f"{len(data.y_test)} test images -> {out}", cfg, how, pc, data, out)
    _, table = run_reproduce(data, cfg, pc, out, seeds=seeds, resume=args.resume, force=args.force,
                             progress=say.progress, log=say, epoch_log=say, command=_command(args))
    print(table)
    return 0


def _file_error(e: ValueError, path: str) -> Exception:
    """A loader's ``ValueError`` that names the file it read is about that file: a ``DataError``."""
    return DataError(" ".join(str(e).split())) if str(e).startswith(str(path)) else e


def cmd_eval(args) -> int:
    from .data.dataset import load_dataset, load_digits
    from .models import load_model
    from .train.trainer import evaluate
    if [args.checkpoint, args.packed, args.pretrained].count(None) != 2:
        raise UsageError("eval: give exactly one of CHECKPOINT, --packed FILE or --pretrained NAME")
    path = args.packed or args.checkpoint
    if path is not None and not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    data = load_digits() if args.data is None else load_dataset(args.data)
    if args.pretrained:
        from . import pretrained
        path = f"--pretrained {args.pretrained}"
        model = pretrained.load(args.pretrained)
        meta = pretrained.info(args.pretrained)
    elif args.packed:
        from .models.packed import load_packed
        try:
            model, meta = load_packed(args.packed)
        except ValueError as e:
            raise _file_error(e, args.packed) from None
    else:
        model, meta = load_model(args.checkpoint)
    if "mean" not in meta:
        raise DataError(f"{path} has no normalisation statistics (not written by gsbnp train)")
    mean, std = np.array(meta["mean"]), np.array(meta["std"])
    cfg = model.cfg
    if (data.image_size, data.channels, data.num_classes) != (cfg.img_size, cfg.in_chans, cfg.num_classes):
        raise UsageError(f"the data ({data.image_size}x{data.image_size}x{data.channels}, {data.num_classes} "
                         f"classes) does not match the model ({cfg.img_size}x{cfg.img_size}x{cfg.in_chans}, "
                         f"{cfg.num_classes} classes)")
    r = evaluate(model, data.x_test, data.y_test, mean, std, batch_size=args.batch_size)
    print(json.dumps({"top1": r["top1"], "top5": r["top5"], "loss": r["loss"], "n": r["n"]}))
    return 0


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def cmd_export(args) -> int:
    from .models.packed import export_packed
    if not os.path.isfile(args.packed):
        raise UsageError(f"--packed {args.packed}: no such file")
    if _same_file(args.packed, args.output):
        raise UsageError(f"-o {args.output} is the checkpoint being packed; choose another output file")
    if os.path.isdir(args.output):
        raise UsageError(f"-o {args.output} is a folder, expected a file name")
    try:
        info = export_packed(args.packed, args.output)
    except ValueError as e:
        raise _file_error(e, args.packed) from None
    print(json.dumps(info))
    return 0


def cmd_ops(args) -> int:
    from .bitops.ops import count_model_ops, format_ops_table
    from .models.config import DeiTConfig
    from .quant import K_MAX
    cfg = DeiTConfig.preset(args.preset)
    methods = [args.method] if args.method else ["fp", "baseline", "gsb"]
    for k in ("k_a", "k_v"):
        if not 0 <= getattr(args, k) <= K_MAX:
            raise UsageError(f"--{k.replace('_', '-')} must be in 0..{K_MAX}, got {getattr(args, k)}")
    reports = [count_model_ops(m, img_size=cfg.img_size, patch_size=cfg.patch_size, in_chans=cfg.in_chans,
                               embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
                               mlp_ratio=cfg.mlp_ratio, num_classes=cfg.num_classes, k_a=args.k_a, k_v=args.k_v)
               for m in methods]
    print(f"Per transformer block (Table IX; n = {cfg.num_tokens} tokens, d = {cfg.embed_dim}, "
          f"r = {cfg.mlp_ratio:g}):")
    print(format_ops_table([r["block"] for r in reports]))
    print(f"\nWhole model ({cfg.depth} blocks + full-precision patch embedding and heads):")
    print(format_ops_table(reports))
    return 0


def cmd_summary(args) -> int:
    from .models import DeiT, DeiTConfig
    m = DeiT(DeiTConfig.preset(args.preset, method=args.method), rng=np.random.default_rng(0))
    m.set_precision(args.precision)
    m.summary()
    return 0


def cmd_data(args) -> int:
    from .data.prepare import main as prepare_main
    return prepare_main(args.rest)


def cmd_assignments(args) -> int:
    from .assignments import main as assignments_main
    return assignments_main(args.rest)


COMMANDS = {"train": cmd_train, "reproduce": cmd_reproduce, "eval": cmd_eval, "export": cmd_export,
            "ops": cmd_ops, "summary": cmd_summary, "data": cmd_data, "assignments": cmd_assignments}


# -- threads, warnings, errors --------------------------------------------------------------------

def _apply_threads(n: int | None) -> None:
    """``--threads N``: gsbnp's thread policy when it has one (it also sets BLAS), else gsbnp's kernels."""
    if n is None:
        return
    from . import _threads
    setter = getattr(_threads, "set_num_threads", None)
    if setter is not None:
        setter(n)
    else:  # read by _threads.default_threads() at every kernel call
        os.environ["GSBNP_NUM_THREADS"] = str(n)


_CONTEXT: dict = {}  # what the running command is doing, for the words of a warning or an error

_SCALE_NOTE = ("note: a learnable scale of a binary layer came out zero or negative on the first batch and "
               "starts at a small positive floor instead; training adjusts it, so this is harmless unless "
               "the stage ends near chance accuracy (the detail: --verbose)")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings in words a user can act on, once each; the library's detail only with --verbose."""
    text = " ".join(str(message).split())
    seen = _CONTEXT.setdefault("warned", set())
    quiet, verbose = _CONTEXT.get("quiet", False), _CONTEXT.get("verbose", False)
    stream = file or sys.stderr
    if "set to the floor" in text:
        if "scale" not in seen and not quiet:
            print(f"gsbnp: {_SCALE_NOTE}", file=stream)
        seen.add("scale")
        if verbose:
            print(f"gsbnp: detail: {text}", file=stream)
        return
    if text not in seen and not quiet:
        print(f"gsbnp: warning: {text}", file=stream)
    seen.add(text)


_FS_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS,
              errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.ELOOP, errno.EFBIG, errno.EIO}


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and not isinstance(e, WriteError) and e.strerror:
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror}"
    return " ".join(str(e).split()) or type(e).__name__


def _error_line(e: BaseException) -> str:
    msg = _one_line(e)
    if isinstance(e, RunFolderError) and " field '" in msg:  # say which option sets that field
        field = msg.split(" field '", 1)[1].split("'", 1)[0]
        if field in FIELD_FLAGS:
            msg = msg.replace(f" field '{field}'", f" field '{field}' ({FIELD_FLAGS[field]})", 1)
    out = _CONTEXT.get("out")
    if out and isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS,
                                                       errno.EACCES):
        msg += (f"; the run in {out} is kept up to its last completed epoch: free space (or fix the folder) "
                f"and rerun the same command with --resume")
    return msg


def main(argv=None) -> int:
    """Entry point of the ``gsbnp`` console script; returns the exit code."""
    _CONTEXT.clear()
    with warnings.catch_warnings():  # restores the caller's warning display on return
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv=None) -> int:
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra:
            where = f"gsbnp {args.command}" if args.command else "gsbnp"
            raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see {where} --help)")
        args.argv = None if argv is None else ["gsbnp", *argv]
        _CONTEXT.update(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False))
        if args.command is None:
            build_parser().print_help()
            return 2
        _apply_threads(getattr(args, "threads", None))
        return COMMANDS[args.command](args)
    except SystemExit as e:  # --help, or a sub-tool's exit
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except KeyboardInterrupt:
        out = _CONTEXT.get("out")
        where = f"the run in {out} is kept up to its last completed epoch; " if out else ""
        print(f"gsbnp: interrupted; {where}rerun the same command with --resume to continue", file=sys.stderr)
        return 130
    except GsbnpError as e:
        print(f"gsbnp: error: {_error_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # the file-system failures a command anticipates; anything else is a bug
        if e.errno not in _FS_ERRNOS:
            raise
        print(f"gsbnp: error: {_error_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
