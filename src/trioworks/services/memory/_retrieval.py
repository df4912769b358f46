"""Answering a ``memory/query`` from a corpus snapshot: the retrieval strategies. Blocking, pure.

- ``similarity``: cosine similarity (dot product of L2-normalised embeddings), top ``top_k``.
- ``hybrid``: cosine top ``2 * top_k`` and BM25 top ``2 * top_k``, fused by Reciprocal Rank
  Fusion (k = 60), top ``top_k``; the score is the RRF score.
- ``recent``: newest first; the score is ``1 / (1 + position in the list)``.

Then, with ``include_context``, each hit brings its ``context_window`` previous and next
documents (``context_type`` previous/next, the hit's score); then ``max_tokens`` cuts the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs
import numpy as np

from ...bus import MemoryQuery, MemoryResult, MemoryResults
from ._bm25 import bm25_rankings, tokenize
from ._corpus import Snapshot
from ._fusion import RRF_K, estimate_tokens, rrf_fuse, top_indices

__all__ = ["Embedder", "dense_top", "search"]


class Embedder(Protocol):
    """What the memory service needs from a sentence-embedding model.

    ``encode`` is called from worker threads, possibly two at once (ingest and a query), and
    must return L2-normalised float32 rows of width ``dim``, one per text, in order.
    """

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def dense_top(embeddings: np.ndarray, query_vec: np.ndarray, limit: int) -> tuple[list[int], list[float]]:
    """Positions and cosine scores of the ``limit`` rows most similar to ``query_vec``, best first.

    Equal scores: the older document (lower position) first.
    """
    if len(embeddings) == 0 or limit <= 0:
        return [], []
    scores = embeddings @ query_vec
    top = top_indices(scores, limit)
    return top.tolist(), scores[top].astype(float).tolist()


def _hits(snapshot: Snapshot, query: MemoryQuery, embedder: Embedder) -> list[tuple[int, float]]:
    top_k = query.top_k
    if query.retrieval_strategy == "recent":
        newest = range(snapshot.n - 1, max(snapshot.n - top_k, 0) - 1, -1)
        return [(p, 1.0 / (1 + rank)) for rank, p in enumerate(newest)]
    if not query.text.strip() or snapshot.n == 0:
        return []  # nothing to be similar to
    query_vec = embedder.encode([query.text])[0]
    if query.retrieval_strategy == "similarity":
        positions, scores = dense_top(snapshot.embeddings, query_vec, top_k)
        return list(zip(positions, scores, strict=True))
    candidates = 2 * top_k
    dense, _ = dense_top(snapshot.embeddings, query_vec, candidates)
    lexical = bm25_rankings(snapshot, tokenize([query.text])[0], candidates)
    return rrf_fuse([dense, *lexical], k=RRF_K, limit=top_k)


def same_text(text: str) -> str:
    """What two documents share when they say the same thing (case, spacing and end
    punctuation aside): the key of deduplication."""
    return " ".join(text.casefold().split()).rstrip(".!?")


def _recalled(
    snapshot: Snapshot, query: MemoryQuery, embedder: Embedder, sources: frozenset[str] | None
) -> list[tuple[int, float]]:
    """The hits of ``query`` from ``sources`` only (None: all), each text once, best first."""
    wide = query if sources is None else attrs.evolve(query, top_k=min(50, 4 * query.top_k))
    seen: set[str] = set()
    kept: list[tuple[int, float]] = []
    for position, score in _hits(snapshot, wide, embedder):
        doc = snapshot.docs[position]
        key = same_text(doc.text)
        if (sources is None or doc.source in sources) and key not in seen:
            seen.add(key)
            kept.append((position, score))
    return kept[: query.top_k]


def _with_context(
    snapshot: Snapshot,
    query: MemoryQuery,
    hits: list[tuple[int, float]],
    sources: frozenset[str] | None = None,
) -> list[MemoryResult]:
    window = query.context_window if query.include_context else 0
    targets = {p for p, _ in hits}
    emitted: set[int] = set()
    out: list[MemoryResult] = []

    def add(position: int, score: float, kind: str) -> None:
        doc = snapshot.docs[position]
        emitted.add(position)
        out.append(
            MemoryResult(
                document=doc.to_wire(),
                score=score,
                timestamp=str(doc.timestamp) if doc.timestamp is not None else None,
                context_type=kind,  # type: ignore[arg-type]  # one of the three literals
                token_count=estimate_tokens(doc.text),
            )
        )

    for position, score in hits:
        add(position, score, "target")
        # A neighbour that is itself a hit appears once, as a target; one already shown as
        # another hit's context is not repeated.
        for kind, neighbours in (
            ("previous", range(max(position - window, 0), position)),
            ("next", range(position + 1, min(position + window, snapshot.n - 1) + 1)),
        ):
            for p in neighbours:
                recalled = sources is None or snapshot.docs[p].source in sources
                if p not in targets and p not in emitted and recalled:
                    add(p, score, kind)
    return out


def _truncate(results: list[MemoryResult], max_tokens: int | None) -> tuple[list[MemoryResult], bool]:
    if max_tokens is None:
        return results, False
    kept: list[MemoryResult] = []
    used = 0
    for result in results:
        if used + (result.token_count or 0) > max_tokens:
            return kept, True
        kept.append(result)
        used += result.token_count or 0
    return kept, False


def search(
    snapshot: Snapshot, query: MemoryQuery, embedder: Embedder, sources: frozenset[str] | None = None
) -> MemoryResults:
    """Answer ``query`` over ``snapshot``: documents from ``sources`` (None: all), the same text
    once. Blocking (embeds the query text): run it in a thread."""
    hits = _recalled(snapshot, query, embedder, sources)
    results, truncated = _truncate(_with_context(snapshot, query, hits, sources), query.max_tokens)
    return MemoryResults(
        query=query.text,
        k=query.top_k,
        results=tuple(results),
        total_tokens=sum(r.token_count or 0 for r in results),
        strategy_used=query.retrieval_strategy,
        truncated=truncated,
    )
