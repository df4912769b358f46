""":class:`SQLiteStorage`: the SQLite backend (WAL mode, one writer, ``busy_timeout``)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._sql import SqlStorage
from ._sqlbase import Dialect

__all__ = ["SQLiteStorage"]

_DIALECT = Dialect(name="sqlite", float_type="REAL", integrity_errors=(sqlite3.IntegrityError,))


class SQLiteStorage(SqlStorage):
    """Storage in one SQLite file (or ``":memory:"``-like private file for tests).

    Every transaction starts with ``BEGIN IMMEDIATE``, so writers queue on SQLite's lock (waiting
    up to ``busy_timeout`` seconds) instead of failing half-way; readers run in parallel in WAL
    mode. Connections are made per thread as needed and reused.
    """

    dialect = _DIALECT

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0, max_threads: int = 4) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.max_threads = max_threads
        super().__init__()
        with self._pool.connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        self.create_schema()

    @property
    def files_dir(self) -> Path:
        """Where uploaded file contents live: next to the database."""
        return self.path.with_name(self.path.name + ".files")

    def connect(self) -> Any:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # With WAL, NORMAL only risks the last commits on power loss, never on a process crash.
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @contextlib.contextmanager
    def transaction(self, conn: Any) -> Iterator[Any]:
        cursor = conn.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()
        finally:
            cursor.close()
