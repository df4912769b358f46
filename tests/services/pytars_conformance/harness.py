"""Plumbing for the conformance tests on mosquitto: a raw MQTT client (py-tars' components send
and receive bytes, not trioworks envelopes) and metrics that say when a service has judged a
message (handled it, or dropped it as malformed)."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import trio

from trioworks.bus import Bus, MqttTransport, RawMessage, matches
from trioworks.core import Counter, Metrics, RetryPolicy

FAST = RetryPolicy(max_attempts=100, base_delay=0.05, factor=2.0, max_delay=0.5, jitter=0.5)
_ids = itertools.count()


class _Watched(Counter):
    def __init__(self, owner: WatchedMetrics) -> None:
        super().__init__()
        self._owner = owner

    def inc(self, n: int = 1) -> None:
        super().inc(n)
        self._owner.changed.set()


class WatchedMetrics(Metrics):
    """Metrics whose subscription counters (``bus.sub.*``, bumped in the bus's own Trio tasks)
    wake :meth:`verdict`."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = trio.Event()
        self._watched: dict[str, _Watched] = {}

    def counter(self, name: str) -> Counter:
        if name.startswith("bus.sub."):
            return self._watched.setdefault(name, _Watched(self))
        return super().counter(name)

    def count(self, name: str) -> int:
        counter = self._watched.get(name)
        return counter.value if counter is not None else 0

    async def verdict(self, pattern: str, seen: int) -> str:
        """Wait until subscription ``pattern`` has judged more than ``seen`` messages; "malformed"
        if the last one was dropped as such, else "handled"."""
        while True:
            handled = self.count(f"bus.sub.{pattern}.handled")
            malformed = self.count(f"bus.sub.{pattern}.malformed")
            duplicates = self.count(f"bus.sub.{pattern}.duplicates")
            if handled + malformed + duplicates > seen:
                return "malformed" if malformed else ("duplicate" if duplicates else "handled")
            self.changed = trio.Event()
            await self.changed.wait()


def service_bus(url: str, source: str) -> tuple[Bus, WatchedMetrics]:
    metrics = WatchedMetrics()
    transport = MqttTransport(url, client_id=f"{source}-{next(_ids)}", reconnect=FAST)
    return Bus(transport, source=source, metrics=metrics), metrics


class RawClient:
    """A py-tars component's view of the broker: bytes in, bytes out."""

    def __init__(self, url: str, name: str = "pytars") -> None:
        self.transport = MqttTransport(url, client_id=f"{name}-{next(_ids)}", reconnect=FAST)
        self.received: list[RawMessage] = []
        self._changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.transport.run(task_status=task_status)

    async def _sink(self, message: RawMessage) -> None:
        if not message.payload:
            return  # a retained message being cleared
        self.received.append(message)
        self._changed.set()
        self._changed = trio.Event()

    async def listen(self, *patterns: str) -> None:
        for pattern in patterns:
            await self.transport.subscribe(pattern, 1, self._sink)

    async def send(self, topic: str, payload: bytes) -> None:
        await self.transport.publish(RawMessage(topic, payload, qos=1))

    def on(self, pattern: str) -> list[bytes]:
        return [m.payload for m in self.received if matches(pattern, m.topic)]

    async def wait(self, pattern: str, until: Callable[[list[bytes]], bool] = bool) -> list[bytes]:
        while not until(self.on(pattern)):
            await self._changed.wait()
        return self.on(pattern)


class WordEmbedder:
    """A cheap deterministic embedder for the memory service: one dimension per hashed word
    (texts sharing words are close). Enough for retrieval plumbing; no model to load."""

    name = "conformance-words"
    dim = 32

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
            norm = float(np.linalg.norm(out[row]))
            out[row] = out[row] / norm if norm else np.eye(1, self.dim, 0, np.float32)[0]
        return out
