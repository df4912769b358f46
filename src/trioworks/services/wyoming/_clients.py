"""Wyoming clients for the speech services: stt (:class:`WyomingRecognizer`), tts
(:class:`WyomingSynthesizer`) and wake (:class:`WyomingWake`).

Each plugs into its service through the seam the service already has for another engine
(``SttService(recognizer=...)``, ``TtsService(synthesizer=...)``, ``WakeService(detector=...)``),
so the services do not know which engine they drive.
"""

from __future__ import annotations

import array
import contextlib
import math
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import trio

from ...core import Metrics, run_in_thread
from .._audio import STT_RATE, pcm_seconds
from ..stt import Recognition
from ..tts import Synthesis
from ..wake import Detection
from ._protocol import WyomingConnection, WyomingError, WyomingEvent, connect

__all__ = ["WyomingRecognizer", "WyomingSynthesizer", "WyomingWake"]

_FORMAT = {"rate": STT_RATE, "width": 2, "channels": 1}


def _level(pcm: bytes) -> float:
    """RMS of s16le ``pcm``, 0..1 of full scale (run in a thread: a pure-Python loop)."""
    samples = array.array("h", pcm[: len(pcm) - len(pcm) % 2])
    return math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768 if samples else 0.0


class WyomingRecognizer:
    """Speech to text on a Wyoming ASR server (faster-whisper...), one connection per utterance.

    Wyoming servers transcribe whole utterances, so the client finds them: an energy gate (RMS
    over ``speech_level``, computed in a thread on ``limiter``) starts one, with the last
    ``pre_roll`` s of audio; ``silence`` s under the gate end it. Then ``audio-stop`` and the
    server's ``transcript`` is one final :class:`~trioworks.services.stt.Recognition` (no partials,
    ``confidence`` None). Raises :exc:`WyomingError` naming the URL when the server cannot be
    reached, goes away mid-utterance or answers something malformed.
    """

    def __init__(
        self,
        url: str,
        limiter: trio.CapacityLimiter,
        *,
        language: str | None = "en",
        speech_level: float = 0.01,
        silence: float = 0.6,
        pre_roll: float = 0.3,
        timeout: float = 30.0,
    ) -> None:
        self.url = url
        self._limiter = limiter
        self._language = language
        self._speech_level = speech_level
        self._silence = silence
        self._pre_roll = pre_roll
        self._timeout = timeout
        self._conn: WyomingConnection | None = None
        self._recent: deque[bytes] = deque()
        self._heard = 0  # bytes of audio seen since the stream began
        self._utt_id = ""
        self._start = 0.0
        self._quiet = 0.0

    async def feed(self, pcm: bytes) -> list[Recognition]:
        level = await run_in_thread(_level, pcm, limiter=self._limiter)
        seconds = pcm_seconds(len(pcm), STT_RATE)
        self._heard += len(pcm)
        if self._conn is None:
            self._recent.append(pcm)
            while sum(len(c) for c in self._recent) > self._pre_roll * STT_RATE * 2 + len(pcm):
                self._recent.popleft()
            if level < self._speech_level:
                return []
            await self._begin()
            return []
        await self._send(WyomingEvent("audio-chunk", dict(_FORMAT), pcm))
        self._quiet = self._quiet + seconds if level < self._speech_level else 0.0
        if self._quiet >= self._silence:
            return [await self._finish()]
        return []

    async def _begin(self) -> None:
        self._conn = await connect(self.url)
        self._utt_id = uuid.uuid4().hex
        held = b"".join(self._recent)
        self._recent.clear()
        self._start = pcm_seconds(self._heard - len(held), STT_RATE)
        self._quiet = 0.0
        await self._send(WyomingEvent("transcribe", {"language": self._language} if self._language else {}))
        await self._send(WyomingEvent("audio-start", dict(_FORMAT)))
        await self._send(WyomingEvent("audio-chunk", dict(_FORMAT), held))

    async def _send(self, event: WyomingEvent) -> None:
        assert self._conn is not None
        try:
            await self._conn.send(event)
        except BaseException:
            await self.reset()
            raise

    async def _finish(self) -> Recognition:
        conn = self._conn
        assert conn is not None
        try:
            await conn.send(WyomingEvent("audio-stop"))
            with trio.fail_after(self._timeout):
                transcript = await conn.expect("transcript")
        except trio.TooSlowError:
            raise WyomingError(self.url, f"no transcript within {self._timeout:g} s of audio-stop") from None
        finally:
            await self.reset()
        text = transcript.data.get("text")
        if not isinstance(text, str):
            raise WyomingError(self.url, f"transcript without a text: {transcript.data!r}")
        return Recognition(
            "final", text.strip(), self._utt_id, self._start, pcm_seconds(self._heard, STT_RATE)
        )

    async def flush(self) -> list[Recognition]:
        if self._conn is None:
            await trio.lowlevel.checkpoint()
            return []
        return [await self._finish()]

    async def reset(self) -> None:
        conn, self._conn = self._conn, None
        self._recent.clear()
        if conn is not None:
            await conn.aclose()
        else:
            await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await self.reset()


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


class WyomingWake:
    """Wake word detection on a Wyoming wake server (openWakeWord...): an
    :class:`~trioworks.services.wake.AsyncDetector` with a :meth:`detections` reader.

    One connection for the whole stream: ``detect`` (``names``: the wake words to listen for;
    None: the server's), ``audio-start``, then each :meth:`feed` is an ``audio-chunk``. The
    server's ``detection`` events come through :meth:`detections`, which the wake service reads
    beside the feeding. :exc:`WyomingError` names the URL.
    """

    def __init__(self, url: str, *, names: list[str] | None = None) -> None:
        self.url = url
        self.names = names
        self._conn: WyomingConnection | None = None
        self._opened = trio.Event()
        self._heard = 0

    async def _open(self) -> WyomingConnection:
        conn = await connect(self.url)
        await conn.send(WyomingEvent("detect", {"names": self.names} if self.names else {}))
        await conn.send(WyomingEvent("audio-start", dict(_FORMAT)))
        self._conn = conn
        self._opened.set()
        return conn

    async def feed(self, pcm: bytes) -> Detection | None:
        conn = self._conn if self._conn is not None else await self._open()
        await conn.send(WyomingEvent("audio-chunk", dict(_FORMAT), pcm))
        self._heard += len(pcm)
        return None

    async def detections(self) -> AsyncIterator[Detection]:
        """The server's detections, as they come (waits for the first :meth:`feed`)."""
        await self._opened.wait()
        assert self._conn is not None
        while True:
            event = await self._conn.expect("detection", "not-detected")
            if event.type == "detection":
                name = event.data.get("name")
                yield Detection(str(name or ""), pcm_seconds(self._heard, STT_RATE), 1.0, 0.0)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(WyomingError):
                with trio.move_on_after(1) as scope:
                    scope.shield = True
                    await conn.send(WyomingEvent("audio-stop"))
            await conn.aclose()
        else:
            await trio.lowlevel.checkpoint()
