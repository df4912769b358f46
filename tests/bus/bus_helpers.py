"""Shared helpers of the bus tests (a module of its own: ``conftest`` names collide across dirs)."""

from __future__ import annotations

import trio

from trioworks.bus import Message


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
