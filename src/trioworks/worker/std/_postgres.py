"""``postgres_query`` and ``postgres_transaction``: the original std worker's SQL activities, on psycopg 3.

The SQL uses PostgreSQL's own placeholders (``$1``, ``$2``...), as in the original, and the
``params`` are always bound by the server (psycopg's :class:`~psycopg.RawCursor`), never
formatted into the text. JSON values bind as: string -> text (PostgreSQL casts it to the
column's type), integer -> bigint, number -> double, boolean, null, array/object -> their JSON text.

Output ``result``: a statement that returns rows gives ``{"rows": [{column: value}]}``, any other
``{"rows_affected": n}``; a transaction gives ``{"success": true, "statements_executed": n,
"results": [...]}``. Values map to JSON: numbers, strings, booleans, JSON columns as they are,
UUIDs as text; ours, where the original gives ``null``: NUMERIC as a number, dates and times as
ISO 8601 text, bytes as hex.

Each activity opens its own connection (``connect_timeout`` 30 s) in a thread of the
``postgres`` limiter (5, the original's pool size); on cancellation the running query is
cancelled on the server and the thread abandoned (it ends as soon as the server stops the query). SQL errors (syntax, constraint, data) are
terminal; connection errors are retryable.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Any

import attrs
import psycopg
import trio

from ...core import run_in_thread
from .._context import ActivityContext
from .._errors import ActivityError, TerminalActivityError
from .._results import ActivityResult

__all__ = [
    "PostgresQueryParams",
    "PostgresTransactionParams",
    "TransactionStatement",
    "postgres_query",
    "postgres_transaction",
]

_LIMITER = trio.CapacityLimiter(5)
"""The ``postgres`` limiter: threads running SQL at once (the original's pool of 5 connections)."""

_ISOLATION = {
    "read_committed": psycopg.IsolationLevel.READ_COMMITTED,
    "repeatable_read": psycopg.IsolationLevel.REPEATABLE_READ,
    "serializable": psycopg.IsolationLevel.SERIALIZABLE,
}
_TERMINAL = (psycopg.errors.ProgrammingError, psycopg.errors.DataError, psycopg.errors.IntegrityError)


@attrs.frozen(kw_only=True)
class TransactionStatement:
    query: str
    params: list[Any] | None = None


@attrs.frozen(kw_only=True)
class PostgresQueryParams:
    db_url: str
    query: str
    params: list[Any] | None = None


@attrs.frozen(kw_only=True)
class PostgresTransactionParams:
    db_url: str
    statements: list[TransactionStatement]
    isolation_level: str = "read_committed"


def _bind(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str | dict | list):
        return value
    if isinstance(value, decimal.Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and value.as_tuple().exponent == 0
            else float(value)
        )
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return str(value)


def _execute(cur: psycopg.Cursor[Any], query: str, params: list[Any] | None) -> dict[str, Any]:
    cur.execute(query, [_bind(p) for p in params or []])
    if cur.description is None:
        return {"rows_affected": cur.rowcount}
    names = [c.name for c in cur.description]
    return {"rows": [{n: _json_value(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]}


class _Session:
    """One connection used from one thread; :meth:`cancel` may be called from the Trio loop."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.conn: psycopg.Connection[Any] | None = None

    def connect(self) -> psycopg.Connection[Any]:
        self.conn = psycopg.connect(self.db_url, connect_timeout=30, cursor_factory=psycopg.RawCursor)
        return self.conn

    def cancel(self) -> None:
        if self.conn is not None:
            try:
                self.conn.cancel_safe()
            except psycopg.Error:
                pass


async def _in_thread(session: _Session, fn: Any) -> Any:
    # Abandoned on cancel, so that on_cancel runs at once: it cancels the query on the server,
    # the thread then ends quickly (closing its connection) and frees its limiter slot.
    try:
        return await run_in_thread(
            fn, limiter=_LIMITER, abandon_on_cancel=True, on_cancel=lambda _outcome: session.cancel()
        )
    except psycopg.OperationalError as exc:
        raise ActivityError(f"postgres {_safe_url(session.db_url)}: {exc}".strip()) from None


def _safe_url(db_url: str) -> str:
    try:
        info = psycopg.conninfo.conninfo_to_dict(db_url)
    except psycopg.ProgrammingError:
        return "<unparsable db_url>"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


async def postgres_query(params: PostgresQueryParams, ctx: ActivityContext) -> ActivityResult:
    """Run one statement in autocommit mode."""
    session = _Session(params.db_url)

    def work() -> dict[str, Any]:
        with session.connect() as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                try:
                    return _execute(cur, params.query, params.params)
                except _TERMINAL as exc:
                    raise TerminalActivityError(
                        f"postgres_query: {exc}".strip(), code="QUERY_ERROR"
                    ) from None

    return ActivityResult.value("result", await _in_thread(session, work))


async def postgres_transaction(params: PostgresTransactionParams, ctx: ActivityContext) -> ActivityResult:
    """Run the statements in one transaction; the first failing one rolls all of them back."""
    isolation = _ISOLATION.get(params.isolation_level)
    if isolation is None:
        raise TerminalActivityError(
            f"postgres_transaction: isolation_level must be one of {', '.join(_ISOLATION)}, "
            f"got {params.isolation_level!r}",
            code="INVALID_PARAMETERS",
        )
    session = _Session(params.db_url)

    def work() -> dict[str, Any]:
        with session.connect() as conn:
            conn.isolation_level = isolation
            results: list[dict[str, Any]] = []
            with conn.transaction(), conn.cursor() as cur:
                for index, statement in enumerate(params.statements):
                    try:
                        results.append(_execute(cur, statement.query, statement.params))
                    except _TERMINAL as exc:
                        raise TerminalActivityError(
                            f"postgres_transaction: statement {index} failed: {exc}. Transaction rolled back.".strip(),
                            code="QUERY_ERROR",
                        ) from None
            return {"success": True, "statements_executed": len(results), "results": results}

    return ActivityResult.value("result", await _in_thread(session, work))
