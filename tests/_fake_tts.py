"""A fake synthesizer and a null audio sink for tts services in tests (no espeak-ng, no files).

(``tests/`` is on ``sys.path`` through the root conftest.)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from trioworks.core import Metrics
from trioworks.services.tts import Synthesis

__all__ = ["NullOutput", "NullSink", "make_synthesizer"]


class _Pcm(trio.abc.ReceiveStream):
    """``size`` bytes of silence, 200 at a time, ``delay`` seconds apart."""

    def __init__(self, size: int, delay: float) -> None:
        self.left = size
        self.delay = delay

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep(self.delay)
        n = min(self.left, 200)
        self.left -= n
        return b"\0" * n

    async def aclose(self) -> None:
        pass


def make_synthesizer(*, rate: int, bytes_per_char: int, delay: float) -> Callable[..., Any]:
    """A tts synthesizer: ``bytes_per_char`` bytes of ``rate`` Hz audio per character of text."""

    @contextlib.asynccontextmanager
    async def synthesize(
        text: str, *, voice: str, rate_wpm: int, pitch: int, metrics: Metrics
    ) -> AsyncIterator[Synthesis]:
        yield Synthesis(rate, _Pcm(len(text) * bytes_per_char, delay))

    return synthesize


class NullOutput:
    path = None

    async def write(self, pcm: bytes) -> None:
        await trio.lowlevel.checkpoint()

    async def close(self, *, stopped: bool) -> None:
        await trio.lowlevel.checkpoint()

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass


class NullSink:
    async def open(self, utt_id: str, rate: int) -> NullOutput:
        await trio.lowlevel.checkpoint()
        return NullOutput()
