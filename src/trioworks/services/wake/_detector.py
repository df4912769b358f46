"""Where the spotter runs, behind one async face (:class:`AsyncDetector`).

- :class:`ThreadDetector`: the pocketsphinx :class:`Spotter` through
  :func:`~trioworks.core.run_in_thread` on a one-slot limiter, 100 ms of audio per call: each
  call holds the GIL only for that chunk's keyphrase search, so the loop runs between calls.
- :class:`~trioworks.services.wake.WyomingWake` (``wake_url``): a Wyoming wake server.
"""

from __future__ import annotations

from typing import Protocol

import trio

from ...core import run_in_thread
from ._config import WakeConfig
from ._spotter import Detection, Spotter

__all__ = ["AsyncDetector", "ThreadDetector"]


class AsyncDetector(Protocol):
    """What the wake service feeds. ``feed`` returns a detection it completed, or None; a
    detector whose results come on their own (a server) also has ``detections()``, an async
    iterator of :class:`Detection` the service reads beside the feeding."""

    async def feed(self, pcm: bytes) -> Detection | None: ...

    async def aclose(self) -> None: ...


class ThreadDetector:
    """A :class:`Spotter` driven through ``run_in_thread`` on ``limiter`` (one slot)."""

    def __init__(self, spotter: Spotter, limiter: trio.CapacityLimiter) -> None:
        self._spotter = spotter
        self._limiter = limiter

    @classmethod
    async def open(cls, config: WakeConfig, limiter: trio.CapacityLimiter) -> ThreadDetector:
        return cls(await run_in_thread(Spotter, config, limiter=limiter), limiter)

    async def feed(self, pcm: bytes) -> Detection | None:
        return await run_in_thread(self._spotter.feed, pcm, limiter=self._limiter)

    async def aclose(self) -> None:
        await run_in_thread(self._spotter.close, limiter=self._limiter)
