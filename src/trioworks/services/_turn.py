"""One voice turn, observed on the bus as a client sees it: :func:`ask_once`, :func:`voice_turn`, :func:`say`.

A turn is: a WAV file -> stt (``stt/final``) -> router (``llm/request``) -> llm, with RAG
(``memory/query`` -> ``memory/results``) -> router -> tts (``tts/say`` -> ``tts/status``). This
module does not drive any service itself: it starts them (:class:`VoiceStack`), feeds the WAV to
stt, and *watches* the bus as a client would, so the same code works in process and over MQTT,
where router, llm, memory and tts run in another process.

Nursery tree of :func:`ask_once`::

    nursery
    ├── VoiceStack.run (all five services in process; over MQTT only stt)
    ├── Bus.run of the watching client ("cli"): one subscription task per watched topic
    └── (body) wake/event, stt.transcribe(wav), then waits on what the watcher saw,
               all under one move_on_after(limit); then cancels the nursery
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from ..bus import Bus, MemoryResult, Message, Overflow, Subscription, TtsSay, WakeEvent, new_id
from ._stack import VoiceSettings, VoiceStack
from .stt import wav_source

__all__ = ["SayResult", "TurnResult", "ask_once", "say", "voice_turn"]

WATCHED = (
    "stt/final",
    "llm/request",
    "memory/query",
    "memory/results",
    "llm/response",
    "tts/status",
    "tts/output",
)
_ENDS = ("speaking_end", "stopped")


@attrs.frozen
class Seen:
    """One message the watcher got, and when (``trio.current_time()``)."""

    at: float
    message: Message

    @property
    def data(self) -> Any:
        return self.message.data


class Watch:
    """Records every message on some topics; :meth:`wait` for one that matches a predicate.

    Use ``async with Watch.on(bus, topics) as watch:``: the subscriptions (one task and queue per
    topic, so a busy stream never delays another) are removed when the block exits.
    """

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._changed = trio.Event()

    @classmethod
    @contextlib.asynccontextmanager
    async def on(cls, bus: Bus, topics: Sequence[str]) -> AsyncIterator[Watch]:
        watch = cls()
        tag = new_id()[:8]  # several watches on one bus (one per turn) need distinct names
        subs: list[Subscription] = []
        try:
            for topic in topics:
                # Status is QoS 0 and plentiful: under load drop the oldest, never hold the bus up.
                overflow = Overflow.DROP_OLDEST if topic == "tts/status" else Overflow.BLOCK
                subs.append(
                    await bus.subscribe(
                        topic, watch._record, capacity=256, overflow=overflow, name=f"watch-{tag}:{topic}"
                    )
                )
            yield watch
        finally:
            for sub in subs:
                await bus.unsubscribe(sub)  # shielded and bounded inside

    async def _record(self, message: Message) -> None:
        self.seen.append(Seen(trio.current_time(), message))
        self._changed.set()
        self._changed = trio.Event()

    async def changed(self) -> None:
        """Until the next message is recorded (call it right after looking: no checkpoint between)."""
        await self._changed.wait()

    def of(self, topic: str, match: Callable[[Any], bool] = lambda _: True) -> list[Seen]:
        return [s for s in self.seen if s.message.topic == topic and match(s.data)]

    async def wait(self, topic: str, match: Callable[[Any], bool] = lambda _: True) -> Seen:
        """The first message on ``topic`` matching ``match``, seen already or still to come."""
        while True:
            found = self.of(topic, match)
            if found:
                return found[0]
            await self._changed.wait()


@attrs.frozen(kw_only=True)
class TurnResult:
    """What one voice turn showed on the bus. ``problem`` says why it stopped short, if it did."""

    transcript: str | None = None
    confidence: float | None = None
    turn_id: str | None = None
    """The router's ``llm/request`` id, also the ``utt_id`` of the spoken reply."""
    rag_asked: bool = False
    hits: tuple[MemoryResult, ...] = ()
    """What memory returned for the turn's RAG query (the llm uses the ``target`` ones)."""
    rag_seconds: float | None = None
    answer: str | None = None
    llm_error: str | None = None
    provider: str | None = None
    model: str | None = None
    reply_paths: tuple[Path, ...] = ()
    """The WAV file(s) of the spoken reply (one per tts utterance; empty when played on a device)."""
    spoken: str = ""
    """The text the tts reported as spoken (``speaking_end``/``stopped``)."""
    stopped: str | None = None
    """The reason, when the tts stopped the reply instead of finishing it."""
    first_audio: float | None = None
    """Seconds from ``stt/final`` (after the recogniser's end-of-speech window) to the tts's
    ``speaking_start`` of the reply."""
    seconds: float = 0.0
    problem: str | None = None

    @property
    def used_hits(self) -> list[MemoryResult]:
        """The hits the llm puts in its context: the ``target`` ones, except the question itself
        (memory ingests every ``stt/final``; the llm service leaves it out the same way)."""
        asked = _plain(self.transcript or "")
        return [
            h
            for h in self.hits
            if h.context_type == "target" and _plain(str(h.document.get("text", ""))) != asked
        ]


def _plain(text: str) -> str:
    return " ".join(text.split()).casefold()


def _squash(text: str) -> str:
    return "".join(text.split())


async def voice_turn(client: Bus, transcribe: Callable[[], Awaitable[int]], *, limit: float) -> TurnResult:
    """Run one turn on a running stack, as the client ``client`` (a running bus) sees it: announce it (``wake/event`` ``wake``, as push-to-talk), ``transcribe()`` (which
    publishes ``stt/final`` and returns how many), then follow the turn on the bus until its reply
    was spoken.

    The question is the last ``stt/final`` (the router answers only the newest transcript). The
    turn is over when the tts has reported as spoken (``speaking_end``) the whole answer of the
    ``llm/response``, possibly in several utterances, or stopped it. Everything runs under one
    deadline of ``limit`` seconds; past it the result says which step did not come.
    """
    async with Watch.on(client, WATCHED) as watch:
        found: dict[str, Any] = {}
        started = trio.current_time()
        step = "the transcript (stt/final)"
        with trio.move_on_after(limit) as deadline:
            # Push-to-talk: a router with a wake window opens it (RouterConfig.wake_required).
            await client.publish("wake/event", WakeEvent(type="wake", cause="push_to_talk"))
            published = await transcribe()
            if published == 0:
                return TurnResult(seconds=trio.current_time() - started, problem="no speech was recognised")
            # Published is not yet seen: the finals reach the watcher through its own queue (and,
            # over MQTT, the broker).
            while len(watch.of("stt/final")) < published:
                await watch.changed()
            final = found["final"] = watch.of("stt/final")[-1]
            step = "the router's llm/request"
            request = await watch.wait("llm/request", lambda r: r.text == final.data.text)
            turn_id = found["turn_id"] = request.data.id
            step = "the llm's llm/response"
            response = found["response"] = await watch.wait("llm/response", lambda r: r.id == turn_id)
            if response.data.error is None and (response.data.reply or "").strip():
                step = "the tts's speaking_end of the whole answer"
                await _spoken(watch, turn_id, response.data.reply)
        result = _result(watch, found, trio.current_time() - started)
    if deadline.cancelled_caught:
        return attrs.evolve(result, problem=f"waited {limit:g} s for {step} in vain")
    return result


async def _spoken(watch: Watch, turn_id: str, answer: str) -> None:
    """Until the tts reported the whole ``answer`` spoken for ``turn_id`` (or stopped it)."""
    target = _squash(answer)
    while True:
        ends = watch.of("tts/status", lambda s: s.utt_id == turn_id and s.event in _ENDS)
        if (
            any(s.data.event == "stopped" for s in ends)
            or _squash(" ".join(s.data.text for s in ends)) == target
        ):
            return
        await watch.changed()


def _result(watch: Watch, found: dict[str, Any], seconds: float) -> TurnResult:
    final: Seen | None = found.get("final")
    if final is None:
        return TurnResult(seconds=seconds)
    fields: dict[str, Any] = {
        "transcript": final.data.text,
        "confidence": final.data.confidence,
        "seconds": seconds,
    }
    queries = watch.of("memory/query", lambda q: q.text == final.data.text)
    if queries:
        fields["rag_asked"] = True
        query_id = queries[0].message.envelope.id
        replies = [s for s in watch.of("memory/results") if s.message.envelope.id == query_id]
        if replies:
            fields["hits"] = replies[0].data.results
            fields["rag_seconds"] = replies[0].at - queries[0].at
    turn_id = found.get("turn_id")
    if turn_id is None:
        return TurnResult(**fields)
    fields["turn_id"] = turn_id
    response: Seen | None = found.get("response")
    if response is not None:
        fields.update(
            answer=response.data.reply,
            llm_error=response.data.error,
            provider=response.data.provider,
            model=response.data.model,
        )
    statuses = watch.of("tts/status", lambda s: s.utt_id == turn_id)
    starts = [s for s in statuses if s.data.event == "speaking_start"]
    ends = [s for s in statuses if s.data.event in _ENDS]
    if starts:
        fields["first_audio"] = starts[0].at - final.at
    # tts/output (the file of an utterance) is published just before its end status.
    fields["reply_paths"] = tuple(
        Path(o.data.path) for o in watch.of("tts/output", lambda o: o.utt_id == turn_id)
    )
    fields["spoken"] = " ".join(s.data.text for s in ends)
    fields["stopped"] = next((s.data.reason or "stopped" for s in ends if s.data.event == "stopped"), None)
    return TurnResult(**fields)


async def ask_once(
    settings: VoiceSettings,
    wav: Path,
    *,
    limit: float,
    on_started: Callable[[float], None] | None = None,
) -> TurnResult:
    """One voice turn from ``wav``: the whole stack in process (``settings.bus == "memory"``), or
    stt here and the other services behind the MQTT broker ``settings.bus``.

    ``on_started(seconds)`` is called once the services serve (the start-up time). Errors from
    start-up (:exc:`BrokerUnavailable`, a missing program or model) or from reading ``wav``
    (``AudioError``) propagate; everything after that ends up in the result, within ``limit``
    seconds. The services are stopped (each says ``stopped``) before this returns.
    """
    # Over MQTT a real stt may be running too (services run --mic): ours must not report on its
    # health topic, so it has a name of its own.
    stack = (
        VoiceStack(settings)
        if settings.in_process
        else VoiceStack(settings, services=("stt",), names={"stt": "ask-stt"})
    )
    begun = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(stack.run)
        client = stack.client("cli")
        await nursery.start(client.run)
        if on_started is not None:
            on_started(trio.current_time() - begun)
        stt = stack.stt
        assert stt is not None
        files = trio.CapacityLimiter(1)
        finals = stt.bus.metrics.counter("stt.finals")  # counted by the stt service as it publishes

        async def transcribe() -> int:
            before = finals.value
            await stt.transcribe(wav_source(wav, limiter=files))
            return finals.value - before

        result = await voice_turn(client, transcribe, limit=limit)
        nursery.cancel_scope.cancel()
    return result


@attrs.frozen(kw_only=True)
class SayResult:
    """How one :func:`say` ended: the utterance's last ``tts/status``, or the tts's health when none came."""

    utt_id: str
    event: str | None = None
    """``speaking_end``, ``stopped``, or None when nothing came in time."""
    path: Path | None = None
    reason: str | None = None
    health: str | None = None
    """The tts's retained health as last seen (``ok ready``, ``not ok stopped``...), None if none."""


async def say(client: Bus, text: str, *, limit: float, voice: str | None = None) -> SayResult:
    """Publish ``tts/say`` on ``client`` (a running bus) and wait, at most ``limit`` seconds, for the
    end of that utterance (``speaking_end`` or ``stopped``); ``voice`` None: the tts's own voice.

    Never raises for a tts that does not answer: the result then has ``event`` None and the tts's
    last retained health (``system/health/tts``), if any.
    """
    async with Watch.on(client, ("tts/status", "tts/output", "system/health/tts")) as watch:
        utt_id = new_id()
        await client.publish("tts/say", TtsSay(text=text, utt_id=utt_id, voice=voice))
        with trio.move_on_after(limit):
            end = await watch.wait("tts/status", lambda s: s.utt_id == utt_id and s.event in _ENDS)
            outputs = watch.of("tts/output", lambda o: o.utt_id == utt_id)  # sent before the end
            return SayResult(
                utt_id=utt_id,
                event=end.data.event,
                path=Path(outputs[-1].data.path) if outputs else None,
                reason=end.data.reason,
            )
    health = watch.of("system/health/tts")
    shown = None
    if health:
        last = health[-1].data
        shown = f"{'ok' if last.ok else 'not ok'} {last.event}" + (f" ({last.err})" if last.err else "")
    return SayResult(utt_id=utt_id, health=shown)
