"""BM25 over the corpus with bm25s, kept current without ever blocking the loop.

bm25s has no incremental add: its index is a matrix of precomputed per-(term, document) scores
that depend on corpus-wide statistics (document frequencies, average length), so adding one
document means re-indexing all of them (about 0.5 s at 10,000 utterances here). The scheme:

- **Ingest is immediate.** A new document is tokenised in the ingest thread and appended to the
  corpus (and SQLite) at once; the :class:`Bm25Indexer` is then asked for a rebuild.
- **Rebuilds are coalesced.** One indexer task rebuilds in a thread on its own limiter, at most
  one rebuild in flight; every request that arrives meanwhile is folded into one next rebuild
  over everything ingested by the time it starts.
- **Queries are complete.** A query scores the indexed prefix with the newest index, and the
  *tail* (documents added since that index was built; usually zero to a few) with a throwaway
  bm25s index over the tail alone, built in the query's thread (well under a millisecond for a
  few documents). The two BM25 rankings enter Reciprocal Rank Fusion as two lists, because their
  scores come from different corpus statistics and must not be compared with each other; RRF
  only uses ranks. Once the next rebuild lands (typically within one rebuild time) the tail is
  empty and the query is exactly "cosine top 2k + BM25 top 2k" over the whole corpus.

The trade-off, written down: for the short time a document sits in the tail, its BM25 rank is
its rank among the other tail documents, not among all documents. Nothing is ever missing from
a query's results, and no query waits for a rebuild.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import attrs
import bm25s
import numpy as np
import trio

from ...core import Metrics, run_in_thread
from ._corpus import Snapshot
from ._fusion import top_indices

__all__ = ["Bm25Indexer", "IndexedPrefix", "bm25_rankings", "build_index", "tokenize"]

logger = logging.getLogger("trioworks.services.memory")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """bm25s's tokenizer (lowercase, words of 2+ characters, English stopwords removed). Blocking."""
    if not texts:
        return []
    tokens = bm25s.tokenize(list(texts), stopwords="en", show_progress=False, return_ids=False)
    return [list(t) for t in tokens]


@attrs.frozen
class IndexedPrefix:
    """A bm25s index over the corpus's first ``n`` documents (``retriever`` is None when no
    document among them has a single token, e.g. an empty corpus)."""

    n: int
    retriever: bm25s.BM25 | None = None


def build_index(tokens: Sequence[list[str]]) -> IndexedPrefix:
    """Index ``tokens`` (one list per document) with bm25s (Lucene BM25, k1=1.5, b=0.75). Blocking."""
    if not any(tokens):
        return IndexedPrefix(len(tokens), None)
    retriever = bm25s.BM25()
    retriever.index(list(tokens), show_progress=False)
    return IndexedPrefix(len(tokens), retriever)


def _top_positive(index: IndexedPrefix, query_tokens: list[str], limit: int) -> list[int]:
    """Positions of the ``limit`` best-scoring documents that match at least one query term."""
    if index.retriever is None or limit <= 0:
        return []
    ids = index.retriever.get_tokens_ids(query_tokens)
    if not ids:
        return []
    scores = index.retriever.get_scores_from_ids(ids)
    hits = np.flatnonzero(scores > 0)  # increasing, so ties keep going to the older document
    return hits[top_indices(scores[hits], limit)].tolist()


def bm25_rankings(snapshot: Snapshot, query_tokens: list[str], limit: int) -> list[list[int]]:
    """The BM25 rankings (corpus positions, best first, at most ``limit`` each) for a query.

    One ranking for the indexed prefix and, if the snapshot has a tail, one for the tail (see
    the module docstring). Documents that match no query term are not ranked. Blocking.
    """
    indexed: IndexedPrefix = snapshot.bm25
    rankings = [_top_positive(indexed, query_tokens, limit)]
    if indexed.n < snapshot.n:
        tail = build_index(snapshot.tokens[indexed.n : snapshot.n])
        rankings.append([indexed.n + p for p in _top_positive(tail, query_tokens, limit)])
    return rankings


class Bm25Indexer:
    """Keeps :attr:`current` (an :class:`IndexedPrefix`) catching up with the corpus.

    Call :meth:`request_rebuild` after appending documents. :meth:`run` rebuilds in a thread
    under ``limiter``, at most one rebuild at a time, coalescing requests.
    """

    def __init__(
        self,
        tokens_prefix: Callable[[int], list[list[str]]],
        corpus_size: Callable[[], int],
        *,
        limiter: trio.CapacityLimiter,
        metrics: Metrics,
    ) -> None:
        self._tokens_prefix = tokens_prefix
        self._corpus_size = corpus_size
        self._limiter = limiter
        self._wanted = trio.Event()
        self._changed = trio.Event()
        self._rebuilds = metrics.counter("memory.bm25.rebuilds")
        self._indexed = metrics.gauge("memory.bm25.indexed")
        self.current = IndexedPrefix(0, None)

    def request_rebuild(self) -> None:
        """Ask for a rebuild covering every document appended so far. Not a checkpoint."""
        self._wanted.set()

    async def rebuild_now(self) -> None:
        """Rebuild once, now, in a thread (used at start-up, before the indexer task runs)."""
        n = self._corpus_size()
        self._publish(await run_in_thread(build_index, self._tokens_prefix(n), limiter=self._limiter))

    def _publish(self, index: IndexedPrefix) -> None:
        if index.n >= self.current.n:
            self.current = index
            self._indexed.set(index.n)
            self._rebuilds.inc()
            self._changed.set()
            self._changed = trio.Event()

    async def wait_indexed(self, n: int) -> None:
        """Return once the current index covers at least ``n`` documents."""
        while self.current.n < n:
            await self._changed.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve rebuild requests until cancelled.

        Cancellation: a rebuild in flight is abandoned (its thread finishes in the background,
        still holding the limiter slot, and its result is discarded); indexing is pure, so
        nothing is lost.
        """
        task_status.started()
        while True:
            await self._wanted.wait()
            self._wanted = trio.Event()  # requests from now on ask for the *next* rebuild
            n = self._corpus_size()
            if n <= self.current.n:
                continue
            index = await run_in_thread(
                build_index, self._tokens_prefix(n), limiter=self._limiter, abandon_on_cancel=True
            )
            self._publish(index)
            logger.debug("bm25 index rebuilt over %d documents", n)
