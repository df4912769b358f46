"""A bus handler that records messages, shared by the bus and service tests.

(``tests/`` is on ``sys.path`` through the root conftest; helper modules of test directories
import it from there.)
"""

from __future__ import annotations

import trio

from trioworks.bus import Message

__all__ = ["Collector"]


class Collector:
    """A handler that records what it got and lets a test wait for a count."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = trio.Event()

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, count: int) -> list[Message]:
        while len(self.messages) < count:
            await self._changed.wait()
        return self.messages

    @property
    def data(self) -> list[object]:
        return [m.data for m in self.messages]
