"""The SQLite store: append-only rows, round trip, refusing a store it cannot use."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from memory_helpers import new_docs

from trioworks.services.memory import MemoryStore, MemoryStoreError


def vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_appended_documents_come_back_in_order_with_their_vectors(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    store = MemoryStore(path, model="m", dim=8)
    first = store.append(new_docs("one", "two"), vectors(2))
    second = store.append(new_docs("three", source="tts"), vectors(1, seed=1))
    store.close()
    assert [d.id for d in first + second] == [1, 2, 3]

    reopened = MemoryStore(path, model="m", dim=8)
    docs, emb = reopened.load()
    reopened.close()
    assert docs == first + second
    assert [d.source for d in docs] == ["stt", "stt", "tts"]
    np.testing.assert_array_equal(emb, np.vstack([vectors(2), vectors(1, seed=1)]))
    assert emb.dtype == np.float32 and emb.flags.writeable


def test_append_never_rewrites_earlier_rows(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    store = MemoryStore(path, model="m", dim=8)
    store.append(new_docs("one"), vectors(1))
    with sqlite3.connect(path) as raw:
        raw.execute(
            "CREATE TRIGGER no_updates BEFORE UPDATE ON documents BEGIN SELECT RAISE(ABORT, 'updated'); END"
        )
        raw.execute(
            "CREATE TRIGGER no_deletes BEFORE DELETE ON documents BEGIN SELECT RAISE(ABORT, 'deleted'); END"
        )
    store.append(new_docs("two", "three"), vectors(2))
    assert store.count() == 3
    store.close()


def test_a_store_of_another_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    MemoryStore(path, model="all-MiniLM-L6-v2", dim=384).close()
    with pytest.raises(
        MemoryStoreError, match=r"meta 'model' is 'all-MiniLM-L6-v2', this service uses 'other'"
    ):
        MemoryStore(path, model="other", dim=384)
    with pytest.raises(MemoryStoreError, match=r"meta 'dim' is '384', this service uses '8'"):
        MemoryStore(path, model="all-MiniLM-L6-v2", dim=8)


def test_a_corrupt_embedding_names_its_row(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    store = MemoryStore(path, model="m", dim=8)
    store.append(new_docs("one", "two"), vectors(2))
    store.close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE documents SET embedding = x'0000' WHERE id = 2")
    store = MemoryStore(path, model="m", dim=8)
    with pytest.raises(MemoryStoreError, match="document id 2: embedding must be 32 bytes, got 2"):
        store.load()
    store.close()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(MemoryStoreError, match="not a usable SQLite memory store"):
        MemoryStore(path, model="m", dim=8)


def test_append_checks_the_embedding_shape(tmp_path: Path) -> None:
    store = MemoryStore(":memory:", model="m", dim=8)
    with pytest.raises(ValueError, match=r"expected embeddings \(2, 8\), got \(1, 8\)"):
        store.append(new_docs("one", "two"), vectors(1))
    assert store.count() == 0
    store.close()
