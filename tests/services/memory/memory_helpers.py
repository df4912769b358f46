"""Helpers of the memory tests (a module of its own: ``conftest`` names collide across dirs)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import trio

from trioworks.bus import Bus, InProcessBroker, InProcessTransport, Message
from trioworks.services.memory import (
    Corpus,
    Document,
    MemoryConfig,
    MemoryService,
    NewDocument,
    Snapshot,
    build_index,
    tokenize,
)


class HashEmbedder:
    """A fast, deterministic stand-in for MiniLM: a normalised bag of hashed words.

    Texts sharing words are similar, texts sharing none are orthogonal-ish: enough to test the
    plumbing without the model's cost. ``calls`` counts ``encode`` calls (thread-safe enough for
    the assertions made on it).
    """

    name = "hash-bow-test"
    dim = 64

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm:
                out[row] /= norm
            else:
                out[row, 0] = 1.0  # a valid unit vector for texts without words
        return out


class Constant:
    """Every text gets the same vector: the dense ranking is then just oldest first."""

    name = "constant"
    dim = 4

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.tile(np.array([1, 0, 0, 0], np.float32), (len(texts), 1))


def make_snapshot(texts: Sequence[str], embedder: object, *, indexed: int | None = None) -> Snapshot:
    """A snapshot over ``texts`` (ids 1.., timestamps 1000+i) whose BM25 index covers the first
    ``indexed`` documents (all by default); the rest form the tail."""
    docs = [Document(id=i + 1, text=t, timestamp=1000.0 + i, source="stt") for i, t in enumerate(texts)]
    corpus = Corpus(embedder.dim)  # type: ignore[attr-defined]
    tokens = tokenize(list(texts))
    if texts:
        corpus.append(docs, embedder.encode(list(texts)), tokens)  # type: ignore[attr-defined]
    n = len(texts) if indexed is None else indexed
    return corpus.snapshot(build_index(tokens[:n]))


def new_docs(*texts: str, source: str = "stt") -> list[NewDocument]:
    return [NewDocument(text=t, timestamp=1000.0 + i, source=source) for i, t in enumerate(texts)]


def texts_of(results: object) -> list[str]:
    return [r.document["text"] for r in results.results]  # type: ignore[attr-defined]


class Replies:
    """Collects ``memory/results`` messages for a test to wait on."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._event = trio.Event()

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self._event.set()
        self._event = trio.Event()

    async def wait_for(self, count: int) -> list[Message]:
        while len(self.messages) < count:
            await self._event.wait()
        return self.messages


@asynccontextmanager
async def running(
    broker: InProcessBroker, db: Path, embedder: object, **kwargs: object
) -> AsyncIterator[MemoryService]:
    bus = Bus(InProcessTransport(broker, client_id="memory"), source="memory")
    service = MemoryService(bus, MemoryConfig(db_path=db, **kwargs), embedder=embedder)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        yield service
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def client(broker: InProcessBroker, name: str = "llm") -> AsyncIterator[Bus]:
    bus = Bus(InProcessTransport(broker, client_id=name), source=name)
    async with trio.open_nursery() as nursery:
        await nursery.start(bus.run)
        yield bus
        nursery.cancel_scope.cancel()
