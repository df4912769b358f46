"""BM25 over the corpus with bm25s, kept current without ever blocking the loop.

bm25s has no incremental add: its index is a matrix of precomputed per-(term, document) scores
that depend on corpus-wide statistics (document frequencies, average length), so adding one
document means re-indexing all of them (about 0.5 s at 10,000 utterances here). The scheme:

- **Ingest is immediate.** A new document is tokenised in the ingest thread and appended to the
  corpus (and SQLite) at once; the :class:`Bm25Indexer` is then asked for a rebuild.
- **Rebuilds are coalesced, and run in a worker process.** One indexer task rebuilds, at most one
  rebuild in flight and at most one per ``interval`` seconds; every request that arrives
  meanwhile is folded into one next rebuild over everything ingested by the time it starts.
  bm25s indexing is pure-Python-heavy: in a thread it would hold the GIL for most of its 0.2-0.7 s
  and its garbage makes the collector walk the heap, stalling the Trio loop by 20-100 ms (measured
  at 10,000 documents). So the worker process (:func:`trioworks.core.run_in_process`) gets the
  texts as one string, builds and saves the index with bm25s's own ``save`` (numpy files, no
  pickle) and the service loads it with ``BM25.load`` in a thread: a few milliseconds.
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
import shutil
import tempfile
from collections.abc import Callable, Sequence

import attrs
import bm25s
import numpy as np
import trio

from ...core import Metrics, run_in_process, run_in_thread
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


_SEPARATOR = "\x1e"  # ASCII record separator: never part of a bm25s token (tokens are \w runs)


def _prepare(texts: list[str]) -> tuple[str, str]:
    """The texts as one string, and a fresh directory for the worker to save the index in."""
    # One string pickles to the worker ~20x faster than a list of 10,000 (the pickling happens
    # on the Trio loop). A separator inside a text becomes a space, which tokenises the same.
    joined = _SEPARATOR.join(t.replace(_SEPARATOR, " ") for t in texts)
    return joined, tempfile.mkdtemp(prefix="trioworks-bm25-")


def _build_and_save(joined: str, n: int, directory: str) -> bool:
    """In a worker process: index the ``n`` texts in ``joined`` and save the index to
    ``directory``; False if there was not a single token (nothing saved)."""
    texts = joined.split(_SEPARATOR) if n else []
    if len(texts) != n:
        raise ValueError(f"bm25 worker: expected {n} texts, got {len(texts)}")
    index = build_index(tokenize(texts))
    if index.retriever is None:
        return False
    index.retriever.save(directory, show_progress=False)
    return True


def _load(directory: str, n: int, saved: bool) -> IndexedPrefix:
    try:
        if not saved:
            return IndexedPrefix(n, None)
        retriever = bm25s.BM25.load(directory, mmap=False, show_progress=False, verbosity=0)
        return IndexedPrefix(n, retriever)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class Bm25Indexer:
    """Keeps :attr:`current` (an :class:`IndexedPrefix`) catching up with the corpus.

    Call :meth:`request_rebuild` after appending documents. :meth:`run` serves the requests:
    at most one rebuild at a time and at most one per ``interval`` seconds, each covering every
    document appended when it starts. The build runs in a worker process on ``limiter``; the
    join and the load run in threads on the same limiter.
    """

    def __init__(
        self,
        texts_prefix: Callable[[int], list[str]],
        corpus_size: Callable[[], int],
        *,
        limiter: trio.CapacityLimiter,
        metrics: Metrics,
        interval: float = 1.0,
    ) -> None:
        self._texts_prefix = texts_prefix
        self._corpus_size = corpus_size
        self._limiter = limiter
        self.interval = interval
        self._wanted = trio.Event()
        self._changed = trio.Event()
        self._rebuilds = metrics.counter("memory.bm25.rebuilds")
        self._indexed = metrics.gauge("memory.bm25.indexed")
        self.current = IndexedPrefix(0, None)

    def request_rebuild(self) -> None:
        """Ask for a rebuild covering every document appended so far. Not a checkpoint."""
        self._wanted.set()

    async def rebuild_now(self) -> None:
        """Rebuild over everything appended so far, now (start-up; benchmarks).

        Cancellation: a checkpoint; a build in its worker process is killed, nothing changes.
        """
        n = self._corpus_size()
        joined, directory = await run_in_thread(_prepare, self._texts_prefix(n), limiter=self._limiter)
        try:
            saved = await run_in_process(_build_and_save, joined, n, directory, limiter=self._limiter)
            index = await run_in_thread(_load, directory, n, saved, limiter=self._limiter)
        except BaseException:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await run_in_thread(shutil.rmtree, directory, True, limiter=self._limiter)
            raise
        self._publish(index)
        logger.debug("bm25 index rebuilt over %d documents", n)

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
        """Serve rebuild requests until cancelled (a rebuild in flight is then killed: it is
        pure, nothing is lost)."""
        task_status.started()
        while True:
            await self._wanted.wait()
            self._wanted = trio.Event()  # requests from now on ask for the *next* rebuild
            if self._corpus_size() > self.current.n:
                await self.rebuild_now()
                await trio.sleep(self.interval)
