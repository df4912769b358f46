"""The tts service: ``tts/say`` -> espeak-ng -> a player or WAV files, controllable while speaking."""

from __future__ import annotations

import collections
import logging
import math
from pathlib import Path
from typing import Literal

import attrs
import trio

from ...bus import (
    Bus,
    LLMCancel,
    Message,
    Route,
    Service,
    Task,
    TtsControl,
    TtsOutput,
    TtsSay,
    TtsStatus,
    new_id,
)
from ...core import RestartPolicy
from .._audio import find_program
from ._clock import PlaybackClock
from ._config import TtsConfig
from ._sinks import CommandSink, Output, Sink, WavSink, detect_player
from ._synth import Synthesizer, espeak_voices, has_voice, synthesize
from ._wyoming import WyomingSynthesizer

__all__ = ["TtsService"]

logger = logging.getLogger("trioworks.services.tts")

_READ = 4096  # bytes of PCM per read from espeak-ng: ~93 ms at 22,050 Hz


@attrs.define(eq=False)
class _Utterance:
    """Chunks sharing one ``utt_id``, spoken in order under one cancel scope."""

    utt_id: str
    send: trio.MemorySendChannel[TtsSay]
    receive: trio.MemoryReceiveChannel[TtsSay]
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    stop_reason: str | None = None
    spoken: list[str] = attrs.field(factory=list)
    started: bool = False
    path: Path | None = None  # the WAV file, when the output is files
    wake_ack: bool | None = None  # echoed on its tts/status, as py-tars does
    system_announce: bool | None = None

    @classmethod
    def create(cls, utt_id: str) -> _Utterance:
        send, receive = trio.open_memory_channel[TtsSay](math.inf)
        return cls(utt_id, send, receive)

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.send.close()  # no more chunks join a stopped utterance
        self.scope.cancel()


class TtsService(Service):
    """Speech synthesis and playback on the bus, controllable during playback.

    Routes (each its own task, so control never waits behind speech): ``tts/say`` (chunks with
    the same ``utt_id`` join the utterance being spoken or queued, in order; a chunk without
    ``utt_id`` is an utterance of its own), ``tts/control`` (``pause``, ``resume``, ``stop``,
    ``mute``, ``unmute``) and, with ``config.stop_on_llm_cancel``, ``llm/cancel`` (stops the
    speech whose ``utt_id`` is the cancelled request id).

    One speaker task (``tts.speaker``, supervised with ``restart``: a failure outside one
    utterance, such as a status that could not be published, restarts it) speaks utterances one
    at a time, each inside its own cancel scope:
    ``speaking_start`` -> synthesis streamed from espeak-ng into the output, paced at the audio's
    own speed -> ``speaking_end``, or ``stopped`` (with ``reason``) if it was stopped or failed.
    Stopping kills the espeak-ng process (counted as ``tts.synth.killed``) and, for a player,
    the player; a WAV file is closed valid, holding the audio up to the stop.

    ``pause`` holds playback (and SIGSTOPs a player) until ``resume``; ``mute`` stops all
    speech and drops ``tts/say`` (counted as ``tts.say.muted``) until ``unmute``. Once an
    utterance was stopped by name (``tts/control stop`` with ``utt_id``, ``llm/cancel``,
    :meth:`stop` with an id), later chunks with that ``utt_id`` are dropped (counted as
    ``tts.say.after_stop``; the last 256 such ids are remembered): a barge-in stays stopped even
    when a chunk of it was still in flight.

    Where the audio goes: a player when ``config.player`` finds one, else WAV files in
    ``config.out_dir``, named by ``utt_id``; :attr:`outputs` maps utt_id to the last file
    and each path is logged at INFO (logger ``trioworks.services.tts``) and published on the
    trioworks-only ``tts/output`` (``{utt_id, path}``) just before the utterance's
    ``speaking_end`` / ``stopped`` status (py-tars' ``tts/status`` has no room for it).

    Limiters: :attr:`file_limiter` (one slot) for WAV file writes. Synthesis and players are
    processes (no thread).

    Lifecycle: :class:`~trioworks.bus.Service`'s (health ``ready`` / ``stopped`` / ``crashed``,
    :exc:`~trioworks.bus.ServiceFailed` when a route or the speaker fails past ``restart``).
    ``run`` raises ``ProgramMissing`` before serving when espeak-ng is not installed.
    """

    def __init__(
        self,
        bus: Bus,
        config: TtsConfig | None = None,
        *,
        restart: RestartPolicy = RestartPolicy(),
        synthesizer: Synthesizer = synthesize,
        sink: Sink | None = None,
    ) -> None:
        """``synthesizer`` and ``sink`` replace espeak-ng and the configured output (tests, other engines)."""
        self.config = config if config is not None else TtsConfig()
        self._synthesizer = synthesizer
        if synthesizer is synthesize and self.config.url is not None:
            self._synthesizer = WyomingSynthesizer(self.config.url, voice=self.config.wyoming_voice)
        self._given_sink = sink
        self.file_limiter = trio.CapacityLimiter(1)
        self.clock = PlaybackClock(realtime=self.config.realtime)
        self.outputs: dict[str, Path] = {}
        self.muted = False
        self.sink: Sink | None = None
        # Unbounded channel, bounded in practice: _on_say admits at most max_queued utterances.
        self._queue_send, self._queue_receive = trio.open_memory_channel[_Utterance](math.inf)
        self._waiting: list[_Utterance] = []  # queued or speaking, in order
        self._current: _Utterance | None = None
        # utt_ids stopped by name: a chunk of theirs that arrives late (it was in flight, or
        # queued behind the stop on another route) must not start them again.
        self._stopped_ids: collections.deque[str] = collections.deque(maxlen=256)
        self._output: Output | None = None
        self.voices: frozenset[str] | None = None
        """The names espeak-ng answers to (None: not known, every voice asked for is tried)."""
        self._fallbacks: dict[str, str] = {}
        routes = [
            Route("tts/say", self._on_say, capacity=64, dedupe=True),  # QoS 1 redeliveries said once
            Route("tts/control", self._on_control, capacity=16),
        ]
        if self.config.stop_on_llm_cancel:
            routes.append(Route("llm/cancel", self._on_llm_cancel, capacity=16))
        super().__init__(bus, routes, tasks=[Task("tts.speaker", self._speaker)], restart=restart)
        metrics = bus.metrics
        self._muted_says = metrics.counter("tts.say.muted")
        self._dropped = metrics.counter("tts.say.dropped")
        self._late = metrics.counter("tts.say.after_stop")
        self._spoken = metrics.counter("tts.utterances.spoken")
        self._stopped = metrics.counter("tts.utterances.stopped")

    async def setup(self) -> None:
        """Find espeak-ng, its voices and the output (called by ``run`` before serving)."""
        self._fallbacks = {}
        if self._synthesizer is synthesize:
            find_program("espeak-ng")
            self.voices = await espeak_voices()
        self.sink = self._given_sink if self._given_sink is not None else await self._make_sink()

    async def _make_sink(self) -> Sink:
        player = self.config.player
        if player == "auto":
            detected = await detect_player()
            player = detected if detected is not None else "wav"
        if player == "wav":
            logger.info("tts: no audio device; utterances go to WAV files in %s", self.config.out_dir)
            return WavSink(self.config.out_dir, limiter=self.file_limiter)
        assert isinstance(player, tuple)
        return CommandSink(player)

    # --- control (any task) ---------------------------------------------------------------

    def stop(self, utt_id: str | None = None, *, reason: str = "stop") -> int:
        """Stop the utterance ``utt_id`` (speaking or queued), or all of them when None.

        Returns how many were stopped. Not a checkpoint: the speaker task ends the utterance
        (kills synthesis, publishes ``stopped``) at its next checkpoint.
        """
        if utt_id is not None and utt_id not in self._stopped_ids:
            self._stopped_ids.append(utt_id)
        hits = [u for u in self._waiting if utt_id is None or u.utt_id == utt_id]
        for utterance in hits:
            utterance.stop(reason)
        return len(hits)

    def pause(self) -> bool:
        """Hold playback; False if already paused. Not a checkpoint."""
        if not self.clock.pause():
            return False
        if self._output is not None:
            self._output.pause()
        return True

    def resume(self) -> bool:
        """Continue playback; False if not paused. Not a checkpoint."""
        if not self.clock.resume():
            return False
        if self._output is not None:
            self._output.resume()
        return True

    async def _on_control(self, message: Message) -> None:
        control: TtsControl = message.data
        reason = control.reason or control.action
        target = control.utt_id  # None: every utterance
        current = self._current.utt_id if self._current is not None else None
        if control.action == "stop":
            self.stop(target, reason=reason)
        elif control.action == "mute":
            self.muted = True
            self.stop(reason=reason)
        elif control.action == "unmute":
            self.muted = False
        elif control.action == "pause":
            if self.pause():
                await self._status("paused", current, reason=reason)
        elif control.action == "resume" and self.resume():
            await self._status("resumed", current, reason=reason)

    async def _on_llm_cancel(self, message: Message) -> None:
        cancel: LLMCancel = message.data
        self.stop(cancel.id, reason="llm_cancel")

    async def _on_say(self, message: Message) -> None:
        say: TtsSay = message.data
        if self.muted:
            self._muted_says.inc()
            return
        if not say.text.strip():
            return
        if say.utt_id in self._stopped_ids:
            self._late.inc()
            return
        if say.utt_id is not None:
            for utterance in self._waiting:
                if utterance.utt_id == say.utt_id and utterance.stop_reason is None:
                    try:
                        utterance.send.send_nowait(say)
                        return
                    except trio.ClosedResourceError:
                        break  # it has just ended: this chunk starts a new utterance
        utt_id = say.utt_id or new_id()
        if len(self._waiting) >= self.config.max_queued:
            # Explicit overflow policy: never block this handler (the bus would back up behind
            # it), never grow without bound; the publisher hears about it on tts/status.
            self._dropped.inc()
            logger.warning("tts: %d utterances waiting; dropped %s", len(self._waiting), utt_id)
            await self._status("stopped", utt_id, text=say.text, reason="queue full")
            return
        utterance = _Utterance.create(utt_id)
        utterance.wake_ack, utterance.system_announce = say.wake_ack, say.system_announce
        utterance.send.send_nowait(say)
        self._waiting.append(utterance)
        self._queue_send.send_nowait(utterance)

    # --- voices -----------------------------------------------------------------------------

    async def _voice(self, asked: str | None) -> str:
        """The voice to speak ``asked`` with: itself when the engine has it (or the engine's
        voices are unknown), else the configured voice. The first time a voice falls back, it
        is logged and the service's health says so (``event: voice_fallback``, ``err`` naming
        both voices); py-tars' routers ask for piper voices such as ``piper/en_US/amy``."""
        if (
            asked is None
            or asked == self.config.voice
            or self.voices is None
            or has_voice(self.voices, asked)
        ):
            return self.config.voice if asked is None else asked
        if asked not in self._fallbacks:
            self._fallbacks[asked] = self.config.voice
            detail = f"voice {asked!r} is not an espeak-ng voice: speaking with {self.config.voice!r}"
            logger.warning("tts: %s", detail)
            self.bus.metrics.counter("tts.voice.fallbacks").inc()
            await self.bus.publish_health(True, "voice_fallback", detail)
        return self.config.voice

    @property
    def voice_fallbacks(self) -> dict[str, str]:
        """Each voice asked for that the engine lacks, and the voice it was spoken with instead."""
        return dict(self._fallbacks)

    # --- the speaker ----------------------------------------------------------------------

    async def _speaker(self) -> None:
        async for utterance in self._queue_receive:
            self._current = utterance
            try:
                with utterance.scope:
                    await self._speak(utterance)
            except Exception as exc:
                # One bad chunk (unknown voice, player died) ends its utterance, not the service.
                logger.warning("tts: utterance %s failed: %s", utterance.utt_id, exc)
                utterance.stop(f"error: {exc}")
            finally:
                utterance.send.close()
                self._waiting.remove(utterance)
                self._current = None
            text = " ".join(utterance.spoken)
            path = utterance.path
            if utterance.stop_reason is not None:
                self._stopped.inc()
                await self._status(
                    "stopped",
                    utterance.utt_id,
                    text=text,
                    reason=utterance.stop_reason,
                    path=path,
                    flags=utterance,
                )
            else:
                self._spoken.inc()
                await self._status("speaking_end", utterance.utt_id, text=text, path=path, flags=utterance)

    async def _next_chunk(self, utterance: _Utterance) -> TtsSay | None:
        try:
            return utterance.receive.receive_nowait()
        except trio.WouldBlock:
            pass
        with trio.move_on_after(self.config.aggregate_window):
            try:
                return await utterance.receive.receive()
            except trio.EndOfChannel:
                return None
        # Window over: close it now (no checkpoint since the last look), so a later chunk with
        # this utt_id starts a new utterance instead of joining one that is ending.
        utterance.send.close()
        return None

    async def _speak(self, utterance: _Utterance) -> None:
        assert self.sink is not None
        config = self.config
        output: Output | None = None
        origin = self.clock.now()
        heard = 0.0  # seconds of audio written so far
        try:
            while (say := await self._next_chunk(utterance)) is not None:
                if not utterance.started:
                    await trio.lowlevel.checkpoint_if_cancelled()  # stopped while queued: say nothing
                    utterance.started = True
                    await self._status("speaking_start", utterance.utt_id, text=say.text, flags=utterance)
                async with self._synthesizer(
                    say.text,
                    voice=await self._voice(say.voice),
                    rate_wpm=config.rate_wpm,
                    pitch=config.pitch,
                    metrics=self.bus.metrics,
                ) as synthesis:
                    if output is None:
                        # Shielded (opening is quick): cancelled halfway, an opened file or
                        # player would be lost to the finally below and never closed.
                        with trio.CancelScope(shield=True):
                            output = await self.sink.open(utterance.utt_id, synthesis.rate)
                        # (A shielded scope without a deadline never swallows the open's outcome.)
                        assert output is not None
                        self._output = output
                        if output.path is not None:
                            self.outputs[utterance.utt_id] = output.path
                            utterance.path = output.path
                        if self.clock.paused.value:
                            output.pause()
                    while pcm := await synthesis.pcm.receive_some(_READ):
                        await self.clock.wait_until(origin + heard - config.lead)
                        await output.write(bytes(pcm))  # Output takes bytes; a no-op for bytes
                        heard += len(pcm) / (2 * synthesis.rate)
                utterance.spoken.append(say.text)
            await self.clock.wait_until(origin + heard)  # the listener hears the last of it
        finally:
            self._output = None
            if output is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await output.close(stopped=utterance.stop_reason is not None)

    async def _status(
        self,
        event: Literal["speaking_start", "speaking_end", "paused", "resumed", "stopped"],  # TtsStatus.event
        utt_id: str | None,
        *,
        text: str = "",
        reason: str | None = None,
        path: Path | None = None,
        flags: _Utterance | None = None,
    ) -> None:
        if path is not None:  # trioworks only: py-tars' TtsStatus refuses an unknown key
            await self.bus.publish("tts/output", TtsOutput(utt_id=utt_id, path=str(path)))
        status = TtsStatus(
            event=event,
            text=text,
            utt_id=utt_id,
            reason=reason,
            wake_ack=flags.wake_ack if flags is not None else None,
            system_announce=flags.system_announce if flags is not None else None,
        )
        await self.bus.publish("tts/status", status)
