"""gsbnp._threads: the shared worker pool behind the GELU and popcount kernels."""

import threading
import time

import numpy as np
import pytest

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
