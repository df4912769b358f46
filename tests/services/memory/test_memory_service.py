"""The memory service on the in-process bus: ingest, memory/query -> memory/results, restart,
shutdown, bad input, failure. The service works in threads, so these tests run on the real
clock (the autojump clock would jump past deadlines while a thread works); each is bounded by
``fail_after`` in seconds and finishes in well under one."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import trio
import trio.testing
from memory_helpers import HashEmbedder, Replies, client, running, texts_of

from _offloaded import CallSites
from trioworks.bus import (
    Bus,
    FinalTranscript,
    InProcessBroker,
    InProcessTransport,
    LLMStreamDelta,
    MemoryQuery,
    MemoryResults,
    RawMessage,
    ServiceFailed,
    TtsSay,
)
from trioworks.core import RestartPolicy, RetryPolicy
from trioworks.services.memory import (
    MemoryConfig,
    MemoryConfigError,
    MemoryService,
    MemoryStore,
    MemoryStoreError,
    MiniLM,
    _bm25,
)


def health(broker: InProcessBroker) -> dict[str, object]:
    return json.loads(broker.retained["system/health/memory"].payload)["data"]


async def say(bus: Bus, *texts: str) -> None:
    for i, text in enumerate(texts):
        await bus.publish("stt/final", FinalTranscript(text=text, utt_id=f"u{i}", ts=1000.0 + i))


async def test_query_gets_results_with_its_correlation_id_while_other_messages_flow(
    memory_broker: InProcessBroker, tmp_path: Path, fake_embedder: HashEmbedder
) -> None:
    with trio.fail_after(20):
        async with (
            running(memory_broker, tmp_path / "m.db", fake_embedder) as memory,
            client(memory_broker) as llm,
        ):
            await say(llm, "remind me to buy bread", "what is the weather in paris")
            await llm.publish("tts/say", TtsSay(text="It is sunny in Paris.", utt_id="a1"))
            await llm.publish("tts/say", TtsSay(text="Yes?", wake_ack=True))  # not conversation
            await memory.wait_documents(3)

            streamed = Replies()
            await llm.subscribe("llm/stream", streamed)
            async with trio.open_nursery() as nursery:

                async def stream() -> None:  # other traffic on the same bus, until the reply
                    for seq in itertools.count():
                        await llm.publish("llm/stream", LLMStreamDelta(id="r", seq=seq, delta="x"))
                        await trio.sleep(0.001)

                nursery.start_soon(stream)
                await streamed.wait_for(5)
                reply = await llm.request(
                    "memory/query",
                    MemoryQuery(text="weather paris", top_k=2),
                    reply_topic="memory/results",
                    timeout=15,
                    id="corr-123",
                )
                nursery.cancel_scope.cancel()  # the stream flowed all along: it ends only now
            assert reply.envelope.id == "corr-123" and reply.envelope.source == "memory"
            results: MemoryResults = reply.data
            assert texts_of(results)[0] == "what is the weather in paris"
            # The assistant's reply is stored (who said what) but not recalled by default.
            assert "It is sunny in Paris." not in texts_of(results)
            assert {r.document["source"] for r in results.results} == {"stt"}
            assert memory.metrics.snapshot()["memory.ingest.skipped"] == 1
            assert llm.pending_requests == 0


async def test_a_plain_published_query_is_answered_with_its_envelope_id(
    memory_broker: InProcessBroker, tmp_path: Path, fake_embedder: HashEmbedder
) -> None:
    with trio.fail_after(20):
        async with running(memory_broker, tmp_path / "m.db", fake_embedder), client(memory_broker) as llm:
            replies = Replies()
            await llm.subscribe("memory/results", replies)
            sent = [
                await llm.publish("memory/query", MemoryQuery(text=f"q{i}", retrieval_strategy="recent"))
                for i in range(3)
            ]
            got = await replies.wait_for(3)
            assert sorted(m.envelope.id for m in got) == sorted(e.id for e in sent)
            assert all(m.data.results == () for m in got)  # nothing remembered yet


async def test_bad_queries_are_answered_with_the_field_at_fault_and_the_service_keeps_answering(
    memory_broker: InProcessBroker,
    tmp_path: Path,
    fake_embedder: HashEmbedder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def raw(id_: object, data: dict[str, object]) -> RawMessage:
        body = {"id": id_, "type": "memory.query", "ts": 1.0, "source": "evil", "data": data}
        return RawMessage("memory/query", json.dumps(body).encode(), qos=1)

    with trio.fail_after(20), caplog.at_level(logging.WARNING):
        async with (
            running(memory_broker, tmp_path / "m.db", fake_embedder) as memory,
            client(memory_broker) as llm,
        ):
            replies = Replies()
            await llm.subscribe("memory/results", replies)
            await memory_broker.publish(raw("b1", {"text": "hi", "top_k": 0}))
            await memory_broker.publish(raw("b2", {"text": "hi", "retrieval_strategy": "magic"}))
            await memory_broker.publish(raw("b3", {"text": "hi", "top_k": 51, "context_window": 9}))
            await memory_broker.publish(raw(7, {"text": "no usable id", "top_k": 0}))  # logged only
            good = await llm.publish("memory/query", MemoryQuery(text="hi"))
            got = await replies.wait_for(4)
            by_id = {m.envelope.id: m.data for m in got}
            assert set(by_id) == {"b1", "b2", "b3", good.id}
            assert by_id[good.id].error is None
            assert "$.data.top_k: must be >= 1, got 0" in by_id["b1"].error
            assert "$.data.retrieval_strategy: expected one of" in by_id["b2"].error
            assert "$.data.top_k: must be <= 50, got 51" in by_id["b3"].error
            for bad in ("b1", "b2", "b3"):
                assert (by_id[bad].query, by_id[bad].k, by_id[bad].results) == ("hi", 0, ())
            snap = memory.metrics.snapshot()
            assert snap["bus.sub.memory/query.malformed"] == 4
            assert snap["memory.query.rejected"] == 3
            assert snap["memory.query.unanswerable"] == 1
            assert snap["bus.sub.memory/query.handled"] == 1
            assert health(memory_broker)["ok"] is True
    assert "$.data.top_k: must be >= 1, got 0" in caplog.text  # logged by the bus too


async def test_a_bad_query_is_answered_at_once_not_after_the_requesters_deadline(
    memory_broker: InProcessBroker, tmp_path: Path, fake_embedder: HashEmbedder
) -> None:
    with trio.fail_after(20):
        async with running(memory_broker, tmp_path / "m.db", fake_embedder), client(memory_broker) as llm:
            # A requester whose contract is looser than memory's sends top_k 99 (forced past
            # the attrs validator): it gets an error reply at once, not a RequestTimeout.
            query = MemoryQuery(text="weather")
            object.__setattr__(query, "top_k", 99)
            # Never answered, the request would raise RequestTimeout: an error reply is the point.
            reply = await llm.request("memory/query", query, reply_topic="memory/results", timeout=15)
            assert reply.data.error is not None and "$.data.top_k" in reply.data.error


async def test_documents_survive_a_restart_and_ids_continue(
    memory_broker: InProcessBroker, tmp_path: Path, fake_embedder: HashEmbedder
) -> None:
    db = tmp_path / "m.db"
    with trio.fail_after(20):
        async with running(memory_broker, db, fake_embedder) as memory, client(memory_broker) as llm:
            await say(llm, "the zebra escaped", "buy bread", "call mom")
            await memory.wait_documents(3)
        assert health(memory_broker)["event"] == "stopped"
        async with running(memory_broker, db, fake_embedder) as memory, client(memory_broker) as llm:
            assert len(memory) == 3
            assert memory.indexer.current.n == 3  # indexed before it said it was serving
            reply = await llm.request(
                "memory/query", MemoryQuery(text="zebra", top_k=1), reply_topic="memory/results", timeout=5
            )
            [hit] = reply.data.results
            assert hit.document == {
                "id": 1,
                "text": "the zebra escaped",
                "timestamp": 1000.0,
                "source": "stt",
                "utt_id": "u0",
            }
            await say(llm, "one more")
            await memory.wait_documents(4)
            recent = await memory.query(MemoryQuery(text="", top_k=1, retrieval_strategy="recent"))
            assert recent.results[0].document["id"] == 4


class SlowEmbedder(HashEmbedder):
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        time.sleep(0.2)  # a worker thread: the loop is not held
        return super().encode(texts)


async def test_documents_queued_at_shutdown_are_still_stored(
    memory_broker: InProcessBroker, tmp_path: Path
) -> None:
    db = tmp_path / "m.db"
    texts = [f"utterance {i}" for i in range(20)]
    with trio.fail_after(20):
        async with (
            running(memory_broker, db, SlowEmbedder(), ingest_batch=2) as memory,
            client(memory_broker) as llm,
        ):
            await say(llm, *texts)
            await trio.testing.wait_all_tasks_blocked(cushion=0.01)  # all 20 handled: queued for ingest
            assert memory.metrics.snapshot()["bus.sub.stt/final.handled"] == 20
            assert len(memory) < 20  # most are still queued behind the slow embedder
        # Shut down: the queue was drained into the store.
        assert memory.metrics.snapshot().get("memory.ingest.lost", 0) == 0
        async with running(memory_broker, db, HashEmbedder()) as memory:
            assert [memory._corpus._docs[i].text for i in range(len(memory))] == texts  # type: ignore[union-attr]


class FailingEmbedder(HashEmbedder):
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if any("boom" in t for t in texts):
            raise RuntimeError("model exploded")
        return super().encode(texts)


async def test_ingest_failures_are_restarted_then_fail_the_service(
    memory_broker: InProcessBroker, tmp_path: Path
) -> None:
    policy = RestartPolicy(max_restarts=1, window=30, backoff=RetryPolicy(base_delay=0.01, jitter=0))
    bus = Bus(InProcessTransport(memory_broker, client_id="memory"), source="memory")
    memory = MemoryService(
        bus, MemoryConfig(db_path=tmp_path / "m.db"), embedder=FailingEmbedder(), restart=policy
    )
    with trio.fail_after(20):
        async with client(memory_broker) as llm, trio.open_nursery() as nursery:
            ready = Replies()
            await llm.subscribe("system/health/memory", ready)

            async def feed() -> None:
                await ready.wait_for(1)
                await say(llm, "fine")
                await memory.wait_documents(1)
                for _ in range(3):
                    await say(llm, "boom")
                    await trio.sleep(0.1)

            nursery.start_soon(feed)
            with pytest.raises(ServiceFailed, match="'memory'") as info:
                await memory.run()
            nursery.cancel_scope.cancel()
    assert info.value.cause.name == "memory-ingest"
    assert health(memory_broker)["event"] == "crashed"
    assert "memory-ingest" in str(health(memory_broker)["err"])


async def test_ingest_embeds_stores_and_indexes_off_the_loop(
    tmp_path: Path, minilm: MiniLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a batch's embedding (the real model), SQLite write and BM25 build ran: in threads,
    never on the loop. (The loop lag meanwhile is a benchmark: ``benchmarks/voice.py --only lag``.)"""
    texts = [
        f"Remind me that meeting number {i} with Alice is on Tuesday at {i % 12 + 1} pm." for i in range(8)
    ]
    sites = CallSites()
    sites.patch(monkeypatch, MiniLM, "encode")
    sites.patch(monkeypatch, MemoryStore, "append")
    sites.patch(monkeypatch, _bm25, "_prepare", "_load")
    broker = InProcessBroker()
    with trio.fail_after(60):
        async with (
            running(broker, tmp_path / "m.db", minilm, ingest_batch=len(texts)) as memory,
            client(broker, "stt") as stt,
        ):
            await say(stt, *texts)
            await memory.wait_documents(len(texts))
            await memory.indexer.wait_indexed(len(texts))
    assert sites.labels() == {"MiniLM.encode", "MemoryStore.append", "_bm25._prepare", "_bm25._load"}
    assert sites.on_loop() == []


async def test_a_store_it_cannot_use_fails_the_start_with_a_clear_error(
    memory_broker: InProcessBroker, tmp_path: Path, fake_embedder: HashEmbedder
) -> None:
    db = tmp_path / "m.db"
    MemoryStore(db, model="all-MiniLM-L6-v2", dim=384).close()
    memory = MemoryService(
        Bus(InProcessTransport(memory_broker), source="memory"),
        MemoryConfig(db_path=db),
        embedder=fake_embedder,
    )
    with trio.fail_after(20), pytest.raises(MemoryStoreError, match="meta 'model' is 'all-MiniLM-L6-v2'"):
        await memory.run()
    assert "system/health/memory" not in memory_broker.retained  # never said it was serving


def test_memory_config_names_the_bad_field_and_the_old_keywords_still_work(
    memory_broker: InProcessBroker, tmp_path: Path
) -> None:
    with pytest.raises(
        MemoryConfigError, match=r"memory config ingest_batch: expected an integer >= 1, got 0"
    ):
        MemoryConfig(db_path=tmp_path / "m.db", ingest_batch=0)
    with pytest.raises(MemoryConfigError, match=r"memory config db_path: expected a file path, got ''"):
        MemoryConfig(db_path="")
    bus = Bus(InProcessTransport(memory_broker), source="memory")
    with pytest.warns(DeprecationWarning, match=r"MemoryService\(bus, MemoryConfig\(db_path=\.\.\."):
        old = MemoryService(bus, tmp_path / "m.db", ingest_batch=4, query_deadline=1.0)  # type: ignore[arg-type]
    assert old.config == MemoryConfig(db_path=tmp_path / "m.db", ingest_batch=4, query_deadline=1.0)
    with pytest.raises(TypeError, match=r"\['ingest_batch'\]; set them on MemoryConfig"):
        MemoryService(bus, MemoryConfig(db_path=tmp_path / "m.db"), ingest_batch=4)
