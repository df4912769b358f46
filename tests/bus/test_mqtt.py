"""The bus against a real mosquitto broker (fixtures from tests/conftest.py).

These run in real time (a broker is a real process); every bound is seconds, not milliseconds.
"""

from __future__ import annotations

import functools
import itertools
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
import trio.testing
from bus_helpers import Collector

from trioworks.bus import (
    Bus,
    FinalTranscript,
    HealthStatus,
    MemoryQuery,
    MemoryResults,
    Message,
    MqttTransport,
    RawMessage,
    RequestTimeout,
    Route,
    Service,
    run_service,
)
from trioworks.core import RestartPolicy, RetryPolicy

FAST_RECONNECT = RetryPolicy(max_attempts=1000, base_delay=0.05, factor=2.0, max_delay=0.5, jitter=0.5)
_ids = itertools.count()

MakeBus = Callable[..., Awaitable[Bus]]


@pytest.fixture
async def make_bus(mosquitto_url: str, nursery: trio.Nursery) -> AsyncIterator[MakeBus]:
    """Start buses on the session broker; each gets a unique client id (the session is shared)."""

    async def make(source: str, url: str = mosquitto_url) -> Bus:
        transport = MqttTransport(
            url, client_id=f"{source}-{next(_ids)}", reconnect=FAST_RECONNECT, keep_alive=5
        )
        bus = Bus(transport, source=f"{source}-{next(_ids)}")
        await nursery.start(bus.run)
        return bus

    yield make


def _topic(name: str) -> str:
    return f"test/{name}/{next(_ids)}"  # unique per test: the session broker keeps retained state


async def test_typed_message_crosses_the_broker(make_bus: MakeBus) -> None:
    a, b = await make_bus("a"), await make_bus("b")
    got = Collector()
    await a.subscribe("stt/final", got)
    sent = await b.publish("stt/final", FinalTranscript(text="over mqtt", utt_id="u9"))
    with trio.fail_after(5):
        [message] = await got.wait_for(1)
    assert message.envelope == sent
    assert message.data == FinalTranscript(text="over mqtt", utt_id="u9", ts=sent.ts)


async def test_overlapping_wildcards_each_get_one_copy(make_bus: MakeBus) -> None:
    a, b = await make_bus("a"), await make_bus("b")
    base = _topic("wild")
    plus, hash_ = Collector(), Collector()
    await a.subscribe(f"{base}/+", plus, name="plus")
    await a.subscribe(f"{base}/#", hash_, name="hash")
    for leaf in ("x", "y/z", "w"):
        await b.publish(f"{base}/{leaf}", {"leaf": leaf}, qos=1)
    with trio.fail_after(5):
        await hash_.wait_for(3)
        await plus.wait_for(2)
    await trio.sleep(0.2)  # nothing else (no duplicate copy) arrives
    assert [m.data["leaf"] for m in hash_.messages] == ["x", "y/z", "w"]
    assert [m.data["leaf"] for m in plus.messages] == ["x", "w"]


async def test_retained_reaches_a_late_subscriber(make_bus: MakeBus) -> None:
    a = await make_bus("a")
    await a.publish_health(True, "ready")
    b = await make_bus("b")
    got = Collector()
    await b.subscribe(f"system/health/{a.source}", got)
    with trio.fail_after(5):
        [message] = await got.wait_for(1)
    assert message.retained
    assert message.data == HealthStatus(ok=True, event="ready")


async def test_malformed_message_is_dropped_and_the_subscription_lives_on(make_bus: MakeBus) -> None:
    a, b = await make_bus("a"), await make_bus("b")
    topic = _topic("bad")
    got = Collector()
    sub = await a.subscribe(topic, got)
    await b.transport.publish(RawMessage(topic, b'{"id": "x", "surprise": 1}', qos=1))
    await b.publish(topic, {"fine": True})
    with trio.fail_after(5):
        await got.wait_for(1)
    assert got.data == [{"fine": True}]
    assert a.metrics.snapshot()[f"bus.sub.{sub.name}.malformed"] == 1


async def test_oversized_message_from_another_client_is_dropped_and_counted(make_bus: MakeBus) -> None:
    a, b = await make_bus("a"), await make_bus("b")
    topic = _topic("big")
    got = Collector()
    sub = await a.subscribe(topic, got)
    big = b'{"id":"x","type":"t","ts":1,"source":"b","data":{"blob":"' + b"x" * a.max_payload + b'"}}'
    await b.transport.publish(RawMessage(topic, big, qos=1))  # under the broker's limit, over ours
    await b.publish(topic, {"fine": True})
    with trio.fail_after(5):
        await got.wait_for(1)
    assert got.data == [{"fine": True}]
    snap = a.metrics.snapshot()
    assert (snap[f"bus.sub.{sub.name}.oversized"], snap[f"bus.sub.{sub.name}.malformed"]) == (1, 0)


async def test_request_response_over_mqtt(make_bus: MakeBus) -> None:
    client, memory = await make_bus("llm"), await make_bus("memory")

    async def answer(message: Message) -> None:
        await memory.reply(message, "memory/results", MemoryResults(query=message.data.text, k=1))

    await memory.subscribe("memory/query", answer)
    reply = await client.request(
        "memory/query", MemoryQuery(text="tea"), reply_topic="memory/results", timeout=5
    )
    assert reply.data == MemoryResults(query="tea", k=1)
    with pytest.raises(RequestTimeout):
        await client.request("character/get", _character_get(), reply_topic="character/result", timeout=0.5)
    assert client.pending_requests == 0


def _character_get():  # type: ignore[no-untyped-def]
    from trioworks.bus import CharacterGet

    return CharacterGet()


async def test_unsubscribe_stops_delivery(make_bus: MakeBus) -> None:
    a, b = await make_bus("a"), await make_bus("b")
    topic = _topic("unsub")
    got = Collector()
    sub = await a.subscribe(topic, got)
    await b.publish(topic, {"n": 1})
    with trio.fail_after(5):
        await got.wait_for(1)
    await a.unsubscribe(sub)
    await b.publish(topic, {"n": 2})
    await trio.sleep(0.3)
    assert got.data == [{"n": 1}]


async def test_qos1_is_not_lost_across_a_broker_restart(fresh_mosquitto, nursery: trio.Nursery) -> None:  # type: ignore[no-untyped-def]
    transport = MqttTransport(
        fresh_mosquitto.url, client_id="restart", reconnect=FAST_RECONNECT, keep_alive=5
    )
    bus = Bus(transport, source="restart")
    await nursery.start(bus.run)
    got = Collector()
    await bus.subscribe("test/seq", got)
    total = 60

    async def produce() -> None:
        for n in range(total):
            await bus.publish("test/seq", {"n": n}, qos=1)
            await trio.sleep(0.01)

    with trio.fail_after(30):
        async with trio.open_nursery() as inner:
            inner.start_soon(produce)
            await got.wait_for(10)
            await trio.to_thread.run_sync(functools.partial(fresh_mosquitto.restart, down_for=0.5))
        await got.wait_for(total)
    received = [m.data["n"] for m in got.messages]
    assert set(received) == set(range(total))  # at least once: a resend may duplicate one
    assert received == sorted(received)
    assert transport.connections.value >= 2  # it reconnected and re-subscribed
    assert transport.metrics.snapshot()["mqtt.connections_lost"] >= 1


async def test_health_is_published_again_after_a_broker_restart(
    fresh_mosquitto, nursery: trio.Nursery
) -> None:  # type: ignore[no-untyped-def]
    # The fixture's broker keeps nothing across a restart (no persistence): without the bus
    # saying it again, the retained health of a service that is up would be gone.
    def make(name: str) -> Bus:
        transport = MqttTransport(fresh_mosquitto.url, client_id=name, reconnect=FAST_RECONNECT, keep_alive=5)
        return Bus(transport, source=name)

    service, observer = make("svc"), make("observer")
    await nursery.start(service.run)
    await service.publish_health(True, "ready")
    await trio.to_thread.run_sync(functools.partial(fresh_mosquitto.restart, down_for=0.3))
    with trio.fail_after(20):
        await service.transport.connections.wait_value(lambda n: n >= 2)
        await nursery.start(observer.run)
        health = Collector()
        await observer.subscribe("system/health/svc", health)
        [message] = await health.wait_for(1)
    assert message.retained and message.data == HealthStatus(ok=True, event="ready")
    assert service.metrics.snapshot()["bus.health.restored"] >= 1


async def test_connects_once_the_broker_comes_up_and_drops_qos0_while_down(
    fresh_mosquitto, nursery: trio.Nursery
) -> None:  # type: ignore[no-untyped-def]
    await trio.to_thread.run_sync(fresh_mosquitto.stop)
    transport = MqttTransport(fresh_mosquitto.url, client_id="late", reconnect=FAST_RECONNECT)
    await transport.publish(RawMessage("test/q0", b"{}", qos=0))  # not connected: dropped
    assert transport.metrics.snapshot()["mqtt.qos0_dropped"] == 1
    with trio.fail_after(20):
        async with trio.open_nursery() as inner:
            inner.start_soon(functools.partial(trio.to_thread.run_sync, fresh_mosquitto.start))
            await nursery.start(transport.run)
    assert transport.metrics.snapshot()["mqtt.connect_failures"] >= 1


CHILD = textwrap.dedent(
    """
    import sys, trio
    from trioworks.bus import Bus, MqttTransport

    async def main():
        bus = Bus(MqttTransport(sys.argv[1], client_id=sys.argv[2]), source=sys.argv[2])
        async with trio.open_nursery() as nursery:
            await nursery.start(bus.run)
            await bus.publish_health(True, "ready")
            await trio.sleep_forever()

    trio.run(main)
    """
)


async def test_last_will_marks_a_killed_service_unhealthy(make_bus: MakeBus, mosquitto_url: str) -> None:
    observer = await make_bus("observer")
    name = f"doomed-{next(_ids)}"
    health = Collector()
    await observer.subscribe(f"system/health/{name}", health)
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            functools.partial(
                trio.run_process,
                [sys.executable, "-c", CHILD, mosquitto_url, name],
                check=False,
                stderr=subprocess.PIPE,
            )
        )
        with trio.fail_after(20):
            await health.wait_for(1)
        assert health.data[0] == HealthStatus(ok=True, event="ready")
        proc.kill()  # SIGKILL: no clean DISCONNECT, so the broker publishes the will
        with trio.fail_after(10):
            await health.wait_for(2)
    assert health.data[1] == HealthStatus(ok=False, event="offline", err="connection lost")
    assert health.messages[1].retained  # the will is retained (as published)
    assert health.messages[1].envelope.source == name


@pytest.mark.slow
async def test_keep_alive_pings_keep_an_idle_connection_up(mosquitto_url: str, nursery: trio.Nursery) -> None:
    transport = MqttTransport(mosquitto_url, client_id=f"idle-{next(_ids)}", keep_alive=1)
    await nursery.start(transport.run)
    # mosquitto drops a silent client after 1.5 keep-alive periods, checked every few seconds
    # (measured: about 5.6 s for keep_alive=1).
    await trio.sleep(8)
    assert transport.connections.value == 1
    assert "mqtt.connections_lost" not in transport.metrics.snapshot()


async def test_qos1_publish_in_flight_when_the_connection_drops_is_resent(
    fresh_mosquitto,  # type: ignore[no-untyped-def]
    nursery: trio.Nursery,
) -> None:
    transport = MqttTransport(fresh_mosquitto.url, client_id="inflight", reconnect=FAST_RECONNECT)
    bus = Bus(transport, source="inflight")
    await nursery.start(bus.run)
    got = Collector()
    await bus.subscribe("test/inflight", got)
    conn = transport._conn.value
    assert conn is not None

    swallowed = trio.Event()

    async def black_hole(data: bytes) -> None:
        await trio.lowlevel.checkpoint()  # the PUBLISH never reaches the broker: no PUBACK
        if data[0] >> 4 == 3:  # PUBLISH (not a PINGREQ)
            swallowed.set()

    conn.stream.send_all = black_hole  # type: ignore[method-assign]
    published = trio.Event()

    async def publish() -> None:
        await bus.publish("test/inflight", {"n": 1}, qos=1)
        published.set()

    nursery.start_soon(publish)
    with trio.fail_after(10):
        await swallowed.wait()  # sent (into the black hole)
    await trio.testing.wait_all_tasks_blocked()
    assert not published.is_set()  # waiting for its PUBACK
    await trio.aclose_forcefully(conn.stream)  # the connection dies under the waiting publish
    with trio.fail_after(10):
        await published.wait()
        await got.wait_for(1)
    assert got.data == [{"n": 1}]
    assert transport.metrics.snapshot()["mqtt.publish_resends"] == 1


@pytest.mark.slow
async def test_a_full_block_queue_neither_deadlocks_publishing_nor_drops_the_connection(
    mosquitto_url: str, nursery: trio.Nursery
) -> None:
    # A handler stuck with its BLOCK queue full must not stop the connection's reader: the
    # reader also carries this bus's PUBACKs (publish would deadlock) and PINGRESPs.
    transport = MqttTransport(mosquitto_url, client_id=f"busy-{next(_ids)}", keep_alive=1)
    bus = Bus(transport, source=f"busy-{next(_ids)}")
    await nursery.start(bus.run)
    topic = _topic("busy")
    release = trio.Event()
    handled: list[int] = []

    async def slow(message: Message) -> None:
        await release.wait()
        handled.append(message.data["n"])

    await bus.subscribe(topic, slow, capacity=1)
    with trio.fail_after(5):
        for n in range(4):  # one in the handler, one queued, the rest waiting in the backlog
            await bus.publish(topic, {"n": n})
    await trio.sleep(8)  # several keep-alive periods with the subscription stuck
    release.set()
    with trio.fail_after(5):
        while len(handled) < 4:  # noqa: ASYNC110  # real time, short: a broker round trip
            await trio.sleep(0.05)
    assert handled == [0, 1, 2, 3]
    assert transport.connections.value == 1
    assert "mqtt.backlog_dropped" not in transport.metrics.snapshot()


async def test_backlog_overflow_is_dropped_and_counted(mosquitto_url: str, nursery: trio.Nursery) -> None:
    transport = MqttTransport(mosquitto_url, client_id=f"tiny-{next(_ids)}", backlog=1)
    bus = Bus(transport, source=f"tiny-{next(_ids)}")
    await nursery.start(bus.run)
    topic = _topic("tiny")
    release = trio.Event()
    handled: list[int] = []

    async def slow(message: Message) -> None:
        await release.wait()
        handled.append(message.data["n"])

    await bus.subscribe(topic, slow, capacity=1)
    for n in range(6):
        await bus.publish(topic, {"n": n})

    def dropped() -> int:
        return int(transport.metrics.snapshot().get("mqtt.backlog_dropped", 0))

    with trio.fail_after(10):
        while not dropped():  # noqa: ASYNC110  # a broker round trip; the counter has no event
            await trio.sleep(0.01)
        release.set()
        while len(handled) + dropped() < 6:  # noqa: ASYNC110  # every message handled or dropped
            await trio.sleep(0.01)
    assert handled == sorted(handled) and len(handled) < 6


async def test_clean_shutdown_leaves_stopped_not_the_will(make_bus: MakeBus, mosquitto_url: str) -> None:
    observer = await make_bus("observer")
    name = f"leaving-{next(_ids)}"
    health = Collector()
    await observer.subscribe(f"system/health/{name}", health)
    async with trio.open_nursery() as nursery:
        bus = Bus(MqttTransport(mosquitto_url, client_id=name), source=name)
        await nursery.start(bus.run)
        await bus.publish_health(True, "ready")
        with trio.fail_after(5):
            await health.wait_for(1)
        nursery.cancel_scope.cancel()
    with trio.fail_after(5):
        await health.wait_for(2)
    await trio.sleep(0.3)  # the broker would publish a will right after the disconnect
    assert [m.data.event for m in health.messages] == ["ready", "stopped"]


async def test_clear_retained_over_mqtt(make_bus: MakeBus) -> None:
    a = await make_bus("a")
    topic = _topic("retained")
    await a.publish(topic, {"state": 1}, retain=True)
    await a.clear_retained(topic)
    b = await make_bus("b")
    got = Collector()
    sub = await b.subscribe(topic, got)
    await a.publish(topic, {"state": 2})
    with trio.fail_after(5):
        await got.wait_for(1)
    assert got.data == [{"state": 2}]  # not the cleared retained {"state": 1}
    assert b.metrics.snapshot()[f"bus.sub.{sub.name}.malformed"] == 0


async def test_a_handler_past_its_restarts_leaves_crashed_health_and_exit_code_1(
    make_bus: MakeBus, mosquitto_url: str
) -> None:
    observer = await make_bus("observer")
    name = f"fragile-{next(_ids)}"
    health = Collector()
    await observer.subscribe(f"system/health/{name}", health)
    topic = _topic("crash")
    calls = 0

    async def broken(message: Message) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("handler bug")

    transport = MqttTransport(mosquitto_url, client_id=name, reconnect=FAST_RECONNECT, keep_alive=5)
    policy = RestartPolicy(max_restarts=2, window=30, backoff=RetryPolicy(base_delay=0.01, jitter=0))
    service = Service(Bus(transport, source=name), [Route(topic, broken)], restart=policy)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:

            async def feed() -> None:
                await health.wait_for(1)  # ready: subscribed
                for n in range(5):
                    await observer.publish(topic, {"n": n})

            nursery.start_soon(feed)
            code = await run_service(service)
        await health.wait_for(2)
    assert code == 1 and calls == 3  # the first failure and two restarts
    assert health.data[0] == HealthStatus(ok=True, event="ready")
    assert health.data[-1].ok is False and health.data[-1].event == "crashed"
    assert "failed after 2 restart(s)" in str(health.data[-1].err)
