"""Fault injection with the scripted fake server: outages, 5xx, 409, tokens, timeouts, slots."""

from __future__ import annotations

import logging
import random
import threading

import httpx
import trio
from worker_fake import FakeServer, wait_until

from trioworks.worker import ActivityContext, ActivityResult, CancelReason, activity

seen_reasons: list[CancelReason | None] = []


@activity()
async def nap(params: dict, ctx: ActivityContext) -> ActivityResult:
    try:
        await trio.sleep(params.get("seconds", 1))
    finally:
        if ctx.cancelled:
            seen_reasons.append(ctx.cancel_reason)
    return ActivityResult.value("slept", params.get("seconds", 1))


gate = threading.Event()


@activity()
def blocked(params: dict, ctx: ActivityContext) -> ActivityResult:
    gate.wait(30)  # a real blocking call: the thread holds a work slot and a thread slot
    return ActivityResult.value("ok", True)


async def test_server_down_and_back_nothing_lost(fake: FakeServer, start_worker, autojump_clock) -> None:
    fake.down = True
    rows = [fake.add("nap", {"seconds": 5}) for _ in range(6)]
    worker = await start_worker([nap], max_activities=3)
    await trio.sleep(30)
    assert worker.stats().poll_errors >= 3
    fake.down = False
    # Down again while the first batch is running: reports must wait for the server, not be lost.
    await wait_until(lambda: fake.count("/workers/poll") and any(r.status == "running" for r in rows))
    fake.down = True
    await trio.sleep(10)
    fake.down = False
    await wait_until(lambda: fake.done)
    assert all(len(r.completions) == 1 and not r.failures for r in rows)
    assert worker.stats().reports_lost == 0


async def test_5xx_on_complete_retried_and_reported_once(
    fake: FakeServer, start_worker, autojump_clock
) -> None:
    row = fake.add("nap", {"seconds": 1})
    fake.script("/complete", 500, 503, httpx.ReadTimeout("slow"))
    await start_worker([nap])
    await wait_until(lambda: fake.done)
    assert fake.count(f"/activities/{row.activity_id}/complete") == 4
    assert len(row.completions) == 1


async def test_409_on_heartbeat_cancels_activity_and_reports_nothing(
    fake: FakeServer, start_worker, autojump_clock
) -> None:
    seen_reasons.clear()
    row = fake.add("nap", {"seconds": 1000}, timeout_seconds=30)
    other = fake.add("nap", {"seconds": 25}, timeout_seconds=30)
    worker = await start_worker([nap])
    await wait_until(lambda: row.heartbeats >= 1)
    fake.steal(row)
    await wait_until(lambda: other.status == "completed")
    assert seen_reasons == [CancelReason.LEASE_LOST]
    assert fake.count(f"{row.activity_id}/complete") == fake.count(f"{row.activity_id}/fail") == 0
    assert worker.stats().lease_lost == 1 and worker.running == {}
    assert other.heartbeats == 2  # at 10 s and 20 s: a third of the 30 s lease


async def test_timeouts_report_timeout_and_abandoned_thread(
    fake: FakeServer, start_worker, thread_clock
) -> None:
    seen_reasons.clear()
    gate.clear()
    slow = fake.add("nap", {"seconds": 100}, timeout_seconds=5)
    stuck = fake.add("blocked", timeout_seconds=5)
    try:
        await start_worker([nap, blocked], lag_interval=5)
        await wait_until(lambda: fake.done, step=1)
    finally:
        gate.set()
    assert seen_reasons == [CancelReason.TIMEOUT]
    for row in (slow, stuck):
        assert (row.report["error"]["code"], row.report["error"]["retryable"]) == ("TIMEOUT", True)
    assert "after 5 s" in slow.report["error"]["message"]
    assert "thread was abandoned" in stuck.report["error"]["message"]


async def test_default_timeout_applies_when_timeout_seconds_null(
    fake: FakeServer, start_worker, autojump_clock
) -> None:
    row = fake.add("nap", {"seconds": 10_000})
    await start_worker([nap], activity_timeout=120)
    await wait_until(lambda: fake.done)
    assert row.report["error"]["code"] == "TIMEOUT"
    assert trio.current_time() < 200
    assert row.heartbeats >= 5  # server lease 60 s -> every 20 s


async def test_token_refreshed_ahead_of_expiry(fake: FakeServer, start_worker, autojump_clock) -> None:
    fake.token_ttl = 100
    rows = [fake.add("nap", {"seconds": 40}) for _ in range(10)]
    worker = await start_worker([nap], max_activities=2)
    await wait_until(lambda: fake.done)
    assert trio.current_time() > 200
    assert fake.unauthorized == 0
    assert worker.client.token_fetches >= 3
    assert all(len(r.completions) == 1 for r in rows)


async def test_revoked_token_retried_once_with_a_fresh_one(
    fake: FakeServer, start_worker, autojump_clock
) -> None:
    worker = await start_worker([nap], max_activities=2)
    await trio.sleep(1)
    fake.revoke_tokens()
    row = fake.add("nap", {"seconds": 1})
    await wait_until(lambda: fake.done)
    assert fake.unauthorized == 1
    assert worker.client.token_fetches == 2
    assert len(row.completions) == 1


async def test_bad_credentials_back_off(fake: FakeServer, start_worker, autojump_clock) -> None:
    worker = await start_worker([nap], client_secret="wrong")
    await trio.sleep(60)
    polls = fake.count("/oauth/token")
    # Auth backoff: 1, 2, 4, 8, 16, 32 s (jittered): a handful of tries a minute, not 600.
    assert 3 <= polls <= 12, polls
    assert worker.stats().poll_errors == polls


async def test_slots_never_exceeded_and_poll_asks_for_free_slots(
    fake: FakeServer, start_worker, autojump_clock
) -> None:
    rng = random.Random(3)
    rows = [fake.add("nap", {"seconds": rng.uniform(0.1, 5)}) for _ in range(60)]
    worker = await start_worker([nap], max_activities=4, poll_max_activities=3)
    await wait_until(lambda: fake.done)
    assert fake.max_in_flight <= 4
    assert max(fake.poll_sizes) == 3 and min(fake.poll_sizes) >= 1
    assert all(len(r.completions) == 1 for r in rows)
    assert worker.work_slots.borrowed_tokens == 0


async def test_heartbeats_continue_while_all_slots_block(
    fake: FakeServer, start_worker, thread_clock
) -> None:
    gate.clear()
    rows = [fake.add("blocked", timeout_seconds=30) for _ in range(2)]
    try:
        await start_worker([blocked], max_activities=2, max_threads=2, lag_interval=5)
        await wait_until(lambda: all(r.heartbeats >= 2 for r in rows), step=2)
    finally:
        gate.set()
    await wait_until(lambda: fake.done)
    assert all(len(r.completions) == 1 for r in rows)


async def test_garbage_poll_answers_and_422_on_complete(
    fake: FakeServer, start_worker, autojump_clock
) -> None:
    fake.script(
        "/workers/poll",
        httpx.Response(200, json={"activities": [{"activity_id": 1}]}),
        httpx.Response(200, text="<html>not json</html>"),
        422,
    )
    row = fake.add("nap", {"seconds": 1})
    fake.script("/complete", 422)
    worker = await start_worker([nap])
    await wait_until(lambda: fake.done)
    assert (row.report["error"]["code"], row.report["error"]["retryable"]) == ("INVALID_OUTPUT", False)
    assert worker.stats().poll_errors == 3
    assert worker.metrics.snapshot().get("poller.restarts", 0) == 0


async def test_report_deadline_gives_up_and_worker_keeps_serving(
    fake: FakeServer, start_worker, autojump_clock, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="trioworks.worker")
    lost = fake.add("nap", {"seconds": 1})
    fake.script("/complete", *[503] * 200)
    worker = await start_worker([nap], report_timeout=20, health_interval=5)
    await wait_until(lambda: worker.stats().reports_lost == 1)
    assert lost.status == "running"  # the server will hand it out again after the lease
    assert 20 <= trio.current_time() < 25
    fake.scripted.clear()
    later = fake.add("nap", {"seconds": 1})
    await wait_until(lambda: later.status == "completed")
    assert any("health: slots" in r.getMessage() for r in caplog.records)


async def test_a_heartbeat_answered_with_garbage_is_a_failed_heartbeat(
    fake: FakeServer, start_worker, autojump_clock
) -> None:
    # The heartbeat loop runs in the heartbeat starter's nursery: an answer it cannot read must not
    # take the worker down; it is retried sooner, like a 5xx.
    row = fake.add("nap", {"seconds": 25}, timeout_seconds=30)
    fake.script("/heartbeat", httpx.Response(200, text="<html>not json</html>"))
    worker = await start_worker([nap])
    await wait_until(lambda: fake.done)
    assert len(row.completions) == 1
    assert row.heartbeats >= 1  # the retry, a third of a period after the garbage
    assert worker.stats().completed == 1


async def test_heartbeats_go_on_while_the_report_is_retried_and_stop_with_it(
    fake: FakeServer, start_worker, autojump_clock
) -> None:
    # Lease 30 s: heartbeats every 10 s. The activity ends at 25 s; its completion is refused six
    # times (5xx), and the retries' delays (0.2 s doubling to 5 s, each shortened by up to half)
    # add 5.6–11.2 s: the 30 s heartbeat falls inside them, the 40 s one after the report.
    row = fake.add("nap", {"seconds": 25}, timeout_seconds=30)
    fake.script("/complete", *[503] * 6)
    worker = await start_worker([nap])
    await wait_until(lambda: fake.done)
    assert 30 < trio.current_time() < 37
    assert row.heartbeats == 3
    await trio.sleep(100)
    assert fake.count("/heartbeat") == 3  # none sent after the report
    assert worker.running == {} and worker._heartbeats.pending == 0
