"""What every benchmark shares: the report of what it ran on, both BLAS kernel settings, round-robin timing.

Every ``bench/`` script calls ``run_settings(...)`` first. By default it then runs *itself* in two child
processes and prints both outputs:

- ``env as set``: the environment exactly as this shell has it (tests and CI run this way; a machine
  may set ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` for old OpenBLAS builds, which pins the kernels
  to an older CPU's, e.g. Haswell on an AVX-512 machine);
- ``native``: the same with ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` removed for that child
  alone, so OpenBLAS picks the kernels of the CPU it runs on, as on a user's machine.

Each child prints the BLAS library, its kernel (threadpoolctl's ``architecture``), its thread count
and the load of the machine (``os.getloadavg``) before and after. ``--setting env|native`` runs one
setting in this process (what the children do).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

SETTINGS = ("env", "native")
KERNEL_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_CHILD = "GSBNP_BENCH_SETTING"


def load_text() -> str:
    """The 1/5/15-minute load averages and the CPUs, as ``uptime`` prints them."""
    try:
        a, b, c = os.getloadavg()
    except OSError:  # pragma: no cover
        return "load unknown"
    return f"load average {a:.2f}, {b:.2f}, {c:.2f} on {os.cpu_count()} CPUs"


def blas_text() -> str:
    """One line per BLAS library: name, version, kernel (architecture), threads, threading layer."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS: threadpoolctl not installed (pip install threadpoolctl)"
    lines = []
    for i in threadpool_info():
        if i.get("user_api") != "blas":
            continue
        lines.append(f"BLAS: {i.get('internal_api')} {i.get('version')} ({i.get('prefix')}), kernel "
                     f"{i.get('architecture', '?')}, {i.get('num_threads')} threads, "
                     f"{i.get('threading_layer', '?')}")
    env = " ".join(f"{v}={os.environ[v]}" for v in KERNEL_VARS + ("OPENBLAS_NUM_THREADS", "GSBNP_NUM_THREADS")
                   if v in os.environ) or "no OPENBLAS_*/GSBNP_* variables"
    lines.append(f"numpy {np.__version__}; {env}")
    return "\n".join(lines) if lines else "BLAS: none found by threadpoolctl"


def header() -> None:
    """Print what this process runs on (call it after the imports that load BLAS)."""
    setting = os.environ.get(_CHILD, "env")
    print(f"== setting: {setting} ({'kernel variables removed' if setting == 'native' else 'environment as set'})")
    print(blas_text())
    print(load_text(), flush=True)


def add_setting_arg(ap) -> None:
    ap.add_argument("--setting", choices=SETTINGS + ("both",), default="both",
                    help="BLAS kernel setting: env (as set), native (OPENBLAS_CORETYPE/L2_SIZE removed for "
                         "this run) or both (default: two child processes, both printed)")


def run_settings(script: str, argv: list[str] | None, setting: str) -> bool:
    """With ``setting="both"`` run ``script argv`` once per setting in a child and return True (the
    caller then stops); otherwise prepare this process for its one setting and return False."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if setting != "both":
        if setting == "native" and any(v in os.environ for v in KERNEL_VARS) and os.environ.get(_CHILD) != "native":
            # the variables are read when OpenBLAS loads: rerun this process without them
            return _child(script, argv, "native", check=True)
        os.environ.setdefault(_CHILD, setting)
        return False
    rest = [a for a in argv if not a.startswith("--setting")]
    for s in SETTINGS:
        _child(script, rest + [f"--setting={s}"], s)
    return True


def _child(script: str, argv: list[str], setting: str, check: bool = False) -> bool:
    env = dict(os.environ)
    env[_CHILD] = setting
    if setting == "native":
        for v in KERNEL_VARS:
            env.pop(v, None)
    cmd = [sys.executable, os.path.abspath(script)] + argv
    print(f"\n### {os.path.basename(script)} [{setting}]: {' '.join(argv)}", flush=True)
    r = subprocess.run(cmd, env=env, check=False)
    if r.returncode and check:
        sys.exit(r.returncode)
    return True


def round_robin(steps: dict, repeats: int, warmup: int = 2, pause: float = 0.3) -> dict:
    """Times (seconds) of each callable, timed in turns (a, b, c, a, b, c, ...) after ``warmup`` turns.

    Returns ``{name: {"min": s, "median": s, "all": [...]}}``. Each timed call starts after ``pause``
    seconds: BLAS and OpenMP worker threads spin for a while after a call and would otherwise slow
    down whichever contender runs next.
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
    return {name: {"min": float(np.min(v)), "median": float(np.median(v)), "all": v} for name, v in ts.items()}


def ratio_text(name: str, a: dict, b: dict, target: str = "") -> str:
    """``name: x.xx (min) y.yy (median)`` of two round_robin entries, with an optional target."""
    t = f"   target {target}" if target else ""
    return f"ratio {name}: {a['min'] / b['min']:.2f} (fastest of N)  {a['median'] / b['median']:.2f} (median){t}"
