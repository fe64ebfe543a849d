"""The ``gsbnp`` command.

    gsbnp train                      teacher -> stage 1 -> stage 2 on the bundled digits (offline)
    gsbnp train --data F.npz --preset tiny ...
    gsbnp reproduce                  Table I/IV in miniature (3 seeds, mean +- std, Markdown)
    gsbnp eval CKPT --data F.npz     top-1 / top-5 of a checkpoint (or --packed model.npz)
    gsbnp eval --pretrained NAME     top-1 / top-5 of a bundled trained model (gsbnp.pretrained)
    gsbnp export --packed CKPT -o model.npz
    gsbnp ops --preset deit_small    Table IX operation counts
    gsbnp summary --preset tiny      per-parameter table, 1-bit vs 32-bit
    gsbnp data prepare NAME ...      CIFAR-100, Oxford-Flowers102, Chaoyang -> .npz

Errors in the input (files, options, data) are reported on one line as ``gsbnp: error: ...`` with exit
code 2, never with a traceback, and nothing already on disk is overwritten by a failed command.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings

import numpy as np


class UsageError(Exception):
    """A problem with the command line or its inputs (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the usage first)
        raise UsageError(f"{self.prog}: {message}")


def _add_model_options(p):
    g = p.add_argument_group("model and binarization (DeiTConfig fields)")
    g.add_argument("--preset", default=None, help="digits | tiny | small32 | deit_small (default: the first "
                   "preset whose image size and channels match the data: digits for 8x8x1, tiny for 32x32x3)")
    g.add_argument("--method", choices=["gsb", "baseline"], default="gsb")
    g.add_argument("--k-a", type=int, default=2, help="GSB attention components, 0..4 (default 2)")
    g.add_argument("--k-v", type=int, default=2, help="GSB value components, 0..4 (default 2)")
    g.add_argument("--phi", choices=["zero", "mean", "HN", "HNN"], default="HNN")
    g.add_argument("--no-gsb-att", action="store_true", help="baseline attention instead of GSB (ablation)")
    g.add_argument("--no-gsb-v", action="store_true", help="baseline V instead of GSB-V (ablation)")
    g.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any other DeiTConfig field, e.g. --set depth=2 --set threshold_scope=batch")


def _add_train_options(p):
    g = p.add_argument_group("training")
    g.add_argument("--data", help="dataset .npz (default: the bundled 8x8 digits)")
    g.add_argument("--out", help="output folder (default runs/<timestamp>)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--epochs-teacher", type=int)
    g.add_argument("--epochs-stage1", type=int)
    g.add_argument("--epochs-stage2", type=int)
    g.add_argument("--lr-teacher", type=float)
    g.add_argument("--lr-binary", type=float)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--distill", choices=["hard", "soft", "none"])
    g.add_argument("--stage1-init", choices=["teacher", "scratch"])
    g.add_argument("--resume", action="store_true", help="continue the runs in --out from their last checkpoints")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="gsbnp", description="GSB binarized vision transformers in pure NumPy.")
    sub = ap.add_subparsers(dest="command", parser_class=_Parser)
    p = sub.add_parser("train", help="teacher -> stage 1 -> stage 2 (the main job)")
    _add_train_options(p)
    _add_model_options(p)
    p = sub.add_parser("reproduce", help="Table I/IV in miniature over several seeds")
    _add_train_options(p)
    _add_model_options(p)
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    p = sub.add_parser("eval", help="evaluate a checkpoint or a packed model on a dataset's test split")
    p.add_argument("checkpoint", nargs="?", help="checkpoint .npz written by gsbnp train")
    p.add_argument("--packed", help="packed model .npz written by gsbnp export --packed")
    p.add_argument("--pretrained", metavar="NAME", help="a bundled trained model (gsbnp.pretrained.names())")
    p.add_argument("--data", help="dataset .npz (default: the bundled digits)")
    p.add_argument("--batch-size", type=int, default=500)
    p = sub.add_parser("export", help="write a bit-packed inference model")
    p.add_argument("--packed", required=True, metavar="CKPT", help="checkpoint to pack")
    p.add_argument("-o", "--output", required=True, help="packed model .npz to write")
    p = sub.add_parser("ops", help="operation counts of Table IX",
                       description=_ops_rule_text())
    p.add_argument("--preset", default="deit_small")
    p.add_argument("--method", choices=["fp", "baseline", "gsb"], default=None,
                   help="one method (default: all three)")
    p.add_argument("--k-a", type=int, default=2)
    p.add_argument("--k-v", type=int, default=2)
    p = sub.add_parser("summary", help="per-parameter table of a preset (1-bit vs 32-bit)")
    p.add_argument("--preset", default="tiny")
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


def _parse_value(v: str):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    return v


def _preset_for(data) -> str:
    """Default preset for a dataset: the one whose image size and channels match it."""
    from .models.config import PRESETS
    for name, p in PRESETS.items():
        if (p["img_size"], p["in_chans"]) == (data.image_size, data.channels):
            return name
    raise UsageError(f"no preset takes {data.image_size}x{data.image_size} images with {data.channels} "
                     f"channel(s); pass --preset and --set img_size=... as needed")


def _model_config(args, data):
    from .train.pipeline import model_config_for
    preset = args.preset or _preset_for(data)
    over = dict(method=args.method, k_a=args.k_a, k_v=args.k_v, phi=args.phi,
                gsb_att=not args.no_gsb_att, gsb_v=not args.no_gsb_v)
    for item in args.set:
        if "=" not in item:
            raise UsageError(f"--set expects FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        over[k.strip()] = _parse_value(v.strip())
    from .models.config import DeiTConfig
    fields = {f.name for f in dataclasses.fields(DeiTConfig)}
    bad = sorted(set(over) - fields)
    if bad:
        raise UsageError(f"unknown DeiTConfig field(s): {', '.join(bad)}")
    return model_config_for(data, preset, **over)


def _pipeline_config(args):
    from .train.pipeline import PipelineConfig
    over = {k: getattr(args, k) for k in ("epochs_teacher", "epochs_stage1", "epochs_stage2", "lr_teacher",
                                          "lr_binary", "batch_size", "distill", "stage1_init")
            if getattr(args, k) is not None}
    return PipelineConfig(seed=args.seed, **over)


def _load_data(path):
    from .data.dataset import load_dataset, load_digits
    return load_digits() if path is None else load_dataset(path)


def _out_dir(args) -> str:
    if args.out:
        return args.out
    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))


def cmd_train(args) -> int:
    from .train.pipeline import run_pipeline
    data = _load_data(args.data)
    cfg = _model_config(args, data)
    pc = _pipeline_config(args)
    out = _out_dir(args)
    if not args.resume and os.path.exists(os.path.join(out, "results.json")):
        raise UsageError(f"{out} already holds a finished run; choose another --out or pass --resume")
    print(f"gsbnp train: {len(data.y_train)} train / {len(data.y_test)} test images, "
          f"{data.image_size}x{data.image_size}x{data.channels}, {data.num_classes} classes -> {out}")
    res = run_pipeline(data, cfg, pc, out, resume=args.resume, progress=not args.no_progress)
    print(json.dumps({k: res[k]["test_acc"] for k in ("teacher", "stage1", "stage2")}))
    print(f"results: {os.path.join(out, 'results.json')}  ({res['wall_time_s']:.0f} s)")
    return 0


def cmd_reproduce(args) -> int:
    from .train.pipeline import run_reproduce
    data = _load_data(args.data)
    cfg = _model_config(args, data)
    pc = _pipeline_config(args)
    out = _out_dir(args)
    if args.seeds < 1:
        raise UsageError("--seeds must be >= 1")
    _, table = run_reproduce(data, cfg, pc, out, seeds=tuple(range(args.seed, args.seed + args.seeds)),
                             resume=args.resume, progress=not args.no_progress)
    print(table)
    return 0


def cmd_eval(args) -> int:
    from .data.dataset import load_dataset, load_digits
    from .train.trainer import evaluate, load_model
    if [args.checkpoint, args.packed, args.pretrained].count(None) != 2:
        raise UsageError("eval: give exactly one of CHECKPOINT, --packed FILE or --pretrained NAME")
    data = load_digits() if args.data is None else load_dataset(args.data)
    if args.pretrained:
        from . import pretrained
        model = pretrained.load(args.pretrained)
        meta = pretrained.info(args.pretrained)
        mean, std = np.array(meta["mean"]), np.array(meta["std"])
    elif args.packed:
        from .bitops.engine import load_packed
        model, meta = load_packed(args.packed)
        mean, std = np.array(meta["mean"]), np.array(meta["std"])
    else:
        model, meta = load_model(args.checkpoint)
        if "mean" not in meta:
            raise UsageError(f"{args.checkpoint} has no normalisation statistics")
        mean, std = np.array(meta["mean"]), np.array(meta["std"])
    cfg = model.cfg
    if (data.image_size, data.channels, data.num_classes) != (cfg.img_size, cfg.in_chans, cfg.num_classes):
        raise UsageError(f"the data ({data.image_size}x{data.image_size}x{data.channels}, {data.num_classes} "
                         f"classes) does not match the model ({cfg.img_size}x{cfg.img_size}x{cfg.in_chans}, "
                         f"{cfg.num_classes} classes)")
    r = evaluate(model, data.x_test, data.y_test, mean, std, batch_size=args.batch_size)
    print(json.dumps({"top1": r["top1"], "top5": r["top5"], "loss": r["loss"], "n": r["n"]}))
    return 0


def cmd_export(args) -> int:
    from .bitops.engine import export_packed
    info = export_packed(args.packed, args.output)
    print(json.dumps(info))
    return 0


def cmd_ops(args) -> int:
    from .bitops.ops import count_model_ops, format_ops_table
    from .models.config import DeiTConfig
    cfg = DeiTConfig.preset(args.preset)
    methods = [args.method] if args.method else ["fp", "baseline", "gsb"]
    for k in ("k_a", "k_v"):
        if not 0 <= getattr(args, k) <= 4:
            raise UsageError(f"--{k.replace('_', '-')} must be in 0..4")
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


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (e.g. a learnable scale raised to its floor at initialisation) as one line each."""
    print(f"gsbnp: warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def main(argv=None) -> int:
    """Entry point of the ``gsbnp`` console script; returns the exit code."""
    with warnings.catch_warnings():  # restores the caller's warning display on return
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv=None) -> int:
    from .train.trainer import TrainingError
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 2
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("gsbnp: interrupted (the last completed epoch is in the checkpoint; rerun with --resume)",
              file=sys.stderr)
        return 130
    except (UsageError, ValueError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError,
            TrainingError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"gsbnp: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
