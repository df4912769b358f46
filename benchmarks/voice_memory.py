"""The memory service at 10,000 documents: ingest, BM25 rebuild, queries, restart, loop lag.

    python benchmarks/voice_memory.py [--docs N] [--queries N] [--batch N] [--fake] [--json PATH]

Runs the real :class:`~trioworks.services.memory.MemoryService` (all-MiniLM-L6-v2 in numpy,
SQLite in a temp dir) on an in-process bus, and prints a Markdown table:

- ingest: documents added through ``MemoryService.add`` in batches (embed + store + index);
- one utterance: ``stt/final`` published -> stored and searchable;
- BM25 rebuild over the whole corpus (in its thread);
- ``memory/query`` -> ``memory/results`` round trips over the bus per strategy, and hybrid right
  after an utterance (its BM25 tail not yet indexed);
- restart: a new service on the same file until it is serving (load, tokenise, index);
- the worst Trio loop lag in every phase (a 5 ms ticker, measured with ``trio.current_time``).

``--fake`` swaps the model for a hashing embedder (seconds instead of minutes; plumbing only).
``bench_memory()`` is the function a combined voice benchmark can call.
"""

from __future__ import annotations

import os

# One BLAS thread per embedding call, as docs/memory.md recommends; must precede numpy's import.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from trioworks.bus import Bus, FinalTranscript, InProcessBroker, InProcessTransport, MemoryQuery
from trioworks.services.memory import MemoryConfig, MemoryService, MiniLM, NewDocument

_TEST_HELPERS = Path(__file__).resolve().parents[1] / "tests" / "services" / "memory"  # HashEmbedder
_FACTS = [  # fresh utterances, unlike the corpus and each other
    "The spare key is under the blue flower pot.",
    "My passport expires in March.",
    "The wifi password is on the fridge door.",
    "Grandma's recipe needs three eggs.",
    "The plumber comes on Thursday at nine.",
    "I parked on level four, row C.",
    "The cat's vet is Doctor Alvarez.",
    "Our anniversary is the twelfth of June.",
    "The bike lock code is four seven one.",
    "I lent my drill to the neighbour.",
    "The insurance renewal is due in August.",
    "The library book is about volcanoes.",
    "My shoe size is forty-three.",
    "The boiler was serviced last October.",
    "The kids' dentist moved to Elm Street.",
    "The sourdough starter lives in the pantry.",
    "I prefer window seats on long flights.",
    "The hiking trail starts at the old mill.",
    "Tom is allergic to peanuts.",
    "The garage door remote needs a new battery.",
]
_SUBJECTS = [
    "the weather in Paris",
    "my sister's birthday",
    "the dentist appointment",
    "the jazz playlist",
    "the grocery list",
    "the meeting with Alice",
    "the flight to Tokyo",
    "the car's oil change",
    "the electricity bill",
    "the garden tomatoes",
    "the kids' school trip",
    "the new laptop",
]
_VERBS = [
    "remind me about",
    "what do you know about",
    "tell me again about",
    "add a note on",
    "I was wondering about",
    "can you check",
    "don't forget",
    "I told you about",
]
_WHEN = [
    "tomorrow morning",
    "next Tuesday",
    "this afternoon",
    "at three pm",
    "on the weekend",
    "tonight",
    "in two weeks",
    "before Friday",
]


def utterances(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.choice(_VERBS).capitalize()} {rng.choice(_SUBJECTS)} {rng.choice(_WHEN)}, number {i}."
        for i in range(n)
    ]


class Lag:
    """Worst lag of a 5 ms ticker, per phase."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def tick(self) -> None:
        while True:
            before = trio.current_time()
            await trio.sleep(0.005)
            self.worst = max(self.worst, trio.current_time() - before - 0.005)

    def take(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst


@asynccontextmanager
async def _running(broker: InProcessBroker, db: Path, embedder: Any) -> AsyncIterator[MemoryService]:
    service = MemoryService(
        Bus(InProcessTransport(broker, client_id="memory"), source="memory"),
        MemoryConfig(db_path=db),
        embedder=embedder,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        yield service
        nursery.cancel_scope.cancel()


def _ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50_ms": 1000 * statistics.median(values),
        "p95_ms": 1000 * values[min(len(values) - 1, int(0.95 * len(values)))],
        "max_ms": 1000 * values[-1],
    }


async def bench_memory(
    docs: int = 10_000, queries: int = 30, batch: int = 64, fake: bool = False
) -> dict[str, Any]:
    """Run every phase; returns ``{phase: {metric: value}}`` (times in ms unless named ``_s``)."""
    if fake:
        sys.path.insert(0, str(_TEST_HELPERS))
        from memory_helpers import HashEmbedder

        embedder: Any = HashEmbedder()
    else:
        embedder = await trio.to_thread.run_sync(MiniLM)
    texts = utterances(docs)
    out: dict[str, Any] = {
        "config": {"docs": docs, "queries": queries, "batch": batch, "model": embedder.name}
    }
    lag = Lag()
    broker = InProcessBroker()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "memory.db"
        async with trio.open_nursery() as top:
            top.start_soon(lag.tick)
            client = Bus(InProcessTransport(broker, client_id="llm"), source="llm")
            await top.start(client.run)
            async with _running(broker, db, embedder) as memory:
                lag.take()
                started = time.perf_counter()
                for i in range(0, docs, batch):
                    await memory.add(
                        [NewDocument(t, 1.7e9 + i + j, "stt") for j, t in enumerate(texts[i : i + batch])]
                    )
                elapsed = time.perf_counter() - started
                out["ingest"] = {
                    "total_s": elapsed,
                    "docs_per_s": docs / elapsed,
                    "worst_lag_ms": 1000 * lag.take(),
                }

                await memory.indexer.wait_indexed(docs)
                started = time.perf_counter()
                await memory.indexer.rebuild_now()
                out["bm25_rebuild"] = {
                    "ms": 1000 * (time.perf_counter() - started),
                    "worst_lag_ms": 1000 * lag.take(),
                }

                rng = random.Random(1)
                for strategy in ("hybrid", "similarity", "recent"):
                    times = []
                    for _ in range(queries):
                        query = MemoryQuery(
                            text=f"{rng.choice(_VERBS)} {rng.choice(_SUBJECTS)}",
                            top_k=5,
                            retrieval_strategy=strategy,
                        )  # type: ignore[arg-type]
                        t0 = time.perf_counter()
                        await client.request("memory/query", query, reply_topic="memory/results", timeout=30)
                        times.append(time.perf_counter() - t0)
                    out[f"query_{strategy}"] = {**_ms(times), "worst_lag_ms": 1000 * lag.take()}

                ingest_times, tail_times, found = [], [], 0
                for i in range(min(queries, 20)):
                    text = _FACTS[i % len(_FACTS)]
                    t0 = time.perf_counter()
                    await client.publish("stt/final", FinalTranscript(text=text, utt_id=f"k{i}"))
                    await memory.wait_documents(docs + i + 1)
                    ingest_times.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    reply = await client.request(
                        "memory/query",
                        MemoryQuery(text=text, top_k=3),
                        reply_topic="memory/results",
                        timeout=30,
                    )
                    tail_times.append(time.perf_counter() - t0)
                    found += any(r.document["text"] == text for r in reply.data.results)
                out["one_utterance_ingest"] = {**_ms(ingest_times), "worst_lag_ms": 1000 * lag.take()}
                out["query_hybrid_after_utterance"] = {
                    **_ms(tail_times),
                    "found_the_new_doc": f"{found}/{len(tail_times)}",
                    "queries_with_tail": memory.metrics.snapshot().get("memory.query.with_tail", 0),
                }  # interleaved with the row above, whose worst lag covers both
            lag.take()
            started = time.perf_counter()
            async with _running(broker, db, embedder) as memory:
                out["restart"] = {
                    "to_serving_ms": 1000 * (time.perf_counter() - started),
                    "documents": len(memory),
                    "worst_lag_ms": 1000 * lag.take(),
                }
            top.cancel_scope.cancel()
    return out


def _table(result: dict[str, Any]) -> str:
    lines = ["| phase | result | worst loop lag |", "|---|---|---|"]
    for phase, values in result.items():
        if phase == "config":
            continue
        cells = ", ".join(
            f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in values.items()
            if k != "worst_lag_ms"
        )
        lag = values.get("worst_lag_ms")
        lines.append(f"| {phase} | {cells} | {'(above)' if lag is None else f'{lag:.1f} ms'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--fake", action="store_true", help="hashing embedder instead of MiniLM")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    result = trio.run(bench_memory, args.docs, args.queries, args.batch, args.fake)
    print(f"memory service, {json.dumps(result['config'])}")
    print(_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
