"""The stt service: audio source -> recognizer (in a thread) -> ``stt/partial`` and ``stt/final``."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import AsyncIterator

import trio

from ...bus import (
    Bus,
    FinalTranscript,
    Message,
    MicCommand,
    PartialTranscript,
    Route,
    Service,
    Task,
    TtsStatus,
)
from ...core import RestartPolicy
from ._backends import AsyncRecognizer, open_recognizer
from ._config import SttConfig
from ._recognizer import Recognition
from ._sources import AudioSource

__all__ = ["SttService"]

logger = logging.getLogger("trioworks.services.stt")

_ONCE = RestartPolicy(max_restarts=0)


class SttService(Service):
    """Voice activity detection and offline transcription on the bus.

    ``run`` loads the recognizer (in a thread), starts the bus service (route ``wake/mic``,
    retained health ``system/health/<source>``), starts transcribing ``source`` if one was
    given, and only then calls ``task_status.started()``. It serves until cancelled; after the
    source ends (its last ``stt/final`` published) :attr:`finished` is set and the service keeps
    answering ``wake/mic``.

    Per utterance (one ``utt_id``, a hex uuid): ``stt/partial`` about every
    ``config.partial_interval`` seconds of speech, then one ``stt/final`` when the endpointer
    sees the end of speech (or the source ends). Empty finals (noise) are not published.

    Where decoding runs (``config.backend``): in a worker thread through
    :func:`~trioworks.core.run_in_thread` for phrases, grammars and keyphrases, or in a decoder
    process of its own for a language model (pocketsphinx holds the GIL in each call; with the
    general model a call can take ~400 ms, which a thread cannot hide from the loop). Either
    way every call holds :attr:`decoder_limiter` (one slot: one decoder). ``wake/mic`` is
    handled by the bus's own task for that route, so a mute applies even while a chunk is
    being decoded (from the next chunk on; the utterance in progress is dropped).

    ``recognizer`` replaces the one ``config`` would open (tests, other engines); ``run``
    closes it when it ends, like one it opened.

    Lifecycle: :class:`~trioworks.bus.Service`'s; transcribing ``source`` is its task
    ``stt.source``. The recognizer is closed after the bus has disconnected (shielded, 3 s).

    Error handling:
        A source that raises (a missing WAV file, sox failing) cannot start over: it fails the
        service at once, like a task past its restart intensity (health ``crashed`` with the
        source's error, :exc:`~trioworks.bus.ServiceFailed` from ``run``). A bad config raises
        :exc:`~trioworks.services.stt.SttConfigError` from ``run`` before anything is served.
    """

    def __init__(
        self,
        bus: Bus,
        config: SttConfig | None = None,
        *,
        source: AudioSource | None = None,
        restart: RestartPolicy = RestartPolicy(),
        recognizer: AsyncRecognizer | None = None,
    ) -> None:
        self.config = config if config is not None else SttConfig()
        self.source = source
        self.decoder_limiter = trio.CapacityLimiter(1)
        self.finished = trio.Event()
        self._given_recognizer = recognizer
        self._recognizer: AsyncRecognizer | None = None
        self._muted_until: float | None = None
        self._speaking: set[str | None] = set()  # utt_ids the tts service is speaking
        routes = [Route("wake/mic", self._on_mic, capacity=16)]
        if self.config.mute_while_speaking:
            routes.append(Route("tts/status", self._on_tts_status, capacity=64))
        tasks = []
        if source is not None:  # read once: a source cannot start over, so no restarts
            tasks.append(Task("stt.source", functools.partial(self.transcribe, source), _ONCE))
        super().__init__(bus, routes, tasks=tasks, restart=restart)
        metrics = bus.metrics
        self._partials = metrics.counter("stt.partials")
        self._finals = metrics.counter("stt.finals")
        self._empty = metrics.counter("stt.finals.empty")
        self._muted_chunks = metrics.counter("stt.chunks.muted")

    @property
    def muted(self) -> bool:
        """Whether audio is being discarded: ``wake/mic`` mute (until unmute or its ``ttl_ms``),
        or the assistant is speaking and ``config.mute_while_speaking`` is on."""
        if self._speaking:
            return True
        return self._muted_until is not None and trio.current_time() < self._muted_until

    async def setup(self) -> None:
        """Load the recognizer (called by ``run`` before serving; in a thread or a process)."""
        recognizer = self._given_recognizer
        if recognizer is None:
            recognizer = await open_recognizer(self.config, self.decoder_limiter)
        self._recognizer = recognizer
        self.add_cleanup(self._close_recognizer, name="stt recognizer", timeout=3)

    async def _close_recognizer(self) -> None:
        recognizer, self._recognizer = self._recognizer, None
        if recognizer is not None:
            await recognizer.aclose()

    async def transcribe(self, source: AudioSource) -> None:
        """Transcribe ``source`` until it ends, publishing as it goes; then set :attr:`finished`.

        Must be called while :meth:`run` is serving. Closes ``source`` (``aclose``) when done
        or cancelled. Cancellation: a thread backend finishes the call in progress (one chunk,
        milliseconds); a process backend is killed (the service is stopping anyway).
        """
        recognizer = self._recognizer
        if recognizer is None:
            raise RuntimeError("SttService.transcribe needs run() to be serving first")
        discarding = False
        async with _closing(source) as chunks:
            async for chunk in chunks:
                if self.muted:
                    self._muted_chunks.inc()
                    if not discarding:  # drop the utterance in progress, once per mute
                        discarding = True
                        await recognizer.reset()
                    continue
                discarding = False
                for result in await recognizer.feed(chunk):
                    await self._publish(result)
        for result in await recognizer.flush():
            await self._publish(result)
        self.finished.set()

    async def _publish(self, result: Recognition) -> None:
        lang = self.config.lang
        if result.kind == "partial":
            self._partials.inc()
            await self.bus.publish(
                "stt/partial",
                PartialTranscript(text=result.text, lang=lang, utt_id=result.utt_id, ts=time.time()),
            )
            return
        if not result.text:
            self._empty.inc()
            return
        self._finals.inc()
        logger.info("stt final %s: %r (confidence %.3f)", result.utt_id, result.text, result.confidence or 0)
        await self.bus.publish(
            "stt/final",
            FinalTranscript(
                text=result.text,
                lang=lang,
                confidence=result.confidence,
                utt_id=result.utt_id,
                ts=time.time(),
            ),
        )

    async def _on_mic(self, message: Message) -> None:
        command: MicCommand = message.data
        if command.action == "unmute":
            self._muted_until = None
        elif command.ttl_ms is None:
            self._muted_until = math.inf
        else:
            self._muted_until = trio.current_time() + command.ttl_ms / 1000
        logger.info("microphone %sd (%s)", command.action, command.reason or "no reason given")

    async def _on_tts_status(self, message: Message) -> None:
        status: TtsStatus = message.data
        if status.event == "speaking_start":
            self._speaking.add(status.utt_id)
        elif status.event in ("speaking_end", "stopped"):
            self._speaking.discard(status.utt_id)


@contextlib.asynccontextmanager
async def _closing(source: AudioSource) -> AsyncIterator[AudioSource]:
    # Async generators (the microphone) own a process: close them even when cancelled.
    try:
        yield source
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await aclose()
