"""Time one training step (forward, loss, backward) of gsbnp's DeiT, and PyTorch CPU on the same model.

    python bench/bench_step.py                       # tiny preset, batch 64, float32, stages fp, weights, binary
    python bench/bench_step.py --stages fp --preset digits --batch 128

Prints the median step time of each stage, images/s, and the ratios numpy/torch (full precision)
and binary/fp (numpy), all measured in this one run; the contenders are timed in turns (round
robin) so that machine noise hits them alike. PyTorch is optional (``pip install torch==2.13.0``,
the CPU wheel) and runs with 2 threads. OPENBLAS_* variables are left as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from gsbnp.functional import cross_entropy  # noqa: E402
from gsbnp.models import DeiT, DeiTConfig  # noqa: E402


def numpy_step(model, x, y):
    cls, dist = model.forward(x)
    l1, d1 = cross_entropy(cls, y)
    l2, d2 = cross_entropy(dist, y)
    model.backward(d1 * 0.5, d2 * 0.5)
    return 0.5 * (l1 + l2)


def round_robin(steps: dict, repeats: int, warmup: int = 2, pause: float = 0.3) -> dict:
    """Median seconds of each callable, timed in turns (a, b, c, a, b, c, ...) after ``warmup`` turns.

    Each timed call starts after ``pause`` seconds: BLAS and OpenMP worker threads spin for a while
    after a call and would otherwise slow down whichever contender runs next.
    """
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    ts = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            time.sleep(pause)
            t = time.perf_counter()
            fn()
            ts[name].append(time.perf_counter() - t)
    return {name: float(np.median(v)) for name, v in ts.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--stages", default="fp,weights,binary", help="comma list of fp, weights, binary")
    ap.add_argument("--method", default="gsb", choices=["gsb", "baseline"])
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    cfg = DeiTConfig.preset(args.preset, method=args.method)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, cfg.in_chans, cfg.img_size, cfg.img_size)).astype(np.float32)
    y = rng.integers(0, cfg.num_classes, args.batch)
    res = {"preset": args.preset, "batch": args.batch, "method": args.method, "numpy": {}}
    steps = {}  # every contender, timed round-robin so that machine noise hits all of them alike
    for stage in args.stages.split(","):
        model = DeiT(cfg, rng=np.random.default_rng(0)).set_precision(stage)
        steps["numpy " + stage] = (lambda m: lambda: numpy_step(m, x, y))(model)
    try:
        import torch
    except ImportError:
        torch = None
        print("torch not installed: skipping the PyTorch reference (pip install torch==2.13.0)")
    if torch is not None:
        from torch_deit import TorchDeiT
        torch.set_num_threads(args.threads)
        tm = TorchDeiT(cfg)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        lossf = torch.nn.CrossEntropyLoss()

        def tstep():
            tm.zero_grad(set_to_none=True)
            c, d = tm(xt)
            loss = 0.5 * (lossf(c, yt) + lossf(d, yt))
            loss.backward()
        steps["torch fp"] = tstep
    times = round_robin(steps, args.repeats)
    for name, t in times.items():
        extra = f" (torch {torch.__version__}, {args.threads} threads)" if name.startswith("torch") else ""
        print(f"{name:14s} step {t * 1e3:8.1f} ms   {args.batch / t:8.1f} img/s{extra}")
        if name.startswith("numpy"):
            res["numpy"][name.split()[1]] = t
        else:
            res["torch_fp"] = t
    if "torch_fp" in res and "fp" in res["numpy"]:
        print(f"ratio numpy/torch (fp): {res['numpy']['fp'] / res['torch_fp']:.2f}")
    if "fp" in res["numpy"] and "binary" in res["numpy"]:
        print(f"ratio binary/fp (numpy): {res['numpy']['binary'] / res['numpy']['fp']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
