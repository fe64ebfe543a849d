"""Packed inference of a whole model vs the float-simulated binarized model, and packed file sizes.

    python bench/bench_packed_model.py                     # tiny preset, batch 64, method gsb
    python bench/bench_packed_model.py --sizes-only        # deit_small file sizes (Phi H x N x N and H x N)

Times (round robin, both BLAS settings by default: bench/_common.py) the eval-mode forward of the
binarized model (float simulation) and of its packed export
(popcount linears; ``--av-bitwise`` also runs Eq. 35 bitwise) in the same run, compares predictions
and logits, and reports peak traced memory of each forward (tracemalloc) and the file sizes. The
``deit_small`` size report builds the model with random weights: sizes do not depend on the values.

With ``--av-bitwise`` this untrained model is a worst case: its activation biases are still 0 and
Eq. 35 yields many sums that are exactly 0 (sums of +-alpha_i beta_j), which the proj layer's sign
then sees. The popcount path computes them exactly, the float32 BLAS product leaves +-1e-8, so those
signs -- and the predictions -- differ. A trained model (tests/test_models_packed.py) agrees to 1e-5.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import _common  # noqa: E402

from gsbnp.models import DeiT, DeiTConfig  # noqa: E402
from gsbnp.models.checkpoint import save_checkpoint  # noqa: E402
from gsbnp.models.packed import export_packed, load_packed  # noqa: E402


def _peak(fn):
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def sizes(preset: str, d: str) -> None:
    for phi in ("HNN", "HN"):
        cfg = DeiTConfig.preset(preset, method="gsb", phi=phi)
        m = DeiT(cfg, rng=np.random.default_rng(0)).set_precision("binary")
        ck, pk = os.path.join(d, f"ck_{phi}.npz"), os.path.join(d, f"pk_{phi}.npz")
        save_checkpoint(ck, m, {"mean": [0.5] * cfg.in_chans, "std": [0.25] * cfg.in_chans})
        info = export_packed(ck, pk)
        print(f"{preset} gsb Phi={phi:3s}: float32 checkpoint {os.path.getsize(ck) / 2**20:7.2f} MiB, "
              f"packed file {info['packed_file'] / 2**20:6.2f} MiB "
              f"({os.path.getsize(ck) / info['packed_file']:.1f}x); binarized weights "
              f"{info['binary_weights_float32'] / 2**20:.2f} MiB -> {info['binary_weights_packed'] / 2**20:.3f} MiB "
              f"({info['binary_weights_float32'] / info['binary_weights_packed']:.0f}x)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--method", default="gsb", choices=["gsb", "baseline"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--av-bitwise", action="store_true")
    ap.add_argument("--sizes-only", action="store_true")
    _common.add_setting_arg(ap)
    args = ap.parse_args(argv)
    if not args.sizes_only and _common.run_settings(__file__, argv, args.setting):
        return
    _common.header()
    with tempfile.TemporaryDirectory() as d:
        if args.sizes_only:
            sizes("deit_small", d)
            return
        cfg = DeiTConfig.preset(args.preset, method=args.method)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((args.batch, cfg.in_chans, cfg.img_size, cfg.img_size)).astype(np.float32)
        m = DeiT(cfg, rng=np.random.default_rng(0)).set_precision("binary")
        m.forward(x)  # initialise the scales
        m.eval()
        ck, pk = os.path.join(d, "ck.npz"), os.path.join(d, "pk.npz")
        save_checkpoint(ck, m, {"mean": [0.5] * cfg.in_chans, "std": [0.25] * cfg.in_chans})
        info = export_packed(ck, pk)
        pm, _ = load_packed(pk, av_bitwise=args.av_bitwise)
        la, lb = m.forward(x), pm.forward(x)
        agree = int((la.argmax(1) == lb.argmax(1)).sum())
        rel = float(np.abs(la - lb).max() / np.abs(la).max())
        t = _common.round_robin({"float": lambda: m.forward(x), "packed": lambda: pm.forward(x)}, args.repeats)
        t_f, t_p = t["float"]["median"], t["packed"]["median"]
        mem_f = _peak(lambda: m.forward(x))
        mem_p = _peak(lambda: pm.forward(x))
        ratio = _common.ratio_text("packed/float", t["packed"], t["float"])
        print(f"{args.preset} {args.method} batch {args.batch}: float-simulated {t_f * 1e3:.1f} ms, packed "
              f"{t_p * 1e3:.1f} ms (medians; {ratio}); same prediction on {agree}/{len(x)} "
              f"inputs, max |logit difference| / max |logit| = {rel:.2e}")
        print(f"peak traced memory of a forward: float-simulated {mem_f / 2**20:.1f} MiB, packed "
              f"{mem_p / 2**20:.1f} MiB; files: float32 checkpoint {os.path.getsize(ck) / 2**20:.2f} MiB, "
              f"packed {info['packed_file'] / 2**20:.2f} MiB")
        print(_common.load_text(), "(after)")


if __name__ == "__main__":
    main()
