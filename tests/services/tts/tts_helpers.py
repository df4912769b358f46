"""Helpers of the tts tests (own module name: helper modules collide across test dirs)."""

from __future__ import annotations

import _collector
from trioworks.bus import Message


class Collector(_collector.Collector):
    """The shared collector, plus waiting for tts/status events."""

    async def wait_event(self, event: str, utt_id: str | None = None) -> Message:
        """The first tts/status ``event`` (for ``utt_id`` if given), waiting for it if need be."""
        while True:
            for message in self.messages:
                if message.data.event == event and (utt_id is None or message.data.utt_id == utt_id):
                    return message
            await self._changed.wait()

    def events(self) -> list[tuple[str, str | None]]:
        return [(m.data.event, m.data.utt_id) for m in self.messages]
