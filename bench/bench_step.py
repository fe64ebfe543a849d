"""Time one training step (forward, loss, backward) of gsbnp's DeiT, and PyTorch CPU on the same model.

    python bench/bench_step.py                       # tiny preset, batch 64, float32, stages fp, weights, binary
    python bench/bench_step.py --stages fp --preset digits --batch 128

Prints the median step time of each stage, images/s, and the ratios numpy/torch (full precision)
and binary/fp (numpy), all measured in this one run. PyTorch is optional (``pip install
torch==2.13.0``, the CPU wheel) and runs with 2 threads. OPENBLAS_* variables are left as they are.
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


def median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


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
    for stage in args.stages.split(","):
        model = DeiT(cfg, rng=np.random.default_rng(0)).set_precision(stage)
        t = median_time(lambda: numpy_step(model, x, y), args.repeats)
        res["numpy"][stage] = t
        print(f"numpy  {stage:8s} step {t * 1e3:8.1f} ms   {args.batch / t:8.1f} img/s", flush=True)
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
        t = median_time(tstep, args.repeats)
        res["torch_fp"] = t
        print(f"torch  fp       step {t * 1e3:8.1f} ms   {args.batch / t:8.1f} img/s "
              f"(torch {torch.__version__}, {args.threads} threads)")
        if "fp" in res["numpy"]:
            print(f"ratio numpy/torch (fp): {res['numpy']['fp'] / t:.2f}")
    if "fp" in res["numpy"] and "binary" in res["numpy"]:
        print(f"ratio binary/fp (numpy): {res['numpy']['binary'] / res['numpy']['fp']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
