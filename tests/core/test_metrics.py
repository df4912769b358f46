"""Tests for Counter, Gauge and Metrics."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator

import pytest
import trio

from trioworks.core import Counter, Gauge, Metrics

THREADS = 8
PER_THREAD = 50_000


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can, so that lost updates show up."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def _hammer(fn: object, n: int) -> None:
    for _ in range(n):
        fn()  # type: ignore[operator]


async def _in_threads(fn: object) -> None:
    limiter = trio.CapacityLimiter(THREADS)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for _ in range(THREADS):
                nursery.start_soon(
                    functools.partial(trio.to_thread.run_sync, _hammer, fn, PER_THREAD, limiter=limiter)
                )


@pytest.mark.usefixtures("frequent_thread_switches")
async def test_counter_concurrent_increments_from_threads() -> None:
    counter = Counter()
    await _in_threads(counter.inc)
    assert counter.value == THREADS * PER_THREAD


@pytest.mark.usefixtures("frequent_thread_switches")
async def test_gauge_concurrent_inc_dec_from_threads() -> None:
    gauge = Gauge()
    await _in_threads(gauge.inc)
    assert gauge.value == THREADS * PER_THREAD
    await _in_threads(gauge.dec)
    assert gauge.value == 0
    assert gauge.high_water == THREADS * PER_THREAD


def test_counter_rejects_negative() -> None:
    counter = Counter()
    counter.inc()
    counter.inc(4)
    with pytest.raises(ValueError):
        counter.inc(-1)
    assert counter.value == 5


def test_gauge_high_water() -> None:
    gauge = Gauge()
    assert (gauge.value, gauge.high_water) == (0, 0)
    gauge.inc(3)
    gauge.dec(2)
    gauge.inc()
    assert (gauge.value, gauge.high_water) == (2, 3)
    gauge.set(10.5)
    gauge.set(1)
    assert (gauge.value, gauge.high_water) == (1, 10.5)
    gauge.dec(5)
    assert (gauge.value, gauge.high_water) == (-4, 10.5)


def test_metrics_registry_and_snapshot() -> None:
    metrics = Metrics()
    assert metrics.snapshot() == {}
    requests = metrics.counter("requests")
    assert metrics.counter("requests") is requests
    requests.inc(2)
    inflight = metrics.gauge("inflight")
    assert metrics.gauge("inflight") is inflight
    inflight.inc(3)
    inflight.dec()
    assert metrics.snapshot() == {"requests": 2, "inflight": 2, "inflight.high_water": 3}


def test_metrics_name_kind_conflict() -> None:
    metrics = Metrics()
    metrics.counter("x")
    with pytest.raises(TypeError, match="'x'"):
        metrics.gauge("x")
    metrics.gauge("y")
    with pytest.raises(TypeError, match="'y'"):
        metrics.counter("y")
