"""Timing shared by the benchmark scripts: sides called in turn, medians reported."""

from __future__ import annotations

import statistics
import time

__all__ = ["interleaved_median_ms"]


def interleaved_median_ms(fns, repeats: int, warmup: int = 3, warmup_s: float = 0.0) -> list[float]:
    """Median wall time in milliseconds of each of ``fns``, called in turn ``repeats`` times.

    Alternating the calls (poolref, torch, poolref, torch, ...) exposes both sides to the same
    machine state: on a shared virtual machine the speed of memory-bound code drifts by up to 2x over
    a few seconds, and timing one side after the other would charge that drift to one of them.
    Each function is first called ``warmup`` times and for at least ``warmup_s`` seconds: PyTorch's
    first backward calls, and the first calls after its worker threads have gone idle, are much
    slower than its steady state, which is what we compare against.
    """
    start = time.perf_counter()
    calls = 0
    while calls < warmup or time.perf_counter() - start < warmup_s:
        for fn in fns:
            fn()
        calls += 1
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return [1e3 * statistics.median(record) for record in times]
