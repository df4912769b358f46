"""SQLite persistence of the memory: one row per document, appended, never rewritten.

The original pickled the whole store after every utterance (loading a pickle executes code, and
the cost grew with the store). Here each ingest batch is one small transaction of INSERTs; the
embedding is stored as raw little-endian float32 bytes; the model name and dimension are kept
in a ``meta`` table so that vectors from another model are refused, not silently mixed.

Every method blocks: call them through :func:`trioworks.core.run_in_thread` on the service's db
limiter (capacity 1, which also serialises use of the one connection).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np

from ._corpus import Document

__all__ = ["MemoryStore", "MemoryStoreError", "NewDocument", "forget_documents", "read_documents"]

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    timestamp REAL NOT NULL,
    source TEXT NOT NULL,
    utt_id TEXT,
    embedding BLOB NOT NULL
);
"""


class MemoryStoreError(Exception):
    """The memory database at ``path`` cannot be used as it is; ``problem`` says why."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem

    def __str__(self) -> str:
        return f"memory store {self.path}: {self.problem}"


@attrs.frozen
class NewDocument:
    """A document not stored yet (it gets its id from the store)."""

    text: str
    timestamp: float
    source: str
    utt_id: str | None = None


class MemoryStore:
    """One SQLite file (or ``":memory:"``) holding the documents of one embedding model."""

    def __init__(self, path: str | Path, *, model: str, dim: int) -> None:
        """Open (creating if needed) the store. Raises :exc:`MemoryStoreError` if it was written
        for another model or dimension, or is not a memory store."""
        self.path = str(path)
        self.dim = dim
        # check_same_thread=False: every call comes from some Trio worker thread, one at a time
        # (the db limiter), never two at once.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes; WAL-safe
            self._db.executescript(_SCHEMA)
            self._check_meta(model, dim)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise MemoryStoreError(self.path, f"not a usable SQLite memory store ({exc})") from exc
        except BaseException:
            self._db.close()
            raise

    def _check_meta(self, model: str, dim: int) -> None:
        expected = {"schema": SCHEMA_VERSION, "model": model, "dim": str(dim)}
        found = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not found:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", expected.items())
            return
        for key, value in expected.items():
            if found.get(key) != value:
                raise MemoryStoreError(
                    self.path,
                    f"meta {key!r} is {found.get(key)!r}, this service uses {value!r} "
                    "(embeddings from another model cannot be mixed; use another file)",
                )

    def load(self) -> tuple[list[Document], np.ndarray]:
        """Every document, oldest first, and their embeddings as a ``(n, dim)`` float32 array."""
        rows = self._db.execute(
            "SELECT id, text, timestamp, source, utt_id, embedding FROM documents ORDER BY id"
        ).fetchall()
        width = 4 * self.dim
        for row in rows:
            if not isinstance(row[5], bytes) or len(row[5]) != width:
                size = len(row[5]) if isinstance(row[5], bytes) else type(row[5]).__name__
                raise MemoryStoreError(
                    self.path, f"document id {row[0]}: embedding must be {width} bytes, got {size}"
                )
        docs = [Document(id=r[0], text=r[1], timestamp=r[2], source=r[3], utt_id=r[4]) for r in rows]
        blob = b"".join(r[5] for r in rows)
        embeddings = np.frombuffer(blob, dtype="<f4").astype(np.float32).reshape(len(rows), self.dim)
        return docs, embeddings

    def append(self, docs: Sequence[NewDocument], embeddings: np.ndarray) -> list[Document]:
        """Insert ``docs`` in one transaction; returns them with their new ids (increasing)."""
        if embeddings.shape != (len(docs), self.dim):
            raise ValueError(f"append: expected embeddings ({len(docs)}, {self.dim}), got {embeddings.shape}")
        blobs = [np.ascontiguousarray(row, dtype="<f4").tobytes() for row in embeddings]
        stored: list[Document] = []
        with self._db:  # commits, or rolls back if an INSERT fails
            self._db.execute("BEGIN")
            for doc, blob in zip(docs, blobs, strict=True):
                cursor = self._db.execute(
                    "INSERT INTO documents (text, timestamp, source, utt_id, embedding) VALUES (?, ?, ?, ?, ?)",
                    (doc.text, doc.timestamp, doc.source, doc.utt_id, blob),
                )
                assert cursor.lastrowid is not None
                stored.append(Document(cursor.lastrowid, doc.text, doc.timestamp, doc.source, doc.utt_id))
        return stored

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM documents").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def _open_existing(path: str | Path) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise MemoryStoreError(
            str(path), "no memory store there (the memory service creates it on its first run)"
        )
    db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=rw", uri=True, isolation_level=None)
    try:
        db.execute("SELECT id, text, timestamp, source, utt_id FROM documents LIMIT 1")
    except sqlite3.DatabaseError as exc:
        db.close()
        raise MemoryStoreError(str(path), f"not a usable SQLite memory store ({exc})") from None
    return db


def read_documents(path: str | Path) -> list[Document]:
    """Every document of the store at ``path``, oldest first (without embeddings; any model).
    Blocking. Raises :exc:`MemoryStoreError` when there is no store there."""
    db = _open_existing(path)
    try:
        rows = db.execute("SELECT id, text, timestamp, source, utt_id FROM documents ORDER BY id").fetchall()
    finally:
        db.close()
    return [Document(id=r[0], text=r[1], timestamp=r[2], source=r[3], utt_id=r[4]) for r in rows]


def forget_documents(path: str | Path, ids: Sequence[int]) -> list[int]:
    """Delete the documents ``ids`` from the store at ``path``; returns the ids that were there.
    Blocking. A memory service running on the store keeps what it loaded until it restarts."""
    db = _open_existing(path)
    try:
        with db:
            db.execute("BEGIN")
            found = [i for i in ids if db.execute("SELECT 1 FROM documents WHERE id = ?", (i,)).fetchone()]
            db.executemany("DELETE FROM documents WHERE id = ?", [(i,) for i in found])
    finally:
        db.close()
    return found
