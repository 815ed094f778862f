"""benchmarks.stats: percentiles, latency summaries and the call timer (a fake clock: no timing assertions)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.stats import LatencySummary, alternating_times, percentile, time_calls


class FakeClock:
    """A clock that only moves when a timed call advances it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_percentiles_of_1_to_100_match_hand_computed_linear_interpolation():
    values = [float(v) for v in range(1, 101)]
    summary = LatencySummary.from_seconds(values)
    assert summary.p50_s == pytest.approx(50.5)
    assert summary.p95_s == pytest.approx(95.05)
    assert summary.p99_s == pytest.approx(99.01)
    assert (summary.count, summary.min_s, summary.max_s, summary.mean_s) == (100, 1.0, 100.0, 50.5)


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 99.9, 100])
def test_percentile_matches_numpy_default_on_unsorted_random_values(q):
    values = np.random.default_rng(3).exponential(size=37).tolist()
    assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_percentile_of_a_single_value_is_that_value():
    assert percentile([0.25], 99) == 0.25


def test_empty_or_out_of_range_percentiles_are_rejected():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        LatencySummary.from_seconds([])


def test_throughput_is_batch_times_calls_over_total_time():
    summary = LatencySummary.from_seconds([0.1, 0.2, 0.3, 0.4])  # 4 calls in 1 s
    assert summary.total_s == pytest.approx(1.0)
    assert summary.throughput() == pytest.approx(4.0)
    assert summary.throughput(batch_size=8) == pytest.approx(32.0)


def test_as_row_reports_milliseconds_under_a_prefix():
    row = LatencySummary.from_seconds([0.001, 0.003]).as_row(prefix="search_", batch_size=2)
    assert row["search_count"] == 2
    assert row["search_p50_ms"] == pytest.approx(2.0)
    assert row["search_max_ms"] == pytest.approx(3.0)
    assert row["search_items_per_s"] == pytest.approx(1000.0)


def test_time_calls_stops_after_iterations_and_warms_up_untimed():
    clock, calls = FakeClock(), []

    def fn():
        calls.append(1)
        clock.now += 0.5

    seconds = time_calls(fn, warmup=3, iterations=5, max_seconds=1e9, clock=clock)
    assert seconds == [0.5] * 5
    assert len(calls) == 8


def test_time_calls_stops_once_max_seconds_is_spent():
    clock = FakeClock()

    def fn():
        clock.now += 1.0

    assert time_calls(fn, warmup=0, iterations=1000, max_seconds=3.0, clock=clock) == [1.0, 1.0, 1.0]


def test_time_calls_makes_one_timed_call_even_without_a_time_budget():
    clock = FakeClock()

    def fn():
        clock.now += 2.0

    assert time_calls(fn, warmup=1, iterations=10, max_seconds=0.0, clock=clock) == [2.0]


def test_time_calls_uses_the_real_clock_by_default():
    seconds = time_calls(lambda: sum(range(100)), warmup=0, iterations=3)
    assert len(seconds) == 3 and all(s >= 0 for s in seconds)


def test_time_calls_rejects_zero_iterations():
    with pytest.raises(ValueError):
        time_calls(lambda: None, iterations=0)


def test_alternating_blocks_share_a_drifting_machine_where_one_after_the_other_does_not():
    """A machine that runs at half speed for its second 5 s: one after the other, the second callable gets only the
    slow stretch; in alternating blocks both sample both stretches, and the ratio stays the callables' own."""
    clock = FakeClock()

    def costing(seconds: float):
        def call():
            clock.now += seconds * (2.0 if clock.now >= 5.0 else 1.0)
        return call

    first, second = costing(0.1), costing(0.11)  # the second is 1.1x the first
    one = time_calls(first, warmup=0, iterations=50, max_seconds=5.0, clock=clock)
    other = time_calls(second, warmup=0, iterations=50, max_seconds=5.0, clock=clock)
    assert percentile(other, 50) / percentile(one, 50) == pytest.approx(2.2)

    clock.now = 0.0
    pauses = []
    firsts, seconds = alternating_times(first, second, blocks=8, block_calls=6, block_seconds=10.0, warmup=1,
                                        pause_s=0.2, clock=clock, sleep=pauses.append)
    assert len(firsts) == len(seconds) == 48 and pauses == [0.2] * 16
    assert (min(firsts), max(firsts)) == pytest.approx((0.1, 0.2)) and (min(seconds), max(seconds)) == pytest.approx(
        (0.11, 0.22))  # both sides met both speeds
    assert percentile(seconds, 50) / percentile(firsts, 50) == pytest.approx(1.1)


def test_alternating_blocks_run_warm_up_then_timed_calls_block_by_block():
    calls = []
    firsts, seconds = alternating_times(lambda: calls.append("a"), lambda: calls.append("b"), blocks=2,
                                        block_calls=3, warmup=1, pause_s=0.0, sleep=lambda s: None)
    assert "".join(calls) == "aaaabbbbaaaabbbb"  # one warm-up, three timed, per block and side
    assert len(firsts) == len(seconds) == 6
    with pytest.raises(ValueError, match="blocks"):
        alternating_times(lambda: None, lambda: None, blocks=0)
