"""Reciprocal Rank Fusion against a brute-force reference, and the token estimate."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioworks.services.memory import RRF_K, estimate_tokens, rrf_fuse, top_indices


def reference_rrf(rankings: list[list[int]], k: int, limit: int | None) -> list[tuple[int, Fraction]]:
    """RRF the slow, obvious way: per item, look its rank up in every list; order by pairwise wins."""
    items = {item for ranking in rankings for item in ranking}
    score = {
        item: sum((Fraction(1, k + r.index(item) + 1) for r in rankings if item in r), Fraction(0))
        for item in items
    }
    first = {item: min((li, r.index(item)) for li, r in enumerate(rankings) if item in r) for item in items}

    def beats(a: int, b: int) -> bool:
        return score[a] > score[b] or (score[a] == score[b] and first[a] < first[b])

    place = {a: sum(beats(b, a) for b in items) for a in items}  # how many items beat a
    ordered = sorted(items, key=place.__getitem__)
    assert [place[a] for a in ordered] == list(range(len(items)))  # a strict total order
    return [(a, score[a]) for a in ordered][: limit if limit is not None else None]


rankings_strategy = st.lists(st.lists(st.integers(0, 30), max_size=25), max_size=4)


@given(
    rankings=rankings_strategy, k=st.sampled_from([0, 1, 60]), limit=st.one_of(st.none(), st.integers(0, 40))
)
def test_rrf_matches_the_brute_force_reference(rankings: list[list[int]], k: int, limit: int | None) -> None:
    got = rrf_fuse(rankings, k=k, limit=limit)
    want = reference_rrf(rankings, k, limit)
    assert [item for item, _ in got] == [item for item, _ in want]
    for (_, score), (_, exact) in zip(got, want, strict=True):
        assert score == float(exact)


@given(st.permutations(list(range(12))), st.permutations(list(range(12))))
def test_an_item_ranked_first_in_every_list_wins(a: list[int], b: list[int]) -> None:
    b = [a[0]] + [x for x in b if x != a[0]]
    [(top, score), *_] = rrf_fuse([a, b])
    assert top == a[0]
    assert score == pytest.approx(2 / (RRF_K + 1))


def test_rrf_scores_are_the_spec_formula() -> None:
    fused = dict(rrf_fuse([["a", "b", "c"], ["c", "a"]]))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)


def test_duplicates_in_one_list_count_once_at_the_better_rank() -> None:
    assert rrf_fuse([["x", "y", "x"]]) == [("x", 1 / 61), ("y", 1 / 62)]


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="k must be >= 0"):
        rrf_fuse([[1]], k=-1)
    with pytest.raises(ValueError, match="limit must be >= 0"):
        rrf_fuse([[1]], limit=-1)


@pytest.mark.parametrize(
    ("text", "tokens"), [("", 1), ("hi", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100)]
)
def test_token_estimate_is_a_quarter_of_the_characters_rounded_up(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


@given(st.lists(st.integers(-3, 3), max_size=40), st.integers(0, 45))
def test_top_indices_is_a_stable_sort_cut_at_limit(values: list[int], limit: int) -> None:
    scores = np.array(values, np.float32)
    want = sorted(range(len(values)), key=lambda i: (-values[i], i))[:limit]
    assert top_indices(scores, limit).tolist() == want
