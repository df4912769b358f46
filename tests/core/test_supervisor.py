"""Tests for supervise(); all timing runs on the autojump clock."""

from __future__ import annotations

import functools
import itertools
import logging
import pickle

import pytest
import trio
import trio.testing

from trioworks.core import RestartIntensityExceeded, RestartPolicy, RetryPolicy, supervise

NO_JITTER = RetryPolicy(base_delay=0.1, factor=2.0, max_delay=5.0, jitter=0)


class Child:
    """A child failing ``failures`` times (after ``run_for`` seconds each), then returning."""

    def __init__(self, failures: int, run_for: float = 0.0) -> None:
        self.failures = failures
        self.run_for = run_for
        self.starts: list[float] = []
        self.last_exc: Exception | None = None

    async def __call__(self) -> None:
        self.starts.append(trio.current_time())
        await trio.sleep(self.run_for)
        if len(self.starts) <= self.failures:
            self.last_exc = RuntimeError(f"crash {len(self.starts)}")
            raise self.last_exc


def test_restart_policy_defaults_and_validation() -> None:
    policy = RestartPolicy()
    assert (policy.max_restarts, policy.window) == (3, 5.0)
    assert (policy.backoff.base_delay, policy.backoff.factor, policy.backoff.max_delay) == (0.1, 2.0, 5.0)
    assert policy.backoff.jitter == 0.1
    with pytest.raises(ValueError):
        RestartPolicy(max_restarts=-1)
    with pytest.raises(ValueError):
        RestartPolicy(window=0)


async def test_restarts_until_child_returns(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    child = Child(failures=3)
    restarts: list[tuple[str, str, int]] = []
    policy = RestartPolicy(max_restarts=3, window=5.0, backoff=NO_JITTER)
    with caplog.at_level(logging.ERROR, logger="trioworks.supervisor"):
        await supervise(
            child, name="worker", policy=policy, on_restart=lambda n, e, c: restarts.append((n, str(e), c))
        )
    assert len(child.starts) == 4
    assert restarts == [("worker", "crash 1", 1), ("worker", "crash 2", 2), ("worker", "crash 3", 3)]
    # The backoff uses the restart count within the window as retry number.
    assert [b - a for a, b in itertools.pairwise(child.starts)] == pytest.approx([0.1, 0.2, 0.4])
    failures = [r for r in caplog.records if r.name == "trioworks.supervisor"]
    assert len(failures) == 3
    assert all(r.exc_info is not None for r in failures)  # logged with traceback


async def test_intensity_exceeded_raised_from_last_failure(autojump_clock: trio.testing.MockClock) -> None:
    child = Child(failures=100)
    restarts: list[int] = []
    policy = RestartPolicy(max_restarts=3, window=5.0, backoff=NO_JITTER)
    with pytest.raises(RestartIntensityExceeded) as info:
        await supervise(child, name="db", policy=policy, on_restart=lambda n, e, c: restarts.append(c))
    assert len(child.starts) == 4  # first run + 3 restarts
    assert restarts == [1, 2, 3]
    err = info.value
    assert (err.name, err.restarts, err.window) == ("db", 3, 5.0)
    assert err.__cause__ is child.last_exc
    assert "db" in str(err)


def test_intensity_exceeded_pickles() -> None:
    err = pickle.loads(pickle.dumps(RestartIntensityExceeded("x", 2, 1.5)))
    assert (err.name, err.restarts, err.window) == ("x", 2, 1.5)


async def test_zero_restarts_gives_up_on_first_failure(autojump_clock: trio.testing.MockClock) -> None:
    child = Child(failures=1)
    with pytest.raises(RestartIntensityExceeded):
        await supervise(child, name="once", policy=RestartPolicy(max_restarts=0))
    assert len(child.starts) == 1


async def test_failures_spread_beyond_window_restart_forever(autojump_clock: trio.testing.MockClock) -> None:
    # Each run lasts 10 s before crashing: never more than one restart per 5 s window.
    child = Child(failures=20, run_for=10.0)
    counts: list[int] = []
    policy = RestartPolicy(max_restarts=3, window=5.0, backoff=NO_JITTER)
    await supervise(child, name="slow", policy=policy, on_restart=lambda n, e, c: counts.append(c))
    assert len(child.starts) == 21
    assert counts == [1] * 20


async def test_old_restarts_leave_the_window(autojump_clock: trio.testing.MockClock) -> None:
    # 3 quick crashes, a long healthy run, then 3 more quick crashes: the window has emptied.
    times = iter([0, 0, 0, 60, 0, 0, 0])
    starts = 0

    async def child() -> None:
        nonlocal starts
        starts += 1
        await trio.sleep(next(times))
        if starts <= 6:
            raise ValueError(starts)

    counts: list[int] = []
    policy = RestartPolicy(max_restarts=3, window=5.0, backoff=NO_JITTER)
    await supervise(child, name="c", policy=policy, on_restart=lambda n, e, c: counts.append(c))
    assert counts == [1, 2, 3, 1, 2, 3]


async def test_exception_group_from_child_is_restarted(autojump_clock: trio.testing.MockClock) -> None:
    runs = 0

    async def child() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep_forever)
                raise ValueError("inner")

    seen: list[BaseException] = []
    await supervise(child, name="g", on_restart=lambda n, e, c: seen.append(e))
    assert runs == 2
    assert isinstance(seen[0], ExceptionGroup)


async def test_cancellation_stops_without_restart(autojump_clock: trio.testing.MockClock) -> None:
    child = Child(failures=0, run_for=1000.0)
    restarts: list[int] = []
    with trio.move_on_after(3) as scope:
        await supervise(child, name="c", on_restart=lambda n, e, c: restarts.append(c))
    assert scope.cancelled_caught
    assert len(child.starts) == 1
    assert restarts == []


async def test_cancellation_during_backoff(autojump_clock: trio.testing.MockClock) -> None:
    child = Child(failures=100)
    slow = RestartPolicy(backoff=RetryPolicy(base_delay=100.0, max_delay=100.0, jitter=0))
    with trio.move_on_after(3) as scope:
        await supervise(child, name="c", policy=slow)
    assert scope.cancelled_caught
    assert len(child.starts) == 1


async def test_base_exceptions_propagate_without_restart(autojump_clock: trio.testing.MockClock) -> None:
    runs = 0

    async def child() -> None:
        nonlocal runs
        runs += 1
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await supervise(child, name="ki")
    assert runs == 1


async def test_started_with_nursery_start(autojump_clock: trio.testing.MockClock) -> None:
    child = Child(failures=0, run_for=10.0)
    async with trio.open_nursery() as nursery:
        result = await nursery.start(functools.partial(supervise, child, name="s"))
        assert result is None
        assert trio.current_time() == pytest.approx(0)  # started() before the child finished
        assert len(child.starts) == 1
    assert trio.current_time() == pytest.approx(10)
