"""Latency statistics shared by every benchmark: time a callable, then summarise its per-call seconds.

Summaries are pure functions of the measured seconds, so they are testable without a clock; only `time_calls`
touches one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) by linear interpolation between the closest ranks.

    Same as numpy's default (`np.percentile(values, q)`, method="linear"): on the sorted values x[0..n-1] the
    position is h = (n - 1) * q / 100 and the result is x[floor(h)] + (h - floor(h)) * (x[ceil(h)] - x[floor(h)]).
    For 1..100 that gives p50 = 50.5, p95 = 95.05, p99 = 99.01.
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


@dataclass(frozen=True)
class LatencySummary:
    """Per-call latency of `count` timed calls, all in seconds; `total_s` is the sum of the calls."""

    count: int
    total_s: float
    mean_s: float
    p50_s: float
    p95_s: float
    p99_s: float
    min_s: float
    max_s: float

    @classmethod
    def from_seconds(cls, seconds: Sequence[float]) -> LatencySummary:
        """Summarises per-call durations in seconds (as returned by `time_calls`)."""
        if not seconds:
            raise ValueError("a latency summary needs at least one timed call")
        total = math.fsum(seconds)
        return cls(count=len(seconds), total_s=total, mean_s=total / len(seconds),
                   p50_s=percentile(seconds, 50), p95_s=percentile(seconds, 95), p99_s=percentile(seconds, 99),
                   min_s=min(seconds), max_s=max(seconds))

    def throughput(self, batch_size: int = 1) -> float:
        """Items per second when every call processed `batch_size` items: batch_size * count / total_s."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return batch_size * self.count / self.total_s if self.total_s > 0 else math.inf

    def as_row(self, prefix: str = "", batch_size: int = 1) -> dict[str, float]:
        """Flat, JSON-ready fields in milliseconds, e.g. {"search_p50_ms": 0.41, ..., "search_items_per_s": 2400}."""
        row: dict[str, float] = {f"{prefix}count": self.count}
        for name, value in asdict(self).items():
            if name.endswith("_s") and name != "total_s":
                row[f"{prefix}{name[:-2]}_ms"] = value * 1000
        row[f"{prefix}items_per_s"] = self.throughput(batch_size)
        return row


def time_calls(fn: Callable[[], object], warmup: int = 1, iterations: int = 100, max_seconds: float = 10.0,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Calls `fn()` `warmup` times untimed, then times calls until `iterations` or `max_seconds` is reached.

    Always makes at least one timed call, even when `max_seconds` is already spent. `max_seconds` bounds the sum
    of timed calls (warm-up excluded) and is checked after each call, so one slow call can overshoot it.

    Returns:
        list[float]: seconds of each timed call, in call order (length 1..iterations).
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    for _ in range(warmup):
        fn()
    seconds: list[float] = []
    spent = 0.0
    while len(seconds) < iterations:
        started = clock()
        fn()
        seconds.append(clock() - started)
        spent += seconds[-1]
        if spent >= max_seconds:
            break
    return seconds


def alternating_times(first: Callable[[], object], second: Callable[[], object], blocks: int = 4,
                      block_calls: int = 10, block_seconds: float = 2.0, warmup: int = 1, pause_s: float = 0.2,
                      clock: Callable[[], float] = time.perf_counter,
                      sleep: Callable[[float], None] = time.sleep) -> tuple[list[float], list[float]]:
    """Times `first` and `second` in alternating blocks: `blocks` rounds of a block of `first`, then one of `second`.

    For a ratio of two callables on a machine whose speed drifts (a shared VM runs 1.5x faster or slower from one
    minute to the next): timed one after the other, each side gets its own stretch of the machine's speed, and the
    ratio measures the drift as much as the callables; in alternating blocks both sides sample the same stretches.
    Blocks rather than single alternating calls, since a callable may leave threads busy after it returns (ONNX
    Runtime's spinning intra-op threads) that would slow the other side's next call: each block starts after
    `pause_s` of sleep and `warmup` untimed calls, then times calls until `block_calls` or `block_seconds`
    (at least one; `time_calls`' rule).

    Returns:
        (first's seconds, second's seconds): per timed call, in call order, `blocks` blocks each.
    """
    if blocks < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    timed: tuple[list[float], list[float]] = ([], [])
    for _ in range(blocks):
        for fn, seconds in zip((first, second), timed):
            sleep(pause_s)
            seconds += time_calls(fn, warmup=warmup, iterations=block_calls, max_seconds=block_seconds, clock=clock)
    return timed
