"""The one way the benchmarks time a call: the median of many, in milliseconds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_ms(
    fn: Callable[[int], Any], rounds: int = 60, clock: Callable[[], float] = time.perf_counter
) -> float:
    """``fn(i)`` for i in range(rounds); the median duration by ``clock`` (wall time by default,
    ``time.process_time`` for CPU)."""
    times = []
    for i in range(rounds):
        t = clock()
        fn(i)
        times.append(clock() - t)
    return statistics.median(times) * 1000
