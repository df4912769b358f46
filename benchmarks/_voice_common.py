"""Shared pieces of benchmarks/voice.py: transports, the embedder, the memory service, statistics."""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from trioworks.bus import Bus, InProcessBroker, InProcessTransport, MqttTransport, Transport
from trioworks.core import run_in_thread
from trioworks.services.memory import MemoryConfig, MemoryService, MiniLM, NewDocument

MakeTransport = Callable[[str], Transport]
"""client_id -> a fresh transport of one bus (all of a run's buses on the same broker)."""

_TEST_HELPERS = Path(__file__).resolve().parents[1] / "tests" / "services" / "memory"  # HashEmbedder

# What the voice turn's memory knows; the questions below are answered from it. Every question is
# in pocketsphinx's dictionary (the grammar recogniser needs that) and shares words with its fact.
FACTS = (
    "The weather in Paris today is sunny with a light wind.",
    "The kitchen timer for the pasta is set to ten minutes.",
    "The lights in the kitchen turn off at midnight.",
    "The music playlist for the evening is mostly jazz.",
)
QUESTIONS = (
    "what is the weather in paris today",
    "set a timer for ten minutes",
    "turn off the lights in the kitchen",
    "play some music",
)


def in_process() -> MakeTransport:
    broker = InProcessBroker()
    return lambda client_id: InProcessTransport(broker, client_id=client_id)


def over_mqtt(url: str) -> MakeTransport:
    return lambda client_id: MqttTransport(url, client_id=client_id)


def bus(make: MakeTransport, name: str) -> Bus:
    return Bus(make(name), source=name)


async def load_embedder(fake: bool) -> Any:
    """all-MiniLM-L6-v2 (loaded in a thread), or the tests' hashing bag of words with ``fake``."""
    if fake:
        sys.path.insert(0, str(_TEST_HELPERS))
        from memory_helpers import HashEmbedder

        return HashEmbedder()
    return await run_in_thread(MiniLM, limiter=trio.CapacityLimiter(1))


@asynccontextmanager
async def running_memory(
    make: MakeTransport, embedder: Any, texts: list[str], *, name: str = "memory"
) -> AsyncIterator[MemoryService]:
    """A memory service on its own bus, in a temporary SQLite file, holding ``texts``; serving."""
    with tempfile.TemporaryDirectory(prefix="voice-bench-") as tmp:
        memory = MemoryService(
            bus(make, name), MemoryConfig(db_path=Path(tmp) / "memory.db"), embedder=embedder
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(memory.run)
            for i in range(0, len(texts), 64):
                await memory.add(
                    [NewDocument(t, 1.7e9 + i + j, "stt") for j, t in enumerate(texts[i : i + 64])]
                )
            await memory.indexer.wait_indexed(len(texts))
            yield memory
            nursery.cancel_scope.cancel()


class LagProbe:
    """Worst lag of a 5 ms ticker on the Trio loop, per phase, and how much of it was the machine.

    Like ``voice_memory.Lag`` (same ``tick``/``take``), plus, for the worst tick of a phase, how
    long the loop's thread sat in the kernel's run queue (runnable, no CPU free:
    ``/proc/thread-self/schedstat``) during it. That part is other processes on the shared
    cores, not this program; the rest is this process (the GIL held by a thread, work on the
    loop). Must be created on the loop's thread.
    """

    def __init__(self) -> None:
        self.worst = 0.0
        self.worst_queued = 0.0
        try:
            self._fd: int | None = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:  # not Linux
            self._fd = None

    def _queued(self) -> float:
        return int(os.pread(self._fd, 128, 0).split()[1]) / 1e9 if self._fd is not None else 0.0

    async def tick(self) -> None:
        try:
            while True:
                before, queued = trio.current_time(), self._queued()
                await trio.sleep(0.005)
                late = trio.current_time() - before - 0.005
                if late > self.worst:
                    self.worst, self.worst_queued = late, self._queued() - queued
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def take(self) -> float:
        """The worst lag since the last take (seconds); resets."""
        return self.take_detail()[0]

    def take_detail(self) -> tuple[float, float]:
        """(worst lag, run-queue wait during that tick) since the last take, in seconds; resets."""
        out = (self.worst, self.worst_queued)
        self.worst = self.worst_queued = 0.0
        return out


async def begin_phase(lag: LagProbe, *, freeze: bool = False) -> None:
    """Start a measured phase: with ``freeze``, first collect and freeze the heap, as a services
    entry point does once started (``gc.freeze()``, docs/memory.md). Then lets the ticker run, so
    a stall that ended just now (that collection, a start-up) counts before the phase, not in it."""
    if freeze:
        gc.collect()
        gc.freeze()
    await trio.sleep(0.05)
    lag.take()


def lag_fields(lag: LagProbe) -> dict[str, float]:
    """The phase's worst lag and the run-queue wait within it, in ms (and resets the probe)."""
    worst, queued = lag.take_detail()
    return {"worst_lag_ms": 1000 * worst, "cpu_wait_ms": 1000 * queued}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(rank) - 1]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """p50 / p99 / max in milliseconds, and how many samples."""
    return {
        "n": len(seconds),
        "p50_ms": 1000 * statistics.median(seconds),
        "p99_ms": 1000 * percentile(seconds, 99),
        "max_ms": 1000 * max(seconds),
    }
