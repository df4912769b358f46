"""The router against the real llm service (its offline backend) over the in-process bus.

Only the bus contracts connect them: this is the check that the router and the llm agree on
``llm/request``, ``llm/stream``, ``llm/response`` and ``llm/cancel``. Virtual time.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import trio
import trio.testing
from router_helpers import fake_synthesizer

from _collector import Collector
from _fake_tts import NullSink
from trioworks.bus import Bus, FinalTranscript, InProcessBroker, InProcessTransport, Message, WakeEvent
from trioworks.services.llm import LLMConfig, LLMService
from trioworks.services.router import RouterService
from trioworks.services.tts import TtsConfig, TtsService

QUESTION = (
    "Please tell me about the weather in the mountains this weekend. "
    "I want to know whether it will rain on Saturday; and whether Sunday is any better!"
)


@contextlib.asynccontextmanager
async def stack() -> AsyncIterator[tuple[RouterService, LLMService, Bus, Collector]]:
    broker = InProcessBroker()

    def bus(name: str) -> Bus:
        return Bus(InProcessTransport(broker), source=name)

    tts = TtsService(bus("tts"), TtsConfig(player="wav"), synthesizer=fake_synthesizer, sink=NullSink())
    llm = LLMService(bus("llm"), LLMConfig(word_delay=0.2))  # the router speaks, not the llm
    router = RouterService(bus("router"))
    client = bus("client")
    wire = Collector()
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        await client.subscribe("#", wire, capacity=10_000)
        for component in (tts, llm, router):
            await nursery.start(component.run)
        yield router, llm, client, wire
        nursery.cancel_scope.cancel()


def _on(wire: Collector, topic: str) -> list[Message]:
    return [m for m in wire.messages if m.topic == topic]


async def test_a_turn_through_the_llm_service(autojump_clock: trio.testing.MockClock) -> None:
    async with stack() as (router, _, client, wire):
        await client.publish("stt/final", FinalTranscript(text=QUESTION))
        with trio.fail_after(120):
            await router.wait_turns(1)
    (request,) = [m.data for m in _on(wire, "llm/request")]
    (response,) = [m.data for m in _on(wire, "llm/response")]
    assert response.id == request.id and response.error is None
    says = [m.data for m in _on(wire, "tts/say")]
    assert len(says) >= 2 and {s.utt_id for s in says} == {request.id}
    assert " ".join(s.text for s in says) == " ".join(response.reply.split())
    (exchange,) = router.history.exchanges
    assert exchange.ended == "done" and exchange.reply == response.reply


async def test_barge_in_cancels_the_llm_service_turn(autojump_clock: trio.testing.MockClock) -> None:
    async with stack() as (router, llm, client, wire):
        await client.publish("stt/final", FinalTranscript(text=QUESTION))
        with trio.fail_after(120):
            while not _on(wire, "tts/say"):
                await wire.wait_for(len(wire.messages) + 1)
            await client.publish("wake/event", WakeEvent(type="interrupt"))
            await router.wait_turns(1)
            while not _on(wire, "llm/response"):
                await wire.wait_for(len(wire.messages) + 1)
    request = _on(wire, "llm/request")[0].data
    (response,) = [m.data for m in _on(wire, "llm/response")]
    assert response.id == request.id and response.error == "cancelled"
    topics = [m.topic for m in wire.messages]
    cancel_at = topics.index("llm/cancel")
    assert "tts/say" not in topics[cancel_at:]
    late = [m.data for m in wire.messages[cancel_at:] if m.topic == "llm/stream"]
    assert all(d.done for d in late) and len(late) <= 1  # generation stopped: only the closing delta
    assert llm.turns == {}
    assert router.history.exchanges[0].ended == "barge_in"
