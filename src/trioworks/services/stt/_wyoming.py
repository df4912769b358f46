"""Speech to text on a Wyoming ASR server (:class:`WyomingRecognizer`), plugged in through
``SttService(recognizer=...)``."""

from __future__ import annotations

import array
import math
import uuid
from collections import deque

import trio

from ...core import run_in_thread
from .._audio import STT_RATE, pcm_seconds
from ..wyoming import AUDIO_FORMAT, WyomingConnection, WyomingError, WyomingEvent, connect
from ._recognizer import Recognition

__all__ = ["WyomingRecognizer"]


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
        await self._send(WyomingEvent("audio-chunk", dict(AUDIO_FORMAT), pcm))
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
        await self._send(WyomingEvent("audio-start", dict(AUDIO_FORMAT)))
        await self._send(WyomingEvent("audio-chunk", dict(AUDIO_FORMAT), held))

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
