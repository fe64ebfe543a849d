"""Packed binarized linear layer vs float32 BLAS on one fc1-sized shape.

Shape (default): M = 64 * 66 rows (a batch of 64 images of 66 tokens), K = 384 input features,
F = 1536 output features (fc1 of a D = 384 model). Both contenders run in the same process,
interleaved repetition by repetition, so machine noise hits both alike:

- BLAS:   ``x @ W.T`` in float32 (NumPy's BLAS, its own threads as configured; not touched here).
- packed: ``binary_linear_packed(pack_binary_input(x), W_packed, alpha_w, alpha_x, bias)``, i.e.
          sign-packing the activations + the xor/popcount product + scale and bias (BLAS gets no
          bias), with the weight packed once beforehand (as in inference). Also timed: the kernel
          alone (activations already packed) and the packed path on one thread (its CPU work).

Every timed call starts after a short pause (``--pause``): OpenBLAS threads busy-wait for a while
after a call and would otherwise slow down whatever runs next. Prints min and median times, the ratio
packed / BLAS (target <= 1.0), the weight storage (packed vs float32) and the peak memory each path
allocates (tracemalloc; NumPy reports its buffers to it).

    python bench/bench_packed_linear.py [--reps 15] [--threads N] [--M 4224 --K 384 --F 1536] [--setting native]

By default it runs itself twice, the environment as set and the native BLAS kernels (bench/_common.py).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import _common

from gsbnp.bitops import binary_linear_packed, default_threads, pack_binary_input, pack_binary_weight


def peak_alloc(fn) -> int:
    """Peak bytes allocated (tracked by tracemalloc) while ``fn()`` runs."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--M", type=int, default=64 * 66)
    ap.add_argument("--K", type=int, default=384)
    ap.add_argument("--F", type=int, default=1536)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None, help="packed-kernel threads (default: all "
                    "CPUs this process may use, at most 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pause", type=float, default=0.2, help="seconds idle before each timed call")
    _common.add_setting_arg(ap)
    args = ap.parse_args(argv)
    if _common.run_settings(__file__, argv, args.setting):
        return None
    _common.header()
    threads = default_threads() if args.threads is None else args.threads

    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.M, args.K), dtype=np.float32)
    W = rng.standard_normal((args.F, args.K), dtype=np.float32)
    bias = rng.standard_normal(args.F, dtype=np.float32)
    alpha_x = 0.75
    W_packed, alpha_w = pack_binary_weight(W)
    out_packed = np.empty((args.M, args.F), np.float32)
    out_blas = np.empty((args.M, args.F), np.float32)

    def blas():
        np.matmul(x, W.T, out=out_blas)

    def packed():
        binary_linear_packed(pack_binary_input(x), W_packed, alpha_w, alpha_x, bias,
                             out=out_packed, threads=threads)

    x_packed = pack_binary_input(x)

    def packed_1t():  # the same on one thread: how much CPU work the packed path needs
        binary_linear_packed(pack_binary_input(x), W_packed, alpha_w, alpha_x, bias,
                             out=out_packed, threads=1)

    def kernel():
        binary_linear_packed(x_packed, W_packed, alpha_w, alpha_x, bias, out=out_packed,
                             threads=threads)

    # correctness against the float simulation of the same binarized layer
    packed()
    x_b = np.float32(alpha_x) * np.where(x >= 0, 1, -1).astype(np.float32)
    W_b = np.float32(alpha_w) * np.where(W - W.mean() >= 0, 1, -1).astype(np.float32)
    sim = x_b @ W_b.T + bias
    err = float(np.max(np.abs(out_packed - sim)))

    fns = {"blas": blas, "packed": packed, "kernel": kernel, "packed_1t": packed_1t}
    times = {name: [] for name in fns}
    for fn in fns.values():  # warm-up (thread pools, page faults)
        fn()
    for _ in range(args.reps):
        for name, fn in fns.items():
            # OpenBLAS worker threads keep spinning for a while after a call; let them go idle so
            # that they do not steal the cores from whatever is timed next.
            time.sleep(args.pause)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)

    res = {name: (min(v) * 1e3, float(np.median(v)) * 1e3) for name, v in times.items()}
    peaks = {name: peak_alloc(fn) for name, fn in fns.items()}
    w_float, w_packed = W.nbytes, W_packed.nbytes

    print(f"shape: M={args.M} K={args.K} F={args.F}  packed threads={threads}  reps={args.reps}")
    for name, (tmin, tmed) in res.items():
        print(f"{name:>9}: min {tmin:8.2f} ms   median {tmed:8.2f} ms   peak alloc "
              f"{peaks[name] / 2**20:7.2f} MiB")
    r_min = res["packed"][0] / res["blas"][0]
    r_med = res["packed"][1] / res["blas"][1]
    print(f"ratio packed/BLAS: {r_min:.2f}x (min)  {r_med:.2f}x (median)   kernel only: "
          f"{res['kernel'][0] / res['blas'][0]:.2f}x (min)   target <= 1.00x")
    print(f"weight storage: float32 {w_float / 2**10:.1f} KiB, packed {w_packed / 2**10:.1f} KiB "
          f"({w_float / w_packed:.1f}x smaller)")
    print(f"max |packed - float simulation| = {err:.3g}")
    print(_common.load_text(), "(after)")
    print(f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.1f} MiB")
    return {"times_ms": res, "ratio_min": r_min, "ratio_median": r_med, "peak_bytes": peaks,
            "max_abs_err": err}


if __name__ == "__main__":
    main()
