"""The Postgres backend (psycopg 3, a ``psycopg_pool`` connection pool): the :data:`POSTGRES`
dialect, :class:`PostgresConnections`, and :class:`PostgresStorage`, which puts them into a
``SqlStorage``.

The operations are :class:`SqlStorage`'s portable SQL (locking explained in :mod:`._queue`);
this module supplies the connection pool, the transactions and the :class:`Dialect`, which is
all that differs:

- every method is one transaction on a pooled connection (``autocommit`` connections with an
  explicit ``BEGIN``/``COMMIT``, in pipeline mode: see :class:`PostgresConnections`), at the
  default READ COMMITTED level;
- a change locks the rows it reads ``FOR UPDATE`` (its workflow row first); claims and sweeps
  use ``FOR UPDATE SKIP LOCKED``, so concurrent polls (threads, processes or several servers on
  one database) never claim the same row and never wait for each other;
- schema creation is serialized by an advisory lock.
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg_pool
from psycopg import conninfo, errors, pq

from .._errors import StorageUnavailable
from ._dialect import Dialect
from ._sql import SqlStorage

__all__ = ["POSTGRES", "PostgresConnections", "PostgresStorage", "describe"]

# pg_advisory_xact_lock key serializing schema creation: CREATE TABLE IF NOT EXISTS is not safe
# against itself (two servers starting on an empty database race on the catalog).
_SCHEMA_LOCK = 0x7472696F776B73  # "triowks"

POSTGRES = Dialect(
    name="postgres",
    float_type="DOUBLE PRECISION",
    placeholder="%s",
    for_update=" FOR UPDATE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    integrity_errors=(errors.UniqueViolation,),
    # Lost or refused connections and pool timeouts (PoolTimeout is an OperationalError); a
    # deadlock or serialization failure is one too, and as retryable as the others.
    unavailable_errors=(psycopg.OperationalError, psycopg.InterfaceError),
    schema_lock=f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})",
)


_ALIVE_READS = 8  # reads of what an idle connection received, before it is taken as alive


class _PipelineCursor(psycopg.Cursor[Any]):
    """A cursor that names its connection's pipeline, for :class:`~._dialect.Tx` to sync."""

    pipeline: psycopg.Pipeline | None = None


def _check_alive(conn: psycopg.Connection[Any]) -> None:
    """Raise if the server closed ``conn`` while it sat in the pool; no round trip.

    A server that shut down or restarted (or killed the backend) closes the socket after an
    error message, so an idle connection's socket is readable only then (or for a rare
    notice). Reading what is there makes libpq see the end of the stream and mark the
    connection bad. A connection cut without a word (a network partition) passes, and its
    first statement fails instead: the request gets a 503 (as one racing a restart always did).
    """
    if conn.closed:
        raise psycopg.OperationalError("connection closed")
    try:
        # The server's last words (its error message) come first, the end of the stream after:
        # read until the socket has nothing more (a few reads at most), or libpq sees the end.
        for _ in range(_ALIVE_READS):
            readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
            if not readable:
                return
            conn.pgconn.consume_input()  # raises OperationalError at the end of the stream
            if conn.pgconn.status == pq.ConnStatus.BAD:
                raise psycopg.OperationalError("connection lost")
            while conn.pgconn.notifies() is not None:  # not used by the storage: drop them
                pass
    except psycopg.OperationalError:
        conn.close()  # so that the pool discards it instead of putting it back
        raise


def describe(url: str) -> str:
    """``postgresql://user@host:port/dbname`` with any password left out (for error messages)."""
    try:
        parts = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable Postgres URL>"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


class PostgresConnections:
    """A ``psycopg_pool`` pool of ``max_size`` autocommit connections to ``url``, opened here.

    Each transaction is an explicit ``BEGIN``/``COMMIT`` on a pooled connection. A thread that
    finds the pool empty waits up to ``acquire_timeout`` seconds, then gets
    ``psycopg_pool.PoolTimeout``; :meth:`check` waits at most ``check_timeout`` seconds for
    its connection, so a database that is down makes the readiness probe fail fast. Every
    connection is checked as it leaves the pool without a round trip (:func:`_check_alive`: has
    the server closed its socket?), so connections broken by a database restart are replaced
    instead of failing requests.

    A transaction runs in pipeline mode (see :class:`~._dialect.Tx`): its ``BEGIN`` travels with
    its first statement, its last writes with its ``COMMIT``, so a completion with nothing to
    read but its own rows costs two round trips.

    Raises :exc:`~trioworks.server.StorageUnavailable`, naming the database (never the
    password), when the URL is malformed or no connection can be made within
    ``connect_timeout`` seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        max_size: int,
        connect_timeout: float = 10.0,
        acquire_timeout: float = 10.0,
        check_timeout: float = 2.0,
    ) -> None:
        try:
            conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise StorageUnavailable(f"bad Postgres URL: {exc}") from None
        self.url = url
        self.check_timeout = check_timeout
        # One direct attempt first: the pool would only report a timeout, libpq says why
        # (refused, unknown database, authentication failed).
        try:
            psycopg.connect(url, connect_timeout=max(1, round(connect_timeout))).close()
        except psycopg.OperationalError as exc:
            reason = " ".join(str(exc).split())
            raise StorageUnavailable(f"cannot connect to {describe(url)}: {reason}") from None
        self.pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True},
            open=False,
            timeout=acquire_timeout,
            # Recovery from a database restart without a round trip per transaction (the
            # pool's check_connection costs one): connections the server closed are replaced
            # before use instead of failing a request each.
            check=_check_alive,
            name="trioworks-storage",
        )
        try:
            self.pool.open(wait=True, timeout=connect_timeout)
        except psycopg_pool.PoolTimeout as exc:
            self.pool.close()
            raise StorageUnavailable(
                f"cannot connect to {describe(url)} within {connect_timeout:g} s: {exc}"
            ) from None

    @property
    def closed(self) -> bool:
        return self.pool.closed

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor[tuple[object, ...]]]:
        # BEGIN and COMMIT are queued like any statement (psycopg's conn.transaction() would
        # sync after its BEGIN, and its pipeline exit after the COMMIT: two round trips more).
        with self.pool.connection() as conn:
            try:
                with conn.pipeline() as pipeline, _PipelineCursor(conn) as cursor:
                    cursor.pipeline = pipeline
                    cursor.execute("BEGIN")
                    yield cursor
                    cursor.execute("COMMIT")
            except BaseException:
                # A failed statement aborts the pipeline up to its sync, the COMMIT included.
                if not conn.broken and conn.info.transaction_status != pq.TransactionStatus.IDLE:
                    conn.rollback()
                raise

    def check(self) -> None:
        with self.pool.connection(timeout=self.check_timeout) as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        self.pool.close()


class PostgresStorage(SqlStorage):
    """Storage in a Postgres database; the schema is created on open if it is missing.

    ``SqlStorage(POSTGRES, PostgresConnections(url, ...))`` with the pool sized for the server:
    ``max_threads`` is the size of the storage ``CapacityLimiter`` the server builds for it
    (``Storage.max_threads``), and the pool holds up to ``max_threads + control_connections``
    connections: the extra ones are for the server's control-plane threads (heartbeats, the
    readiness probe, the lease sweep) and its opener, so that those never wait for a connection
    behind user work. See :class:`PostgresConnections` for the timeouts and the errors raised.

    Blocking, like every backend: construct, call and close it from threads (the server does so
    through :func:`trioworks.core.run_in_thread`). A transaction cut by the connection dying
    mid-way raises ``psycopg.OperationalError``, and its changes are not applied unless the
    ``COMMIT`` itself was what got lost.
    """

    def __init__(
        self,
        url: str,
        *,
        max_threads: int = 8,
        control_connections: int = 3,
        connect_timeout: float = 10.0,
        acquire_timeout: float = 10.0,
        check_timeout: float = 2.0,
    ) -> None:
        if max_threads < 1 or control_connections < 0:
            raise ValueError(
                f"max_threads must be >= 1 and control_connections >= 0, got {max_threads}, {control_connections}"
            )
        self.url = url
        self.check_timeout = check_timeout
        connections = PostgresConnections(
            url,
            max_size=max_threads + control_connections,
            connect_timeout=connect_timeout,
            acquire_timeout=acquire_timeout,
            check_timeout=check_timeout,
        )
        super().__init__(POSTGRES, connections, max_threads=max_threads)

    def __repr__(self) -> str:
        return f"PostgresStorage({describe(self.url)!r}, max_threads={self.max_threads})"
