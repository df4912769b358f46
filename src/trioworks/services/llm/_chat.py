"""What a backend is given and what it returns: chat messages, tool calls, a completion."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

import attrs

from ...bus import LLMParams, ToolSpec

__all__ = [
    "Backend",
    "BackendError",
    "ChatMessage",
    "Completion",
    "OnDelta",
    "ToolCall",
]

OnDelta = Callable[[str], Awaitable[None]]
"""Called with each piece of reply text, in order, as the backend produces it."""


@attrs.frozen(kw_only=True)
class ToolCall:
    """One function call the model asked for; ``arguments`` already parsed from JSON."""

    id: str
    name: str
    arguments: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ChatMessage:
    """One message of the conversation sent to a backend (OpenAI chat format)."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    """On an assistant message: the calls it made."""
    tool_call_id: str | None = None
    """On a tool message: the call it answers."""
    name: str | None = None
    """On a tool message: the tool's name."""


@attrs.frozen(kw_only=True)
class Completion:
    """One backend turn: the text (all deltas joined) and/or the tool calls requested."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    model: str | None = None
    usage: dict[str, int] | None = None


class BackendError(Exception):
    """A backend failed: ``provider`` says which, ``retryable`` whether trying again may help.

    Only failures before the first delta are ever retried (a reply cannot be re-streamed).
    """

    def __init__(self, provider: str, problem: str, *, retryable: bool = False) -> None:
        super().__init__(provider, problem)
        self.provider = provider
        self.problem = problem
        self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.provider} backend: {self.problem}"


class Backend(Protocol):
    """A chat model. ``provider`` and ``model`` are reported on ``llm/response``."""

    provider: str
    model: str

    async def complete(
        self,
        messages: tuple[ChatMessage, ...],
        *,
        tools: tuple[ToolSpec, ...],
        params: LLMParams | None,
        on_delta: OnDelta,
    ) -> Completion:
        """Generate one turn, calling ``on_delta`` for each piece of text as it arrives.

        Raises :exc:`BackendError`. Cancellation: a checkpoint throughout; cancelling it stops
        the generation (an HTTP stream is closed) and nothing more is delivered to ``on_delta``.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the service stops."""
        ...
