"""A barge-in over a real mosquitto broker: router, scripted llm and tts as separate clients."""

from __future__ import annotations

import itertools

import trio
from router_helpers import FakeLlm, fake_synthesizer

from _collector import Collector
from _fake_tts import NullSink
from _services import MosquittoBroker
from trioworks.bus import Bus, FinalTranscript, MqttTransport, WakeEvent
from trioworks.core import RetryPolicy
from trioworks.services.router import RouterService
from trioworks.services.tts import TtsConfig, TtsService

FAST = RetryPolicy(max_attempts=100, base_delay=0.05, factor=2.0, max_delay=0.5, jitter=0.5)
LONG = " ".join(
    f"This is sentence number {i} of the answer, long enough to be spoken alone." for i in range(20)
)
_ids = itertools.count()


def _bus(broker: MosquittoBroker, source: str) -> Bus:
    return Bus(MqttTransport(broker.url, client_id=f"{source}-{next(_ids)}", reconnect=FAST), source=source)


async def test_barge_in_over_mqtt_stops_llm_and_speech(fresh_mosquitto: MosquittoBroker) -> None:
    tts = TtsService(
        _bus(fresh_mosquitto, "tts"), TtsConfig(player="wav"), synthesizer=fake_synthesizer, sink=NullSink()
    )
    llm = FakeLlm(_bus(fresh_mosquitto, "llm"), lambda r: LONG, step=0.05)
    router = RouterService(_bus(fresh_mosquitto, "router"))
    wire = Collector()

    def on(topic: str) -> list[int]:
        return [i for i, m in enumerate(wire.messages) if m.topic == topic]

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            client = _bus(fresh_mosquitto, "client")
            await nursery.start(client.run)
            await client.subscribe("#", wire, capacity=10_000)
            for component in (tts, llm.service, router):
                await nursery.start(component.run)
            await client.publish("stt/final", FinalTranscript(text="go on"))
            while len(on("tts/say")) < 2:
                await wire.wait_for(len(wire.messages) + 1)
            await client.publish("wake/event", WakeEvent(type="interrupt"))
            await router.wait_turns(1)
            turn = llm.requests[0].id
            while not [m for m in wire.messages if m.topic == "tts/status" and m.data.event == "stopped"]:
                await wire.wait_for(len(wire.messages) + 1)
            await trio.sleep(1)  # stragglers would show up by now
            nursery.cancel_scope.cancel()
    assert turn in llm.cancelled and turn not in llm.finished
    (cancel,) = on("llm/cancel")
    assert max(on("tts/say")) < cancel
    stopped = [m.data for m in wire.messages if m.topic == "tts/status" and m.data.event == "stopped"]
    assert [s.utt_id for s in stopped] == [turn]
    assert router.history.exchanges[0].ended == "barge_in"


async def test_a_router_stopped_mid_turn_cancels_it_before_disconnecting(
    fresh_mosquitto: MosquittoBroker,
) -> None:
    tts = TtsService(
        _bus(fresh_mosquitto, "tts"), TtsConfig(player="wav"), synthesizer=fake_synthesizer, sink=NullSink()
    )
    llm = FakeLlm(_bus(fresh_mosquitto, "llm"), lambda r: LONG, step=0.05)
    router = RouterService(_bus(fresh_mosquitto, "router"))
    wire = Collector()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            client = _bus(fresh_mosquitto, "client")
            await nursery.start(client.run)
            await client.subscribe("#", wire, capacity=10_000)
            for component in (tts, llm.service):
                await nursery.start(component.run)
            with trio.CancelScope() as router_scope:
                async with trio.open_nursery() as router_nursery:
                    await router_nursery.start(router.run)
                    await client.publish("stt/final", FinalTranscript(text="go on"))
                    while not [m for m in wire.messages if m.topic == "tts/say"]:
                        await wire.wait_for(len(wire.messages) + 1)
                    router_scope.cancel()
            turn = llm.requests[0].id
            while turn not in llm.cancelled or not [m for m in wire.messages if m.topic == "tts/control"]:
                await wire.wait_for(len(wire.messages) + 1)
            nursery.cancel_scope.cancel()
    (control,) = [m.data for m in wire.messages if m.topic == "tts/control"]
    assert (control.utt_id, control.reason) == (turn, "shutdown")
    # ...and only then said goodbye.
    topics = [(m.topic, getattr(m.data, "event", None)) for m in wire.messages]
    goodbye = topics.index((f"system/health/{router.bus.source}", "stopped"))
    assert topics.index(("llm/cancel", None)) < topics.index(("tts/control", None)) < goodbye
