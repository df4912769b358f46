"""Sentence chunking of a streamed reply for ``tts/say``: pure, incremental, no I/O.

Shared by the router (which speaks the llm's streamed deltas) and the llm service (``speak=True``).

A chunk ends right after the *first* sentence boundary (one of ``.!?;:`` followed by
whitespace) that makes it at least ``min_chars`` long. When no such boundary comes within
``max_chars``, the chunk is cut at the last whitespace in ``[min_chars, max_chars]``, else hard
at ``max_chars``. The tail (what is left when the text ends) may be shorter than ``min_chars``.
The first chunk may have a smaller minimum of its own (``first_min_chars``): a voice reply's first
clause is spoken as soon as it is complete, and the rest in longer, more natural chunks.

Feeding the text in any number of pieces gives exactly the chunks of feeding it whole: a cut is
only made once the characters that decide it have arrived.
"""

from __future__ import annotations

__all__ = ["BOUNDARIES", "SentenceChunker", "chunk_sentences"]

BOUNDARIES = frozenset(".!?;:")
"""Characters that end a sentence when whitespace follows them."""


def _check_bounds(min_chars: int, max_chars: int, first_min_chars: int) -> None:
    if not 1 <= min_chars <= max_chars:
        raise ValueError(f"chunk bounds: expected 1 <= min_chars <= max_chars, got {min_chars}, {max_chars}")
    if not 1 <= first_min_chars <= max_chars:
        raise ValueError(
            f"chunk bounds: expected 1 <= first_min_chars <= max_chars, got {first_min_chars}, {max_chars}"
        )


def _next_cut(buf: str, min_chars: int, max_chars: int) -> int | None:
    """Where the next chunk of ``buf`` ends, or None until more text (or the end) is known."""
    n = len(buf)
    for i in range(min_chars - 1, min(n - 1, max_chars)):
        if buf[i] in BOUNDARIES and buf[i + 1].isspace():
            return i + 1
    if n <= max_chars:
        return None  # a boundary may still come (or this is the tail)
    # No boundary within max_chars: a long sentence; prefer a word break.
    for j in range(max_chars, min_chars - 1, -1):
        if buf[j].isspace():
            return j
    return max_chars


class SentenceChunker:
    """Incremental :func:`chunk_sentences`: :meth:`feed` deltas, then :meth:`flush` the tail."""

    def __init__(self, min_chars: int = 60, max_chars: int = 240, first_min_chars: int | None = None) -> None:
        first = min_chars if first_min_chars is None else first_min_chars
        _check_bounds(min_chars, max_chars, first)
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.first_min_chars = first
        self._buf = ""
        self._minimum = first  # until the first chunk is out

    @property
    def pending(self) -> str:
        """Text fed but not yet returned as a chunk."""
        return self._buf

    def feed(self, delta: str) -> list[str]:
        """Add ``delta``; return the chunks it completes (possibly none)."""
        self._buf += delta
        out: list[str] = []
        while (cut := _next_cut(self._buf, self._minimum, self.max_chars)) is not None:
            out.append(self._buf[:cut])
            self._buf = self._buf[cut:]
            self._minimum = self.min_chars
        return out

    def flush(self) -> str:
        """The tail: whatever is pending (possibly ""), leaving the chunker empty."""
        tail, self._buf = self._buf, ""
        return tail


def chunk_sentences(
    text: str, min_chars: int = 60, max_chars: int = 240, first_min_chars: int | None = None
) -> list[str]:
    """Split ``text`` into chunks whose concatenation is ``text`` (see the module docstring).

    Every chunk but the last is ``min_chars``..``max_chars`` long (the first one
    ``first_min_chars``..``max_chars``, default ``min_chars``); the last is at most
    ``max_chars`` and non-empty (no chunks for ""). Raises ValueError for bad bounds.
    """
    chunker = SentenceChunker(min_chars, max_chars, first_min_chars)
    chunks = chunker.feed(text)
    tail = chunker.flush()
    return [*chunks, tail] if tail else chunks
