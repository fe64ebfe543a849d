"""Worker threads for elementwise and bitwise kernels (NumPy ufuncs release the GIL).

Most of gsbnp's time is spent in BLAS, which has its own threads. The elementwise float32 kernels
(GELU) and the popcount products are split into contiguous ranges run on a small persistent pool, so
that two cores work on them the way BLAS and PyTorch's CPU kernels use two cores.

The thread count is ``GSBNP_NUM_THREADS`` when set, else ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS``
(a user who pins BLAS to one thread, e.g. to run several trainings side by side, gets one thread here
too), else the CPUs this process may run on, at most 8.

The pool is shared, so neither helper may be called from inside a pool worker (nested calls could
wait for threads that are all busy waiting).
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_MAX_THREADS = 8
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def default_threads() -> int:
    """Threads used when a kernel is given ``threads=None`` (see the module docstring)."""
    for var in ("GSBNP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        v = os.environ.get(var, "").strip()
        if v.isdigit() and int(v) > 0:
            return min(int(v), _MAX_THREADS)
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, _MAX_THREADS))


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_MAX_THREADS - 1, thread_name_prefix="gsbnp")
        return _pool


def _run_all(calls) -> None:
    """Run ``calls[0]()`` on the calling thread and the others on the pool; wait for every one.

    The first exception (the calling thread's first, then the workers' in order) is re-raised once all
    calls have finished, so no worker is still writing into shared outputs when the caller sees it.
    """
    futures = [_get_pool().submit(c) for c in calls[1:]]
    try:
        calls[0]()
    finally:
        errors = [f.exception() for f in futures]  # waits for each worker
    for err in errors:
        if err is not None:
            raise err


def parallel_ranges(fn, n: int, *, min_per_thread: int, threads: int | None = None) -> None:
    """Call ``fn(start, stop)`` on contiguous ranges covering ``range(n)``, one per thread.

    The calling thread takes the first range. ``fn`` must write disjoint outputs per range. With fewer
    than ``2 * min_per_thread`` items (or one thread) it is a plain ``fn(0, n)`` call.
    """
    t = default_threads() if threads is None else threads
    t = max(1, min(t, _MAX_THREADS, n // max(1, min_per_thread)))
    bounds = [n * i // t for i in range(t + 1)]
    _run_all([functools.partial(fn, bounds[i], bounds[i + 1]) for i in range(t)])


def run_on_threads(fn, threads: int) -> None:
    """Call ``fn()`` once on each of ``threads`` threads (the calling thread is one of them) and wait.

    For work queues: every call pulls items until none are left. A worker's exception is re-raised.
    """
    _run_all([fn] * max(1, min(threads, _MAX_THREADS)))
