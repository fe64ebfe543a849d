"""Time one training step (forward, loss, backward) of gsbnp's DeiT, and PyTorch CPU on the same models.

    python bench/bench_step.py                       # tiny preset, batch 64: stages fp, weights, binary
    python bench/bench_step.py --preset digits --batch 32 --stages fp,binary
    python bench/bench_step.py --setting native      # one BLAS kernel setting only (default: both)

Contenders, timed in turns (round robin) so that machine noise hits them alike: gsbnp's step in each
stage, PyTorch's full-precision step (``torch_deit.TorchDeiT``) and PyTorch's autograd GSB step
(``torch_gsb.TorchGSBDeiT``, the STEs as ``torch.autograd.Function``s, the same model as gsbnp's
"binary" stage of method gsb). Prints, per contender, the fastest and the median step time, and the
ratios gsbnp fp / torch fp, gsbnp binary / gsbnp fp and gsbnp GSB / torch autograd GSB (each as
fastest-of-N and median). Before timing it checks, in float64, that the torch GSB model computes
gsbnp's logits from the same parameters.

By default the script runs itself twice (``bench/_common.py``): the environment as set and the native
BLAS kernels (``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` removed for that child). PyTorch is optional
(``pip install torch==2.13.0``, the CPU wheel) and runs with ``--torch-threads`` threads (default 2).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import _common

from gsbnp.functional import cross_entropy
from gsbnp.models import DeiT, DeiTConfig


def numpy_step(model, x, y):
    cls, dist = model.forward(x)
    l1, d1 = cross_entropy(cls, y)
    l2, d2 = cross_entropy(dist, y)
    model.backward(d1 * 0.5, d2 * 0.5)
    return 0.5 * (l1 + l2)


def check_torch_gsb(cfg, torch) -> float:
    """Max |logits difference| of torch_gsb and gsbnp's GSB model, float64, same parameters."""
    from torch_gsb import TorchGSBDeiT, load_gsbnp
    rng = np.random.default_rng(1)
    m = DeiT(cfg, rng=np.random.default_rng(0), dtype=np.float64).set_precision("binary")
    x = rng.standard_normal((4, cfg.in_chans, cfg.img_size, cfg.img_size))
    m.forward(x)  # initialises the scales
    for k, v in m.params.items():  # non-zero offsets, so that every term takes part
        if k.endswith(("act_bias", "q_bias", "k_bias", "Omega", "Phi")):
            v[...] = rng.standard_normal(v.shape) * 0.01
    m.eval()
    ref = m.forward(x)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tm = TorchGSBDeiT(cfg)
        load_gsbnp(tm, m)
        with torch.no_grad():
            c, d = tm(torch.from_numpy(x))
        return float(np.abs(0.5 * (c + d).numpy() - ref).max())
    finally:
        torch.set_default_dtype(default)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--stages", default="fp,weights,binary", help="comma list of fp, weights, binary")
    ap.add_argument("--method", default="gsb", choices=["gsb", "baseline"])
    ap.add_argument("--torch-threads", "--threads", type=int, default=2, dest="threads", help="torch threads")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch references")
    ap.add_argument("--json", help="also write the results here (one file per setting: SETTING is replaced)")
    _common.add_setting_arg(ap)
    args = ap.parse_args(argv)
    if _common.run_settings(__file__, argv, args.setting):
        return
    warnings.simplefilter("ignore", RuntimeWarning)  # stage-2 scale floors on an untrained model

    cfg = DeiTConfig.preset(args.preset, method=args.method)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, cfg.in_chans, cfg.img_size, cfg.img_size)).astype(np.float32)
    y = rng.integers(0, cfg.num_classes, args.batch)
    res = {"preset": args.preset, "batch": args.batch, "method": args.method, "setting": args.setting}
    steps = {}  # every contender, timed round-robin so that machine noise hits all of them alike
    for stage in args.stages.split(","):
        model = DeiT(cfg, rng=np.random.default_rng(0)).set_precision(stage)
        steps["gsbnp " + stage] = functools.partial(numpy_step, model, x, y)
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("torch not installed: skipping the PyTorch references (pip install torch==2.13.0)")
    if torch is not None:
        from torch_deit import TorchDeiT
        from torch_gsb import TorchGSBDeiT
        torch.set_num_threads(args.threads)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        lossf = torch.nn.CrossEntropyLoss()

        def torch_step(tm):
            def step():
                tm.zero_grad(set_to_none=True)
                c, d = tm(xt)
                (0.5 * (lossf(c, yt) + lossf(d, yt))).backward()
            return step
        steps["torch fp"] = torch_step(TorchDeiT(cfg))
        if args.method == "gsb" and "binary" in args.stages.split(","):
            res["torch_gsb_logit_err"] = check_torch_gsb(cfg, torch)
            steps["torch gsb"] = torch_step(TorchGSBDeiT(cfg))
    _common.header()
    if torch is not None:
        print(f"torch {torch.__version__}, {args.threads} threads")
    if "torch_gsb_logit_err" in res:
        print(f"check: torch autograd GSB vs gsbnp GSB logits, float64: max |diff| = {res['torch_gsb_logit_err']:.2e}")
    times = _common.round_robin(steps, args.repeats)
    print(f"{args.preset} preset, batch {args.batch}, method {args.method}, {args.repeats} rounds")
    for name, t in times.items():
        print(f"{name:12s} step fastest {t['min'] * 1e3:8.2f} ms  median {t['median'] * 1e3:8.2f} ms  "
              f"{args.batch / t['median']:8.1f} img/s")
    res["times"] = {k: {"min": v["min"], "median": v["median"]} for k, v in times.items()}
    pairs = [("gsbnp fp / torch fp", "gsbnp fp", "torch fp", "<= 0.75 native, <= 1.1 env"),
             ("gsbnp binary / gsbnp fp", "gsbnp binary", "gsbnp fp", "<= 1.3 native"),
             ("gsbnp GSB / torch autograd GSB", "gsbnp binary", "torch gsb", "<= 0.4 native")]
    res["ratios"] = {}
    for label, a, b, target in pairs:
        if a in times and b in times:
            print(_common.ratio_text(label, times[a], times[b], target))
            res["ratios"][label] = (times[a]["min"] / times[b]["min"], times[a]["median"] / times[b]["median"])
    print(_common.load_text(), "(after)")
    if args.json:
        with open(args.json.replace("SETTING", args.setting), "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
