"""gsbnp._threads: the shared worker pool behind the GELU and popcount kernels."""

import threading
import time

import numpy as np
import pytest

import gsbnp._threads as T
from gsbnp._threads import default_threads, parallel_ranges, run_on_threads


def test_parallel_ranges_cover_every_item_once():
    for n, threads, min_per in [(10, 3, 1), (10, 3, 4), (7, 1, 1), (100, 20, 1), (0, 2, 1)]:
        hits = np.zeros(n, int)
        seen = []

        def fn(a, b, seen=seen, hits=hits):
            seen.append((a, b))
            hits[a:b] += 1

        parallel_ranges(fn, n, min_per_thread=min_per, threads=threads)
        assert np.all(hits == 1), (n, threads, min_per)
        expect = max(1, min(threads, 8, n // min_per))
        assert len(seen) == expect, (n, threads, min_per, seen)


def test_worker_errors_reach_the_caller_after_every_worker_finished():
    done = []

    def fn(a, b):
        if a > 0:
            raise RuntimeError(f"range {a}")
        time.sleep(0.05)
        done.append(a)

    with pytest.raises(RuntimeError, match="range"):
        parallel_ranges(fn, 4, min_per_thread=1, threads=4)
    assert done == [0]  # the calling thread's range ran to its end

    lock, calls = threading.Lock(), []

    def worker():
        with lock:
            calls.append(threading.get_ident())
        time.sleep(0.05)
        if threading.current_thread() is threading.main_thread():
            raise ValueError("caller failed")

    with pytest.raises(ValueError, match="caller failed"):
        run_on_threads(worker, 3)
    # the caller's error surfaces only after both pool workers ran
    assert len(calls) == 3


def test_default_threads_follows_the_environment(monkeypatch):
    monkeypatch.setenv("GSBNP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("GSBNP_NUM_THREADS", "50")
    assert default_threads() == 8
    monkeypatch.delenv("GSBNP_NUM_THREADS")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert default_threads() == 1


# ----------------------------------------------------------------------------------------------
# the thread policy: explicit settings win, a busy machine and small work get fewer threads
# ----------------------------------------------------------------------------------------------


def _blas_threads():
    return max(i["num_threads"] for i in T.blas_info())


@pytest.fixture
def auto_policy(monkeypatch):
    """No thread variable set, 4 CPUs, an injected load of other processes; BLAS restored afterwards."""
    for var in ("GSBNP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    before = _blas_threads()
    load = {"value": 0.0}
    monkeypatch.setattr(T, "cpu_count", lambda: 4)
    monkeypatch.setattr(T._monitor, "other_load", lambda: load["value"])
    T._policy.next_refresh = 0.0
    yield load
    T.set_num_threads(None)
    T._policy.controller.limit(limits=before, user_api="blas")
    T._policy.blas_set = None
    T._policy.next_refresh = 0.0


def test_available_threads_subtracts_other_processes_load():
    assert T.available_threads(cpus=2, other_load=0.0) == 2
    assert T.available_threads(cpus=2, other_load=0.2) == 2  # a browser tab idling
    assert T.available_threads(cpus=2, other_load=1.0) == 1  # one CPU-bound process
    assert T.available_threads(cpus=2, other_load=0.7) == 1
    assert T.available_threads(cpus=4, other_load=1.0) == 3
    assert T.available_threads(cpus=2, other_load=5.0) == 1  # never below one
    assert T.available_threads(cpus=64, other_load=0.0) == 8  # never above eight
    assert T.available_threads(cpus=4, other_load=-1.0) == 4


def test_busy_machine_gets_fewer_threads_re_evaluated_not_per_call(auto_policy, monkeypatch):
    assert T.default_threads() == 4
    auto_policy["value"] = 2.0  # two other CPU-bound processes start
    monkeypatch.setattr(T, "REFRESH_S", 3600.0)
    T._policy.next_refresh = 0.0
    assert T.default_threads() == 2
    auto_policy["value"] = 0.0
    assert T.default_threads() == 2  # not per call: the decision holds until the next refresh
    T._policy.next_refresh = 0.0
    assert T.default_threads() == 4


def test_small_work_gets_one_thread(auto_policy):
    assert T.threads_for(1000, min_per_thread=1 << 17) == 1
    assert T.threads_for(3 << 17, min_per_thread=1 << 17) == 3
    assert T.threads_for(1 << 30, min_per_thread=1 << 17) == 4
    assert T.blas_threads_for(T.BLAS_MIN_WORK - 1, 4) == 1
    assert T.blas_threads_for(2 * T.BLAS_MIN_WORK, 4) == 2
    assert T.blas_threads_for(1 << 40, 4) == 4


def test_blas_follows_the_work_not_the_load(auto_policy):
    T.tick(gemm_work=T.BLAS_MIN_WORK // 2)  # a small model's GEMM: BLAS runs one thread
    assert T._policy.blas_set == 1 and _blas_threads() == 1
    T.tick(gemm_work=1 << 40)  # a big GEMM on a 4-CPU machine (the real BLAS may cap it lower)
    assert T._policy.blas_set == 4
    auto_policy["value"] = 3.0  # a busy machine: the pools drop to one thread, BLAS does not (same bits)
    T._policy.next_refresh = 0.0
    T.tick(gemm_work=1 << 40)
    assert T.default_threads() == 1 and T._policy.blas_set == 4
    T.tick(gemm_work=T.BLAS_MIN_WORK // 2)
    assert T._policy.blas_set == 1 and _blas_threads() == 1


def test_explicit_settings_win_over_the_load(auto_policy, monkeypatch):
    auto_policy["value"] = 3.0
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert T.default_threads() == 3  # the user's BLAS setting, not the busy machine's 1
    blas = _blas_threads()
    T._policy.next_refresh = 0.0
    T.tick(gemm_work=1 << 40)
    assert _blas_threads() == blas  # a BLAS variable is left to BLAS: gsbnp never overrides it
    monkeypatch.setenv("GSBNP_NUM_THREADS", "2")
    assert T.default_threads() == 2
    T.set_num_threads(1)
    assert T.default_threads() == 1 and _blas_threads() == 1  # --threads: pools and BLAS
    T.set_num_threads(3)
    assert T.default_threads() == 3
    T.set_num_threads(None)
    assert T.default_threads() == 2  # back to GSBNP_NUM_THREADS
    assert _blas_threads() == blas  # and BLAS back to what it had
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="n must be a positive int or None"):
            T.set_num_threads(bad)


def test_load_monitor_measures_something_finite():
    v = T._LoadMonitor().other_load()
    assert np.isfinite(v) and v >= 0
    assert 1 <= T.cpu_count() <= (__import__("os").cpu_count() or 1)
