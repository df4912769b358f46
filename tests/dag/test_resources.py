from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trioworks.dag._resources import (
    CircuitBreakerPolicy,
    CircuitOpenError,
    ResourceCreationError,
    ResourceError,
    ResourceRegistry,
    UnknownResourceError,
)


class Conn:
    """A stand-in resource that remembers whether it was closed."""

    def __init__(self, n: int = 0) -> None:
        self.n = n
        self.closed = False


@pytest.fixture
def thread_safe_clock() -> trio.testing.MockClock:
    """Virtual time for tests that also run worker threads.

    With ``autojump_clock`` (threshold 0) a task waiting for a thread counts as idle, so the clock
    jumps to the next deadline (say a cleanup timeout) while the thread is still running. Jumping
    only after 50 ms of real idleness keeps the time virtual without that race.
    """
    return trio.testing.MockClock(autojump_threshold=0.05)


def counting_factory(calls: list[int], delay: float = 0.0) -> Any:
    async def factory() -> Conn:
        calls.append(1)
        await trio.sleep(delay)
        return Conn(len(calls))

    return factory


async def test_lazy_creation_happens_once_under_concurrent_first_use(autojump_clock: Any) -> None:
    calls: list[int] = []
    registry = ResourceRegistry()
    registry.register_factory("db", counting_factory(calls, delay=1.0))
    assert calls == []  # registration creates nothing
    got: list[Any] = []

    async def use() -> None:
        got.append(await registry.get_resource("db"))

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(use)

    assert len(calls) == 1
    assert len(got) == 50
    assert all(r is got[0] for r in got)
    assert registry.metrics()["db"]["created"] == 1
    assert registry.metrics()["db"]["accessed"] == 50


@settings(max_examples=30, deadline=None)
@given(
    starts=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=12),
    delay=st.floats(min_value=0, max_value=2),
)
def test_single_creation_for_any_interleaving(starts: list[float], delay: float) -> None:
    calls: list[int] = []
    got: list[Any] = []

    async def main() -> None:
        registry = ResourceRegistry()
        registry.register_factory("db", counting_factory(calls, delay))

        async def use(start: float) -> None:
            await trio.sleep(start)
            got.append(await registry.get_resource("db"))

        async with trio.open_nursery() as nursery:
            for start in starts:
                nursery.start_soon(use, start)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(calls) == 1
    assert len(got) == len(starts) and all(r is got[0] for r in got)


async def test_sync_factory_runs_in_a_worker_thread() -> None:
    seen: list[threading.Thread] = []

    def factory() -> Conn:
        seen.append(threading.current_thread())
        return Conn()

    registry = ResourceRegistry()
    registry.register_factory("db", factory)
    conn = await registry.get_resource("db")
    assert isinstance(conn, Conn)
    assert threading.current_thread() is threading.main_thread()
    assert len(seen) == 1 and seen[0] is not threading.main_thread()


async def test_sync_factory_uses_the_given_thread_limiter() -> None:
    limiter = trio.CapacityLimiter(1)
    borrowed: list[int] = []

    def factory() -> Conn:
        borrowed.append(limiter.borrowed_tokens)
        return Conn()

    registry = ResourceRegistry(thread_limiter=limiter)
    registry.register_factory("db", factory)
    await registry.get_resource("db")
    assert borrowed == [1]


async def test_factory_objects_with_create_method() -> None:
    class AsyncPoolFactory:  # Kailash ResourceFactory style
        async def create(self) -> Conn:
            await trio.lowlevel.checkpoint()
            return Conn(1)

    class SyncPoolFactory:
        def create(self) -> Conn:
            assert threading.current_thread() is not threading.main_thread()
            return Conn(2)

    registry = ResourceRegistry()
    registry.register_factory("a", AsyncPoolFactory())
    registry.register_factory("s", SyncPoolFactory())
    assert (await registry.get_resource("a")).n == 1
    assert (await registry.get_resource("s")).n == 2


async def test_unknown_name_suggests_a_close_match() -> None:
    registry = ResourceRegistry()
    registry.register_factory("database", counting_factory([]))
    registry.register_factory("cache", counting_factory([]))
    with pytest.raises(UnknownResourceError) as info:
        await registry.get_resource("databse")
    message = str(info.value)
    assert "did you mean 'database'" in message
    assert "'cache'" in message and "'database'" in message
    assert info.value.name == "databse"
    assert isinstance(info.value, KeyError) and isinstance(info.value, ResourceError)
    with pytest.raises(UnknownResourceError) as info:
        await registry.get_resource("zzz")
    assert "did you mean" not in str(info.value)


def test_duplicate_and_invalid_registration() -> None:
    registry = ResourceRegistry()
    registry.register_factory("db", counting_factory([]))
    with pytest.raises(ValueError, match="'db'"):
        registry.register_factory("db", counting_factory([]))
    with pytest.raises(ValueError, match="non-empty"):
        registry.register_factory("", counting_factory([]))
    with pytest.raises(TypeError, match="create"):
        registry.register_factory("x", 42)  # type: ignore[arg-type]
    assert registry.names() == ["db"]
    assert "db" in registry and "x" not in registry


async def test_unhealthy_resource_is_cleaned_up_and_recreated() -> None:
    calls: list[int] = []
    cleaned: list[Conn] = []

    async def health(conn: Conn) -> bool:
        return conn.n != 1  # the first instance is broken

    registry = ResourceRegistry()
    # cleaned.append is sync: it runs in a worker thread
    registry.register_factory("db", counting_factory(calls), health_check=health, cleanup=cleaned.append)
    first = await registry.get_resource("db")
    assert first.n == 1  # no health check on the call that created it
    second = await registry.get_resource("db")
    assert second.n == 2
    assert cleaned == [first]
    assert await registry.get_resource("db") is second
    m = registry.metrics()["db"]
    assert (m["created"], m["health_failures"], m["recreations"], m["accessed"]) == (2, 1, 1, 3)


async def test_concurrent_accessors_do_not_double_recreate(thread_safe_clock: Any) -> None:
    calls: list[int] = []

    def health(conn: Conn) -> bool:  # sync: runs in a thread
        if conn.n == 1:
            raise ConnectionError("ping failed")  # raising counts as unhealthy
        return True

    registry = ResourceRegistry()
    registry.register_factory("db", counting_factory(calls, delay=1.0), health_check=health)
    first = await registry.get_resource("db")
    got: list[Conn] = []

    async def use() -> None:
        got.append(await registry.get_resource("db"))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(use)
    assert len(calls) == 2
    assert all(c.n == 2 for c in got)
    assert first.n == 1
    assert registry.metrics()["db"]["health_failures"] == 1


@pytest.mark.parametrize("healthy", [True, False])
async def test_cleanup_during_a_health_check_then_access_creates_anew(
    autojump_clock: Any, healthy: bool
) -> None:
    calls: list[int] = []
    cleaned: list[Conn] = []

    async def slow_health(conn: Conn) -> bool:
        await trio.sleep(1)
        return healthy

    async def cleanup(conn: Conn) -> None:
        cleaned.append(conn)

    registry = ResourceRegistry()
    registry.register_factory("db", counting_factory(calls), health_check=slow_health, cleanup=cleanup)
    first = await registry.get_resource("db")

    async def cleanup_soon() -> None:
        await trio.sleep(0.5)  # while the health check of the next access runs
        await registry.cleanup()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(cleanup_soon)
        second = await registry.get_resource("db")
    assert isinstance(second, Conn) and second.n == 2
    assert cleaned == [first]  # once, by cleanup(), not again by the failed health check
    await registry.cleanup()
    assert cleaned == [first, second]


async def test_health_check_interval(autojump_clock: Any) -> None:
    checks: list[float] = []

    async def health(conn: Conn) -> bool:
        checks.append(trio.current_time())
        return True

    registry = ResourceRegistry(health_check_interval=10.0)
    registry.register_factory("db", counting_factory([]), health_check=health)
    await registry.get_resource("db")
    await trio.sleep(5)
    await registry.get_resource("db")
    assert checks == []
    await trio.sleep(5)
    await registry.get_resource("db")
    await registry.get_resource("db")
    assert len(checks) == 1


async def test_circuit_opens_half_opens_and_closes(autojump_clock: Any) -> None:
    calls: list[float] = []
    broken = True

    async def factory() -> Conn:
        calls.append(trio.current_time())
        if broken:
            raise ConnectionRefusedError("db down")
        return Conn()

    registry = ResourceRegistry()  # Kailash defaults: 5 failures, 30 s
    registry.register_factory("db", factory)
    for _ in range(5):
        with pytest.raises(ResourceCreationError) as info:
            await registry.get_resource("db")
        assert isinstance(info.value.__cause__, ConnectionRefusedError)
    opened_at = trio.current_time()
    assert registry.metrics()["db"]["state"] == "open"

    with pytest.raises(CircuitOpenError) as open_info:
        await registry.get_resource("db")
    assert open_info.value.retry_at == pytest.approx(opened_at + 30)
    assert open_info.value.name == "db"
    await trio.sleep(29.9)
    with pytest.raises(CircuitOpenError):
        await registry.get_resource("db")
    assert len(calls) == 5  # factory never called while open

    await trio.sleep(0.1)
    assert registry.metrics()["db"]["state"] == "half_open"
    broken = False
    conn = await registry.get_resource("db")
    assert isinstance(conn, Conn)
    assert len(calls) == 6
    m = registry.metrics()["db"]
    assert (m["state"], m["consecutive_failures"], m["failures"]) == ("closed", 0, 5)


async def test_failed_half_open_trial_reopens(autojump_clock: Any) -> None:
    calls: list[int] = []

    async def factory() -> Conn:
        calls.append(1)
        await trio.sleep(1)
        raise OSError("still down")

    registry = ResourceRegistry(circuit_breaker=CircuitBreakerPolicy(failure_threshold=2, reset_timeout=10))
    registry.register_factory("db", factory)
    for _ in range(2):
        with pytest.raises(ResourceCreationError):
            await registry.get_resource("db")
    with pytest.raises(CircuitOpenError):
        await registry.get_resource("db")
    await trio.sleep(10)

    errors: list[BaseException] = []

    async def use() -> None:
        try:
            await registry.get_resource("db")
        except ResourceError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(use)
        await trio.sleep(0.5)
        assert registry.metrics()["db"]["state"] == "half_open"  # the trial is running
    assert len(calls) == 3  # one trial only
    assert len(errors) == 5 and all(isinstance(e, ResourceCreationError) for e in errors)
    with pytest.raises(CircuitOpenError) as info:
        await registry.get_resource("db")
    assert info.value.retry_at == pytest.approx(trio.current_time() + 10)


async def test_waiters_share_a_failure_and_a_later_call_retries(autojump_clock: Any) -> None:
    calls: list[int] = []

    async def factory() -> Conn:
        calls.append(1)
        await trio.sleep(1)
        if len(calls) == 1:
            raise TimeoutError("slow network")
        return Conn()

    registry = ResourceRegistry()
    registry.register_factory("db", factory)
    errors: list[BaseException] = []

    async def use() -> None:
        try:
            await registry.get_resource("db")
        except ResourceCreationError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(use)
    assert len(calls) == 1
    assert len(errors) == 5
    assert all(isinstance(e.__cause__, TimeoutError) for e in errors)
    assert isinstance(await registry.get_resource("db"), Conn)
    assert len(calls) == 2


async def test_cancelled_creator_leaves_creation_to_the_next_caller(autojump_clock: Any) -> None:
    calls: list[int] = []
    registry = ResourceRegistry()
    registry.register_factory("db", counting_factory(calls, delay=5))
    got: list[Conn] = []

    async def waiter() -> None:
        await trio.sleep(1)
        got.append(await registry.get_resource("db"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        with trio.move_on_after(2):
            await registry.get_resource("db")
    assert len(calls) == 2 and got[0].n == 2
    assert registry.metrics()["db"]["failures"] == 0


async def test_cancelled_sync_creation_keeps_the_resource() -> None:
    release = threading.Event()
    started = trio.Event()
    closed: list[Conn] = []
    calls: list[int] = []

    def factory() -> Conn:
        calls.append(1)
        trio.from_thread.run_sync(started.set)
        release.wait()
        return Conn(7)

    registry = ResourceRegistry()
    registry.register_factory("db", factory, cleanup=closed.append)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:

            async def cancel_then_release() -> None:
                await started.wait()
                scope.cancel()  # cancels us too: nothing below may checkpoint
                release.set()

            nursery.start_soon(cancel_then_release)
            await registry.get_resource("db")
    assert scope.cancelled_caught
    conn = await registry.get_resource("db")  # not created again
    assert conn.n == 7 and len(calls) == 1 and registry.metrics()["db"]["created"] == 1
    await registry.cleanup()
    assert closed == [conn]


async def test_cleanup_runs_in_reverse_creation_order() -> None:
    order: list[str] = []
    registry = ResourceRegistry()
    for name in ("a", "b", "c"):

        async def factory(name: str = name) -> str:
            return name

        registry.register_factory(name, factory, cleanup=order.append)
    for name in ("c", "a", "b"):  # creation order differs from registration order
        await registry.get_resource(name)
    await registry.cleanup()
    assert order == ["b", "a", "c"]
    await registry.cleanup()  # idempotent
    assert order == ["b", "a", "c"]
    assert registry.metrics()["a"]["created"] == 1
    await registry.get_resource("a")  # usable again after cleanup
    assert registry.metrics()["a"]["created"] == 2


async def test_cleanup_runs_when_the_owning_scope_is_cancelled(thread_safe_clock: Any) -> None:
    cleaned: list[str] = []

    async def slow_async_cleanup(resource: str) -> None:
        await trio.sleep(1)  # would raise Cancelled if the cleanup were not shielded
        cleaned.append(resource)

    def sync_cleanup(resource: str) -> None:
        cleaned.append(resource)

    async def make_a() -> str:
        return "a"

    async def make_b() -> str:
        return "b"

    registry = ResourceRegistry()
    registry.register_factory("a", make_a, cleanup=slow_async_cleanup)
    registry.register_factory("b", make_b, cleanup=sync_cleanup)
    with trio.CancelScope() as scope:
        async with registry:
            await registry.get_resource("a")
            await registry.get_resource("b")
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert cleaned == ["b", "a"]


async def test_cleanup_timeout_is_honoured(autojump_clock: Any, caplog: pytest.LogCaptureFixture) -> None:
    cleaned: list[str] = []

    async def stuck(resource: str) -> None:
        await trio.sleep_forever()

    async def ok(resource: str) -> None:
        cleaned.append(resource)

    async def make() -> str:
        return "x"

    registry = ResourceRegistry(cleanup_timeout=3)
    registry.register_factory("stuck", make, cleanup=stuck)
    registry.register_factory("ok", make, cleanup=ok)
    await registry.get_resource("ok")
    await registry.get_resource("stuck")
    start = trio.current_time()
    with caplog.at_level(logging.ERROR, logger="trioworks.dag.resources"):
        await registry.cleanup()
    assert trio.current_time() - start == pytest.approx(3)
    assert cleaned == ["x"]
    assert "cleanup of resource 'stuck' timed out after 3 s" in caplog.text


async def test_one_failing_cleanup_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    cleaned: list[str] = []

    def failing(resource: str) -> None:
        raise RuntimeError("disk on fire")

    registry = ResourceRegistry()
    for name in ("a", "b", "c"):

        async def factory(name: str = name) -> str:
            return name

        registry.register_factory(name, factory, cleanup=failing if name == "b" else cleaned.append)
        await registry.get_resource(name)
    with caplog.at_level(logging.ERROR, logger="trioworks.dag.resources"):
        await registry.cleanup()
    assert cleaned == ["c", "a"]
    assert "cleanup of resource 'b' failed" in caplog.text


async def test_async_with_uses_aclose_or_close_by_default() -> None:
    class AsyncClient:
        closed = False

        async def aclose(self) -> None:
            await trio.lowlevel.checkpoint()
            self.closed = True

    class SyncPool:
        closed_in: threading.Thread | None = None

        def close(self) -> None:
            self.closed_in = threading.current_thread()

    async def make_client() -> AsyncClient:
        return AsyncClient()

    async with ResourceRegistry() as registry:
        registry.register_factory("http", make_client)
        registry.register_factory("pool", SyncPool)
        client = await registry.get_resource("http")
        pool = await registry.get_resource("pool")
        assert not client.closed and pool.closed_in is None
    assert client.closed
    assert pool.closed_in is not None and pool.closed_in is not threading.main_thread()


async def test_metrics_counts() -> None:
    registry = ResourceRegistry(circuit_breaker=CircuitBreakerPolicy(failure_threshold=3))
    calls: list[int] = []

    async def flaky() -> Conn:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("first try fails")
        return Conn(len(calls))

    registry.register_factory("db", flaky, health_check=lambda conn: conn.n != 2)
    registry.register_factory("unused", counting_factory([]))
    with pytest.raises(ResourceCreationError):
        await registry.get_resource("db")
    await registry.get_resource("db")  # created (n=2)
    await registry.get_resource("db")  # unhealthy → recreated (n=3)
    await registry.get_resource("db")  # healthy
    assert registry.metrics() == {
        "db": {
            "created": 2,
            "accessed": 4,
            "health_failures": 1,
            "recreations": 1,
            "failures": 1,
            "consecutive_failures": 0,
            "state": "closed",
        },
        "unused": {
            "created": 0,
            "accessed": 0,
            "health_failures": 0,
            "recreations": 0,
            "failures": 0,
            "consecutive_failures": 0,
            "state": "closed",
        },
    }
