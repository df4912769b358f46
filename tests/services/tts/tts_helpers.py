"""Helpers of the tts tests (own module name: helper modules collide across test dirs)."""

from __future__ import annotations

import trio

from trioworks.bus import Message


class Collector:
    """A handler that records messages and lets a test wait for a condition on them."""

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

    async def wait_event(self, event: str, utt_id: str | None = None) -> Message:
        """The first tts/status ``event`` (for ``utt_id`` if given), waiting for it if need be."""
        while True:
            for message in self.messages:
                if message.data.event == event and (utt_id is None or message.data.utt_id == utt_id):
                    return message
            await self._changed.wait()

    def events(self) -> list[tuple[str, str | None]]:
        return [(m.data.event, m.data.utt_id) for m in self.messages]
