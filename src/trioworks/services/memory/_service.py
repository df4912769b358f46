"""The memory service: ingest ``stt/final`` and ``tts/say``, answer ``memory/query``."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence

import numpy as np
import trio

from ...bus import (
    Bus,
    EnvelopeError,
    FinalTranscript,
    MemoryQuery,
    MemoryResults,
    Message,
    Overflow,
    RawMessage,
    Route,
    Service,
    Task,
    TtsSay,
    salvage,
)
from ...core import RestartPolicy, run_in_thread
from ._bm25 import Bm25Indexer, tokenize
from ._config import MemoryConfig
from ._corpus import Corpus, Document
from ._retrieval import Embedder, same_text, search
from ._store import MemoryStore, NewDocument

__all__ = ["MemoryService"]

logger = logging.getLogger("trioworks.services.memory")


def _prepare(embedder: Embedder, texts: list[str]) -> tuple[np.ndarray, list[list[str]]]:
    return embedder.encode(texts), tokenize(texts)


def _open_store(
    path: str, model: str, dim: int
) -> tuple[MemoryStore, list[Document], np.ndarray, list[list[str]]]:
    store = MemoryStore(path, model=model, dim=dim)
    try:
        docs, embeddings = store.load()
        return store, docs, embeddings, tokenize([d.text for d in docs])
    except BaseException:
        store.close()
        raise


def _load_minilm() -> Embedder:
    from ._minilm import MiniLM  # numpy + weights: only loaded when no embedder is injected

    return MiniLM()


class MemoryService(Service):
    """The memory service of the voice stack (py-tars' ``memory-worker``, "HyperDB").

    Remembers every ``stt/final`` (source ``stt``) and ``tts/say`` (source ``tts``; wake
    acknowledgements and system announcements are skipped) as a document in SQLite at
    ``config.db_path``, and answers ``memory/query`` on ``memory/results`` with the query's envelope id
    as correlation id (strategies in :mod:`._retrieval`).

    Limiters (each a :class:`trio.CapacityLimiter` of 1, so two cores are never oversubscribed
    and a query never waits behind ingest work):

    - ``model_limiter``: loading the model, embedding ingested batches;
    - ``query_limiter``: embedding a query and searching;
    - ``db_limiter``: every SQLite call (the one connection is used by one thread at a time);
    - ``index_limiter``: BM25 rebuilds.

    Queues: ``stt/final`` and ``tts/say`` feed one bounded ingest channel (``config.ingest_queue``)
    drained by one ingest task in batches of up to ``config.ingest_batch``; their bus routes drop the
    newest message when full (counted in ``bus.sub.<topic>.dropped``), so ingest overload can
    never hold up ``memory/query``. The query route drops its *oldest* queued query when full
    (an old query is the likeliest to be past its deadline).

    Bad queries (``top_k`` 0, an unknown strategy, ...) are rejected by the bus's codec: logged
    and counted in ``bus.sub.memory/query.malformed``, then answered at once on
    ``memory/results`` with empty results, ``k`` 0 and ``error`` naming each bad field
    (``"... $.data.top_k: must be >= 1, got 0"``), under the query's envelope id when it can be
    read (``memory.query.rejected``); one without a readable id is only logged
    (``memory.query.unanswerable``).

    Lifecycle: :class:`~trioworks.bus.Service`'s, with the tasks ``memory-indexer`` and
    ``memory-ingest``. ``run`` is serving once the stored documents are loaded and indexed.

    Resource handling:
        On cancellation, documents already queued for ingest (and a batch being embedded) are
        still embedded and stored, shielded, for at most ``config.drain_timeout`` seconds;
        whatever is left is logged and counted in ``memory.ingest.lost``. A batch being written
        to SQLite is always finished (the write is shielded: it takes milliseconds). The
        database is closed last, after the bus has disconnected.

    Error handling:
        A handler, the ingest task or the indexer that fails is logged and restarted under
        ``restart``; past that, the health says ``crashed`` and :exc:`ServiceFailed` is raised
        (so :func:`trioworks.bus.run_service` exits 1). Errors opening the store
        (:exc:`MemoryStoreError`) propagate from ``run`` as they are, before anything is served.
    """

    def __init__(
        self,
        bus: Bus,
        config: MemoryConfig | str | os.PathLike[str],
        *,
        embedder: Embedder | None = None,
        restart: RestartPolicy = RestartPolicy(),
        **legacy: float,
    ) -> None:
        """``embedder`` replaces MiniLM (tests, other models); None loads ``MiniLM()`` in ``run``.

        ``MemoryService(bus, db_path, ingest_batch=..., ...)`` (a path and the settings as
        keywords) is deprecated: it warns and builds the :class:`MemoryConfig` from them.
        """
        if not isinstance(config, MemoryConfig):
            warnings.warn(
                "MemoryService(bus, db_path, **settings) is deprecated; "
                "pass MemoryService(bus, MemoryConfig(db_path=..., ...))",
                DeprecationWarning,
                stacklevel=2,
            )
            config = MemoryConfig(db_path=config, **legacy)  # type: ignore[arg-type]
        elif legacy:
            raise TypeError(
                f"MemoryService: unexpected keyword argument(s) {sorted(legacy)}; set them on MemoryConfig"
            )
        self.config = config
        self.db_path = str(config.db_path)
        self.metrics = bus.metrics
        self.model_limiter = trio.CapacityLimiter(1)
        self.query_limiter = trio.CapacityLimiter(1)
        self.db_limiter = trio.CapacityLimiter(1)
        self.index_limiter = trio.CapacityLimiter(1)
        self._embedder = embedder
        self._store: MemoryStore | None = None
        self._corpus: Corpus | None = None
        self._indexer: Bm25Indexer | None = None
        self._grown = trio.Event()  # set (and replaced) whenever documents are added
        self._known: set[tuple[str, str]] = set()  # (source, same_text) of every stored document
        self._append_lock = trio.Lock()  # keeps db order == corpus order across concurrent batches
        self._ingest_send, self._ingest_recv = trio.open_memory_channel[NewDocument](config.ingest_queue)
        super().__init__(
            bus,
            [
                # dedupe: a QoS 1 redelivery must not store a document twice.
                Route(
                    "stt/final", self._on_transcript, capacity=256, overflow=Overflow.DROP_NEWEST, dedupe=True
                ),
                Route("tts/say", self._on_say, capacity=256, overflow=Overflow.DROP_NEWEST, dedupe=True),
                Route(
                    "memory/query",
                    self._on_query,
                    capacity=32,
                    overflow=Overflow.DROP_OLDEST,
                    concurrency=2,
                    on_malformed=self._on_bad_query,
                    dedupe=True,
                ),
            ],
            tasks=[Task("memory-indexer", self._run_indexer), Task("memory-ingest", self._ingest_loop)],
            restart=restart,
        )

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            raise RuntimeError("the memory service has not loaded its model yet (start run() first)")
        return self._embedder

    @property
    def indexer(self) -> Bm25Indexer:
        if self._indexer is None:
            raise RuntimeError("the memory service is not running")
        return self._indexer

    def __len__(self) -> int:
        """How many documents are remembered (0 before start-up)."""
        return len(self._corpus) if self._corpus is not None else 0

    # --- lifecycle ------------------------------------------------------------------------

    async def setup(self) -> None:
        """Load the model and the store, index the stored documents (called by ``run``)."""
        if self._embedder is None:
            self._embedder = await run_in_thread(_load_minilm, limiter=self.model_limiter)
        embedder = self._embedder
        store, docs, embeddings, tokens = await run_in_thread(
            _open_store, self.db_path, embedder.name, embedder.dim, limiter=self.db_limiter
        )
        self._store = store
        self.add_cleanup(self._close_store, name="memory store", timeout=5)
        corpus = Corpus(embedder.dim, capacity=max(1024, 2 * len(docs)))
        corpus.append(docs, embeddings, tokens)
        self._corpus = corpus
        self._known = {(doc.source, same_text(doc.text)) for doc in docs}
        self._indexer = Bm25Indexer(
            corpus.texts_prefix,
            lambda: len(corpus),
            limiter=self.index_limiter,
            metrics=self.metrics,
            interval=self.config.rebuild_interval,
        )
        await self._indexer.rebuild_now()
        self.metrics.gauge("memory.documents").set(len(corpus))
        logger.info("memory: %d documents loaded from %s", len(corpus), self.db_path)

    async def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await run_in_thread(store.close, limiter=self.db_limiter)

    async def _run_indexer(self) -> None:
        await self.indexer.run()

    # --- ingest ---------------------------------------------------------------------------

    async def add(self, docs: Sequence[NewDocument]) -> list[Document]:
        """Embed, store and index ``docs`` now (bypassing the ingest queue); return them stored.

        Cancellation: cancelled while embedding, nothing is stored; once the SQLite write has
        begun it is finished and the documents are added (the write is shielded).
        """
        store, corpus = self._store, self._corpus
        if store is None or corpus is None:
            raise RuntimeError("the memory service is not running")
        fresh: dict[tuple[str, str], NewDocument] = {}
        for doc in docs:  # who said what, once: the same text from the same source is not stored again
            key = (doc.source, same_text(doc.text))
            if key in self._known or key in fresh:
                self.metrics.counter("memory.ingest.duplicates").inc()
            else:
                fresh[key] = doc
        docs = list(fresh.values())
        if not docs:
            await trio.lowlevel.checkpoint()
            return []
        embeddings, tokens = await run_in_thread(
            _prepare,
            self.embedder,
            [d.text for d in docs],
            limiter=self.model_limiter,
            abandon_on_cancel=True,
        )
        async with self._append_lock:
            with trio.CancelScope(shield=True):
                stored = await run_in_thread(store.append, docs, embeddings, limiter=self.db_limiter)
            corpus.append(stored, embeddings, tokens)
            self._known.update(fresh)
        self.indexer.request_rebuild()
        self._grown.set()
        self._grown = trio.Event()
        self.metrics.counter("memory.ingest.documents").inc(len(stored))
        self.metrics.gauge("memory.documents").set(len(corpus))
        return stored

    async def wait_documents(self, n: int) -> None:
        """Return once at least ``n`` documents are remembered (stored and searchable)."""
        while len(self) < n:
            await self._grown.wait()

    async def _ingest_loop(self) -> None:
        batch: list[NewDocument] = []
        try:
            while True:
                batch = [await self._ingest_recv.receive()]
                while len(batch) < self.config.ingest_batch:
                    try:
                        batch.append(self._ingest_recv.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self.add(batch)
                self.metrics.counter("memory.ingest.batches").inc()
                batch = []
        except trio.Cancelled:
            await self._drain(batch)
            raise

    async def _drain(self, batch: list[NewDocument]) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(self.config.drain_timeout):
            while True:
                try:
                    batch.append(self._ingest_recv.receive_nowait())
                except trio.WouldBlock:
                    break
            if batch:
                await self.add(batch)
                batch = []
        if batch:
            self.metrics.counter("memory.ingest.lost").inc(len(batch))
            logger.warning("memory: %d queued documents not stored at shutdown", len(batch))

    async def _enqueue(self, text: str, timestamp: float, source: str, utt_id: str | None) -> None:
        if not text.strip():
            self.metrics.counter("memory.ingest.skipped").inc()
            return
        await self._ingest_send.send(
            NewDocument(text=text, timestamp=timestamp, source=source, utt_id=utt_id)
        )

    async def _on_transcript(self, message: Message) -> None:
        data: FinalTranscript = message.data
        if not data.is_final:
            self.metrics.counter("memory.ingest.skipped").inc()
            return
        timestamp = data.ts if data.ts is not None else message.envelope.ts
        await self._enqueue(data.text, timestamp, "stt", data.utt_id)

    async def _on_say(self, message: Message) -> None:
        data: TtsSay = message.data
        if data.wake_ack or data.system_announce:
            # "Yes?" and "I'm online" are not conversation.
            self.metrics.counter("memory.ingest.skipped").inc()
            return
        await self._enqueue(data.text, message.envelope.ts, "tts", data.utt_id)

    # --- queries --------------------------------------------------------------------------

    async def query(self, query: MemoryQuery) -> MemoryResults:
        """Answer ``query`` over everything stored so far. Runs in a thread (query limiter).

        Cancellation: a checkpoint; a search in flight is abandoned (it is read-only).
        """
        corpus = self._corpus
        if corpus is None:
            raise RuntimeError("the memory service is not running")
        snapshot = corpus.snapshot(self.indexer.current)
        if snapshot.bm25.n < snapshot.n:
            self.metrics.counter("memory.query.with_tail").inc()
        recall = self.config.recall
        sources = frozenset(recall) if recall is not None else None
        return await run_in_thread(
            search,
            snapshot,
            query,
            self.embedder,
            sources,
            limiter=self.query_limiter,
            abandon_on_cancel=True,
        )

    async def _on_query(self, message: Message) -> None:
        with trio.move_on_after(self.config.query_deadline) as deadline:
            results = await self.query(message.data)
            await self.bus.reply(message, "memory/results", results)
            self.metrics.counter("memory.query.answered").inc()
        if deadline.cancelled_caught:
            self.metrics.counter("memory.query.timed_out").inc()
            logger.warning(
                "memory: query %s not answered within %s s; dropped",
                message.envelope.id,
                self.config.query_deadline,
            )

    async def _on_bad_query(self, raw: RawMessage, error: EnvelopeError) -> None:
        found = salvage(raw.payload)
        if found.id is None:
            self.metrics.counter("memory.query.unanswerable").inc()
            logger.warning("memory: a malformed query without a readable id cannot be answered: %s", error)
            return
        results = MemoryResults(query=found.text("text") or "", k=0, error=str(error))
        with trio.move_on_after(self.config.query_deadline) as deadline:
            await self.bus.publish("memory/results", results, id=found.id)
            self.metrics.counter("memory.query.rejected").inc()
        if deadline.cancelled_caught:
            self.metrics.counter("memory.query.timed_out").inc()
            logger.warning("memory: the error reply to query %s could not be sent in time", found.id)
