"""Fakes of the router tests: a scripted llm on the bus, and tts synthesis without espeak-ng.

(Own module name: helper modules collide across test directories.)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import attrs
import trio

from _collector import Collector
from _fake_tts import NullSink, make_synthesizer
from trioworks.bus import (
    Bus,
    FinalTranscript,
    InProcessBroker,
    InProcessTransport,
    LLMCancel,
    LLMRequest,
    LLMResponse,
    LLMStreamDelta,
    Message,
    Route,
    Service,
    WakeEvent,
)
from trioworks.services.router import RouterConfig, RouterService
from trioworks.services.tts import TtsConfig, TtsService

DELTA_CHARS = 12  # the fake llm streams its reply 12 characters at a time


class FakeLlm:
    """Answers ``llm/request`` with ``script(request)`` streamed as deltas, ``step`` s apart.

    ``script`` returning None: never answer; a string starting with ``"!"``: answer with that
    error on ``llm/response``. ``llm/cancel`` cancels the generation of that id (recorded).
    """

    def __init__(
        self,
        bus: Bus,
        script: Callable[[LLMRequest], str | None],
        *,
        step: float = 0.1,
        done_after: float | None = None,
    ) -> None:
        self.bus = bus
        self.script = script
        self.step = step
        self.done_after = done_after  # None: done on the last text delta; else an empty one this much later
        self.requests: list[LLMRequest] = []
        self.cancelled: list[str] = []
        self.finished: list[str] = []
        self._scopes: dict[str, trio.CancelScope] = {}
        self.service = Service(
            bus,
            [Route("llm/request", self._on_request, concurrency=4), Route("llm/cancel", self._on_cancel)],
        )

    async def _on_request(self, message: Message) -> None:
        request: LLMRequest = message.data
        self.requests.append(request)
        reply = self.script(request)
        if reply is None:
            return
        if reply.startswith("!"):
            await self.bus.publish("llm/response", LLMResponse(id=request.id, error=reply[1:]))
            return
        with trio.CancelScope() as scope:
            self._scopes[request.id] = scope
            pieces = [reply[i : i + DELTA_CHARS] for i in range(0, len(reply), DELTA_CHARS)]
            for seq, piece in enumerate(pieces):
                await trio.sleep(self.step)
                done = seq == len(pieces) - 1 and self.done_after is None
                await self.bus.publish(
                    "llm/stream", LLMStreamDelta(id=request.id, seq=seq, delta=piece, done=done)
                )
            if self.done_after is not None:
                await trio.sleep(self.done_after)
                await self.bus.publish(
                    "llm/stream", LLMStreamDelta(id=request.id, seq=len(pieces), done=True)
                )
            await self.bus.publish("llm/response", LLMResponse(id=request.id, reply=reply, provider="fake"))
            self.finished.append(request.id)
        del self._scopes[request.id]

    async def _on_cancel(self, message: Message) -> None:
        cancel: LLMCancel = message.data
        self.cancelled.append(cancel.id)
        if cancel.id in self._scopes:
            self._scopes[cancel.id].cancel()


RATE = 1000  # fake audio: 1000 samples/s, 40 bytes per character = 20 ms of speech per character
fake_synthesizer = make_synthesizer(rate=RATE, bytes_per_char=40, delay=0.001)


SENTENCES = [
    f"This is sentence number {i} of the answer, long enough to be spoken alone." for i in range(1, 21)
]
LONG = " ".join(SENTENCES)  # ~1,500 characters: 13 s of deltas, 30 s of speech


def echo(request: LLMRequest) -> str:
    return f"You said: {request.text}. That is all I have to say about it, thank you for asking!"


@attrs.define
class Rig:
    router: RouterService
    llm: FakeLlm
    client: Bus
    wire: Collector  # everything on the bus, in publish order

    async def hear(self, text: str) -> None:
        await self.client.publish("stt/final", FinalTranscript(text=text, utt_id="stt-" + text[:8], ts=1.0))

    async def interrupt(self) -> None:
        await self.client.publish("wake/event", WakeEvent(type="interrupt", cause="barge_in"))

    async def wake(self, type: str = "wake") -> None:
        await self.client.publish("wake/event", WakeEvent(type=type))  # type: ignore[arg-type]

    def on(self, topic: str) -> list[object]:
        return [m.data for m in self.wire.messages if m.topic == topic]

    async def wait_for(self, topic: str, count: int = 1) -> None:
        while len(self.on(topic)) < count:
            await self.wire.wait_for(len(self.wire.messages) + 1)

    def order(self, topic: str, **fields: object) -> list[int]:
        """Positions on the wire of ``topic`` messages whose data has ``fields``."""
        return [
            i
            for i, m in enumerate(self.wire.messages)
            if m.topic == topic and all(getattr(m.data, k) == v for k, v in fields.items())
        ]


@contextlib.asynccontextmanager
async def running(
    script: Callable[[LLMRequest], str | None] = echo,
    config: RouterConfig | None = None,
    *,
    start_router: bool = True,
    done_after: float | None = None,
) -> AsyncIterator[Rig]:
    broker = InProcessBroker()
    tts = TtsService(
        Bus(InProcessTransport(broker), source="tts"),
        TtsConfig(player="wav", aggregate_window=0.5),
        synthesizer=fake_synthesizer,
        sink=NullSink(),
    )
    llm = FakeLlm(Bus(InProcessTransport(broker), source="llm"), script, done_after=done_after)
    router = RouterService(Bus(InProcessTransport(broker), source="router"), config)
    client = Bus(InProcessTransport(broker), source="client")
    wire = Collector()
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        await client.subscribe("#", wire, capacity=10_000)
        for component in (tts, llm.service, router) if start_router else (tts, llm.service):
            await nursery.start(component.run)
        yield Rig(router, llm, client, wire)
        nursery.cancel_scope.cancel()
