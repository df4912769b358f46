"""The router service: ``stt/final`` -> ``llm/request`` -> sentences -> ``tts/say``, one turn at a time."""

from __future__ import annotations

import logging
import time

import attrs
import trio

from ...bus import (
    Bus,
    FinalTranscript,
    LLMCancel,
    LLMRequest,
    LLMResponse,
    LLMStreamDelta,
    Message,
    Overflow,
    Route,
    Service,
    Task,
    TtsControl,
    TtsSay,
    TtsStatus,
    WakeEvent,
    new_id,
)
from ...core import RestartPolicy
from .._text import SentenceChunker
from ._config import RouterConfig
from ._history import Exchange, History, TurnEnd
from ._wake import WakeWindow

__all__ = ["RouterService"]

logger = logging.getLogger("trioworks.services.router")

_STREAM_BUFFER = 1024  # deltas of the current turn waiting for the turn task; past it: dropped, counted
_CANCELLED: frozenset[str] = frozenset({"barge_in", "superseded", "timeout", "shutdown", "cancelled"})
_LLM_CANCELLED = "cancelled"  # the llm/response error of a cancelled request (the llm service's CANCELLED)


@attrs.define(eq=False)
class _Turn:
    """One conversation turn: its request id (also the ``utt_id`` of its speech) and its scope."""

    id: str
    final: FinalTranscript
    send: trio.MemorySendChannel[LLMStreamDelta | LLMResponse]
    receive: trio.MemoryReceiveChannel[LLMStreamDelta | LLMResponse]
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    ended: TurnEnd | None = None
    reply: list[str] = attrs.field(factory=list)
    said: int = 0
    last_seq: int = -1
    heard_upto: int = 0  # said chunks published before the tts last reported an end of speech
    heard: trio.Event = attrs.field(factory=trio.Event)  # set (and replaced) on each such report
    started: float = attrs.field(factory=trio.current_time)  # for the turn's log line
    first_reply: float | None = None  # the first text from the llm
    first_say: float | None = None  # the first tts/say

    @classmethod
    def create(cls, final: FinalTranscript) -> _Turn:
        send, receive = trio.open_memory_channel[LLMStreamDelta | LLMResponse](_STREAM_BUFFER)
        return cls(new_id(), final, send, receive)

    def end(self, how: TurnEnd) -> None:
        """Record how the turn ended; the first call wins. Not a checkpoint."""
        if self.ended is None:
            self.ended = how

    def cancel(self, reason: TurnEnd) -> None:
        """Cancel the turn's scope (LLM wait, chunking, speech wait) with ``reason``."""
        self.end(reason)
        self.scope.cancel()


class RouterService(Service):
    """The conversation router of the voice stack (py-tars' ``router``).

    Routes (each its own task and bounded queue): ``stt/final`` (starts a turn), ``wake/event``
    (``interrupt`` = barge-in; wake window), ``llm/stream`` and ``llm/response`` (the current
    turn's reply), ``llm/cancel`` (another client cancelled the turn's request), ``tts/status``
    (when the turn's speech is over).

    A turn, run by the one turn task inside its own :class:`trio.CancelScope`:
    ``llm/request`` (a fresh ``id``, the text, ``conversation_history`` of the last
    ``config.history_exchanges`` exchanges) -> each ``llm/stream`` delta is fed to a
    :class:`SentenceChunker` and every finished chunk goes out as ``tts/say`` with
    ``utt_id`` = the request id -> on ``done`` (or ``llm/response``) the tail is said -> the turn
    waits for the tts ``speaking_end``/``stopped`` of that utt_id (at most
    ``config.speech_timeout`` s) -> the exchange is added to the history.

    Wake window (``config.wake_required``, off by default): an ``stt/final`` starts a turn only
    while the :class:`WakeWindow` is open: ``config.wake_window`` s after ``wake/event``
    ``wake`` (or ``interrupt``), while a turn runs, and ``config.wake_window`` s after each turn
    ends (the conversation goes on); ``wake/event`` ``timeout``/``cancelled`` closes it.
    Transcripts outside it are ignored (``router.transcripts.outside_window``).

    Cancellation: a ``wake/event`` ``interrupt`` cancels the current turn's scope (``barge_in``);
    a new ``stt/final`` while a turn runs **replaces** it (``superseded``: the user spoke again,
    so the answer in progress is moot; only the newest waiting transcript gets a turn); no delta
    for ``config.reply_timeout`` s cancels it (``timeout``); an ``llm/cancel`` of its request from
    another client cancels it (``cancelled``; the router then does not repeat the ``llm/cancel``);
    stopping the service cancels it (``shutdown``). A cancelled turn then publishes, shielded and within
    ``config.cancel_timeout`` s, ``llm/cancel {id}`` (the llm stops generating and its tool
    calls; the tts stops the speech of that utt_id) and ``tts/control stop`` with that
    ``utt_id``, so LLM, tools and speech stop together; no ``tts/say`` of that turn follows.
    Its partial reply is kept in the history, marked as cut. A barge-in with no turn running
    still publishes ``tts/control stop`` (all speech): the user is talking.

    No thread or process work: the router needs no CapacityLimiter.

    Lifecycle: :class:`~trioworks.bus.Service`'s. The turn task (``router.turns``) and the
    handlers are supervised with ``restart``; past it the health says ``crashed`` and ``run``
    raises :exc:`~trioworks.bus.ServiceFailed`. A turn that fails to publish ends as ``error``
    (logged, kept in the history) without failing the task. When the service is cancelled, a
    running turn ends as ``shutdown`` and still publishes its ``llm/cancel`` and
    ``tts/control stop`` (shielded, within ``config.cancel_timeout``): the bus outlives the turn
    task, so they go out before it says goodbye and disconnects.
    """

    def __init__(
        self, bus: Bus, config: RouterConfig | None = None, *, restart: RestartPolicy = RestartPolicy()
    ) -> None:
        self.config = config if config is not None else RouterConfig()
        self.history = History(self.config.history_exchanges)
        self.wake = WakeWindow(required=self.config.wake_required, length=self.config.wake_window)
        # Bounded; a full queue holds up the stt/final route (BLOCK), never grows.
        self._pending_send, self._pending_recv = trio.open_memory_channel[FinalTranscript](16)
        self._current: _Turn | None = None
        self._turn_over = trio.Event()  # set (and replaced) whenever a turn ends
        self.turns_done = 0
        self._acks = 0  # wake acknowledgements said, to take the next text in turn
        super().__init__(
            bus,
            [
                Route("stt/final", self._on_final, capacity=16, dedupe=True),
                Route("wake/event", self._on_wake, capacity=16),
                Route("llm/stream", self._on_stream, capacity=256),
                Route("llm/response", self._on_response, capacity=16),
                Route("llm/cancel", self._on_llm_cancel, capacity=16),
                Route("tts/status", self._on_status, capacity=64, overflow=Overflow.DROP_OLDEST),
            ],
            tasks=[Task("router.turns", self._turns)],
            restart=restart,
        )
        metrics = bus.metrics
        self._started = metrics.counter("router.turns.started")
        self._completed = metrics.counter("router.turns.completed")
        self._cancelled = metrics.counter("router.turns.cancelled")
        self._superseded = metrics.counter("router.transcripts.superseded")
        self._says = metrics.counter("router.says")
        self._ignored = metrics.counter("router.stream.ignored")
        self._overflow = metrics.counter("router.stream.dropped")
        self._outside = metrics.counter("router.transcripts.outside_window")
        self._from_response = metrics.counter("router.reply.from_response")

    @property
    def current_turn(self) -> str | None:
        """The request id (= utt_id) of the turn running now, if any."""
        return self._current.id if self._current is not None else None

    async def wait_turns(self, n: int) -> None:
        """Return once ``n`` turns have ended (in any way) since the service was created."""
        while self.turns_done < n:
            await self._turn_over.wait()

    # --- handlers (each in its own subscription task) ------------------------------------

    async def _on_final(self, message: Message) -> None:
        final: FinalTranscript = message.data
        if not final.is_final or not final.text.strip():
            return
        if not self.wake.is_open:
            self._outside.inc()
            logger.info("router: no wake word; ignored %r", final.text)
            return
        if self._current is not None:
            self._current.cancel("superseded")
        await self._pending_send.send(final)

    async def _on_wake(self, message: Message) -> None:
        event: WakeEvent = message.data
        if event.type == "wake":
            self.wake.open()
            await self._acknowledge(event)
            return
        if event.type in ("timeout", "cancelled"):
            self.wake.close()
            return
        if event.type != "interrupt":
            return
        self.wake.open()  # the user is talking to the assistant: what they say next counts
        if self._current is not None:
            self._current.cancel("barge_in")
            return
        # No turn running, but the last reply may still be being spoken.
        with trio.move_on_after(self.config.cancel_timeout):
            await self.bus.publish("tts/control", TtsControl(action="stop", reason="barge_in"))

    async def _acknowledge(self, event: WakeEvent) -> None:
        """py-tars' wake acknowledgement: the next of ``config.wake_ack`` as a ``wake_ack`` say."""
        acks = self.config.wake_ack
        if not acks:
            return
        text = acks[self._acks % len(acks)]
        self._acks += 1
        utt_id = event.tts_id or f"wake-ack-{int(time.time() * 1000)}"
        say = TtsSay(
            text=text,
            voice=self.config.voice,
            lang="en",
            utt_id=utt_id,
            style=self.config.wake_ack_style,
            wake_ack=True,
        )
        with trio.move_on_after(self.config.cancel_timeout):
            await self.bus.publish("tts/say", say)

    def _route(self, item: LLMStreamDelta | LLMResponse) -> None:
        turn = self._current
        if turn is None or item.id != turn.id:
            self._ignored.inc()  # a cancelled or finished turn's late output
            return
        try:
            turn.send.send_nowait(item)
        except trio.WouldBlock:
            self._overflow.inc()
            logger.warning("router: turn %s has %d deltas waiting; dropped one", turn.id, _STREAM_BUFFER)

    async def _on_llm_cancel(self, message: Message) -> None:
        # Another client cancelled the current turn's request (the router's own llm/cancel is
        # published after its turn is over, so it never matches here).
        cancel: LLMCancel = message.data
        turn = self._current
        if turn is not None and cancel.id == turn.id:
            turn.cancel("cancelled")

    async def _on_stream(self, message: Message) -> None:
        self._route(message.data)

    async def _on_response(self, message: Message) -> None:
        self._route(message.data)

    async def _on_status(self, message: Message) -> None:
        status: TtsStatus = message.data
        turn = self._current
        if turn is None or status.utt_id != turn.id:
            return
        if status.event in ("speaking_end", "stopped"):
            # The tts may end the utterance between chunks (its aggregate window); what counts
            # is an end reported after the turn's last chunk was published.
            turn.heard_upto = turn.said
            turn.heard.set()
            turn.heard = trio.Event()

    # --- the turn task --------------------------------------------------------------------

    async def _turns(self) -> None:
        while True:
            final = await self._pending_recv.receive()
            while True:  # replace: only the newest waiting transcript gets a turn
                try:
                    newer = self._pending_recv.receive_nowait()
                except trio.WouldBlock:
                    break
                self._superseded.inc()
                final = newer
            await self._turn(final)

    async def _turn(self, final: FinalTranscript) -> None:
        turn = _Turn.create(final)
        logger.info("router: turn %s: heard %r", turn.id, final.text)
        self._current = turn
        self.wake.turn_started()
        self._started.inc()
        try:
            with turn.scope:
                await self._converse(turn)
            turn.end("done")
        except Exception as exc:
            logger.warning("router: turn %s failed: %s", turn.id, exc)
            turn.end("error")
        finally:
            self._current = None  # from here on its late deltas are ignored
            self.wake.turn_ended()
            turn.end("shutdown")  # only if nothing else ended it: the service is being cancelled
            if turn.ended in _CANCELLED:
                self._cancelled.inc()
                await self._stop(turn)
            else:
                self._completed.inc()
            assert turn.ended is not None  # turn.end("shutdown") above set it if nothing else had
            self.history.add(
                Exchange(turn_id=turn.id, user=final.text, reply="".join(turn.reply), ended=turn.ended)
            )
            _log_turn(turn)
            self.turns_done += 1
            self._turn_over.set()
            self._turn_over = trio.Event()

    async def _converse(self, turn: _Turn) -> None:
        config = self.config
        await self.bus.publish(
            "llm/request",
            LLMRequest(
                id=turn.id,
                text=turn.final.text,
                stream=True,
                use_rag=config.use_rag,
                rag_k=config.rag_k,
                system=config.system,
                conversation_history=self.history.messages(),
            ),
        )
        chunker = SentenceChunker(config.min_chunk, config.max_chunk, config.first_chunk)
        with trio.move_on_after(config.reply_timeout) as waiting:
            async for item in turn.receive:
                waiting.deadline = trio.current_time() + config.reply_timeout
                if isinstance(item, LLMResponse):
                    if item.error is not None:
                        # "cancelled": someone else's llm/cancel, which stops the speech too.
                        logger.warning("router: turn %s: the llm ended it: %s", turn.id, item.error)
                        turn.end("cancelled" if item.error == _LLM_CANCELLED else "error")
                    elif item.reply:
                        # The whole reply. Over MQTT llm/response and llm/stream are separate
                        # subscriptions, so the response can overtake the last deltas (or the
                        # reply was not streamed at all): say what the stream has not said yet.
                        streamed = "".join(turn.reply)
                        if item.reply.startswith(streamed) and len(item.reply) > len(streamed):
                            if turn.first_reply is None:
                                turn.first_reply = trio.current_time()
                            rest = item.reply[len(streamed) :]
                            turn.reply.append(rest)
                            self._from_response.inc()
                            for chunk in chunker.feed(rest):
                                await self._say(turn, chunk)
                    break
                if item.seq is not None:
                    if item.seq <= turn.last_seq:
                        self._ignored.inc()  # a duplicate (QoS 0 over a reconnect)
                        continue
                    turn.last_seq = item.seq
                if item.delta:  # py-tars' closing delta has none
                    if turn.first_reply is None:
                        turn.first_reply = trio.current_time()
                    turn.reply.append(item.delta)
                    for chunk in chunker.feed(item.delta):
                        await self._say(turn, chunk)
                if item.done:
                    break
        if waiting.cancelled_caught:
            logger.warning("router: turn %s: no reply for %s s", turn.id, config.reply_timeout)
            turn.end("timeout")
            return
        if turn.ended is not None:
            # The llm failed or the request was cancelled elsewhere: nothing more is said, and
            # the speech of a cancelled request was stopped by the tts (a tail sent now would be
            # dropped by it, and its end of speech waited for in vain).
            return
        await self._say(turn, chunker.flush())
        with trio.move_on_after(config.speech_timeout):
            while turn.heard_upto < turn.said:
                await turn.heard.wait()

    async def _say(self, turn: _Turn, chunk: str) -> None:
        text = chunk.strip()
        if not text:
            return
        say = TtsSay(text=text, utt_id=turn.id, voice=self.config.voice, stt_ts=turn.final.ts)
        if turn.first_say is None:
            turn.first_say = trio.current_time()
        await self.bus.publish("tts/say", say)
        turn.said += 1
        self._says.inc()

    async def _stop(self, turn: _Turn) -> None:
        """Stop the turn's generation, tool calls and speech: shielded, bounded."""
        with trio.CancelScope(shield=True), trio.move_on_after(self.config.cancel_timeout) as bounded:
            try:
                if turn.ended != "cancelled":  # else the llm/cancel came from someone else
                    await self.bus.publish("llm/cancel", LLMCancel(id=turn.id))
                await self.bus.publish(
                    "tts/control", TtsControl(action="stop", reason=turn.ended, utt_id=turn.id)
                )
            except Exception as exc:  # the bus is going away (shutdown): nothing left to tell
                logger.warning("router: could not cancel turn %s: %s", turn.id, exc)
        if bounded.cancelled_caught:
            logger.warning("router: cancelling turn %s took over %s s", turn.id, self.config.cancel_timeout)


def _ms(since: float, then: float | None) -> str:
    return "-" if then is None else f"{(then - since) * 1000:.0f} ms"


def _log_turn(turn: _Turn) -> None:
    """One INFO line per turn (logger ``trioworks.services.router``): how it ended, the answer,
    and the latency of each stage from the transcript's arrival: the llm's first text, the first
    sentence sent to the tts, the end of speech (the turn's end)."""
    logger.info(
        "router: turn %s %s: answer %r; llm first text %s, first speech sent %s, turn over %s",
        turn.id,
        turn.ended,
        "".join(turn.reply),
        _ms(turn.started, turn.first_reply),
        _ms(turn.started, turn.first_say),
        _ms(turn.started, trio.current_time()),
    )
