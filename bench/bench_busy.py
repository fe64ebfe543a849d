"""``gsbnp train`` on an idle machine vs beside one competing CPU-bound process (it starts it itself).

    python bench/bench_busy.py                          # 3 rounds of (idle, busy), both BLAS settings
    python bench/bench_busy.py --rounds 2 --setting native --epochs 10,2,2

A laptop with a browser or a second notebook computing is a busy machine. This benchmark runs the
main job with small epochs (teacher, stage 1, stage 2: ``--epochs``) in a child process, alternately
alone and with one competing process (a pure-Python busy loop, one CPU) started just before it and
stopped right after, and prints each wall time, the fastest-of-N and median of both, and the ratio
busy / idle (target <= 1.3). The trainings run with gsbnp's default threads: ``GSBNP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` and ``OMP_NUM_THREADS`` are removed from their environment unless
``--keep-thread-env`` is given.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import _common

THREAD_VARS = ("GSBNP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
SPIN = "import time\nt = time.time() + 3600\nwhile time.time() < t:\n    pass\n"


def train_once(epochs, busy: bool, env: dict, out: str) -> float:
    """Wall seconds of one ``gsbnp train`` child (with a competing busy loop if ``busy``)."""
    t_, s1, s2 = epochs
    cmd = [sys.executable, "-c", "import sys; from gsbnp.cli import main; sys.exit(main(sys.argv[1:]))",
           "train", "--epochs-teacher", str(t_), "--epochs-stage1", str(s1), "--epochs-stage2", str(s2),
           "--no-progress", "--out", out]
    spin = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
    try:
        if spin is not None:
            time.sleep(0.5)  # the competitor is running before the training starts
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0
    finally:
        if spin is not None:
            spin.kill()
            spin.wait()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", default="10,2,2", help="teacher,stage1,stage2 epochs")
    ap.add_argument("--keep-thread-env", action="store_true", help="leave the thread variables as set")
    _common.add_setting_arg(ap)
    args = ap.parse_args(argv)
    if _common.run_settings(__file__, argv, args.setting):
        return
    epochs = [int(e) for e in args.epochs.split(",")]
    if len(epochs) != 3:
        raise SystemExit("--epochs takes three numbers: teacher,stage1,stage2")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if not args.keep_thread_env:
        for v in THREAD_VARS:
            env.pop(v, None)
    _common.header()
    print("trainings: " + ("thread variables as set" if args.keep_thread_env else
                           "default threads (" + ", ".join(THREAD_VARS) + " removed)"))
    times = {"idle": [], "busy": []}
    with tempfile.TemporaryDirectory() as tmp:
        train_once(epochs, False, env, os.path.join(tmp, "warmup"))  # imports, file cache
        for r in range(args.rounds):
            for kind in ("idle", "busy"):
                t = train_once(epochs, kind == "busy", env, os.path.join(tmp, f"{kind}{r}"))
                times[kind].append(t)
                print(f"round {r + 1} {kind}: {t:6.2f} s   ({_common.load_text()})", flush=True)
    for kind, v in times.items():
        print(f"{kind}: fastest {min(v):6.2f} s  median {np.median(v):6.2f} s")
    print(f"ratio busy / idle: {min(times['busy']) / min(times['idle']):.2f} (fastest of N)  "
          f"{np.median(times['busy']) / np.median(times['idle']):.2f} (median)   target <= 1.3")


if __name__ == "__main__":
    main()
