"""Service: supervised handlers, restart intensity, health, exit code. Autojump clock throughout."""

from __future__ import annotations

import functools
import json

import pytest
import trio
import trio.testing
from bus_helpers import Collector

from trioworks.bus import (
    Bus,
    EnvelopeError,
    InProcessBroker,
    InProcessTransport,
    LLMCancel,
    LLMRequest,
    Message,
    RawMessage,
    Route,
    Salvage,
    Service,
    ServiceFailed,
    Task,
    TtsSay,
    encode,
    run_service,
    salvage,
)
from trioworks.core import RestartIntensityExceeded, RestartPolicy, RetryPolicy

QUICK = RestartPolicy(max_restarts=2, window=10, backoff=RetryPolicy(base_delay=0.1, jitter=0))


def _health(broker: InProcessBroker, name: str) -> dict[str, object]:
    data = json.loads(broker.retained[f"system/health/{name}"].payload)["data"]
    assert isinstance(data.pop("timestamp"), float)  # py-tars' HealthPing has one
    return data


async def test_service_is_healthy_once_serving_and_stopped_after(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    got = Collector()
    service = Service(Bus(InProcessTransport(broker), source="tts"), [Route("tts/control", got)])
    client = Bus(InProcessTransport(broker), source="client")
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        await nursery.start(service.run)
        assert _health(broker, "tts")["ok"] is True  # published before started() returned
        await client.publish("llm/cancel", LLMCancel(id="unrelated"))
        await client.publish("tts/control", _stop())
        await got.wait_for(1)
        nursery.cancel_scope.cancel()
    assert _health(broker, "tts") == {"ok": False, "event": "stopped", "err": None}


def _stop():  # type: ignore[no-untyped-def]
    from trioworks.bus import TtsControl

    return TtsControl(action="stop")


async def test_crashing_handler_is_restarted_and_later_messages_are_handled(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    seen: list[str] = []

    async def flaky(message: Message) -> None:
        seen.append(message.data.id)
        if message.data.id == "boom":
            raise RuntimeError("handler bug")

    bus = Bus(InProcessTransport(broker), source="llm")
    service = Service(bus, [Route("llm/cancel", flaky)], restart=QUICK)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        for request_id in ("a", "boom", "b", "c"):
            await bus.publish("llm/cancel", LLMCancel(id=request_id))
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert seen == ["a", "boom", "b", "c"]
    snap = bus.metrics.snapshot()
    assert snap["bus.sub.llm/cancel.failed"] == 1
    assert snap["bus.sub.llm/cancel.handled"] == 3


async def test_handler_past_its_restart_intensity_fails_the_service(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    async def always_broken(message: Message) -> None:
        raise RuntimeError(f"cannot handle {message.data.id}")

    bus = Bus(InProcessTransport(broker), source="router")
    service = Service(bus, [Route("llm/cancel", always_broken)], restart=QUICK)
    async with trio.open_nursery() as nursery:

        async def feed() -> None:
            await trio.testing.wait_all_tasks_blocked()
            for n in range(5):
                await bus.publish("llm/cancel", LLMCancel(id=str(n)))

        nursery.start_soon(feed)
        code = await run_service(service)
    assert code == 1
    health = _health(broker, "router")
    assert health["ok"] is False and health["event"] == "crashed"
    assert "failed after 2 restart(s)" in str(health["err"])


async def test_service_failed_names_the_service_and_keeps_the_cause(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    async def broken(message: Message) -> None:
        raise ValueError("bad")

    bus = Bus(InProcessTransport(broker), source="memory")
    service = Service(
        bus, [Route("llm/cancel", broken, name="cancel")], restart=RestartPolicy(max_restarts=0)
    )
    async with trio.open_nursery() as nursery:

        async def feed() -> None:
            await trio.testing.wait_all_tasks_blocked()
            await bus.publish("llm/cancel", LLMCancel(id="x"))

        nursery.start_soon(feed)
        with pytest.raises(ServiceFailed, match="'memory'") as info:
            await service.run()
    assert isinstance(info.value.cause, RestartIntensityExceeded)
    assert info.value.cause.name == "cancel"


async def test_on_malformed_gets_each_bad_message_in_order_with_the_field_at_fault(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    order: list[str] = []
    bad: list[tuple[RawMessage, EnvelopeError]] = []

    async def handle(message: Message) -> None:
        order.append(message.data.id)

    async def on_malformed(raw: RawMessage, error: EnvelopeError) -> None:
        bad.append((raw, error))
        order.append(f"bad:{salvage(raw.payload).id}")
        if salvage(raw.payload).id == "explode":
            raise RuntimeError("hook bug")  # a failing hook is restarted like a failing handler

    def wire(id_: str, data: object) -> RawMessage:
        body = {"id": id_, "type": "llm.cancel", "ts": 1.0, "source": "evil", "data": data}
        return RawMessage("llm/cancel", json.dumps(body).encode(), qos=1)

    bus = Bus(InProcessTransport(broker), source="llm")
    service = Service(bus, [Route("llm/cancel", handle, on_malformed=on_malformed)], restart=QUICK)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        await bus.publish("llm/cancel", LLMCancel(id="a"))
        await broker.publish(wire("e1", {"id": 5}))
        await broker.publish(wire("explode", {}))
        await bus.publish("llm/cancel", LLMCancel(id="b"))
        await broker.publish(RawMessage("llm/cancel", b"\xff", qos=1))
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert order == ["a", "bad:e1", "bad:explode", "b", "bad:None"]
    assert [(raw.topic, err.topic) for raw, err in bad] == [("llm/cancel", "llm/cancel")] * 3
    assert bad[0][1].problems == ["$.data.id: expected str, got int"]
    assert bad[1][1].problems == ["$.data.id: required field missing"]
    assert "not a JSON document" in bad[2][1].problems[0]
    snap = bus.metrics.snapshot()
    assert (snap["bus.sub.llm/cancel.malformed"], snap["bus.sub.llm/cancel.failed"]) == (3, 1)
    assert snap["bus.sub.llm/cancel.handled"] == 2


def test_salvage_reads_what_it_can_and_never_raises() -> None:
    assert salvage(b'{"id": "x", "data": {"id": "r", "text": " "}}') == Salvage("x", {"id": "r", "text": " "})
    assert salvage(b'{"id": "x", "data": {"id": "r"}}').text("id") == "r"
    assert salvage(b'{"id": "x", "data": {"text": " "}}').text("text") is None
    for junk in (b"\xff", b"[]", b'{"id": 5, "data": [1]}', b'{"id": ""}', b"[" * 100_000):
        found = salvage(junk)
        assert (found.id, found.data) == (None, {})


async def test_dedupe_handles_a_redelivered_message_once_within_its_window(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    seen: list[str] = []

    async def handle(message: Message) -> None:
        seen.append(message.data.id)

    bus = Bus(InProcessTransport(broker), source="llm")
    service = Service(
        bus, [Route("llm/cancel", handle, dedupe=True), Route("llm/cancel", handle, name="plain")]
    )
    client = Bus(InProcessTransport(broker), source="client")
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        await nursery.start(client.run)
        first = await client.publish("llm/cancel", LLMCancel(id="a"), id="env-1")
        again = encode("llm/cancel", first)  # the same envelope, as a QoS 1 resend delivers it
        await broker.publish(RawMessage("llm/cancel", again, qos=1))
        await client.publish("llm/cancel", LLMCancel(id="b"))  # another envelope
        await trio.sleep(61)  # past the window: the id may be used again
        await broker.publish(RawMessage("llm/cancel", again, qos=1))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    snap = bus.metrics.snapshot()
    assert (snap["bus.sub.llm/cancel.handled"], snap["bus.sub.llm/cancel.duplicates"]) == (3, 1)
    assert (snap["bus.sub.plain.handled"], snap["bus.sub.plain.duplicates"]) == (4, 0)
    assert sorted(seen) == ["a"] * 5 + ["b"] * 2  # plain: a, a, b, a; deduped: a, b, a


async def test_dedupe_keys_on_the_data_too_so_chunks_under_one_id_are_all_handled(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    # py-tars' llm-worker streams every tts/say chunk of a reply under the reply's correlation id.
    seen: list[str] = []

    async def handle(message: Message) -> None:
        seen.append(message.data.text)

    bus = Bus(InProcessTransport(broker), source="tts")
    service = Service(bus, [Route("tts/say", handle, dedupe=True)])
    client = Bus(InProcessTransport(broker), source="llm-worker")
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        await nursery.start(client.run)
        first = await client.publish("tts/say", TtsSay(text="One."), id="corr")
        await client.publish("tts/say", TtsSay(text="Two."), id="corr")
        await broker.publish(RawMessage("tts/say", encode("tts/say", first), qos=1))  # a resend
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert seen == ["One.", "Two."]
    assert bus.metrics.snapshot()["bus.sub.tts/say.duplicates"] == 1


def _nested_request(envelope_id: str, depth: int = 50_000) -> RawMessage:
    """An llm/request of ~100 KB (under the size cap) whose data nests ``depth`` levels deep."""
    body = {"id": envelope_id, "type": "llm.request", "ts": 1.0, "source": "evil", "data": {"id": "r"}}
    payload = json.dumps(body).encode().replace(b'{"id": "r"}', b"[" * depth + b"]" * depth)
    return RawMessage("llm/request", payload, qos=1)


async def test_deeply_nested_messages_are_malformed_input_not_handler_restarts(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    # Issue 10, case 2: five of these used to raise RecursionError out of the decoder, restart
    # the handler past its intensity and stop the service.
    bad: list[EnvelopeError] = []

    async def on_malformed(raw: RawMessage, error: EnvelopeError) -> None:
        bad.append(error)

    got = Collector()
    bus = Bus(InProcessTransport(broker), source="llm")
    service = Service(bus, [Route("llm/request", got, on_malformed=on_malformed)], restart=QUICK)
    client = Bus(InProcessTransport(broker), source="client")
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        await nursery.start(client.run)
        for n in range(5):
            await broker.publish(_nested_request(f"bomb-{n}"))
        await client.publish("llm/request", LLMRequest(id="ok", text="hi"))
        [message] = await got.wait_for(1)
        assert message.data.id == "ok"
        assert _health(broker, "llm")["event"] == "ready"
        nursery.cancel_scope.cancel()
    assert [e.problems for e in bad] == [["$: nested deeper than 64 levels of arrays and objects"]] * 5
    snap = bus.metrics.snapshot()
    assert (snap["bus.sub.llm/request.malformed"], snap["bus.sub.llm/request.failed"]) == (5, 0)
    assert _health(broker, "llm")["event"] == "stopped"  # stopped by us, not crashed


async def test_tasks_stop_before_the_bus_so_their_last_words_reach_the_broker(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    async def task() -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await bus.publish("llm/cancel", LLMCancel(id="last words"))

    bus = Bus(InProcessTransport(broker), source="router")
    service = Service(bus, tasks=[Task("router.turns", task)])
    client = Bus(InProcessTransport(broker), source="client")
    seen = Collector()
    async with trio.open_nursery() as outer:
        await outer.start(client.run)
        await client.subscribe("#", seen)
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            nursery.cancel_scope.cancel()
        await seen.wait_for(3)
        outer.cancel_scope.cancel()
    assert [(m.topic, getattr(m.data, "event", None)) for m in seen.messages] == [
        ("system/health/router", "ready"),
        ("llm/cancel", None),
        ("system/health/router", "stopped"),
    ]


async def test_the_bus_waits_for_a_stopping_task_only_for_the_grace_period(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    async def slow_to_stop() -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(10)

    bus = Bus(InProcessTransport(broker), source="tts", clock=trio.current_time)  # envelope ts: Trio time
    service = Service(bus, tasks=[Task("slow", slow_to_stop)], grace=3)
    client = Bus(InProcessTransport(broker), source="client")
    health = Collector()
    async with trio.open_nursery() as outer:
        await outer.start(client.run)
        await client.subscribe("system/health/tts", health)
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            stop = trio.current_time()
            nursery.cancel_scope.cancel()
        returned = trio.current_time() - stop
        outer.cancel_scope.cancel()
    stopped = health.messages[-1]
    assert stopped.data.event == "stopped"
    assert stopped.envelope.ts == pytest.approx(stop + 3)  # the goodbye at the grace deadline
    assert returned == pytest.approx(10)  # run() still waits for its task


class Recorder(Service):
    """A service that acquires two things in setup and records when they are released."""

    def __init__(self, broker: InProcessBroker, events: list[str], *, fail_setup: bool = False) -> None:
        super().__init__(
            Bus(InProcessTransport(broker), source="svc"), tasks=[Task("idle", trio.sleep_forever)]
        )
        self.broker = broker
        self.events = events
        self.fail_setup = fail_setup

    async def setup(self) -> None:
        self.add_cleanup(functools.partial(self._close, "model"), name="model")
        if self.fail_setup:
            raise OSError("no store here")
        self.add_cleanup(functools.partial(self._close, "store"), name="store")
        self.add_cleanup(self._broken_close, name="broken")

    async def _close(self, what: str) -> None:
        await trio.lowlevel.checkpoint()  # a shielded scope: a stop does not interrupt it
        retained = self.broker.retained.get("system/health/svc")
        event = json.loads(retained.payload)["data"]["event"] if retained is not None else None
        self.events.append(f"close {what} (health {event})")

    async def _broken_close(self) -> None:
        self.events.append("close broken")
        raise RuntimeError("cleanup bug")  # logged; the others still run


async def test_cleanups_run_after_the_goodbye_last_first_even_when_one_fails(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    events: list[str] = []
    service = Recorder(broker, events)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        nursery.cancel_scope.cancel()
    assert events == ["close broken", "close store (health stopped)", "close model (health stopped)"]


async def test_a_setup_error_propagates_as_itself_after_its_cleanups(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    events: list[str] = []
    with pytest.raises(OSError, match="no store here"):
        await Recorder(broker, events, fail_setup=True).run()
    assert events == ["close model (health None)"]  # the bus never connected: no health at all


async def test_a_task_started_with_start_soon_that_raises_fails_the_service(
    broker: InProcessBroker, autojump_clock: trio.testing.MockClock
) -> None:
    async def broken_request(n: int) -> None:
        await trio.sleep(n)
        raise KeyError(n)

    async def handle(message: Message) -> None:
        service.start_soon(broken_request, 1, name=f"request:{message.data.id}")

    bus = Bus(InProcessTransport(broker), source="llm")
    service = Service(bus, [Route("llm/cancel", handle)], restart=QUICK)
    with pytest.raises(RuntimeError, match="not serving"):
        service.start_soon(broken_request, 1, name="too early")
    async with trio.open_nursery() as nursery:

        async def feed() -> None:
            await trio.testing.wait_all_tasks_blocked()
            await bus.publish("llm/cancel", LLMCancel(id="r1"))

        nursery.start_soon(feed)
        with pytest.raises(ServiceFailed) as info:
            await service.run()
    assert info.value.cause.name == "request:r1"
    assert info.value.cause.restarts == 0  # run once, never restarted
    assert str(info.value).endswith("KeyError: 1")
    assert _health(broker, "llm")["event"] == "crashed"
