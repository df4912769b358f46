"""An OpenAI-compatible chat client: ``POST {base_url}/chat/completions`` streamed over SSE."""

from __future__ import annotations

import json
from typing import Any

import attrs
import httpx
import trio

from ...bus import LLMParams, ToolSpec, converter
from ...core import retry
from ._chat import BackendError, ChatMessage, Completion, OnDelta, ToolCall
from ._config import LLMConfig

__all__ = ["OpenAIBackend", "StreamParser"]

PROVIDER = "openai"


def _message_json(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


@attrs.define
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


class StreamParser:
    """Folds the SSE ``data:`` lines of a streamed chat completion into text and tool calls.

    ``feed(line)`` returns the text delta the line carries ("" for none); ``done`` turns true at
    ``data: [DONE]``. Tool-call deltas are merged by their ``index`` (id and name arrive first,
    the JSON arguments in pieces). Malformed events raise :exc:`BackendError` naming the problem.
    """

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, _PartialCall] = {}
        self.model: str | None = None
        self.usage: dict[str, int] | None = None
        self.done = False
        self.events = 0

    def feed(self, line: str) -> str:
        if not line.startswith("data:"):
            return ""  # blank separators, ": keep-alive" comments, event:/id: fields
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return ""
        try:
            event = json.loads(data)
        except ValueError:
            raise BackendError(PROVIDER, f"stream event is not JSON: {data[:200]!r}") from None
        if not isinstance(event, dict):
            raise BackendError(PROVIDER, f"stream event is not an object: {data[:200]!r}")
        self.events += 1
        if "error" in event:
            raise BackendError(PROVIDER, f"server error in stream: {event['error']}")
        self.model = event.get("model") or self.model
        if isinstance(event.get("usage"), dict):
            self.usage = {k: n for k, n in event["usage"].items() if isinstance(n, int)}
        choices = event.get("choices") or []
        if not choices:
            return ""
        delta = choices[0].get("delta") or {}
        for piece in delta.get("tool_calls") or []:
            partial = self.calls.setdefault(int(piece.get("index", 0)), _PartialCall())
            partial.id = piece.get("id") or partial.id
            function = piece.get("function") or {}
            partial.name += function.get("name") or ""
            partial.arguments += function.get("arguments") or ""
        text = delta.get("content") or ""
        if text:
            self.text.append(text)
        return text

    def completion(self) -> Completion:
        calls = []
        for index in sorted(self.calls):
            partial = self.calls[index]
            try:
                arguments = json.loads(partial.arguments) if partial.arguments.strip() else {}
            except ValueError:
                raise BackendError(
                    PROVIDER, f"tool call {partial.name!r}: arguments are not JSON: {partial.arguments!r}"
                ) from None
            if not isinstance(arguments, dict):
                raise BackendError(PROVIDER, f"tool call {partial.name!r}: arguments must be an object")
            calls.append(ToolCall(id=partial.id or f"call_{index}", name=partial.name, arguments=arguments))
        return Completion(
            text="".join(self.text), tool_calls=tuple(calls), model=self.model, usage=self.usage
        )


class OpenAIBackend:
    """Any OpenAI-compatible server (OpenAI, Ollama, llama.cpp, vLLM, LM Studio...).

    ``transport`` replaces httpx's network transport (tests pass an ``httpx.MockTransport``).

    Deadlines are cancel scopes, not httpx timeouts: ``first_token_timeout`` from sending the
    request to the first streamed event, then ``idle_timeout`` between events. A failure before
    the first text or tool-call delta (connection error, HTTP 429/5xx, a first-token timeout) is
    retried with the config's :class:`~trioworks.core.RetryPolicy`; after it, it is not.
    """

    provider = PROVIDER

    def __init__(self, config: LLMConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if config.base_url is None:
            raise BackendError(PROVIDER, "no base_url configured")
        self.config = config
        self.model = config.model
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/", headers=headers, timeout=None, transport=transport
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _body(
        self, messages: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...], params: LLMParams | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": (params.model if params and params.model else self.model),
            "messages": [_message_json(m) for m in messages],
            "stream": True,
        }
        if tools:
            body["tools"] = converter.unstructure(list(tools))
        if params is not None:
            for key in ("max_tokens", "temperature", "top_p"):
                if getattr(params, key) is not None:
                    body[key] = getattr(params, key)
        return body

    async def complete(
        self,
        messages: tuple[ChatMessage, ...],
        *,
        tools: tuple[ToolSpec, ...],
        params: LLMParams | None,
        on_delta: OnDelta,
    ) -> Completion:
        """See :meth:`Backend.complete`."""
        body = self._body(messages, tools, params)
        begun = False  # set at the first delta: from then on a failure is final

        async def attempt() -> Completion:
            nonlocal begun
            parser = StreamParser()
            with trio.move_on_after(self.config.first_token_timeout) as deadline:
                async with self._client.stream("POST", "chat/completions", json=body) as response:
                    if response.status_code >= 400:
                        detail = (await response.aread())[:500].decode(errors="replace")
                        raise BackendError(
                            PROVIDER,
                            f"HTTP {response.status_code} from {response.url}: {detail}",
                            retryable=response.status_code == 429 or response.status_code >= 500,
                        )
                    async for line in response.aiter_lines():
                        deadline.deadline = trio.current_time() + self.config.idle_timeout
                        text = parser.feed(line)
                        begun = begun or bool(text) or bool(parser.calls)
                        if text:
                            await on_delta(text)
                        if parser.done:
                            break
            if deadline.cancelled_caught:
                raise BackendError(
                    PROVIDER,
                    f"no stream event within {self.config.idle_timeout if parser.events else self.config.first_token_timeout} s",
                    retryable=not begun,
                )
            if not parser.done and not begun:
                raise BackendError(PROVIDER, "the stream ended before any reply", retryable=True)
            return parser.completion()

        def retryable(exc: BaseException) -> bool:
            if begun:
                return False
            if isinstance(exc, BackendError):
                return exc.retryable
            return isinstance(exc, httpx.TransportError)

        policy = attrs.evolve(self.config.retry, retry_on=retryable)
        try:
            return await retry(attempt, policy)
        except httpx.HTTPError as exc:
            raise BackendError(PROVIDER, f"{type(exc).__name__}: {exc}") from exc
