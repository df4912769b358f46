"""The BM25 indexer: rebuilds in a worker process, coalesced; queries see the not-yet-indexed tail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trio
import trio.lowlevel
from memory_helpers import Constant, client, new_docs, running

from trioworks.bus import FinalTranscript, InProcessBroker, MemoryQuery
from trioworks.core import Metrics
from trioworks.services.memory import Bm25Indexer, build_index, tokenize


async def test_rebuilds_are_coalesced_and_match_an_index_built_in_process(nursery: trio.Nursery) -> None:
    texts: list[str] = []
    metrics = Metrics()
    indexer = Bm25Indexer(
        lambda n: texts[:n], lambda: len(texts), limiter=trio.CapacityLimiter(1), metrics=metrics, interval=0
    )
    await nursery.start(indexer.run)
    with trio.fail_after(30):
        for i in range(50):
            texts.append(f"note {i} about the zebra number{i}" if i % 7 == 0 else f"plain note {i} word{i}")
            indexer.request_rebuild()
            await trio.lowlevel.checkpoint()
        await indexer.wait_indexed(50)
    # The first rebuild started after the first append; every other request folded into one more.
    assert metrics.counter("memory.bm25.rebuilds").value <= 2
    assert indexer.current.n == 50
    here = build_index(tokenize(texts)).retriever
    there = indexer.current.retriever
    assert here is not None and there is not None
    for query in (["zebra"], ["plain", "note"], ["word7"], ["unknown"]):
        ids_here, ids_there = here.get_tokens_ids(query), there.get_tokens_ids(query)
        if not ids_here:
            assert not ids_there
            continue
        np.testing.assert_allclose(here.get_scores_from_ids(ids_here), there.get_scores_from_ids(ids_there))


async def test_an_empty_corpus_and_one_without_words_index_to_nothing(nursery: trio.Nursery) -> None:
    texts = ["", "?!", "a b c"]  # no token of 2+ word characters
    indexer = Bm25Indexer(
        lambda n: texts[:n], lambda: len(texts), limiter=trio.CapacityLimiter(1), metrics=Metrics()
    )
    with trio.fail_after(30):
        await indexer.rebuild_now()
    assert indexer.current.n == 3 and indexer.current.retriever is None


async def test_a_query_right_after_an_utterance_finds_it_before_the_rebuild(
    memory_broker: InProcessBroker, tmp_path: Path
) -> None:
    filler = [f"note number {i} about groceries" for i in range(10)]
    with trio.fail_after(30):
        # A long interval: after the first rebuild, the next waits, so the new utterance stays
        # in the tail for the whole test.
        async with running(
            memory_broker, tmp_path / "m.db", Constant(), rebuild_interval=600, recall=None
        ) as memory:
            await memory.add(new_docs(*filler))
            await memory.indexer.wait_indexed(10)
            async with client(memory_broker) as stt:
                await stt.publish("stt/final", FinalTranscript(text="the zebra escaped from the zoo"))
                await memory.wait_documents(11)
                assert memory.indexer.current.n == 10  # not indexed yet
                reply = await stt.request(
                    "memory/query",
                    MemoryQuery(text="zebra", top_k=2),
                    reply_topic="memory/results",
                    timeout=5,
                )
    # The constant embedder ranks every document alike (oldest first), so only BM25 over the
    # tail can lift the zebra from last place to a tie with the oldest note.
    assert [r.document["text"] for r in reply.data.results] == [filler[0], "the zebra escaped from the zoo"]
    assert memory.metrics.snapshot()["memory.query.with_tail"] == 1
