"""Memory that does not echo itself (issue 14): who said what is stored, a query recalls what the
user said and was told (not the assistant's replies), and the same text is stored once."""

from __future__ import annotations

from pathlib import Path

import trio

from _collector import Collector
from _embedders import WordEmbedder
from _fake_tts import NullSink, make_synthesizer
from trioworks.bus import Bus, FinalTranscript, InProcessBroker, InProcessTransport, MemoryQuery
from trioworks.services.llm import LLMConfig, LLMService
from trioworks.services.memory import MemoryConfig, MemoryService, NewDocument
from trioworks.services.router import RouterConfig, RouterService
from trioworks.services.tts import TtsConfig, TtsService

FACT = "my sister lives in Bergen"


def _bus(broker: InProcessBroker, name: str) -> Bus:
    return Bus(InProcessTransport(broker, client_id=name), source=name)


async def test_three_turns_never_answer_from_the_assistants_own_replies(tmp_path: Path) -> None:
    broker = InProcessBroker()
    memory = MemoryService(
        _bus(broker, "memory"), MemoryConfig(db_path=tmp_path / "m.db"), embedder=WordEmbedder()
    )
    synth = make_synthesizer(rate=16000, bytes_per_char=1, delay=0)
    tts = TtsService(
        _bus(broker, "tts"), TtsConfig(player="wav", realtime=False), synthesizer=synth, sink=NullSink()
    )
    with trio.fail_after(30):  # real time: memory searches in worker threads
        async with trio.open_nursery() as nursery:
            client = _bus(broker, "client")
            await nursery.start(client.run)
            responses = Collector()
            await client.subscribe("llm/response", responses)
            for service in (
                memory,
                LLMService(_bus(broker, "llm"), LLMConfig(word_delay=0)),
                tts,
                RouterService(_bus(broker, "router"), RouterConfig(use_rag=True, rag_k=3)),
            ):
                await nursery.start(service.run)
            await memory.add([NewDocument(text=FACT, timestamp=1.0, source="note")])
            for turn in range(3):
                await client.publish("stt/final", FinalTranscript(text="where does my sister live"))
                await responses.wait_for(turn + 1)
                if turn == 0:  # the fact, the question and the first reply (tts/say) stored
                    await memory.wait_documents(3)
            hits = await memory.query(MemoryQuery(text="From memory: my sister lives in Bergen", top_k=10))
            nursery.cancel_scope.cancel()
    replies = [m.data.reply for m in responses.messages]
    assert all(reply.count("From memory:") == 1 for reply in replies), replies
    assert all(FACT in reply for reply in replies), replies
    assert {r.document["source"] for r in hits.results} <= {"stt", "note"}
    texts = [r.document["text"] for r in hits.results]
    assert len(texts) == len(set(texts))  # the question, asked three times, stored and recalled once


async def test_the_same_text_from_the_same_source_is_stored_once(tmp_path: Path) -> None:
    broker = InProcessBroker()
    memory = MemoryService(
        _bus(broker, "memory"), MemoryConfig(db_path=tmp_path / "m.db"), embedder=WordEmbedder()
    )
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(memory.run)
            stored = await memory.add(
                [
                    NewDocument(text="The boiler was serviced.", timestamp=1.0, source="stt"),
                    NewDocument(text="the boiler  was serviced", timestamp=2.0, source="stt"),
                    NewDocument(
                        text="The boiler was serviced.", timestamp=3.0, source="tts"
                    ),  # said by the other side
                ]
            )
            again = await memory.add(
                [NewDocument(text="THE BOILER WAS SERVICED!", timestamp=4.0, source="stt")]
            )
            everything = MemoryConfig(db_path=tmp_path / "m.db", recall=None)
            nursery.cancel_scope.cancel()
    assert [d.source for d in stored] == ["stt", "tts"] and again == []
    assert memory.metrics.counter("memory.ingest.duplicates").value == 2
    assert everything.recall is None
