"""Fakes of the router tests: a scripted llm on the bus, and tts synthesis without espeak-ng.

(Own module name: helper modules collide across test directories.)
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from _fake_tts import make_synthesizer
from trioworks.bus import (
    Bus,
    LLMCancel,
    LLMRequest,
    LLMResponse,
    LLMStreamDelta,
    Message,
    Route,
    Service,
)

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
