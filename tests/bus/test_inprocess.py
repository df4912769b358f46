"""The bus over the in-process transport: pub/sub, wildcards, retained, bad input, overflow,
request/response. All on the autojump clock."""

from __future__ import annotations

import json
import logging

import pytest
import trio
import trio.testing
from bus_helpers import Collector

from trioworks.bus import (
    Bus,
    FinalTranscript,
    HealthStatus,
    InProcessBroker,
    InProcessTransport,
    LLMCancel,
    MemoryQuery,
    MemoryResults,
    Message,
    Overflow,
    PayloadTooLarge,
    RawMessage,
    RequestTimeout,
    TtsControl,
)
from trioworks.core import DuplicateCorrelationId, RestartIntensityExceeded, RestartPolicy


async def test_typed_publish_reaches_a_typed_handler(inproc_bus: Bus) -> None:
    got = Collector()
    await inproc_bus.subscribe("stt/final", got)
    sent = await inproc_bus.publish("stt/final", FinalTranscript(text="hello", utt_id="u1"))
    [message] = await got.wait_for(1)
    assert message.topic == "stt/final"
    assert message.envelope == sent
    assert message.envelope.type == "stt.final" and message.envelope.source == "svc"
    # py-tars' transcripts always carry their time: an unset ts is the envelope's.
    assert message.data == FinalTranscript(text="hello", utt_id="u1", ts=sent.ts)
    assert not message.retained


async def test_wildcards_route_to_every_matching_subscription(inproc_bus: Bus) -> None:
    plus, hash_, exact = Collector(), Collector(), Collector()
    await inproc_bus.subscribe("test/+/x", plus, name="plus")
    await inproc_bus.subscribe("test/#", hash_, name="hash")
    await inproc_bus.subscribe("test/a/y", exact, name="exact")
    for topic in ("test/a/x", "test/a/y", "test/b/x", "test", "other/a/x"):
        await inproc_bus.publish(topic, {"t": topic})
    await hash_.wait_for(4)
    await trio.testing.wait_all_tasks_blocked()
    assert [m.topic for m in plus.messages] == ["test/a/x", "test/b/x"]
    assert [m.topic for m in hash_.messages] == ["test/a/x", "test/a/y", "test/b/x", "test"]
    assert [m.topic for m in exact.messages] == ["test/a/y"]


async def test_retained_message_reaches_a_late_subscriber(inproc_bus: Bus, broker: InProcessBroker) -> None:
    await inproc_bus.publish_health(True, "ready")
    await inproc_bus.publish("test/plain", {"n": 1})  # not retained: a late subscriber misses it
    late = Collector()
    await inproc_bus.subscribe("system/health/+", late, name="health")
    await inproc_bus.subscribe("test/plain", late, name="plain")
    [message] = await late.wait_for(1)
    assert message.retained and message.topic == "system/health/svc"
    assert message.data == HealthStatus(ok=True, event="ready")
    await trio.testing.wait_all_tasks_blocked()
    assert len(late.messages) == 1
    assert set(broker.retained) == {"system/health/svc"}


async def test_malformed_envelope_is_logged_counted_dropped_and_service_lives_on(
    inproc_bus: Bus, broker: InProcessBroker, caplog: pytest.LogCaptureFixture
) -> None:
    got = Collector()
    sub = await inproc_bus.subscribe("llm/cancel", got)
    bad = json.dumps({"id": "x", "type": "llm.cancel", "ts": 1, "source": "evil", "data": {"id": 5}})
    with caplog.at_level(logging.WARNING, logger="trioworks.bus"):
        await broker.publish(RawMessage("llm/cancel", bad.encode(), qos=1))
        await broker.publish(RawMessage("llm/cancel", b"\xff not json", qos=1))
        await inproc_bus.publish("llm/cancel", LLMCancel(id="r1"))
        await got.wait_for(1)
    assert got.data == [LLMCancel(id="r1")]
    snap = inproc_bus.metrics.snapshot()
    assert snap[f"bus.sub.{sub.name}.malformed"] == 2
    assert snap[f"bus.sub.{sub.name}.handled"] == 1
    assert "$.data.id" in caplog.text and "llm/cancel" in caplog.text


async def test_oversized_messages_are_refused_and_dropped(
    broker: InProcessBroker, nursery: trio.Nursery
) -> None:
    bus = Bus(InProcessTransport(broker), source="small", max_payload=300)
    await nursery.start(bus.run)
    got = Collector()
    sub = await bus.subscribe("test/big", got)
    with pytest.raises(PayloadTooLarge, match="test/big"):
        await bus.publish("test/big", {"blob": "x" * 400})
    await broker.publish(RawMessage("test/big", b"{" + b" " * 400 + b"}"))
    await bus.publish("test/big", {"blob": "ok"})
    await got.wait_for(1)
    assert got.data == [{"blob": "ok"}]
    assert bus.metrics.snapshot()[f"bus.sub.{sub.name}.oversized"] == 1


@pytest.mark.parametrize(
    ("overflow", "expected"),
    [
        (Overflow.DROP_OLDEST, [0, 7, 8, 9]),  # first one was being handled, then the newest 3
        (Overflow.DROP_NEWEST, [0, 1, 2, 3]),
        (Overflow.BLOCK, list(range(10))),
    ],
)
async def test_overflow_policies(
    overflow: Overflow, expected: list[int], inproc_bus: Bus, autojump_clock: trio.testing.MockClock
) -> None:
    release = trio.Event()
    handled: list[int] = []

    async def slow(message: Message) -> None:
        await release.wait()
        handled.append(message.data["n"])

    sub = await inproc_bus.subscribe("test/q", slow, capacity=3, overflow=overflow)
    async with trio.open_nursery() as nursery:

        async def produce() -> None:
            for n in range(10):
                await inproc_bus.publish("test/q", {"n": n})

        nursery.start_soon(produce)
        await trio.sleep(1)
        release.set()
    await trio.testing.wait_all_tasks_blocked()
    assert handled == expected
    snap = inproc_bus.metrics.snapshot()
    assert snap[f"bus.sub.{sub.name}.dropped"] == 10 - len(expected)
    assert snap[f"bus.sub.{sub.name}.queued.high_water"] == 3


async def test_a_slow_handler_does_not_delay_another_subscription(
    inproc_bus: Bus, autojump_clock: trio.testing.MockClock
) -> None:
    # The original's bug: TTS playback blocked tts/control, so "stop" came after the speech.
    stopped_at: list[float] = []

    async def speak(message: Message) -> None:
        await trio.sleep(30)  # a long utterance

    async def control(message: Message) -> None:
        stopped_at.append(trio.current_time())

    await inproc_bus.subscribe("tts/say", speak, overflow=Overflow.DROP_OLDEST)
    await inproc_bus.subscribe("tts/control", control)
    start = trio.current_time()
    await inproc_bus.publish("test/noise", {})
    await inproc_bus.publish("tts/say", _say("a long sentence"))
    await trio.sleep(1)
    await inproc_bus.publish("tts/control", TtsControl(action="stop"))
    await trio.testing.wait_all_tasks_blocked()
    assert stopped_at and stopped_at[0] - start < 2


def _say(text: str):  # type: ignore[no-untyped-def]
    from trioworks.bus import TtsSay

    return TtsSay(text=text)


async def _memory_service(bus: Bus) -> None:
    async def answer(message: Message) -> None:
        await trio.sleep(0.5)
        results = MemoryResults(query=message.data.text, k=message.data.top_k)
        await bus.reply(message, "memory/results", results)

    await bus.subscribe("memory/query", answer, name="memory")


async def test_request_gets_the_reply_with_its_correlation_id(
    inproc_bus: Bus, broker: InProcessBroker, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    memory = Bus(InProcessTransport(broker), source="memory")
    await nursery.start(memory.run)
    await _memory_service(memory)
    reply = await inproc_bus.request(
        "memory/query", MemoryQuery(text="coffee", top_k=2), reply_topic="memory/results", timeout=5
    )
    assert reply.data == MemoryResults(query="coffee", k=2)
    assert reply.envelope.source == "memory"
    assert inproc_bus.pending_requests == 0


async def test_request_from_inside_a_handler_is_not_blocked_by_dispatch(
    inproc_bus: Bus, broker: InProcessBroker, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # The original's RAG bug: the llm handler awaited memory/results, which only the same
    # dispatch loop could deliver, so RAG always timed out. Here the reply has its own task.
    memory = Bus(InProcessTransport(broker), source="memory")
    await nursery.start(memory.run)
    await _memory_service(memory)
    answers: list[MemoryResults] = []
    answered = trio.Event()

    async def llm(message: Message) -> None:
        reply = await inproc_bus.request(
            "memory/query", MemoryQuery(text=message.data.text), reply_topic="memory/results", timeout=5
        )
        answers.append(reply.data)
        answered.set()

    await inproc_bus.subscribe("stt/final", llm)
    await inproc_bus.publish("stt/final", FinalTranscript(text="tea"))
    with trio.fail_after(2):  # virtual seconds; the memory service answers after 0.5
        await answered.wait()
    assert answers == [MemoryResults(query="tea", k=5)]


async def test_request_timeout_leaves_no_waiter_and_late_reply_is_counted(
    inproc_bus: Bus, autojump_clock: trio.testing.MockClock
) -> None:
    t0 = trio.current_time()
    with pytest.raises(RequestTimeout, match="memory/results") as info:
        await inproc_bus.request(
            "memory/query", MemoryQuery(text="x"), reply_topic="memory/results", timeout=5, id="q1"
        )
    assert trio.current_time() - t0 == pytest.approx(5)
    assert info.value.request_id == "q1"
    assert inproc_bus.pending_requests == 0
    await inproc_bus.publish("memory/results", MemoryResults(query="x", k=5), id="q1")
    await trio.testing.wait_all_tasks_blocked()
    assert inproc_bus.metrics.snapshot()["bus.replies.unmatched"] == 1


async def test_duplicate_request_id_is_an_error(
    inproc_bus: Bus, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    async def first() -> None:
        with pytest.raises(RequestTimeout):
            await inproc_bus.request(
                "memory/query", MemoryQuery(text="a"), reply_topic="memory/results", timeout=10, id="dup"
            )

    nursery.start_soon(first)
    await trio.sleep(1)
    with pytest.raises(DuplicateCorrelationId, match="dup"):
        await inproc_bus.request(
            "memory/query", MemoryQuery(text="b"), reply_topic="memory/results", timeout=10, id="dup"
        )
    assert inproc_bus.pending_requests == 1  # the first request's waiter is untouched


async def test_cancelled_request_leaves_no_waiter(
    inproc_bus: Bus, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.move_on_after(1) as scope:
        await inproc_bus.request(
            "memory/query", MemoryQuery(text="a"), reply_topic="memory/results", timeout=10
        )
    assert scope.cancelled_caught
    assert inproc_bus.pending_requests == 0


async def test_last_will_of_a_killed_client_marks_it_unhealthy(
    inproc_bus: Bus, broker: InProcessBroker, nursery: trio.Nursery
) -> None:
    transport = InProcessTransport(broker, client_id="stt")
    stt = Bus(transport, source="stt")
    await nursery.start(stt.run)
    await stt.publish_health(True, "ready")
    await transport.kill()
    will = json.loads(broker.retained["system/health/stt"].payload)["data"]
    assert isinstance(will.pop("timestamp"), float)  # py-tars' HealthPing has one
    assert will == {
        "ok": False,
        "event": "offline",
        "err": "connection lost",
    }


async def test_stopping_a_bus_publishes_stopped_health(broker: InProcessBroker) -> None:
    bus = Bus(InProcessTransport(broker), source="tts")
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run)
        await bus.publish_health(True, "ready")
        nursery.cancel_scope.cancel()
    assert json.loads(broker.retained["system/health/tts"].payload)["data"]["event"] == "stopped"


async def test_a_dead_subscription_never_blocks_its_publisher(
    inproc_bus: Bus, autojump_clock: trio.testing.MockClock
) -> None:
    async def broken(message: Message) -> None:
        raise RuntimeError("always")

    with pytest.RaisesGroup(pytest.RaisesExc(RestartIntensityExceeded), flatten_subgroups=True):
        async with trio.open_nursery() as handlers:
            sub = await inproc_bus.subscribe(
                "test/dead", broken, capacity=1, restart=RestartPolicy(max_restarts=0), nursery=handlers
            )
            await inproc_bus.publish("test/dead", {"n": 0})
    # Its handler is gone for good; a BLOCK queue with nobody reading must not hang publishers.
    with trio.fail_after(1):
        for n in range(1, 5):
            await inproc_bus.publish("test/dead", {"n": n})
    assert inproc_bus.metrics.snapshot()[f"bus.sub.{sub.name}.dropped"] == 4


async def test_clear_retained_removes_it_and_handlers_never_see_the_empty_message(
    inproc_bus: Bus, broker: InProcessBroker
) -> None:
    live = Collector()
    sub = await inproc_bus.subscribe("llm/tools/registry", live)
    await inproc_bus.publish("llm/tools/registry", _registry())
    await inproc_bus.clear_retained("llm/tools/registry")
    await live.wait_for(1)
    await trio.testing.wait_all_tasks_blocked()
    assert len(live.messages) == 1
    assert "llm/tools/registry" not in broker.retained
    assert inproc_bus.metrics.snapshot()[f"bus.sub.{sub.name}.malformed"] == 0
    late = Collector()
    await inproc_bus.subscribe("llm/tools/#", late, name="late")
    await trio.testing.wait_all_tasks_blocked()
    assert late.messages == []


async def test_unsubscribe_stops_delivery_in_process(inproc_bus: Bus) -> None:
    got = Collector()
    sub = await inproc_bus.subscribe("test/u", got)
    await inproc_bus.publish("test/u", {"n": 1})
    await got.wait_for(1)
    await inproc_bus.unsubscribe(sub)
    await inproc_bus.unsubscribe(sub)  # idempotent
    await inproc_bus.publish("test/u", {"n": 2})
    await trio.testing.wait_all_tasks_blocked()
    assert got.data == [{"n": 1}]
    await inproc_bus.subscribe("test/u", got)  # the name is free again


def _registry():  # type: ignore[no-untyped-def]
    from trioworks.bus import ToolFunction, ToolSpec, ToolsRegistry

    return ToolsRegistry(tools=(ToolSpec(function=ToolFunction(name="clock")),))


async def test_a_bus_can_run_again_after_it_stopped(broker: InProcessBroker, nursery: trio.Nursery) -> None:
    bus = Bus(InProcessTransport(broker), source="again")
    responder = Bus(InProcessTransport(broker), source="responder")
    await nursery.start(responder.run)

    async def answer(message: Message) -> None:
        await responder.reply(message, "memory/results", MemoryResults(query="q", k=1))

    await responder.subscribe("memory/query", answer)
    for _ in range(2):
        async with trio.open_nursery() as inner:
            await inner.start(bus.run)
            await bus.subscribe("test/again", Collector())
            reply = await bus.request(
                "memory/query", MemoryQuery(text="q"), reply_topic="memory/results", timeout=5
            )
            assert reply.data.k == 1
            inner.cancel_scope.cancel()


async def test_a_failed_subscription_in_the_bus_nursery_leaves_crashed_health(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    bus = Bus(InProcessTransport(broker), source="fragile")

    async def broken(message: Message) -> None:
        raise RuntimeError("nope")

    with pytest.RaisesGroup(pytest.RaisesExc(RestartIntensityExceeded), flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            await nursery.start(bus.run)
            await bus.subscribe("test/fragile", broken, restart=RestartPolicy(max_restarts=0))
            await bus.publish("test/fragile", {})
    health = json.loads(broker.retained["system/health/fragile"].payload)["data"]
    assert health["event"] == "crashed" and "test/fragile" in health["err"]
