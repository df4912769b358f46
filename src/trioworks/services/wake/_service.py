"""The wake service: a wake word heard in a continuous audio stream, py-tars' wake-activation on the bus."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable

import trio

from ...bus import (
    Bus,
    FinalTranscript,
    Message,
    MicCommand,
    Route,
    Service,
    Task,
    TtsControl,
    TtsStatus,
    WakeEvent,
)
from ...core import RestartPolicy
from ..stt import AudioSource
from ._config import WakeConfig
from ._detector import AsyncDetector, ThreadDetector
from ._spotter import Detection
from ._wyoming import WyomingWake

__all__ = ["WakeService"]

logger = logging.getLogger("trioworks.services.wake")

_ONCE = RestartPolicy(max_restarts=0)


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


class WakeService(Service):
    """Listens to ``source`` continuously and publishes ``wake/event`` when it hears the phrase.

    What it publishes is what py-tars' wake-activation publishes, in the same shapes:

    - Wake word while the assistant is quiet: ``wake/event`` ``wake`` (cause ``wake_phrase``,
      ``confidence``, ``energy``, ``ts`` = ``time.monotonic()``), then ``wake/mic`` ``unmute``
      (reason ``wake``, ``ttl_ms`` = ``config.idle_timeout``).
    - Wake word while it speaks (``tts/status`` ``speaking_start`` seen): ``wake/event``
      ``interrupt`` (cause ``double_wake``, ``tts_id`` = the utterance), ``wake/mic`` ``unmute``
      and ``tts/control`` ``pause`` (reason ``wake_interrupt``) of that utterance. Then, within
      ``config.interrupt_window`` s: a cancel phrase on ``stt/final`` (:data:`CANCEL_PHRASES`)
      gives ``tts/control`` ``stop`` (``wake_cancel``) and ``wake/event`` ``cancelled``; other
      speech ends the interrupt (the router takes it from there); silence gives ``wake/event``
      ``resume`` and ``tts/control`` ``resume`` (``wake_resume``).
    - ``config.idle_timeout`` s after a wake word with no ``stt/final`` since: ``wake/event``
      ``timeout`` (cause ``silence``; resuming a paused utterance, ``wake_timeout``). Unlike
      py-tars, a transcript in between cancels it: the user was not silent.

    Detections closer than ``config.min_retrigger`` s to the previous one are ignored.

    Where detection runs: ``detector`` (tests, a :class:`~trioworks.services.wake.WyomingWake`)
    or the pocketsphinx spotter in a worker thread on :attr:`detector_limiter` (one slot).

    Lifecycle: :class:`~trioworks.bus.Service`'s; routes ``tts/status`` and ``stt/final``,
    tasks ``wake.source`` (reads ``source`` once: no restarts) and ``wake.timers``. After the
    source ends :attr:`finished` is set and the timers go on. The detector is closed after the
    bus has disconnected (shielded, 3 s).

    Error handling: a bad config raises :exc:`~trioworks.services.wake.WakeConfigError` from
    ``run`` before anything is served (a word without pronunciation names ``phrase``); a source
    that raises fails the service at once (health ``crashed``, ``ServiceFailed`` from ``run``).
    """

    def __init__(
        self,
        bus: Bus,
        config: WakeConfig | None = None,
        *,
        source: AudioSource | None = None,
        restart: RestartPolicy = RestartPolicy(),
        detector: AsyncDetector | None = None,
    ) -> None:
        self.config = config if config is not None else WakeConfig()
        self.source = source
        self.detector_limiter = trio.CapacityLimiter(1)
        self.finished = trio.Event()
        self.detections = 0
        self._given_detector = detector
        self._detector: AsyncDetector | None = None
        self._last_detection = -math.inf
        self._tts_state = "idle"  # idle | speaking | paused
        self._tts_utt_id: str | None = None
        self._interrupt_open = False
        self._interrupted: str | None = None  # the utterance that interrupt paused (if known)
        self._interrupt_at = math.inf
        self._idle_at = math.inf
        self._deadlines_changed = trio.Event()
        routes = [
            Route("tts/status", self._on_tts_status, capacity=64),
            Route("stt/final", self._on_final, capacity=16),
        ]
        tasks = [Task("wake.timers", self._timers)]
        if source is not None:
            tasks.append(Task("wake.source", functools.partial(self.listen, source), _ONCE))
        super().__init__(bus, routes, tasks=tasks, restart=restart)
        self._heard = bus.metrics.counter("wake.detections")

    @property
    def interrupt_open(self) -> bool:
        """Whether a wake word paused speech and the service waits for what the user says."""
        return self._interrupt_open

    async def setup(self) -> None:
        """Load the spotter (in a thread) unless a detector was given."""
        detector = self._given_detector
        if detector is None and self.config.url is not None:
            detector = WyomingWake(self.config.url, names=list(self.config.wyoming_names) or None)
        if detector is None:
            detector = await ThreadDetector.open(self.config, self.detector_limiter)
        self._detector = detector
        self.add_cleanup(self._close_detector, name="wake detector", timeout=3)

    async def _close_detector(self) -> None:
        detector, self._detector = self._detector, None
        if detector is not None:
            await detector.aclose()

    async def listen(self, source: AudioSource) -> None:
        """Spot the phrase in ``source`` until it ends; then set :attr:`finished`.

        Must be called while :meth:`run` is serving. Closes ``source`` when done or cancelled;
        cancellation waits for the chunk in the spotter's thread (milliseconds).
        """
        detector = self._detector
        if detector is None:
            raise RuntimeError("WakeService.listen needs run() to be serving first")
        reader = getattr(detector, "detections", None)  # a detector that reports on its own
        async with trio.open_nursery() as nursery:
            if reader is not None:
                nursery.start_soon(self._read_detections, reader)
            async with _closing(source) as chunks:
                async for chunk in chunks:
                    detection = await detector.feed(chunk)
                    if detection is not None:
                        await self._on_detection(detection)
            nursery.cancel_scope.cancel()
        self.finished.set()

    async def _read_detections(self, reader: Callable[[], AsyncIterator[Detection]]) -> None:
        async for detection in reader():
            await self._on_detection(detection)

    # --- detections --------------------------------------------------------------------

    async def _on_detection(self, detection: Detection) -> None:
        now = trio.current_time()
        if now - self._last_detection < self.config.min_retrigger:
            logger.debug("wake: %r again within %s s, ignored", detection.phrase, self.config.min_retrigger)
            return
        self._last_detection = now
        self.detections += 1
        self._heard.inc()
        confidence = max(0.0, min(detection.score, 1.0))
        mic = MicCommand(action="unmute", reason="wake", ttl_ms=self.config.idle_timeout_ms)
        if self._tts_state == "speaking":
            tts_id = self._tts_utt_id
            logger.info("wake: %r heard while speaking %s: interrupt", detection.phrase, tts_id)
            await self._event("interrupt", "double_wake", tts_id, confidence, detection.energy)
            await self.bus.publish("wake/mic", mic)
            await self.bus.publish(
                "tts/control", TtsControl(action="pause", reason="wake_interrupt", utt_id=tts_id)
            )
            self._tts_state = "paused"
            self._interrupted, self._interrupt_open = tts_id, True
            window = self.config.interrupt_window
            self._set_deadlines(interrupt=now + window if window > 0 else math.inf)
        else:
            logger.info("wake: %r heard (energy %.3f)", detection.phrase, detection.energy)
            self._interrupted, self._interrupt_open = None, False
            self._set_deadlines(interrupt=math.inf)
            await self._event("wake", "wake_phrase", None, confidence, detection.energy)
            await self.bus.publish("wake/mic", mic)
        idle = self.config.idle_timeout
        self._set_deadlines(idle=now + idle if idle > 0 else math.inf)

    async def _event(
        self,
        kind: str,
        cause: str,
        tts_id: str | None,
        confidence: float | None = None,
        energy: float | None = None,
    ) -> None:
        event = WakeEvent(
            type=kind,  # type: ignore[arg-type]  # one of WakeEvent's literals, by the callers
            confidence=confidence,
            energy=energy,
            cause=cause,
            tts_id=tts_id,
            ts=time.monotonic(),
        )
        await self.bus.publish("wake/event", event)

    # --- timers (one task; deadlines on trio's clock) ----------------------------------

    def _set_deadlines(self, *, interrupt: float | None = None, idle: float | None = None) -> None:
        if interrupt is not None:
            self._interrupt_at = interrupt
        if idle is not None:
            self._idle_at = idle
        self._deadlines_changed.set()
        self._deadlines_changed = trio.Event()

    async def _timers(self) -> None:
        while True:
            changed = self._deadlines_changed
            with trio.move_on_at(min(self._interrupt_at, self._idle_at)):
                await changed.wait()
                continue
            now = trio.current_time()
            if self._interrupt_at <= now:
                self._interrupt_at = math.inf
                await self._interrupt_expired()
            if self._idle_at <= now:
                self._idle_at = math.inf
                await self._idle_expired()

    async def _interrupt_expired(self) -> None:
        tts_id, self._interrupted, self._interrupt_open = self._interrupted, None, False
        logger.info("wake: nothing said after the interrupt; resuming %s", tts_id)
        await self._event("resume", "timeout", tts_id)
        await self.bus.publish(
            "tts/control", TtsControl(action="resume", reason="wake_resume", utt_id=tts_id)
        )
        self._tts_state = "speaking"

    async def _idle_expired(self) -> None:
        was_open = self._interrupt_open
        tts_id, self._interrupted, self._interrupt_open = self._interrupted, None, False
        logger.info("wake: silence after the wake word (timeout)")
        await self._event("timeout", "silence", tts_id)
        if was_open:
            self._interrupt_at = math.inf
            await self.bus.publish(
                "tts/control", TtsControl(action="resume", reason="wake_timeout", utt_id=tts_id)
            )
            self._tts_state = "speaking"
        else:
            self._tts_state = "idle"

    # --- routes ------------------------------------------------------------------------

    async def _on_tts_status(self, message: Message) -> None:
        status: TtsStatus = message.data
        if status.event in ("speaking_start", "resumed"):
            self._tts_state = "speaking"
            self._tts_utt_id = status.utt_id or None
            self._interrupted, self._interrupt_open = None, False
            self._set_deadlines(interrupt=math.inf)
        elif status.event == "paused":
            self._tts_state = "paused"
            self._tts_utt_id = status.utt_id or self._tts_utt_id
        elif status.event in ("speaking_end", "stopped"):
            self._tts_state = "idle"
            self._tts_utt_id = None
            self._interrupted, self._interrupt_open = None, False
            self._set_deadlines(interrupt=math.inf)

    async def _on_final(self, message: Message) -> None:
        final: FinalTranscript = message.data
        said = _normalise(final.text) if final.is_final else ""
        if not said:
            return
        self._set_deadlines(idle=math.inf)  # the user spoke: no "silence" timeout
        if not self._interrupt_open:
            return
        tts_id, self._interrupted, self._interrupt_open = self._interrupted, None, False
        self._set_deadlines(interrupt=math.inf)
        if said in self.config.cancel_phrases:
            logger.info("wake: %r after the interrupt: stopping %s", said, tts_id)
            await self.bus.publish(
                "tts/control", TtsControl(action="stop", reason="wake_cancel", utt_id=tts_id)
            )
            await self._event("cancelled", "cancel", tts_id)
            self._tts_state = "idle"
            self._tts_utt_id = None
        else:
            self._tts_state = "paused"  # the router answers the new request
            self._tts_utt_id = None


@contextlib.asynccontextmanager
async def _closing(source: AudioSource) -> AsyncIterator[AudioSource]:
    try:
        yield source
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await aclose()
