"""Process activities (real time: worker processes) and the phased drain."""

from __future__ import annotations

import os
import signal
import threading

import pytest
import trio
import worker_procs
from worker_fake import FakeServer, make_config, wait_until

from trioworks.worker import ActivityContext, ActivityResult, CancelReason, activity

pytestmark = pytest.mark.slow

reasons: list[CancelReason | None] = []
release = threading.Event()
waiting = threading.Event()


@activity()
async def sleeper(params: dict, ctx: ActivityContext) -> ActivityResult:
    try:
        await trio.sleep(params["seconds"])
    except trio.Cancelled:
        reasons.append(ctx.cancel_reason)
        raise
    return ActivityResult.value("slept", params["seconds"])


@activity()
def waiter(params: dict, ctx: ActivityContext) -> ActivityResult:
    waiting.set()
    release.wait(params["seconds"])
    return ActivityResult.value("waited", True)


async def test_process_activity_runs_in_another_process(fake: FakeServer, start_worker) -> None:
    row = fake.add("square", {"x": 7})
    await start_worker([worker_procs.square], max_processes=1)
    await wait_until(lambda: fake.done, limit=30)
    assert row.report["output"]["result"] == 49
    assert row.report["output"]["pid"] != os.getpid()


async def test_process_timeout_kills_and_crash_is_panic(fake: FakeServer, start_worker) -> None:
    slow = fake.add("spin", {"seconds": 60}, timeout_seconds=2)
    dead = fake.add("crash")
    await start_worker([worker_procs.spin, worker_procs.crash, worker_procs.square], max_processes=2)
    await wait_until(lambda: fake.done, limit=30)
    assert slow.report["error"]["code"] == "TIMEOUT"
    assert "process was killed" in slow.report["error"]["message"]
    assert (dead.report["error"]["code"], dead.report["error"]["retryable"]) == ("PANIC", True)
    after = fake.add("square", {"x": 2})  # the worker survived the crash
    await wait_until(lambda: after.status == "completed", limit=30)


async def test_drain_lets_running_work_finish(fake: FakeServer, start_worker, autojump_clock) -> None:
    rows = [fake.add("sleeper", {"seconds": 10}) for _ in range(3)]
    worker = await start_worker([sleeper], max_activities=3, shutdown_timeout=30)
    await wait_until(lambda: all(r.status == "running" for r in rows))
    late = fake.add("sleeper", {"seconds": 1})
    await worker.drain()
    assert all(len(r.completions) == 1 for r in rows)
    assert late.status == "pending"  # polling stopped first
    assert trio.current_time() < 15


async def test_drain_timeout_cancels_async_thread_and_process_work(fake: FakeServer, start_worker) -> None:
    reasons.clear()
    release.clear()
    waiting.clear()
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    a = fake.add("sleeper", {"seconds": 600})
    t = fake.add("waiter", {"seconds": 60})
    p = fake.add("spin_reporting", {"seconds": 60, "port": port})
    quick = fake.add("sleeper", {"seconds": 0.2})
    worker = await start_worker(
        [sleeper, waiter, worker_procs.spin_reporting],
        max_activities=4,
        max_processes=1,
        shutdown_timeout=1.5,
    )
    try:
        with trio.fail_after(30):
            async with listeners[0], await listeners[0].accept():  # the process activity is running
                pass
        await wait_until(lambda: quick.status == "completed" and waiting.is_set(), limit=30)
        with trio.fail_after(20):
            await worker.drain()
    finally:
        release.set()
    assert reasons == [CancelReason.SHUTDOWN]
    for row in (a, t, p):
        error = row.report["error"]
        assert (error["code"], error["retryable"]) == ("WORKER_SHUTDOWN", True)
    assert "thread was abandoned" in t.report["error"]["message"]
    assert "process was killed" in p.report["error"]["message"]


async def test_second_signal_cuts_the_drain_short(fake: FakeServer, start_worker, autojump_clock) -> None:
    row = fake.add("sleeper", {"seconds": 1000})
    worker = await start_worker([sleeper], shutdown_timeout=300, handle_signals=True)
    await wait_until(lambda: row.status == "running")
    os.kill(os.getpid(), signal.SIGTERM)
    await trio.sleep(50)
    assert worker.stats().running == 1  # still waiting for it (shutdown timeout 300 s)
    os.kill(os.getpid(), signal.SIGINT)
    await wait_until(lambda: fake.done)
    assert trio.current_time() < 100
    assert row.report["error"]["code"] == "WORKER_SHUTDOWN"


async def test_cancelling_run_still_reports(fake: FakeServer, autojump_clock) -> None:
    from trioworks.worker import Worker

    row = fake.add("sleeper", {"seconds": 1000})
    worker = Worker(make_config(), [sleeper], transport=fake.transport)
    with trio.move_on_after(5):
        await worker.run()
    assert row.report["error"]["code"] == "WORKER_SHUTDOWN"
