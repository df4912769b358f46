"""The memory service over a real mosquitto broker: ingest, then memory/query -> memory/results
with the query's correlation id, the LLM's RAG path of the original."""

from __future__ import annotations

import itertools
from pathlib import Path

import trio
from memory_helpers import HashEmbedder

from _services import MosquittoBroker
from trioworks.bus import Bus, FinalTranscript, MemoryQuery, MqttTransport, TtsSay
from trioworks.core import RetryPolicy
from trioworks.services.memory import MemoryConfig, MemoryService

FAST = RetryPolicy(max_attempts=100, base_delay=0.05, factor=2.0, max_delay=0.5, jitter=0.5)
_ids = itertools.count()


def _bus(url: str, source: str) -> Bus:
    return Bus(MqttTransport(url, client_id=f"{source}-{next(_ids)}", reconnect=FAST), source=source)


async def test_rag_query_over_mosquitto(mosquitto_broker: MosquittoBroker, tmp_path: Path) -> None:
    memory = MemoryService(
        _bus(mosquitto_broker.url, "memory"),
        MemoryConfig(db_path=tmp_path / "m.db", recall=None),  # every source, the assistant's too
        embedder=HashEmbedder(),
    )
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(memory.run)
            llm = _bus(mosquitto_broker.url, "llm")
            await nursery.start(llm.run)
            await llm.publish("stt/final", FinalTranscript(text="my passport expires in march"))
            await llm.publish("tts/say", TtsSay(text="I will remind you about the passport in February."))
            await llm.publish("stt/final", FinalTranscript(text="play some jazz"))
            await memory.wait_documents(3)
            reply = await llm.request(
                "memory/query",
                MemoryQuery(text="when does my passport expire", top_k=2, retrieval_strategy="hybrid"),
                reply_topic="memory/results",
                timeout=5,
                id="rag-1",
            )
            nursery.cancel_scope.cancel()
    assert reply.envelope.id == "rag-1" and reply.envelope.source == "memory"
    assert {r.document["text"] for r in reply.data.results} == {
        "my passport expires in march",
        "I will remind you about the passport in February.",
    }


async def test_a_malformed_query_over_mosquitto_is_answered_with_the_field(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    memory = MemoryService(
        _bus(mosquitto_broker.url, "memory"), MemoryConfig(db_path=tmp_path / "m.db"), embedder=HashEmbedder()
    )
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(memory.run)
            llm = _bus(mosquitto_broker.url, "llm")
            await nursery.start(llm.run)
            query = MemoryQuery(text="anything")
            object.__setattr__(query, "context_window", 9)  # a peer with a looser contract
            reply = await llm.request("memory/query", query, reply_topic="memory/results", timeout=5)
            nursery.cancel_scope.cancel()
    assert reply.data.results == () and reply.data.k == 0
    assert "$.data.context_window: must be <= 5, got 9" in reply.data.error
