"""Text to speech on a Wyoming TTS server (:class:`WyomingSynthesizer`), plugged in through
``TtsService(synthesizer=...)``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import trio

from ...core import Metrics
from ..wyoming import WyomingConnection, WyomingError, WyomingEvent, connect
from ._synth import Synthesis

__all__ = ["WyomingSynthesizer"]


class _ChunkStream(trio.abc.ReceiveStream):
    """The ``audio-chunk`` payloads of one synthesis, as a byte stream, until ``audio-stop``."""

    def __init__(self, conn: WyomingConnection, first: bytes) -> None:
        self._conn = conn
        self._pending = first
        self._done = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        while not self._pending and not self._done:
            event = await self._conn.expect("audio-chunk", "audio-stop")
            if event.type == "audio-stop":
                self._done = True
            else:
                self._pending = event.payload
        size = max_bytes or len(self._pending)
        out, self._pending = self._pending[:size], self._pending[size:]
        if not out:
            await trio.lowlevel.checkpoint()
        return out

    async def aclose(self) -> None:
        await self._conn.aclose()


class WyomingSynthesizer:
    """Text to speech on a Wyoming TTS server (piper...): a :class:`~trioworks.services.tts.Synthesizer`.

    ``synthesize`` with ``voice`` (None: the server's default; the tts service's espeak-ng voice
    name is not sent); audio must be 16-bit mono (any rate). Leaving the block early closes the
    connection, which is how a Wyoming client stops a synthesis. :exc:`WyomingError` names the URL.
    """

    def __init__(self, url: str, *, voice: str | None = None, timeout: float = 30.0) -> None:
        self.url = url
        self.voice = voice
        self._timeout = timeout

    @contextlib.asynccontextmanager
    async def __call__(
        self, text: str, *, voice: str, rate_wpm: int, pitch: int, metrics: Metrics
    ) -> AsyncIterator[Synthesis]:
        conn = await connect(self.url)
        try:
            data: dict[str, Any] = {"text": text}
            if self.voice is not None:
                data["voice"] = {"name": self.voice}
            await conn.send(WyomingEvent("synthesize", data))
            try:
                with trio.fail_after(self._timeout):
                    start = await conn.expect("audio-start", "audio-chunk")
            except trio.TooSlowError:
                raise WyomingError(self.url, f"no audio within {self._timeout:g} s of synthesize") from None
            fmt = start.data
            if fmt.get("width") != 2 or fmt.get("channels") != 1 or not isinstance(fmt.get("rate"), int):
                raise WyomingError(self.url, f"unsupported audio {fmt!r} (expected 16-bit mono)")
            metrics.counter("tts.wyoming.syntheses").inc()
            yield Synthesis(fmt["rate"], _ChunkStream(conn, start.payload))
        finally:
            await conn.aclose()
