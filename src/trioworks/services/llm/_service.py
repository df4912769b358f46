"""The llm service: ``llm/request`` -> RAG, tool calls, streamed deltas -> ``llm/response``."""

from __future__ import annotations

import contextlib
import logging

import attrs
import trio
from trio_util import AsyncValue

from ...bus import (
    Bus,
    BusError,
    EnvelopeError,
    LLMCancel,
    LLMRequest,
    LLMResponse,
    LLMStreamDelta,
    MemoryQuery,
    Message,
    Overflow,
    RawMessage,
    RequestTimeout,
    Route,
    Service,
    ToolSpec,
    TtsSay,
    new_id,
    salvage,
)
from ...core import RestartPolicy
from .._text import SentenceChunker  # the one sentence chunker, shared with the router
from ._chat import Backend, ChatMessage
from ._config import LLMConfig
from ._offline import CONTEXT_MARKER, OfflineBackend
from ._openai import OpenAIBackend
from ._tools import ToolCaller

__all__ = ["LLMService", "make_backend"]

logger = logging.getLogger("trioworks.services.llm")

EARLY_CANCEL_TTL = 30.0
"""Seconds a cancel for an unknown request id is remembered, in case its request comes later."""
EARLY_CANCEL_MAX = 256

CANCELLED = "cancelled"
"""The ``error`` of the ``llm/response`` that ends a cancelled request."""


def _plain(text: str) -> str:
    return " ".join(text.split()).casefold()


def make_backend(config: LLMConfig) -> Backend:
    """The backend ``config.provider`` names."""
    if config.provider == "openai":
        return OpenAIBackend(config)
    return OfflineBackend(config)


@attrs.define(eq=False)
class _Turn:
    """One request being answered: its cancel scope, stream position and text so far."""

    request: LLMRequest
    message: Message
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    seq: int = 0
    text: list[str] = attrs.field(factory=list)
    tokens: dict[str, int] | None = None
    model: str | None = None
    chunker: SentenceChunker = attrs.field(factory=SentenceChunker)


class LLMService(Service):
    """Chat generation on the bus, cancellable per request.

    Routes (each its own task, so control never waits behind generation): ``llm/request``,
    ``llm/cancel``, ``llm/tools/registry`` (retained: the latest list is kept) and
    ``llm/tool.call.result``.

    Each accepted request runs in its own task inside its own cancel scope (:attr:`turns` maps
    request id to scope) and waits for one of ``config.max_concurrent`` generation slots
    (:attr:`generation_limiter`). A turn: optional RAG (``memory/query``, ``config.rag_timeout``;
    on timeout the answer is made with no context), then backend rounds: text deltas go out on
    ``llm/stream`` (``seq`` from 0, when ``request.stream``); tool calls go out on
    ``llm/tool.call.request/<call_id>`` concurrently, each waited for up to
    ``config.tool_timeout`` (a missing reply becomes an error the model is told about), and
    the results are fed back, at most ``config.max_tool_rounds`` times. It ends with a
    ``done: true`` delta and one ``llm/response`` whose envelope id is the request's.

    ``llm/cancel {id}`` cancels that request's scope: the backend stream (HTTP connection
    closed), the RAG wait and pending tool calls stop at once; no delta follows; the final
    delta (``done: true``) and ``llm/response {error: "cancelled", reply: <text so far>}`` are
    still sent. The speech it fed stops too: with ``config`` ``speak`` on, this service sent the
    sentences as ``tts/say`` with ``utt_id`` = request id, and tts stops that utterance on the
    same ``llm/cancel``.

    Requests that cannot be served get an ``llm/response`` with ``error``: empty ``id`` or
    ``text``, an id already in flight, more than ``config.max_pending`` requests, a backend
    failure. A request that breaks the contract (``rag_k`` 0, a wrong type, an unknown key) is
    counted by the bus (``bus.sub.llm/request.malformed``) and answered at once with
    ``error: "bad request: <the fields at fault>"``, its ``id`` and envelope id read from the
    raw JSON as far as they can be (``llm.requests.malformed``); with neither readable it is
    only logged (``llm.requests.unanswerable``).

    Lifecycle: :class:`~trioworks.bus.Service`'s. The request tasks run beside the routes
    (:meth:`~trioworks.bus.Service.start_soon`); when the service stops they are cancelled with
    them (no final response: the service is going away), and the backend is closed after the bus
    has disconnected (shielded, within 5 s).
    """

    def __init__(
        self,
        bus: Bus,
        config: LLMConfig | None = None,
        *,
        backend: Backend | None = None,
        restart: RestartPolicy = RestartPolicy(),
        speak: bool = False,
    ) -> None:
        self.config = config if config is not None else LLMConfig()
        self.backend = backend if backend is not None else make_backend(self.config)
        self.speak = speak
        self.generation_limiter = trio.CapacityLimiter(self.config.max_concurrent)
        self.turns: dict[str, trio.CancelScope] = {}
        self.tool_caller = ToolCaller(bus, timeout=self.config.tool_timeout)
        self._early_cancels: dict[str, float] = {}  # request id -> expiry (trio time), oldest first
        super().__init__(
            bus,
            [
                Route(
                    "llm/request",
                    self._on_request,
                    capacity=64,
                    on_malformed=self._on_bad_request,
                    dedupe=True,
                ),
                Route("llm/cancel", self._on_cancel, capacity=64),
                Route(
                    "llm/tools/registry",
                    self.tool_caller.on_registry,
                    capacity=4,
                    overflow=Overflow.DROP_OLDEST,
                ),
                Route("llm/tool.call.result", self.tool_caller.on_result, capacity=64),
            ],
            restart=restart,
        )
        self.metrics = bus.metrics

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        """The tools the model is offered now."""
        return self.tool_caller.registry.value

    @property
    def registry(self) -> AsyncValue[tuple[ToolSpec, ...]]:
        """The tools of the latest ``llm/tools/registry`` (an observable value)."""
        return self.tool_caller.registry

    @property
    def pending_tool_calls(self) -> int:
        """Tool calls waiting for their result (0 whenever none is in flight)."""
        return self.tool_caller.pending

    async def setup(self) -> None:
        """Register the backend's close (called by ``run`` before serving)."""
        self.add_cleanup(self.backend.aclose, name="llm backend", timeout=5)
        await trio.lowlevel.checkpoint()

    # --- control --------------------------------------------------------------------------

    def cancel(self, request_id: str) -> bool:
        """Cancel request ``request_id``; False if it is not in flight. Not a checkpoint."""
        scope = self.turns.get(request_id)
        if scope is None:
            return False
        scope.cancel()
        return True

    async def _on_cancel(self, message: Message) -> None:
        cancel: LLMCancel = message.data
        if self.cancel(cancel.id):
            self.metrics.counter("llm.cancelled").inc()
            return
        # Requests and cancels are handled by separate tasks, so a cancel published right after
        # its request can be handled first: remember it for a while (bounded) and apply it when
        # the request arrives.
        self.metrics.counter("llm.cancel.unknown").inc()
        self._early_cancels[cancel.id] = trio.current_time() + EARLY_CANCEL_TTL
        while len(self._early_cancels) > EARLY_CANCEL_MAX:
            del self._early_cancels[next(iter(self._early_cancels))]

    # --- requests -------------------------------------------------------------------------

    def _refusal(self, request: LLMRequest) -> str | None:
        if not request.id.strip():
            return "bad request: $.data.id must not be empty"
        if not request.text.strip():
            return f"bad request {request.id!r}: $.data.text must not be empty"
        if request.id in self.turns:
            return f"bad request {request.id!r}: a request with this id is already in flight"
        if len(self.turns) >= self.config.max_pending:
            return f"busy: {len(self.turns)} requests in flight (max_pending={self.config.max_pending})"
        return None

    async def _on_request(self, message: Message) -> None:
        request: LLMRequest = message.data
        refusal = self._refusal(request)
        if refusal is not None:
            self.metrics.counter("llm.requests.refused").inc()
            await self._respond(
                message, LLMResponse(id=request.id, error=refusal, provider=self.backend.provider)
            )
            return
        turn = _Turn(request, message)
        self.turns[request.id] = turn.scope  # registered now: a cancel while queued counts
        expiry = self._early_cancels.pop(request.id, None)
        if expiry is not None and expiry >= trio.current_time():
            turn.scope.cancel()  # its cancel came first: answered "cancelled" without generating
        self.metrics.counter("llm.requests").inc()
        self.start_soon(self._serve, turn, name=f"llm.request:{request.id}")

    async def _on_bad_request(self, raw: RawMessage, error: EnvelopeError) -> None:
        found = salvage(raw.payload)
        request_id = found.text("id") or found.id
        if request_id is None:
            self.metrics.counter("llm.requests.unanswerable").inc()
            logger.warning("llm: a malformed request without a readable id cannot be answered: %s", error)
            return
        self.metrics.counter("llm.requests.malformed").inc()
        response = LLMResponse(id=request_id, error=f"bad request: {error}", provider=self.backend.provider)
        # Bounded and never fatal: a reply that cannot go out is logged, like any other response.
        with trio.move_on_after(5):
            try:
                await self.bus.publish("llm/response", response, id=found.id or new_id())
            except Exception as exc:
                logger.warning("llm: could not answer the malformed request %s: %s", request_id, exc)
                self.metrics.counter("llm.responses.failed").inc()

    async def _serve(self, turn: _Turn) -> None:
        error: str | None = None
        try:
            with turn.scope:
                async with self.generation_limiter:
                    await self._generate(turn)
        except Exception as exc:  # a failed turn is answered, never a crashed service
            logger.warning("llm: request %s failed: %s", turn.request.id, exc)
            self.metrics.counter("llm.requests.failed").inc()
            error = str(exc)
        finally:
            del self.turns[turn.request.id]
        if turn.scope.cancelled_caught:
            error = CANCELLED
        # Shielded: a cancelled request is still told it was cancelled; bounded, so a stuck
        # broker cannot hold the service's shutdown.
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            try:
                await self._finish(turn, error)
            except Exception as exc:
                # e.g. a reply over the bus's payload limit: say so rather than crash the service
                # (turns run in the service's own nursery: a failure here would end it).
                logger.warning("llm: could not send the response to %s: %s", turn.request.id, exc)
                self.metrics.counter("llm.responses.failed").inc()
                failed = LLMResponse(
                    id=turn.request.id, error=f"response not sent: {exc}", provider=self.backend.provider
                )
                with contextlib.suppress(Exception):
                    await self._respond(turn.message, failed)

    async def _finish(self, turn: _Turn, error: str | None) -> None:
        request = turn.request
        if self.speak and error is None and (rest := turn.chunker.flush()):
            await self._say(turn, rest)
        if request.stream:
            await self.bus.publish("llm/stream", LLMStreamDelta(id=request.id, seq=turn.seq, done=True))
        response = LLMResponse(
            id=request.id,
            reply="".join(turn.text) if (turn.text or error is None) else None,
            error=error,
            provider=self.backend.provider,
            model=turn.model or self.backend.model,
            tokens=turn.tokens,
        )
        await self._respond(turn.message, response)

    async def _respond(self, message: Message, response: LLMResponse) -> None:
        await self.bus.reply(message, "llm/response", response)

    # --- one turn -------------------------------------------------------------------------

    async def _generate(self, turn: _Turn) -> None:
        request = turn.request
        messages = self._messages(request, await self._context(request))

        async def on_delta(text: str) -> None:
            turn.text.append(text)
            if request.stream:
                delta = LLMStreamDelta(id=request.id, seq=turn.seq, delta=text)
                turn.seq += 1
                await self.bus.publish("llm/stream", delta)
            if self.speak:
                for sentence in turn.chunker.feed(text):
                    await self._say(turn, sentence)

        tools = self.tools
        for round_ in range(self.config.max_tool_rounds + 1):
            pieces = len(turn.text)
            completion = await self.backend.complete(
                messages, tools=tools, params=request.params, on_delta=on_delta
            )
            if completion.text and len(turn.text) == pieces:
                await on_delta(completion.text)  # a backend that does not stream: one delta
            turn.model = completion.model or turn.model
            if completion.usage:
                turn.tokens = {k: (turn.tokens or {}).get(k, 0) + n for k, n in completion.usage.items()}
            if not completion.tool_calls:
                return
            if round_ == self.config.max_tool_rounds:
                raise RuntimeError(f"still calling tools after {self.config.max_tool_rounds} rounds")
            results = await self.tool_caller.call_all(completion.tool_calls)
            messages += (
                ChatMessage(role="assistant", content=completion.text, tool_calls=completion.tool_calls),
                *results,
            )

    async def _say(self, turn: _Turn, text: str) -> None:
        if text.strip():
            await self.bus.publish("tts/say", TtsSay(text=text.strip(), utt_id=turn.request.id))

    async def _context(self, request: LLMRequest) -> list[str]:
        """The texts memory returns for ``request``; [] without RAG, on timeout or bus error."""
        if not request.use_rag:
            return []
        query = MemoryQuery(text=request.text, top_k=min(request.rag_k or 5, 50))
        asked_at = trio.current_time()
        try:
            reply = await self.bus.request(
                "memory/query", query, reply_topic="memory/results", timeout=self.config.rag_timeout
            )
        except RequestTimeout:
            self.metrics.counter("llm.rag.timed_out").inc()
            logger.warning(
                "llm: no memory/results within %s s; answering without context", self.config.rag_timeout
            )
            return []
        except BusError as exc:
            self.metrics.counter("llm.rag.failed").inc()
            logger.warning("llm: memory query failed (%s); answering without context", exc)
            return []
        self.metrics.counter("llm.rag.answered").inc()
        texts = [r.document.get("text") for r in reply.data.results if r.context_type == "target"]
        # Memory ingests every stt/final, so the question itself (just said, or asked before) is
        # often the best hit; it is not context for its own answer.
        asked = _plain(request.text)
        hits = [t for t in texts if isinstance(t, str) and t.strip() and _plain(t) != asked]
        logger.info(
            "llm: turn %s: %d memory hits in %.0f ms: %r",
            request.id,
            len(hits),
            (trio.current_time() - asked_at) * 1000,
            hits,
        )
        return hits

    def _messages(self, request: LLMRequest, context: list[str]) -> tuple[ChatMessage, ...]:
        system = request.system or self.config.system_prompt
        if context:
            system += "\n\n" + CONTEXT_MARKER + "\n".join(f"- {text}" for text in context)
        history = tuple(
            ChatMessage(role=m.role, content=m.content) for m in request.conversation_history or ()
        )
        return (
            ChatMessage(role="system", content=system),
            *history,
            ChatMessage(role="user", content=request.text),
        )
