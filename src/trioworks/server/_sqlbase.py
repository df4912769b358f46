"""Plumbing shared by the SQL backends: dialect, connection pool, transactions, row mapping,
schema (and its one migration), and :class:`SqlBase` (definitions cache, row loads and writes).

The SQL in :mod:`._sql` and :mod:`._sqlqueue` is written once, in a portable subset (TEXT,
INTEGER, a float type, ``?`` placeholders, ``INSERT ... ON CONFLICT``, which SQLite has since
3.24); a :class:`Dialect` supplies the few things that differ. JSON is stored as TEXT so that
both SQLite and Postgres read it back the same way.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import attrs

from ._errors import NotFound, StorageUnavailable
from ._models import ActivityRow, ActivityStatus, Definition, WorkflowRow, WorkflowStatus
from ._progress import Plan, make_plan, waiting_counts
from ._wire import load_definition

__all__ = [
    "ACTIVITY_COLUMNS",
    "ACTIVITY_MUTABLE",
    "INSERT_ACTIVITY",
    "UPDATE_ACTIVITY",
    "UPDATE_WORKFLOW",
    "WORKFLOW_COLUMNS",
    "Dialect",
    "Pool",
    "SqlBase",
    "Tx",
    "activity_values",
    "marks",
    "row_to_activity",
    "row_to_workflow",
    "schema",
    "workflow_values",
]


@attrs.frozen
class Dialect:
    """What differs between SQL backends."""

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


class Tx:
    """One transaction's cursor with ``?``-placeholder helpers."""

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cur = cursor
        self.dialect = dialect

    def exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cur.execute(self.dialect.sql(sql), tuple(params))
        return int(self._cur.rowcount or 0)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._cur.execute(self.dialect.sql(sql), tuple(params))
        return self._cur.fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cur.execute(self.dialect.sql(sql), tuple(params))
        return list(self._cur.fetchall())

    def many(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        if params:
            self._cur.executemany(self.dialect.sql(sql), [tuple(p) for p in params])

    def columns(self, table: str) -> set[str]:
        self._cur.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        return {d[0] for d in self._cur.description}


def marks(count: int) -> str:
    """``?, ?, ?`` for an ``IN (...)`` of ``count`` values."""
    return ", ".join("?" * count)


class Pool:
    """Connections made on demand and reused; at most one per concurrent thread."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._all: list[Any] = []
        self.closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
            self._all.append(conn)
        try:
            yield conn
        finally:
            self._idle.put(conn)

    def close(self) -> None:
        self.closed = True
        for conn in self._all:
            with contextlib.suppress(Exception):
                conn.close()
        self._all.clear()


def dumps(value: Any) -> str | None:
    # allow_nan=False: a value no response could carry is refused on the way in (the request
    # fails and rolls back) instead of stored to fail every later read of it.
    return None if value is None else json.dumps(value, separators=(",", ":"), allow_nan=False)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


WORKFLOW_COLUMNS = "id, definition_name, definition_version, status, input, created_at, updated_at, unique_key, error_message"


def row_to_workflow(r: Sequence[Any]) -> WorkflowRow:
    return WorkflowRow(
        id=r[0],
        definition_name=r[1],
        definition_version=int(r[2]),
        status=WorkflowStatus(r[3]),
        input=loads(r[4]),
        created_at=float(r[5]),
        updated_at=float(r[6]),
        unique_key=r[7],
        error_message=r[8],
    )


def workflow_values(w: WorkflowRow) -> tuple[Any, ...]:
    return (
        w.id,
        w.definition_name,
        w.definition_version,
        w.status.value,
        dumps(w.input),
        w.created_at,
        w.updated_at,
        w.unique_key,
        w.error_message,
    )


# The order of attrs fields of ActivityRow; JSON fields are stored as TEXT.
_ACTIVITY_FIELDS = tuple(f.name for f in attrs.fields(ActivityRow))
_JSON_FIELDS = frozenset({"parameters", "output", "error", "usage", "signal_data"})
ACTIVITY_COLUMNS = ", ".join(name if name != "key" else "activity_key" for name in _ACTIVITY_FIELDS)
ACTIVITY_MUTABLE = tuple(
    n
    for n in _ACTIVITY_FIELDS
    if n not in ("id", "workflow_id", "key", "position", "worker", "activity_name")
)


_STATUSES = {s.value: s for s in ActivityStatus}
# Per column: how to turn the stored value into the field's value (None: as it is). Runs for
# every row read (a workflow listing reads them all): keep it lean.
_DECODERS: tuple[Callable[[Any], Any] | None, ...] = tuple(
    loads if name in _JSON_FIELDS else _STATUSES.__getitem__ if name == "status" else None
    for name in _ACTIVITY_FIELDS
)


def row_to_activity(r: Sequence[Any]) -> ActivityRow:
    return ActivityRow(
        *[v if decode is None or v is None else decode(v) for decode, v in zip(_DECODERS, r, strict=True)]
    )


def activity_values(a: ActivityRow, names: Sequence[str] = _ACTIVITY_FIELDS) -> tuple[Any, ...]:
    out = []
    for name in names:
        value = getattr(a, name)
        if name in _JSON_FIELDS:
            value = dumps(value)
        elif name == "status":
            value = value.value
        out.append(value)
    return tuple(out)


def schema(dialect: Dialect) -> list[str]:
    """``CREATE TABLE IF NOT EXISTS`` statements (idempotent)."""
    f = dialect.float_type
    return [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # Which client each worker_id belongs to (bound on first use): a client cannot report
        # as another client's worker.
        "CREATE TABLE IF NOT EXISTS workers (worker_id TEXT PRIMARY KEY, client_id TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS definitions (
            name TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
            activity_count INTEGER NOT NULL, created_at {f} NOT NULL, PRIMARY KEY (name, version))""",
        f"""CREATE TABLE IF NOT EXISTS workflows (
            id TEXT PRIMARY KEY, definition_name TEXT NOT NULL, definition_version INTEGER NOT NULL,
            status TEXT NOT NULL, input TEXT NOT NULL, created_at {f} NOT NULL, updated_at {f} NOT NULL,
            unique_key TEXT UNIQUE, error_message TEXT)""",
        "CREATE INDEX IF NOT EXISTS workflows_created ON workflows (created_at)",
        f"""CREATE TABLE IF NOT EXISTS activities (
            id TEXT PRIMARY KEY, workflow_id TEXT NOT NULL REFERENCES workflows (id),
            activity_key TEXT NOT NULL, position INTEGER NOT NULL, worker TEXT NOT NULL,
            activity_name TEXT NOT NULL, status TEXT NOT NULL, max_retries INTEGER NOT NULL,
            lease_seconds {f} NOT NULL, retry_count INTEGER NOT NULL, parameters TEXT,
            scheduled_for {f}, claimed_by TEXT, claimed_at {f}, started_at {f}, completed_at {f},
            output TEXT, error TEXT, cost_usd {f} NOT NULL, usage TEXT, signal_data TEXT,
            waiting_for INTEGER NOT NULL DEFAULT 0, UNIQUE (workflow_id, activity_key))""",
        # A claim reads due pending rows in claim order, and running rows whose lease expired
        # (usually none), each through its own partial index: a range scan, not a sort of every
        # pending row, and (Postgres) SKIP LOCKED streams instead of locking what it sorts.
        "CREATE INDEX IF NOT EXISTS activities_pending ON activities (worker, scheduled_for, id) "
        "WHERE status = 'pending'",
        "CREATE INDEX IF NOT EXISTS activities_lease ON activities ((claimed_at + lease_seconds)) "
        "WHERE status = 'running'",
        # Older databases: the first versions of these were Postgres-only, and the two general
        # indexes they replace made SQLite's planner scan every running row of a worker.
        "DROP INDEX IF EXISTS activities_pending_pg",
        "DROP INDEX IF EXISTS activities_lease_pg",
        "DROP INDEX IF EXISTS activities_queue",
        "DROP INDEX IF EXISTS activities_running",
        # "Has this workflow an unfinished activity?" after each completion, without a scan.
        "CREATE INDEX IF NOT EXISTS activities_workflow_status ON activities (workflow_id, status)",
        f"""CREATE TABLE IF NOT EXISTS files (
            workflow_id TEXT NOT NULL, activity_key TEXT NOT NULL, filename TEXT NOT NULL,
            size INTEGER NOT NULL, content_type TEXT NOT NULL, created_at {f} NOT NULL,
            PRIMARY KEY (workflow_id, activity_key, filename))""",
    ]


UPDATE_ACTIVITY = f"UPDATE activities SET {', '.join(f'{c} = ?' for c in ACTIVITY_MUTABLE)} WHERE id = ?"
INSERT_ACTIVITY = f"INSERT INTO activities ({ACTIVITY_COLUMNS}) VALUES ({marks(len(_ACTIVITY_FIELDS))})"
UPDATE_WORKFLOW = "UPDATE workflows SET status = ?, updated_at = ?, error_message = ? WHERE id = ?"
_IN_CHUNK = 500  # keys per IN (...) list: far below both databases' limits on parameters


class SqlBase:
    """Connections, transactions, the definitions cache, loading and writing rows.

    Subclasses set ``dialect`` and implement ``connect`` and ``transaction``.
    """

    dialect: Dialect
    max_threads: int = 4

    def __init__(self) -> None:
        self._pool = Pool(self.connect)
        self._plans: dict[tuple[str, int], Plan] = {}  # definitions are immutable once stored
        self._cache_lock = threading.Lock()

    # -- backend hooks ----------------------------------------------------------------------
    def connect(self) -> Any:
        raise NotImplementedError

    @contextlib.contextmanager
    def transaction(self, conn: Any) -> Iterator[Any]:
        """Yield a DB-API cursor inside a transaction; commit on success, roll back on error."""
        raise NotImplementedError
        yield

    # -- plumbing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self) -> Iterator[Tx]:
        if self._pool.closed:
            raise RuntimeError("storage is closed")
        try:
            with self._pool.connection() as conn, self.transaction(conn) as cursor:
                yield Tx(cursor, self.dialect)
        except self.dialect.unavailable_errors as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise StorageUnavailable(f"database unavailable: {reason}") from exc

    def create_schema(self) -> None:
        """Create what is missing (idempotent), then bring an older database up to date."""
        with self._tx() as db:
            if self.dialect.schema_lock:
                db.exec(self.dialect.schema_lock)
            for statement in schema(self.dialect):
                db.exec(statement)
            if "waiting_for" not in db.columns("activities"):
                self._add_waiting_for(db)

    def _add_waiting_for(self, db: Tx) -> None:
        # Databases made before incremental scheduling: add the counter and fill it in for the
        # workflows still in progress (the others never read it).
        db.exec("ALTER TABLE activities ADD COLUMN waiting_for INTEGER NOT NULL DEFAULT 0")
        workflows = db.all(
            "SELECT id, definition_name, definition_version FROM workflows WHERE status IN ('created', 'running')"
        )
        for workflow_id, name, version in workflows:
            plan = self._plan(db, name, int(version))
            _, rows = self._load(db, workflow_id)
            db.many(
                "UPDATE activities SET waiting_for = ? WHERE id = ?",
                [(r.waiting_for, r.id) for r in waiting_counts(plan, rows) if r.waiting_for],
            )

    def close(self) -> None:
        self._pool.close()

    def check(self) -> None:
        with self._tx() as db:
            db.one("SELECT 1")

    def meta_setdefault(self, key: str, value: str) -> str:
        # Two servers starting together both find no row: let the database pick the winner.
        with self._tx() as db:
            db.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))
            row = db.one("SELECT value FROM meta WHERE key = ?", (key,))
        assert row is not None
        return str(row[0])

    def meta_take(self, key: str) -> str | None:
        with self._tx() as db:
            row = db.one("SELECT value FROM meta WHERE key = ?", (key,))
            db.exec("DELETE FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def bind_worker(self, worker_id: str, client_id: str) -> str:
        with self._tx() as db:
            db.exec(
                "INSERT INTO workers (worker_id, client_id) VALUES (?, ?) ON CONFLICT (worker_id) DO NOTHING",
                (worker_id, client_id),
            )
            row = db.one("SELECT client_id FROM workers WHERE worker_id = ?", (worker_id,))
        assert row is not None
        return str(row[0])

    def worker_client(self, worker_id: str) -> str | None:
        with self._tx() as db:
            row = db.one("SELECT client_id FROM workers WHERE worker_id = ?", (worker_id,))
        return None if row is None else str(row[0])

    def _plan(self, db: Tx, name: str, version: int) -> Plan:
        with self._cache_lock:
            cached = self._plans.get((name, version))
        if cached is not None:
            return cached
        row = db.one("SELECT body FROM definitions WHERE name = ? AND version = ?", (name, version))
        if row is None:
            raise NotFound(f"workflow definition {name!r} version {version} not found")
        plan = make_plan(load_definition(loads(row[0])))
        with self._cache_lock:
            self._plans[(name, version)] = plan
        return plan

    def _definition(self, db: Tx, name: str, version: int) -> Definition:
        return self._plan(db, name, version).definition

    def _workflow(self, db: Tx, workflow_id: str, *, lock: bool) -> WorkflowRow:
        suffix = self.dialect.for_update if lock else ""
        row = db.one(f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?{suffix}", (workflow_id,))
        if row is None:
            raise NotFound(f"workflow {workflow_id} not found")
        return row_to_workflow(row)

    def _load(self, db: Tx, workflow_id: str) -> tuple[WorkflowRow, list[ActivityRow]]:
        """A workflow and all its rows, unlocked: for reading only (a change loads what it changes)."""
        workflow = self._workflow(db, workflow_id, lock=False)
        activities = db.all(
            f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE workflow_id = ? ORDER BY position",
            (workflow_id,),
        )
        return workflow, [row_to_activity(a) for a in activities]

    def _rows(self, db: Tx, workflow_id: str, keys: Sequence[str]) -> list[ActivityRow]:
        """These activities of one workflow, locked (Postgres) like every row a change reads."""
        out = []
        for i in range(0, len(keys), _IN_CHUNK):
            chunk = keys[i : i + _IN_CHUNK]
            out += db.all(
                f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE workflow_id = ? "
                f"AND activity_key IN ({marks(len(chunk))}) ORDER BY position{self.dialect.for_update}",
                (workflow_id, *chunk),
            )
        return [row_to_activity(r) for r in out]

    def _write(self, db: Tx, rows: Iterable[ActivityRow]) -> None:
        params = [(*activity_values(r, ACTIVITY_MUTABLE), r.id) for r in rows]
        if len(params) == 1:  # the usual case; psycopg's executemany costs a pipeline sync more
            db.exec(UPDATE_ACTIVITY, params[0])
        else:
            db.many(UPDATE_ACTIVITY, params)

    def _write_workflow(self, db: Tx, workflow: WorkflowRow) -> None:
        db.exec(
            UPDATE_WORKFLOW, (workflow.status.value, workflow.updated_at, workflow.error_message, workflow.id)
        )
