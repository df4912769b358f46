"""Ranking helpers: top-n selection, Reciprocal Rank Fusion, the token estimate. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from fractions import Fraction
from typing import TypeVar

import numpy as np

__all__ = ["RRF_K", "estimate_tokens", "rrf_fuse", "top_indices"]

K = TypeVar("K", bound=Hashable)

RRF_K = 60
"""The spec's (and the original's) RRF constant: score = sum of 1 / (60 + rank)."""


def top_indices(scores: np.ndarray, limit: int) -> np.ndarray:
    """Indexes of the ``limit`` highest ``scores``, best first; equal scores: lower index first.

    Deterministic at the cut too (a plain ``argpartition`` picks an arbitrary subset of the
    scores tied at the boundary). O(n) selection plus a sort of the ``limit`` winners.
    """
    n = len(scores)
    if limit <= 0 or n == 0:
        return np.zeros(0, np.int64)
    if limit < n:
        cut = np.partition(scores, n - limit)[n - limit]  # the limit-th highest score
        above = np.flatnonzero(scores > cut)
        tied = np.flatnonzero(scores == cut)[: limit - len(above)]
        chosen = np.concatenate([above, tied])
    else:
        chosen = np.arange(n)
    return chosen[np.lexsort((chosen, -scores[chosen]))]


def rrf_fuse(
    rankings: Iterable[Sequence[K]], *, k: int = RRF_K, limit: int | None = None
) -> list[tuple[K, float]]:
    """Fuse ranked lists by Reciprocal Rank Fusion.

    Each ranking lists items best first; rank is 1-based, so an item's score is the sum over
    the rankings it appears in of ``1 / (k + rank)``. An item listed twice in one ranking counts
    once, at its better rank. Returns ``(item, score)`` pairs, best first, at most ``limit``.

    Scores are summed exactly (as fractions), so two items tie only when their scores are truly
    equal; ties go to the item that appeared first (scanning the rankings in order, each from
    its top). The returned scores are those sums rounded to float.
    """
    if k < 0:
        raise ValueError(f"rrf_fuse: k must be >= 0, got {k}")
    if limit is not None and limit < 0:
        raise ValueError(f"rrf_fuse: limit must be >= 0, got {limit}")
    scores: dict[K, Fraction] = {}
    first_seen: dict[K, int] = {}
    for ranking in rankings:
        seen_here: set[K] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen_here:
                continue
            seen_here.add(item)
            first_seen.setdefault(item, len(first_seen))
            scores[item] = scores.get(item, Fraction(0)) + Fraction(1, k + rank)
    ordered = sorted(scores, key=lambda item: (-scores[item], first_seen[item]))
    if limit is not None:
        ordered = ordered[:limit]
    return [(item, float(scores[item])) for item in ordered]


def estimate_tokens(text: str) -> int:
    """A model-agnostic token estimate: one token per 4 characters, at least 1.

    Used for ``max_tokens`` budgets in ``memory/results``; it over-counts short English words
    slightly, which errs on the side of not overflowing a prompt.
    """
    return max(1, (len(text) + 3) // 4)
