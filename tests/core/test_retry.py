"""Tests for RetryPolicy and retry(); all timing runs on the autojump clock."""

from __future__ import annotations

import itertools
import random

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from trioworks.core import RetryPolicy, retry


class Flaky:
    """An async callable failing ``failures`` times, recording the trio time of each attempt."""

    def __init__(self, failures: int, exc_type: type[Exception] = ValueError) -> None:
        self.failures = failures
        self.exc_type = exc_type
        self.times: list[float] = []
        self.raised: list[Exception] = []

    async def __call__(self) -> str:
        self.times.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        if len(self.times) <= self.failures:
            exc = self.exc_type(f"failure {len(self.times)}")
            self.raised.append(exc)
            raise exc
        return "ok"


def deltas(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


# --- RetryPolicy ---


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": 1.5},
        {"base_delay": -1},
        {"factor": 0},
        {"max_delay": -0.1},
        {"jitter": -0.1},
        {"jitter": 1.1},
        {"retry_on": "not callable"},
    ],
)
def test_policy_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_delay_formula_and_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, factor=3.0, max_delay=10.0, jitter=0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10.0, 10.0]
    assert policy.delay(10_000) == 10.0  # no OverflowError for absurd retry numbers
    assert attrs.evolve(policy, factor=1.0).delay(7) == 0.5
    with pytest.raises(ValueError):
        policy.delay(0)


@given(seed=st.integers(), retry_number=st.integers(1, 50), jitter=st.floats(0, 1))
def test_jitter_stays_within_bounds(seed: int, retry_number: int, jitter: float) -> None:
    policy = RetryPolicy(base_delay=0.2, factor=2.0, max_delay=5.0, jitter=jitter)
    nominal = attrs.evolve(policy, jitter=0).delay(retry_number)
    delay = policy.delay(retry_number, random.Random(seed))
    assert nominal * (1 - jitter) <= delay <= nominal


def test_jitter_is_reproducible_and_actually_random() -> None:
    policy = RetryPolicy(jitter=0.5)
    assert policy.delay(3, random.Random(7)) == policy.delay(3, random.Random(7))
    assert len({policy.delay(3, random.Random(seed)) for seed in range(20)}) > 1


def test_should_retry_rules() -> None:
    policy = RetryPolicy(max_attempts=3, retry_on=lambda exc: not isinstance(exc, KeyError))
    assert policy.should_retry(ValueError(), 1)
    assert policy.should_retry(ValueError(), 2)
    assert not policy.should_retry(ValueError(), 3)  # attempts exhausted
    assert not policy.should_retry(KeyError(), 1)  # predicate says no
    always = RetryPolicy(max_attempts=100, retry_on=lambda exc: True)
    assert not always.should_retry(KeyboardInterrupt(), 1)
    assert not always.should_retry(BaseExceptionGroup("g", [KeyboardInterrupt()]), 1)


# --- retry() ---


async def test_delays_follow_policy(autojump_clock: trio.testing.MockClock) -> None:
    fn = Flaky(failures=4)
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, factor=2.0, max_delay=5.0, jitter=0)
    calls: list[tuple[int, str, float]] = []
    result = await retry(fn, policy, on_retry=lambda n, exc, d: calls.append((n, str(exc), d)))
    assert result == "ok"
    assert deltas(fn.times) == pytest.approx([1.0, 2.0, 4.0, 5.0])  # last one capped
    assert calls == [
        (1, "failure 1", 1.0),
        (2, "failure 2", 2.0),
        (3, "failure 3", 4.0),
        (4, "failure 4", 5.0),
    ]


async def test_jittered_sleeps_match_reported_delays(autojump_clock: trio.testing.MockClock) -> None:
    fn = Flaky(failures=3)
    policy = RetryPolicy(max_attempts=4, base_delay=1.0, jitter=0.5)
    reported: list[float] = []
    await retry(fn, policy, on_retry=lambda n, exc, d: reported.append(d), rng=random.Random(1))
    assert deltas(fn.times) == pytest.approx(reported)
    assert reported != [1.0, 2.0, 4.0]


async def test_last_exception_reraised_after_exhaustion(autojump_clock: trio.testing.MockClock) -> None:
    fn = Flaky(failures=10)
    with pytest.raises(ValueError) as info:
        await retry(fn, RetryPolicy(max_attempts=3, jitter=0))
    assert len(fn.times) == 3
    assert info.value is fn.raised[-1]


async def test_retry_on_predicate_stops_retrying(autojump_clock: trio.testing.MockClock) -> None:
    fn = Flaky(failures=10, exc_type=KeyError)
    policy = RetryPolicy(max_attempts=5, retry_on=lambda exc: not isinstance(exc, KeyError))
    with pytest.raises(KeyError):
        await retry(fn, policy)
    assert len(fn.times) == 1


async def test_single_attempt_policy_does_not_retry(autojump_clock: trio.testing.MockClock) -> None:
    fn = Flaky(failures=1)
    with pytest.raises(ValueError):
        await retry(fn, RetryPolicy(max_attempts=1))
    assert len(fn.times) == 1


async def test_limiter_released_during_backoff(autojump_clock: trio.testing.MockClock) -> None:
    limiter = trio.CapacityLimiter(1)
    fn = Flaky(failures=1)
    other_got_slot_at: list[float] = []
    policy = RetryPolicy(max_attempts=2, base_delay=10.0, jitter=0)

    async def other() -> None:
        await trio.sleep(1)  # well inside the 10 s backoff
        async with limiter:
            other_got_slot_at.append(trio.current_time())

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        assert await retry(fn, policy, limiter=limiter) == "ok"
    assert other_got_slot_at == [pytest.approx(start + 1)]
    assert limiter.borrowed_tokens == 0


async def test_attempts_hold_the_limiter(autojump_clock: trio.testing.MockClock) -> None:
    limiter = trio.CapacityLimiter(1)
    seen: list[int] = []

    async def fn() -> None:
        seen.append(limiter.borrowed_tokens)

    await retry(fn, RetryPolicy(), limiter=limiter)
    assert seen == [1]


async def test_cancelled_is_never_retried(autojump_clock: trio.testing.MockClock) -> None:
    attempts = 0

    async def fn() -> None:
        nonlocal attempts
        attempts += 1
        await trio.sleep_forever()

    policy = RetryPolicy(max_attempts=100, retry_on=lambda exc: True)
    with trio.move_on_after(1) as scope:
        await retry(fn, policy)
    assert scope.cancelled_caught
    assert attempts == 1


async def test_cancel_during_backoff(autojump_clock: trio.testing.MockClock) -> None:
    fn = Flaky(failures=10)
    with trio.move_on_after(5) as scope:
        await retry(fn, RetryPolicy(max_attempts=10, base_delay=100.0, jitter=0))
    assert scope.cancelled_caught
    assert len(fn.times) == 1
    assert trio.current_time() == pytest.approx(5)
