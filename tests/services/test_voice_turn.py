"""Whole voice turns through every service: a WAV question (espeak-ng) -> stt (pocketsphinx) ->
router -> llm (offline) -> tts (espeak-ng) -> ``tts/status speaking_end``, on the in-process bus
and on a real mosquitto; RAG with real context while other traffic flows; and a conversation
that goes on across a broker restart.

Real programs and real time: every bound is seconds.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from voice_helpers import (
    ANSWER,
    QUESTION,
    MakeBus,
    Stack,
    Wire,
    speak_wav,
    start_stack,
    stt_for,
)

from _fake_tts import NullSink, make_synthesizer
from _services import MosquittoBroker, PersistentMosquitto
from trioworks.bus import (
    Bus,
    FinalTranscript,
    HealthStatus,
    InProcessBroker,
    InProcessTransport,
    LLMCancel,
    LLMRequest,
    MqttTransport,
    PartialTranscript,
    WakeEvent,
)
from trioworks.core import RetryPolicy
from trioworks.services.llm import CANCELLED, LLMConfig, LLMService
from trioworks.services.memory import MemoryConfig, MemoryService, MiniLM
from trioworks.services.tts import TtsConfig, TtsService

FAST = RetryPolicy(max_attempts=1000, base_delay=0.05, factor=2.0, max_delay=0.5, jitter=0.5)
_ids = itertools.count()


@pytest.fixture(params=["in-process", "mosquitto"])
def make_bus(request: pytest.FixtureRequest) -> Iterator[MakeBus]:
    if request.param == "in-process":
        broker = InProcessBroker()
        yield lambda source: Bus(InProcessTransport(broker, client_id=source), source=source)
    else:
        mosquitto: MosquittoBroker = request.getfixturevalue("fresh_mosquitto")
        yield lambda source: Bus(
            MqttTransport(mosquitto.url, client_id=f"{source}-{next(_ids)}", reconnect=FAST), source=source
        )


async def test_a_spoken_question_is_answered_aloud(
    make_bus: MakeBus, espeak_ng: str, sox: str, tmp_path: Path
) -> None:
    wav = speak_wav(espeak_ng, sox, tmp_path / "question.wav", QUESTION)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            stack = await start_stack(nursery, make_bus, tmp_path)
            stt = stt_for(make_bus, wav)
            await nursery.start(stt.run)  # transcribing starts now: everyone is listening
            await stack.wire.wait_until(lambda: stack.wire.status("speaking_end"))
            await stack.memory.wait_documents(2)  # the question and the spoken answer
            await stack.router.wait_turns(1)  # the router has seen the end of speech too
            nursery.cancel_scope.cancel()
    wire = stack.wire
    [final] = wire.on("stt/final")
    assert final.data.text == QUESTION
    [request] = wire.on("llm/request")
    assert request.data.text == QUESTION and request.envelope.source == "router"
    [response] = wire.on("llm/response")
    assert (response.data.id, response.data.reply, response.data.error) == (request.data.id, ANSWER, None)
    says = wire.on("tts/say")
    assert " ".join(s.data.text for s in says) == ANSWER
    assert {s.data.utt_id for s in says} == {request.data.id}  # one utterance: the turn's
    [end] = wire.status("speaking_end")
    assert end.data.utt_id == request.data.id
    # In causal order on the wire.
    order = [wire.messages.index(m) for m in (final, request, says[0], wire.status("speaking_start")[0], end)]
    assert order == sorted(order)
    # The answer is a real WAV of a few seconds of speech.
    [output] = wire.on("tts/output")  # where the audio went: sent just before the end status
    assert output.data.utt_id == end.data.utt_id
    info = await trio.run_process([sox, "--i", "-D", output.data.path], capture_stdout=True)
    assert float(info.stdout) > 2.0
    [exchange] = stack.router.history.exchanges
    assert (exchange.user, exchange.reply, exchange.ended) == (QUESTION, ANSWER, "done")
    assert len(stack.memory) >= 2


async def test_the_conversation_goes_on_across_a_broker_restart(
    persistent_mosquitto: PersistentMosquitto, tmp_path: Path
) -> None:
    """Every service reconnects and re-subscribes on its own; a transcript published while the
    router is still away (QoS 1) is not lost; the next turn carries the history of the one
    before; each service's retained health is back to ready."""
    # The router comes back 3 s after the broker went: time for the rest to reconnect first.
    slow = RetryPolicy(max_attempts=1000, base_delay=3.0, factor=1.0, max_delay=3.0, jitter=0)

    def make_bus(source: str) -> Bus:
        transport = MqttTransport(
            persistent_mosquitto.url,
            client_id=source,
            reconnect=slow if source == "router" else FAST,
            keep_alive=5,
        )
        return Bus(transport, source=source)

    fake_tts = TtsService(
        make_bus("tts"),
        TtsConfig(player="wav"),
        synthesizer=make_synthesizer(rate=1000, bytes_per_char=10, delay=0.001),
        sink=NullSink(),
    )
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            stack = await start_stack(nursery, make_bus, tmp_path, tts=fake_tts)
            await stack.client.publish("stt/final", FinalTranscript(text="my name is Ada"))
            await stack.router.wait_turns(1)
            await trio.to_thread.run_sync(persistent_mosquitto.wait_for_save)  # sessions as they are now

            before = len(stack.wire.messages)
            await trio.to_thread.run_sync(functools.partial(persistent_mosquitto.restart, down_for=0.3))
            await stack.client.transport.connections.wait_value(lambda n: n >= 2)  # type: ignore[attr-defined]
            assert stack.router.bus.transport.connections.value == 1  # type: ignore[attr-defined]
            await stack.client.publish("stt/final", FinalTranscript(text="what is my name"))  # router away
            for bus in stack.buses:
                await bus.transport.connections.wait_value(lambda n: n >= 2)  # type: ignore[attr-defined]
            await _wait_healthy(stack, before)  # said again on reconnect (the will had replaced it)

            await stack.router.wait_turns(2)
            await stack.wire.wait_until(lambda: len(stack.wire.status("speaking_end")) >= 2)
            nursery.cancel_scope.cancel()
    first, second = stack.router.history.exchanges
    assert (first.ended, second.ended) == ("done", "done")
    assert second.user == "what is my name" and second.reply.endswith("You said: what is my name")
    [_, request] = stack.wire.on("llm/request")
    assert [m.content for m in request.data.conversation_history] == [first.user, first.reply]
    for bus in stack.buses:
        assert bus.transport.metrics.snapshot()["mqtt.connections_lost"] >= 1  # type: ignore[attr-defined]


async def _wait_healthy(stack: Stack, since: int) -> None:
    """Until every service's health on the wire after position ``since`` says ready."""
    services = {bus.source for bus in stack.buses} - {"client"}
    while True:
        seen: dict[str, HealthStatus] = {}
        for message in stack.wire.messages[since:]:
            if message.topic.startswith("system/health/"):
                seen[message.topic.rsplit("/", 1)[1]] = message.data
        if all(name in seen and seen[name] == HealthStatus(ok=True, event="ready") for name in services):
            return
        await stack.wire.wait_for(len(stack.wire.messages) + 1)


async def test_rag_returns_real_context_while_other_messages_flow(make_bus: MakeBus, tmp_path: Path) -> None:
    """The original's head-of-line bug: the llm's RAG request could only be answered after its
    own handler returned, so it always timed out (5 s) with no context. Here the reply comes
    from a real memory service (real MiniLM) while a long reply streams and partials flood."""
    embedder = await trio.to_thread.run_sync(MiniLM)
    facts = [
        "the spare key is under the blue flower pot by the door",
        "my sister lives in Bergen and works as a nurse",
        "the boiler was serviced in May by the plumber",
    ]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            client = make_bus("client")
            await nursery.start(client.run)
            stream, responses = Wire(), Wire()
            await client.subscribe("llm/stream", stream, capacity=10_000)
            await client.subscribe("llm/response", responses)
            memory = MemoryService(
                make_bus("memory"), MemoryConfig(db_path=tmp_path / "memory.db"), embedder=embedder
            )
            llm = LLMService(make_bus("llm"), LLMConfig(word_delay=0.01, rag_timeout=30))
            await nursery.start(memory.run)
            await nursery.start(llm.run)
            for i, fact in enumerate(facts):
                await client.publish("stt/final", FinalTranscript(text=fact, utt_id=f"f{i}"))
            await memory.wait_documents(len(facts))

            async def flood() -> None:  # other traffic, all along
                for n in itertools.count():
                    await client.publish("stt/partial", PartialTranscript(text=f"noise {n}"))
                    await trio.sleep(0.002)

            nursery.start_soon(flood)
            # ~20 s of streaming (2,000 words, 10 ms each): RAG must not wait for its end.
            await client.publish("llm/request", LLMRequest(id="long", text="say " * 2000))
            await stream.wait_until(lambda: len(stream.messages) >= 5)
            await client.publish(
                "llm/request", LLMRequest(id="rag", text="where is the spare key", use_rag=True, rag_k=1)
            )
            await responses.wait_until(lambda: [m for m in responses.messages if m.data.id == "rag"])
            # The long reply was still streaming: RAG did not wait for it.
            assert not [m for m in stream.messages if m.data.id == "long" and m.data.done]
            nursery.cancel_scope.cancel()
    [rag] = [m.data for m in responses.messages if m.data.id == "rag"]
    assert rag.reply == f"From memory: {facts[0]}"  # with its context (the original: timeout, none)
    snap = llm.metrics.snapshot()
    assert snap["llm.rag.answered"] == 1 and "llm.rag.timed_out" not in snap


@pytest.mark.parametrize("how", ["barge_in", "llm_cancel"])
async def test_barge_in_or_llm_cancel_stops_generation_and_speech_together(
    make_bus: MakeBus, tmp_path: Path, how: str
) -> None:
    """The real router, llm and tts: a long answer is being generated and spoken; a barge-in
    (``wake/event interrupt``) or an ``llm/cancel`` of the turn stops both, promptly."""
    slow_tts = TtsService(
        make_bus("tts"),
        TtsConfig(player="wav"),
        synthesizer=make_synthesizer(rate=1000, bytes_per_char=50, delay=0.002),  # 50 ms a character
        sink=NullSink(),
    )
    long = " ".join(f"Sentence number {i} of a question asked at great length." for i in range(40))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            stack = await start_stack(nursery, make_bus, tmp_path, tts=slow_tts)
            wire = stack.wire
            await stack.client.publish("stt/final", FinalTranscript(text=long))
            await wire.wait_until(lambda: wire.status("speaking_start") and len(wire.on("llm/stream")) > 5)
            [request] = wire.on("llm/request")
            turn = request.data.id
            if how == "barge_in":
                await stack.client.publish("wake/event", WakeEvent(type="interrupt"))
            else:
                await stack.client.publish("llm/cancel", LLMCancel(id=turn))
            await wire.wait_until(lambda: wire.status("stopped") and wire.on("llm/response"))
            await stack.router.wait_turns(1)
            said, streamed = len(wire.on("tts/say")), len(wire.on("llm/stream"))
            await trio.sleep(1)  # stragglers would show up by now
            nursery.cancel_scope.cancel()
    [response] = [m.data for m in wire.on("llm/response")]
    assert (response.id, response.error) == (turn, CANCELLED)
    assert len(response.reply) < len(long)  # generation stopped part-way
    [stopped] = [m.data for m in wire.status("stopped")]
    assert stopped.utt_id == turn
    assert not wire.status("speaking_end")
    assert (len(wire.on("tts/say")), len(wire.on("llm/stream"))) == (said, streamed)
    [exchange] = stack.router.history.exchanges
    assert exchange.ended == ("barge_in" if how == "barge_in" else "cancelled")
