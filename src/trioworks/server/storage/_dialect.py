"""The two things a SQL backend supplies to :class:`~._sql.SqlStorage`: a :class:`Dialect` (the
SQL text that differs) and :class:`Connections` (where transactions come from).

:class:`SqlStorage` is one class written once in portable SQL (TEXT, INTEGER, a float type,
``?`` placeholders, ``INSERT ... ON CONFLICT``); it is handed both objects, as httpcore's
connection pool is handed its network backend, instead of a backend subclass overriding hooks.
:class:`Tx` is one transaction's cursor as the SQL code sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import attrs

__all__ = ["Connections", "Dialect", "Tx"]

_READ = ("SELECT", "select")  # a statement that starts so changes no data (its locks aside)


@attrs.frozen
class Dialect:
    """What differs in the SQL text between backends (and which errors mean what)."""

    name: str
    float_type: str  # SQLite REAL is 8 bytes; Postgres needs DOUBLE PRECISION for epoch seconds
    placeholder: str = "?"  # psycopg: "%s"
    for_update: str = ""  # Postgres: " FOR UPDATE" (lock the rows a change reads)
    skip_locked: str = ""  # Postgres: " FOR UPDATE SKIP LOCKED" (claims and sweeps never wait)
    integrity_errors: tuple[type[BaseException], ...] = ()
    # Errors meaning "the database is unreachable" (connection lost, pool exhausted): a request
    # meeting one gets a 503 and one log line instead of a 500 with a traceback.
    unavailable_errors: tuple[type[BaseException], ...] = ()
    schema_lock: str = ""  # a statement serializing schema creation between processes

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


class Connections(Protocol):
    """Where a backend's transactions come from: connecting, pooling, beginning and ending.

    Blocking, like the storage: every method is called from a storage thread.
    """

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""

    def transaction(self) -> AbstractContextManager[Any]:
        """A DB-API cursor inside one transaction on a connection no other thread uses meanwhile;
        committed when the block ends, rolled back when it raises."""

    def check(self) -> None:
        """One round trip to the database, failing fast when it is down (the readiness probe)."""

    def close(self) -> None:
        """Close every connection. Idempotent."""


class Tx:
    """One transaction's cursor with ``?``-placeholder helpers.

    A cursor with a ``pipeline`` attribute (Postgres: a psycopg ``Pipeline``) runs in pipeline
    mode: :meth:`send` and :meth:`many` only queue their statement, which travels with the next
    one that waits for a result (or with the ``COMMIT``), so a transaction's writes cost one
    round trip together; an error in one of them is raised there, and the transaction rolls
    back as usual. :meth:`exec`, :meth:`one` and :meth:`all` wait for their own result, so
    their errors are raised by the call itself (as ``except`` clauses around them expect).
    Elsewhere (SQLite) every statement runs as it is called.

    :attr:`writes` counts the statements that may change data (all but ``SELECT``), so that a
    caller can tell whether a block that failed left changes behind.
    """

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cur = cursor
        self._pipeline = getattr(cursor, "pipeline", None)
        self.dialect = dialect
        self.writes = 0

    def _execute(self, sql: str, params: Sequence[Any]) -> None:
        if not sql.lstrip().startswith(_READ):
            self.writes += 1
        self._cur.execute(self.dialect.sql(sql), tuple(params))

    def exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._execute(sql, params)
        if self._pipeline is not None:
            self._pipeline.sync()
        return int(self._cur.rowcount or 0)

    def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement whose result nobody reads; pipelined where the cursor allows."""
        self._execute(sql, params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._execute(sql, params)
        return self._cur.fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._execute(sql, params)
        return list(self._cur.fetchall())

    def many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        if params:
            self.writes += 1
            self._cur.executemany(self.dialect.sql(sql), [tuple(p) for p in params])

    def columns(self, table: str) -> set[str]:
        self._cur.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        if self._pipeline is not None:
            self._pipeline.sync()
        return {d[0] for d in self._cur.description}
