""":class:`SQLiteStorage`: the SQLite backend (WAL mode, one writer, ``busy_timeout``)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._sql import SqlStorage
from ._sqlbase import Dialect

__all__ = ["SQLiteStorage"]

_DIALECT = Dialect(name="sqlite", float_type="REAL", integrity_errors=(sqlite3.IntegrityError,))


class SQLiteStorage(SqlStorage):
    """Storage in one SQLite file (or ``":memory:"``-like private file for tests).

    Every transaction starts with ``BEGIN IMMEDIATE`` under an in-process lock, so transactions
    of this process run one at a time (each is short: one row set of one workflow); another
    process on the same file waits up to ``busy_timeout`` seconds instead of failing half-way.
    Connections are made per thread as needed and reused.
    """

    dialect = _DIALECT

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0, max_threads: int = 4) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.max_threads = max_threads
        self._lock = threading.Lock()
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
        # SQLite has one writer. Threads of this process queue on a lock instead of on SQLite's
        # busy handler, which sleeps in steps of up to 100 ms and made concurrent writers crawl
        # (4 HTTP workers: 72 activities/s before, see docs/server.md). Other processes on the
        # same file still meet busy_timeout.
        with self._lock:
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
