"""The shared sentence chunker (services/_text.py): properties over arbitrary text and arbitrary delta splits."""

from __future__ import annotations

import itertools

import hypothesis.strategies as st
import pytest
from hypothesis import given

from trioworks.services import BOUNDARIES, SentenceChunker, chunk_sentences

# Text rich in the characters that matter: boundaries, whitespace, plain letters.
TEXT = st.text(alphabet=st.sampled_from("ab .!?;:\n,3"), max_size=800) | st.text(max_size=400)
BOUNDS = st.tuples(st.integers(1, 80), st.integers(0, 200)).map(lambda t: (t[0], t[0] + t[1]))
# (min, max, first min): the first chunk's own minimum anywhere in 1..max.
BOUNDS3 = BOUNDS.flatmap(lambda b: st.tuples(st.just(b[0]), st.just(b[1]), st.integers(1, b[1])))


def _ends_sentence(text: str, i: int) -> bool:
    """A boundary char at ``i`` followed by whitespace."""
    return i + 1 < len(text) and text[i] in BOUNDARIES and text[i + 1].isspace()


@given(TEXT, BOUNDS3)
def test_chunks_concatenate_to_the_input_within_bounds(text: str, bounds: tuple[int, int, int]) -> None:
    lo, hi, first = bounds
    chunks = chunk_sentences(text, lo, hi, first)
    assert "".join(chunks) == text
    assert all(chunks)
    for index, chunk in enumerate(chunks[:-1]):
        assert (first if index == 0 else lo) <= len(chunk) <= hi
    if chunks:
        assert len(chunks[-1]) <= hi  # the tail may be short, never long


@given(TEXT, BOUNDS3)
def test_chunks_end_at_the_first_boundary_past_the_minimum(text: str, bounds: tuple[int, int, int]) -> None:
    lo_rest, hi, first = bounds
    chunks = chunk_sentences(text, lo_rest, hi, first)
    start = 0
    for index, chunk in enumerate(chunks[:-1]):
        lo = first if index == 0 else lo_rest
        end = start + len(chunk)
        # No sentence end inside the chunk's eligible range before its own end...
        assert not any(_ends_sentence(text, i) for i in range(start + lo - 1, end - 1))
        if not _ends_sentence(text, end - 1):
            # ...and a chunk not ending a sentence is forced: none came within max_chars.
            assert len(chunk) <= hi
            assert not any(_ends_sentence(text, i) for i in range(start + lo - 1, start + hi))
            # It was cut at a word break when there was one.
            window = text[start + lo : start + hi + 1]
            if any(c.isspace() for c in window):
                assert text[end].isspace()
        start = end


@given(TEXT, BOUNDS3, st.lists(st.integers(0, 800), max_size=12))
def test_any_delta_split_gives_the_same_chunks(
    text: str, bounds: tuple[int, int, int], cuts: list[int]
) -> None:
    lo, hi, first = bounds
    points = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    chunker = SentenceChunker(lo, hi, first)
    got: list[str] = []
    for a, b in itertools.pairwise(points):
        got += chunker.feed(text[a:b])
        assert len(chunker.pending) <= hi  # nothing longer than a chunk is ever held back
    tail = chunker.flush()
    assert ([*got, tail] if tail else got) == chunk_sentences(text, lo, hi, first)


def test_sentences_of_a_reply() -> None:
    reply = (
        "The weather today is sunny with a light breeze from the west. "
        "Expect highs around twenty degrees; lows near ten at night. "
        "Should I remind you to take a jacket? Done!"
    )
    assert [c.strip() for c in chunk_sentences(reply)] == [
        "The weather today is sunny with a light breeze from the west.",
        "Expect highs around twenty degrees; lows near ten at night.",
        "Should I remind you to take a jacket? Done!",
    ]


def test_the_first_clause_of_a_reply_can_be_spoken_early() -> None:
    reply = "From memory: my sister lives in Bergen, near the harbour. She moved there in May."
    assert chunk_sentences(reply, 60, 240, first_min_chars=12) == [
        "From memory:",
        " my sister lives in Bergen, near the harbour. She moved there in May.",
    ]
    assert chunk_sentences(reply, 60, 240) == [reply]  # no boundary past 60 characters before the end


def test_a_decimal_point_is_not_a_boundary_and_a_long_sentence_breaks_at_a_word() -> None:
    assert chunk_sentences("Pi is 3.14159 and e is 2.71828, roughly.", 5, 240) == [
        "Pi is 3.14159 and e is 2.71828, roughly."
    ]
    words = "word " * 100
    chunks = chunk_sentences(words, 60, 240)
    assert "".join(chunks) == words
    assert all(c.endswith("word") for c in chunks[:-1])  # cut before a space, never inside a word
    assert chunk_sentences("x" * 500, 60, 240) == ["x" * 240, "x" * 240, "x" * 20]


@pytest.mark.parametrize(("lo", "hi", "first"), [(0, 10, None), (10, 5, None), (5, 10, 0), (5, 10, 11)])
def test_bad_bounds_are_a_clear_error(lo: int, hi: int, first: int | None) -> None:
    with pytest.raises(ValueError, match="min_chars <= max_chars"):
        chunk_sentences("x", lo, hi, first)
