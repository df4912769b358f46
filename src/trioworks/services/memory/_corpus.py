"""The in-memory corpus: documents, their embeddings and BM25 tokens, append-only.

The corpus is owned by the Trio loop: only the service's ingest task appends to it, and only on
the loop. Worker threads read it through :class:`Snapshot` objects: a snapshot is a length ``n``
plus references to the append-only lists and to the embedding rows ``[0, n)``. Rows below ``n``
never change after they are published, and a growing embedding buffer is replaced rather than
resized in place, so a snapshot stays valid while the corpus keeps growing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

__all__ = ["Corpus", "Document", "Snapshot"]


@attrs.frozen
class Document:
    """One remembered utterance: what the user said (``stt``) or the assistant said (``tts``)."""

    id: int
    """The store's row id (increasing in ingest order)."""
    text: str
    timestamp: float
    source: str
    utt_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The ``document`` object of a ``memory/results`` entry."""
        return {
            "id": self.id,
            "text": self.text,
            "timestamp": self.timestamp,
            "source": self.source,
            "utt_id": self.utt_id,
        }


@attrs.frozen
class Snapshot:
    """A consistent, read-only view of the first ``n`` documents, safe to use from a thread.

    ``bm25`` is the newest BM25 index; it covers the first ``bm25.n`` documents (``<= n``); the
    rest (the *tail*) were added since it was built.
    """

    n: int
    docs: Sequence[Document]
    tokens: Sequence[list[str]]
    embeddings: np.ndarray
    bm25: Any  # an IndexedPrefix (see _bm25); typed loosely to keep this module free of bm25s


class Corpus:
    """Append-only documents + embeddings + tokens. Mutated only on the Trio loop."""

    def __init__(self, dim: int, *, capacity: int = 1024) -> None:
        self.dim = dim
        self._docs: list[Document] = []
        self._tokens: list[list[str]] = []
        self._emb = np.zeros((max(capacity, 1), dim), np.float32)

    def __len__(self) -> int:
        return len(self._docs)

    def append(self, docs: Sequence[Document], embeddings: np.ndarray, tokens: Sequence[list[str]]) -> None:
        """Add documents (ids increasing) with their embeddings and tokens. Not a checkpoint."""
        if embeddings.shape != (len(docs), self.dim) or len(tokens) != len(docs):
            raise ValueError(
                f"corpus append: {len(docs)} documents need embeddings of shape "
                f"({len(docs)}, {self.dim}) and {len(docs)} token lists; got {embeddings.shape} "
                f"and {len(tokens)}"
            )
        if docs and self._docs and docs[0].id <= self._docs[-1].id:
            raise ValueError(f"corpus append: id {docs[0].id} is not after {self._docs[-1].id}")
        n = len(self._docs)
        needed = n + len(docs)
        if needed > len(self._emb):
            # Replace, never resize in place: snapshots in threads keep the old buffer alive.
            grown = np.zeros((max(needed, 2 * len(self._emb)), self.dim), np.float32)
            grown[:n] = self._emb[:n]
            self._emb = grown
        self._emb[n:needed] = embeddings
        # Embeddings first, documents last: a document is visible only once its row is written.
        self._tokens.extend(tokens)
        self._docs.extend(docs)

    def texts_prefix(self, n: int) -> list[str]:
        """The texts of the first ``n`` documents."""
        return [doc.text for doc in self._docs[:n]]

    def snapshot(self, bm25: Any) -> Snapshot:
        n = len(self._docs)
        return Snapshot(n=n, docs=self._docs, tokens=self._tokens, embeddings=self._emb[:n], bm25=bm25)
