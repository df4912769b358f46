"""Tests for run_in_thread / run_in_process.

These use the real clock on purpose: an autojump clock would jump virtual time while the
Trio loop waits on a thread or process, firing the ``fail_after`` guards spuriously. Threads
are driven by events, never by sleeping on the Trio loop.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time

import pytest
import trio
import trio.testing

from trioworks.core import CancelOutcome, run_in_process, run_in_thread

GUARD = 10  # seconds: generous upper bound, only reached if something hangs


# --- process targets: module level so the worker process can unpickle them ---


def _add(a: int, b: int) -> int:
    return a + b


def _boom(message: str) -> None:
    raise ValueError(message)


def _report_pid_then_sleep(port: int) -> None:
    # The worker tells the test it is running by connecting back: an event, not a polled file.
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(f"{os.getpid()}\n".encode())
        time.sleep(3600)  # only a kill ends it within the test's fail_after


# --- run_in_thread ---


async def test_thread_returns_value_and_never_reports_cancel() -> None:
    outcomes: list[CancelOutcome] = []
    with trio.fail_after(GUARD):
        result = await run_in_thread(_add, 2, 3, limiter=trio.CapacityLimiter(1), on_cancel=outcomes.append)
    assert result == 5
    assert outcomes == []


async def test_thread_exception_propagates_unchanged() -> None:
    err = KeyError("x")

    def fail() -> None:
        raise err

    outcomes: list[CancelOutcome] = []
    with trio.fail_after(GUARD), pytest.raises(KeyError) as info:
        await run_in_thread(fail, limiter=trio.CapacityLimiter(1), on_cancel=outcomes.append)
    assert info.value is err
    assert outcomes == []


@pytest.mark.parametrize("abandon", [False, True])
async def test_thread_cancelled_waiting_for_limiter_is_not_started(abandon: bool) -> None:
    limiter = trio.CapacityLimiter(1)
    holder = object()
    await limiter.acquire_on_behalf_of(holder)
    ran = threading.Event()
    outcomes: list[CancelOutcome] = []

    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def call() -> None:
                with scope:
                    await run_in_thread(
                        ran.set, limiter=limiter, abandon_on_cancel=abandon, on_cancel=outcomes.append
                    )

            nursery.start_soon(call)
            await trio.testing.wait_all_tasks_blocked()
            assert limiter.statistics().tasks_waiting == 1
            scope.cancel()

    assert scope.cancelled_caught  # Cancelled propagated out of run_in_thread
    assert outcomes == [CancelOutcome.NOT_STARTED]
    limiter.release_on_behalf_of(holder)
    assert limiter.borrowed_tokens == 0
    assert not ran.is_set()


async def test_thread_cancel_without_abandon_waits_for_thread() -> None:
    started = trio.Event()
    release = threading.Event()
    finished = threading.Event()
    outcomes: list[CancelOutcome] = []

    def work() -> int:
        trio.from_thread.run_sync(started.set)
        release.wait(GUARD)
        finished.set()
        return 42

    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def call() -> None:
                with scope:
                    await run_in_thread(work, limiter=trio.CapacityLimiter(1), on_cancel=outcomes.append)
                    pytest.fail("the result must be discarded once cancelled")  # pragma: no cover

            nursery.start_soon(call)
            await started.wait()
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            # Still inside run_in_thread: it is waiting for the thread, not abandoning it.
            assert outcomes == []
            assert not finished.is_set()
            release.set()

    assert finished.is_set()
    assert scope.cancelled_caught
    assert outcomes == [CancelOutcome.WAITED]


async def test_thread_cancel_without_abandon_lets_fn_exception_win() -> None:
    started = trio.Event()
    release = threading.Event()
    outcomes: list[CancelOutcome] = []

    def work() -> None:
        trio.from_thread.run_sync(started.set)
        release.wait(GUARD)
        raise RuntimeError("failed while cancelled")

    with trio.fail_after(GUARD), pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="while cancelled")):
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def call() -> None:
                with scope:
                    await run_in_thread(work, limiter=trio.CapacityLimiter(1), on_cancel=outcomes.append)

            nursery.start_soon(call)
            await started.wait()
            scope.cancel()
            release.set()
    assert outcomes == []


async def test_thread_cancel_with_abandon_leaves_thread_running() -> None:
    limiter = trio.CapacityLimiter(1)
    started = trio.Event()
    release = threading.Event()
    finished = threading.Event()
    outcomes: list[CancelOutcome] = []

    def work() -> None:
        trio.from_thread.run_sync(started.set)
        release.wait(GUARD)
        finished.set()

    try:
        with trio.fail_after(GUARD):
            async with trio.open_nursery() as nursery:
                scope = trio.CancelScope()

                async def call() -> None:
                    with scope:
                        await run_in_thread(
                            work, limiter=limiter, abandon_on_cancel=True, on_cancel=outcomes.append
                        )

                nursery.start_soon(call)
                await started.wait()
                scope.cancel()

        assert scope.cancelled_caught
        assert outcomes == [CancelOutcome.ABANDONED]
        assert not finished.is_set()  # we returned while the thread is still running
        assert limiter.borrowed_tokens == 1  # the abandoned thread keeps its slot until it ends
    finally:
        release.set()
    with trio.fail_after(GUARD):
        await trio.to_thread.run_sync(finished.wait)


def test_start_gate_closed_before_thread_begins_means_fn_never_runs() -> None:
    # The race "abandoned after the thread was spawned but before fn began" cannot be driven
    # deterministically through trio.to_thread, so the gate deciding it is tested directly.
    from trioworks.core._offload import _StartGate

    late = _StartGate()
    assert late.close() is False  # cancelled first: reported NOT_STARTED ...
    assert late.enter() is False  # ... and the thread then skips fn
    early = _StartGate()
    assert early.enter() is True
    assert early.close() is True  # fn had started: ABANDONED / WAITED


async def test_on_cancel_error_does_not_replace_cancelled(caplog: pytest.LogCaptureFixture) -> None:
    limiter = trio.CapacityLimiter(1)
    await limiter.acquire_on_behalf_of(object())  # never free: the call can only be cancelled

    def bad_callback(outcome: CancelOutcome) -> None:
        raise RuntimeError("callback bug")

    with trio.fail_after(GUARD):
        with trio.move_on_after(0.01) as scope:
            await run_in_thread(time.sleep, 0, limiter=limiter, on_cancel=bad_callback)
    assert scope.cancelled_caught
    assert "callback bug" in caplog.text


async def test_thread_limiter_bounds_concurrency() -> None:
    limit = 2
    lock = threading.Lock()
    current = 0
    max_seen = 0
    # Threads meet in pairs, which proves `limit` really run at once; a third concurrent
    # thread would be counted before it blocked at the barrier.
    barrier = threading.Barrier(limit, timeout=GUARD)

    def work() -> None:
        nonlocal current, max_seen
        with lock:
            current += 1
            max_seen = max(max_seen, current)
        barrier.wait()
        with lock:
            current -= 1

    limiter = trio.CapacityLimiter(limit)
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            for _ in range(3 * limit):
                nursery.start_soon(functools.partial(run_in_thread, work, limiter=limiter))
    assert max_seen == limit


# --- run_in_process ---


async def test_process_returns_value_and_propagates_exceptions() -> None:
    limiter = trio.CapacityLimiter(1)
    outcomes: list[CancelOutcome] = []
    with trio.fail_after(30):  # the first call spawns a worker process
        assert await run_in_process(_add, 2, 3, limiter=limiter, on_cancel=outcomes.append) == 5
        with pytest.raises(ValueError, match="boom"):
            await run_in_process(_boom, "boom", limiter=limiter, on_cancel=outcomes.append)
    assert outcomes == []
    assert limiter.borrowed_tokens == 0


async def test_process_cancelled_waiting_for_limiter_is_not_started() -> None:
    limiter = trio.CapacityLimiter(1)
    holder = object()
    await limiter.acquire_on_behalf_of(holder)
    outcomes: list[CancelOutcome] = []
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def call() -> None:
                with scope:
                    await run_in_process(_add, 1, 1, limiter=limiter, on_cancel=outcomes.append)

            nursery.start_soon(call)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
    assert scope.cancelled_caught
    assert outcomes == [CancelOutcome.NOT_STARTED]
    assert limiter.borrowed_tokens == 1  # only ours: the cancelled call released nothing it lacked


async def test_process_killed_on_cancel() -> None:
    limiter = trio.CapacityLimiter(1)
    outcomes: list[CancelOutcome] = []
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    with trio.fail_after(30):
        async with listeners[0], trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def call() -> None:
                with scope:
                    await run_in_process(
                        _report_pid_then_sleep, port, limiter=limiter, on_cancel=outcomes.append
                    )

            nursery.start_soon(call)
            async with await listeners[0].accept() as stream:  # fn is running in the worker
                data = b""
                while not data.endswith(b"\n"):
                    data += await stream.receive_some()
                pid = int(data)
                scope.cancel()
    assert scope.cancelled_caught
    assert outcomes == [CancelOutcome.KILLED]
    assert limiter.borrowed_tokens == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped before run_in_process returned
