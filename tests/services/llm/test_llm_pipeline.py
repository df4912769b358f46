"""The llm service with its neighbours: a real memory service (RAG) and tts (cancel stops speech)."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from llm_helpers import Collector, rig

from _embedders import WordEmbedder
from _fake_tts import NullSink, make_synthesizer
from trioworks.bus import Bus, FinalTranscript, InProcessTransport, WakeEvent
from trioworks.services.llm import CANCELLED, LLMConfig
from trioworks.services.memory import MemoryConfig, MemoryService
from trioworks.services.router import RouterService
from trioworks.services.tts import TtsConfig, TtsService


async def test_rag_through_a_real_memory_service(tmp_path: Path) -> None:
    # Real time: memory searches in worker threads. Seconds-scale bound only.
    with trio.fail_after(20):
        async with rig(LLMConfig(word_delay=0)) as r:
            memory = MemoryService(
                Bus(InProcessTransport(r.client.transport.broker, client_id="memory"), source="memory"),
                MemoryConfig(db_path=tmp_path / "memory.db"),
                embedder=WordEmbedder(),
            )
            await r.nursery.start(memory.run)
            for text in ("my sister lives in Bergen", "the boiler was serviced in May"):
                await r.client.publish("stt/final", FinalTranscript(text=text))
            await memory.wait_documents(2)
            await r.ask("where does my sister live", use_rag=True, rag_k=1)
            [response] = await r.responses.wait_id("r1")
            assert response.reply == "From memory: my sister lives in Bergen"
            assert r.llm.metrics.counter("llm.rag.answered").value == 1


_synth = make_synthesizer(rate=1000, bytes_per_char=100, delay=0.01)  # 50 ms of audio per character


async def test_llm_cancel_stops_generation_and_the_speech_it_fed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    long = " ".join(f"This is sentence number {i} of a long spoken answer." for i in range(40))
    async with rig(LLMConfig(word_delay=0.05), speak=True) as r:
        tts = TtsService(
            Bus(InProcessTransport(r.client.transport.broker, client_id="tts"), source="tts"),
            TtsConfig(player="wav"),
            synthesizer=_synth,
            sink=NullSink(),
        )
        await r.nursery.start(tts.run)
        status = Collector()
        await r.client.subscribe("tts/status", status)
        # The offline backend echoes the request text: a long answer, spoken while it streams.
        await r.ask(long)
        while not any(s.event == "speaking_start" and s.utt_id == "r1" for s in status.data):
            await status.wait_for(len(status.messages) + 1)
        says = len(r.says.messages)
        await r.cancel()
        [response] = await r.responses.wait_id("r1")
        assert response.error == CANCELLED
        while not any(s.event == "stopped" for s in status.data):
            await status.wait_for(len(status.messages) + 1)
        [stopped] = [s for s in status.data if s.event == "stopped"]
        assert (stopped.utt_id, stopped.reason) == ("r1", "llm_cancel")
        await trio.sleep(30)
        assert len(r.says.messages) == says  # no sentence was sent after the cancel
        assert not any(s.event == "speaking_end" for s in status.data)
        assert r.llm.turns == {}


async def test_barge_in_through_the_router_stops_llm_and_speech(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The whole voice turn: stt/final -> router -> llm (offline) -> router -> tts; a barge-in
    (wake/event interrupt) ends generation and speech together."""
    long = " ".join(f"Sentence number {i} of what the user said at length." for i in range(40))
    async with rig(LLMConfig(word_delay=0.05)) as r:
        broker = r.client.transport.broker
        tts = TtsService(
            Bus(InProcessTransport(broker, client_id="tts"), source="tts"),
            TtsConfig(player="wav"),
            synthesizer=_synth,
            sink=NullSink(),
        )
        router = RouterService(Bus(InProcessTransport(broker, client_id="router"), source="router"))
        await r.nursery.start(tts.run)
        await r.nursery.start(router.run)
        status = Collector()
        await r.client.subscribe("tts/status", status)
        await r.client.publish("stt/final", FinalTranscript(text=long))
        while not any(s.event == "speaking_start" for s in status.data):
            await status.wait_for(len(status.messages) + 1)
        await r.client.publish("wake/event", WakeEvent(type="interrupt"))
        await router.wait_turns(1)
        [response] = await r.responses.wait_for(1)
        assert response.data.error == CANCELLED
        turn_id = response.data.id
        while not any(s.event == "stopped" for s in status.data):
            await status.wait_for(len(status.messages) + 1)
        [stopped] = [s for s in status.data if s.event == "stopped"]
        assert stopped.utt_id == turn_id
        says = len(r.says.messages)
        deltas = len(r.deltas(turn_id))
        await trio.sleep(30)
        assert (len(r.says.messages), len(r.deltas(turn_id))) == (says, deltas)
        assert not any(s.event == "speaking_end" for s in status.data)
        [exchange] = router.history.exchanges
        assert exchange.ended == "barge_in"
