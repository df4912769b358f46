"""Conversation history of the router: the last N exchanges, interrupted ones marked as such."""

from __future__ import annotations

import collections
from typing import Literal

import attrs

from ...bus import ConversationMessage

__all__ = ["Exchange", "History", "TurnEnd"]

TurnEnd = Literal["done", "barge_in", "superseded", "timeout", "cancelled", "error", "shutdown"]
"""How a turn ended: ``done`` is a complete reply; every other value cut it short."""


@attrs.frozen(kw_only=True)
class Exchange:
    """One turn: what the user said and what the assistant said back (all of it or a part)."""

    turn_id: str
    user: str
    reply: str
    ended: TurnEnd = "done"

    @property
    def complete(self) -> bool:
        return self.ended == "done"

    def messages(self) -> tuple[ConversationMessage, ...]:
        """The exchange as ``conversation_history`` entries; a cut reply says so, in brackets,
        so the model knows the user did not hear the rest."""
        reply = self.reply.strip()
        if not self.complete:
            reply = f"{reply} [{_MARKS[self.ended]}]".strip()
        return (
            ConversationMessage(role="user", content=self.user),
            ConversationMessage(role="assistant", content=reply),
        )


_MARKS: dict[str, str] = {
    "barge_in": "interrupted by the user",
    "superseded": "interrupted: the user spoke again",
    "timeout": "cut off: no reply in time",
    "cancelled": "cut off: the request was cancelled",
    "error": "cut off: the model failed",
    "shutdown": "cut off: the assistant stopped",
}


class History:
    """The last ``max_exchanges`` exchanges, oldest first. Not thread-safe; one owner task."""

    def __init__(self, max_exchanges: int) -> None:
        if max_exchanges < 0:
            raise ValueError(f"history: max_exchanges must be >= 0, got {max_exchanges}")
        self._exchanges: collections.deque[Exchange] = collections.deque(maxlen=max_exchanges)

    def add(self, exchange: Exchange) -> None:
        """Remember ``exchange``, forgetting the oldest one past the bound."""
        self._exchanges.append(exchange)

    @property
    def exchanges(self) -> tuple[Exchange, ...]:
        return tuple(self._exchanges)

    def __len__(self) -> int:
        return len(self._exchanges)

    def messages(self) -> tuple[ConversationMessage, ...]:
        """Everything remembered as ``llm/request.conversation_history`` (user, assistant, ...)."""
        return tuple(message for exchange in self._exchanges for message in exchange.messages())
