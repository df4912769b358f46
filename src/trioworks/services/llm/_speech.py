"""Cutting a streamed reply into sentences for ``tts/say`` (the spec: ~60-240 chars, ``.!?;:``)."""

from __future__ import annotations

import re

__all__ = ["SentenceChunker"]

_BOUNDARY = re.compile(r"[.!?;:](?=\s)")


class SentenceChunker:
    """Feed text pieces in order; get back the finished chunks, each ``min_chars``-``max_chars``.

    A chunk ends at the first boundary (``.!?;:`` followed by a space) once it holds at least
    ``min_chars``; a run longer than ``max_chars`` without one is cut at its last space. ``flush``
    returns what is left. Pure, no I/O.
    """

    def __init__(self, min_chars: int = 60, max_chars: int = 240) -> None:
        self.min_chars = min_chars
        self.max_chars = max_chars
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        out: list[str] = []
        while True:
            cut = self._cut()
            if cut is None:
                return out
            chunk, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:].lstrip()
            if chunk:
                out.append(chunk)

    def _cut(self) -> int | None:
        for match in _BOUNDARY.finditer(self._buffer):
            if match.end() >= self.min_chars:
                return match.end() if match.end() <= self.max_chars else self._space_cut()
        if len(self._buffer) > self.max_chars:
            return self._space_cut()
        return None

    def _space_cut(self) -> int:
        space = self._buffer.rfind(" ", 0, self.max_chars)
        return space if space > 0 else self.max_chars

    def flush(self) -> str:
        rest, self._buffer = self._buffer.strip(), ""
        return rest
