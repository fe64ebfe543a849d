"""Thread policy and the worker pool of the elementwise and bitwise kernels (NumPy ufuncs release the GIL).

gsbnp has three kinds of threaded work: BLAS (its own threads: every GEMM), the elementwise float32
kernels (GELU, split into contiguous ranges) and the popcount products (tiles from a queue). Both
gsbnp kinds run on one small persistent pool. How many threads each kind gets is decided here.

**Explicit settings win**, in this order:

1. ``set_num_threads(n)`` (the CLI's ``--threads N``): n threads for gsbnp's pools *and* BLAS
   (through ``threadpoolctl``); ``set_num_threads(None)`` returns to the settings below.
2. ``GSBNP_NUM_THREADS``: gsbnp's pools, and BLAS unless a BLAS variable is set too.
3. ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS``: BLAS keeps what its library read at start-up (gsbnp
   never overrides it), and gsbnp's pools use the same number (a user who pins BLAS to one thread, e.g.
   to run several trainings side by side, gets one thread here too).

**Otherwise the machine decides** (``available_threads``): the CPUs this process may run on (the
affinity mask, and a cgroup CPU quota when there is one) minus the CPUs other processes keep busy,
at least 1 and at most 8. "Busy" is measured from ``/proc/stat`` minus this process's own CPU time
(``os.times``) over the last interval (processes at a lower priority, ``nice``, count only when this
one is niced too: they yield their CPU), or, where ``/proc/stat`` cannot be read, from the 1-minute load
average minus this process's share. It is re-evaluated at most every ``REFRESH_S`` seconds (never
per call): a laptop where a browser or a second notebook starts computing drops to fewer threads within
seconds instead of spinning two thread teams against each other on the same cores (measured on a
2-core machine: 2.4x slower with the default threads, no slowdown with one thread).

**And the work decides** (``threads_for``): a job gets at most one thread per ``min_per_thread`` units
of work, so small models (the bundled digits) run their elementwise kernels on the calling thread.

**BLAS follows the work, never the load** (``blas_threads_for``): each layer tells ``tick`` the size of
its GEMM, and BLAS gets one thread per ``BLAS_MIN_WORK`` multiply-adds, at most the CPUs this process
may use. The digits model's training GEMMs (a few million multiply-adds) therefore run on one BLAS
thread - two BLAS threads spinning against a busy machine's other work made a digits training 10x
slower - while the ``tiny`` preset's run on every CPU.

**Reproducibility**: gsbnp's own kernels give the same bits on any number of threads (elementwise
ranges, exact integer popcounts), but BLAS does not: its thread count changes the float32 summation
order (measured: 10 digits training steps end with different weights on 1 and 2 threads). That is why
the BLAS count depends only on the GEMM's size and the CPU count, which are the same in every run of a
command on a machine: a seeded run, and a run resumed after a kill, give the same bits on an idle and
on a busy machine. Only gsbnp's own pools follow the momentary load.

The pool is shared, so neither pool helper may be called from inside a pool worker (nested calls could
wait for threads that are all busy waiting).
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

_MAX_THREADS = 8
REFRESH_S = 2.0  # seconds between two evaluations of the machine's load
BUSY_MARGIN = 0.35  # another process counts as a busy CPU once it keeps 0.65 of one busy
BLAS_MIN_WORK = 1 << 26  # multiply-adds per BLAS thread (67M: a few ms of one core)
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_explicit: int | None = None  # set_num_threads


def _env_threads(names) -> int | None:
    for var in names:
        v = os.environ.get(var, "").strip()
        if v.isdigit() and int(v) > 0:
            return int(v)
    return None


def explicit_threads() -> int | None:
    """The thread count the user asked for (``set_num_threads``, then the variables), or None."""
    if _explicit is not None:
        return _explicit
    return _env_threads(("GSBNP_NUM_THREADS",) + _BLAS_ENV)


def cpu_count() -> int:
    """CPUs this process may run on: the affinity mask, capped by a cgroup v2 CPU quota if any."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def available_threads(*, cpus: int | None = None, other_load: float | None = None) -> int:
    """Threads worth running now: ``cpus - round(other_load)`` (see the module docstring), 1..8.

    Args:
        cpus: CPUs this process may use (default ``cpu_count()``).
        other_load: CPUs kept busy by *other* processes (default: measured, ``_monitor.other_load()``).
    """
    cpus = cpu_count() if cpus is None else int(cpus)
    load = _monitor.other_load() if other_load is None else float(other_load)
    busy = math.floor(max(0.0, load) + BUSY_MARGIN)
    return max(1, min(cpus - busy, _MAX_THREADS))


class _LoadMonitor:
    """Other processes' busy CPUs, from /proc/stat (or the load average) minus this process's CPU time."""

    def __init__(self):
        self._cpus = self._affinity_ids()
        try:
            self._own_nice = os.getpriority(os.PRIO_PROCESS, 0)
        except (AttributeError, OSError):  # pragma: no cover - not POSIX
            self._own_nice = 0
        self._last = self._sample()
        self._value = None
        self._lock = threading.Lock()

    @staticmethod
    def _affinity_ids():
        try:
            return {f"cpu{i}" for i in os.sched_getaffinity(0)}
        except AttributeError:  # pragma: no cover - not Linux
            return None

    def _sample(self):
        """(wall s, busy CPU-seconds of our CPUs or None, own CPU-seconds)."""
        busy = None
        try:
            hz = os.sysconf("SC_CLK_TCK")
            with open("/proc/stat") as f:
                ticks = 0
                for line in f:
                    if not line.startswith("cpu") or line.startswith("cpu "):
                        continue
                    name, *vals = line.split()
                    if self._cpus is not None and name not in self._cpus:
                        continue
                    v = [int(t) for t in vals[:8]]
                    # all but idle and iowait; niced processes' time ("nice") only if we are niced too:
                    # a background job at lower priority yields its CPU to us and does not count
                    ticks += sum(v) - v[3] - v[4] - (v[1] if self._own_nice == 0 else 0)
            busy = ticks / hz
        except (OSError, ValueError):
            pass
        t = os.times()
        return time.monotonic(), busy, t.user + t.system

    def other_load(self) -> float:
        """CPUs busy with other processes since the previous call (>= 0.2 s ago; else the last value)."""
        with self._lock:
            now = self._sample()
            wall = now[0] - self._last[0]
            if wall < 0.2 and self._value is not None:
                return self._value
            own = (now[2] - self._last[2]) / max(wall, 1e-9)
            if now[1] is not None and self._last[1] is not None and wall >= 0.05:
                total = (now[1] - self._last[1]) / wall
            else:  # the 1-minute load average counts runnable threads, ours included
                try:
                    total = os.getloadavg()[0]
                except OSError:  # pragma: no cover
                    total = own
            self._value = max(0.0, total - own)
            self._last = now
            return self._value


_monitor = _LoadMonitor()


class _Policy:
    """The cached decision: pool threads, BLAS threads; refreshed every REFRESH_S seconds by ``tick``."""

    def __init__(self):
        self.next_refresh = 0.0
        self.pool = 1
        self.cpus = 1  # cpu_count() at the last refresh (the BLAS ceiling)
        self.blas_set: int | None = None  # what gsbnp last told BLAS (None: never touched)
        self.blas_initial: int | None = None  # BLAS threads before the first set_num_threads
        self.last_explicit: int | None = None  # explicit_threads() at the last refresh
        self.controller = None
        self.lock = threading.RLock()


_policy = _Policy()


def _blas_controller():
    if _policy.controller is None:
        from threadpoolctl import ThreadpoolController
        _policy.controller = ThreadpoolController()
    return _policy.controller


def _set_blas_threads(n: int) -> None:
    if _policy.blas_set != n:
        for lib in _blas_controller().lib_controllers:  # the libraries' own setters: no context object
            if lib.user_api == "blas":
                lib.set_num_threads(n)
        _policy.blas_set = n


def blas_threads_for(gemm_work: int, available: int) -> int:
    """BLAS threads for a GEMM of ``gemm_work`` multiply-adds with ``available`` CPUs (>= 1)."""
    return max(1, min(available, gemm_work // BLAS_MIN_WORK))


def _refresh() -> None:
    p = _policy
    with p.lock:
        explicit = explicit_threads()
        p.last_explicit = explicit
        p.pool = min(explicit, _MAX_THREADS) if explicit is not None else available_threads()
        p.cpus = min(cpu_count(), _MAX_THREADS)
        if _explicit is None and _env_threads(_BLAS_ENV) is None and _env_threads(("GSBNP_NUM_THREADS",)):
            _set_blas_threads(p.pool)
        p.next_refresh = time.monotonic() + REFRESH_S


def tick(gemm_work: int = 0) -> None:
    """Before a GEMM of ``gemm_work`` multiply-adds: set BLAS's threads for it (automatic policy only),
    and re-evaluate the pools' threads if REFRESH_S has passed.

    Cheap (a comparison, a clock read, a library call only when the count changes): the layers call
    it once per forward. The BLAS count depends on ``gemm_work`` and the CPU count alone (see the
    module docstring: results must not depend on the load).
    """
    p = _policy
    if time.monotonic() >= p.next_refresh:
        _refresh()
    if gemm_work and p.last_explicit is None:
        _set_blas_threads(blas_threads_for(gemm_work, p.cpus))


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads for gsbnp's pools and for BLAS (through threadpoolctl); None: automatic again.

    With None, BLAS returns to the count it had before the first ``set_num_threads`` call, or to the
    automatic policy when no BLAS variable is set.
    """
    global _explicit
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    with _policy.lock:
        if n is not None:
            if _policy.blas_initial is None:
                _policy.blas_initial = _blas_limit()
            _explicit = n
            _set_blas_threads(n)
        else:
            _explicit = None
            if _policy.blas_initial is not None and _env_threads(_BLAS_ENV) is not None:
                _set_blas_threads(_policy.blas_initial)
        _policy.next_refresh = 0.0  # re-evaluate at the next tick / default_threads call


def _blas_limit() -> int:
    infos = [i for i in _blas_controller().info() if i.get("user_api") == "blas"]
    return max((int(i["num_threads"]) for i in infos), default=1)


def blas_info() -> list[dict]:
    """threadpoolctl's description of the loaded BLAS libraries (library, version, architecture, threads)."""
    return [dict(i) for i in _blas_controller().info() if i.get("user_api") == "blas"]


def default_threads() -> int:
    """Threads of gsbnp's pools for work that is large enough (see the module docstring).

    An explicit setting gives that number (at most 8); otherwise the machine's available threads,
    re-evaluated at most every REFRESH_S seconds.
    """
    if time.monotonic() >= _policy.next_refresh or explicit_threads() != _policy.last_explicit:
        _refresh()
    return _policy.pool


def threads_for(work: int, min_per_thread: int, threads: int | None = None) -> int:
    """Threads for ``work`` units when each thread should get at least ``min_per_thread`` of them.

    ``threads`` (a caller's explicit count) replaces ``default_threads()``; the result is 1..8 and at
    most ``work // min_per_thread``.
    """
    t = default_threads() if threads is None else threads
    return max(1, min(t, _MAX_THREADS, work // max(1, min_per_thread)))


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
    if len(calls) == 1:
        calls[0]()
        return
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
    t = threads_for(n, min_per_thread, threads)
    bounds = [n * i // t for i in range(t + 1)]
    _run_all([functools.partial(fn, bounds[i], bounds[i + 1]) for i in range(t)])


def run_on_threads(fn, threads: int) -> None:
    """Call ``fn()`` once on each of ``threads`` threads (the calling thread is one of them) and wait.

    For work queues: every call pulls items until none are left. A worker's exception is re-raised.
    """
    _run_all([fn] * max(1, min(threads, _MAX_THREADS)))
