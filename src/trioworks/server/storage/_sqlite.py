"""The SQLite backend (WAL mode, one writer, ``busy_timeout``): the :data:`SQLITE` dialect,
:class:`SQLiteConnections`, and :class:`SQLiteStorage`, which puts them into a ``SqlStorage``."""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from ._dialect import Dialect
from ._sql import SqlStorage

__all__ = ["SQLITE", "SQLiteConnections", "SQLiteStorage"]

SQLITE = Dialect(name="sqlite", float_type="REAL", integrity_errors=(sqlite3.IntegrityError,))


class SQLiteConnections:
    """Connections to one SQLite file: made on demand, reused, at most one per concurrent thread.

    Every transaction starts with ``BEGIN IMMEDIATE`` under an in-process lock, so transactions
    of this process run one at a time (each is short: one row set of one workflow); another
    process on the same file waits up to ``busy_timeout`` seconds instead of failing half-way.
    Opening switches the file to WAL mode.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self.closed = False
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # With WAL, NORMAL only risks the last commits on power loss, never on a process crash.
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
            self._all.append(conn)
        try:
            yield conn
        finally:
            self._idle.put(conn)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        # SQLite has one writer. Threads of this process queue on a lock instead of on SQLite's
        # busy handler, which sleeps in steps of up to 100 ms and made concurrent writers crawl
        # (4 HTTP workers: 72 activities/s before, see docs/server.md). Other processes on the
        # same file still meet busy_timeout.
        with self._connection() as conn, self._lock:
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

    def check(self) -> None:
        with self.transaction() as cursor:
            cursor.execute("SELECT 1")

    def close(self) -> None:
        self.closed = True
        for conn in self._all:
            with contextlib.suppress(Exception):
                conn.close()
        self._all.clear()


class SQLiteStorage(SqlStorage):
    """Storage in one SQLite file: ``SqlStorage(SQLITE, SQLiteConnections(path, busy_timeout=...))``.

    See :class:`SQLiteConnections` for the transactions (one writer at a time, WAL mode).
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0, max_threads: int = 4) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        super().__init__(SQLITE, SQLiteConnections(path, busy_timeout=busy_timeout), max_threads=max_threads)

    @property
    def files_dir(self) -> Path:
        """Where uploaded file contents live: next to the database."""
        return self.path.with_name(self.path.name + ".files")
