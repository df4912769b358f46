""":class:`PostgresStorage`: the Postgres backend (psycopg 3, a ``psycopg_pool`` connection pool).

The operations are :class:`SqlStorage`'s portable SQL; this module supplies the connection pool,
the transactions and the few places where Postgres needs its own locking:

- every method is one transaction on a pooled connection (``autocommit`` connections with an
  explicit ``BEGIN``/``COMMIT`` from ``conn.transaction()``), at the default READ COMMITTED level;
- a claim locks its rows with ``FOR UPDATE SKIP LOCKED``, so concurrent polls (threads, processes
  or several servers on one database) never claim the same row and never wait for each other;
- a change to a workflow locks its workflow row and then all its activity rows ``FOR UPDATE``,
  so no concurrent claim can slip in between reading the rows and writing them back.

Lock order (why there is no deadlock): whoever waits for a lock takes workflow rows first (one at
a time, or several in id order) and then that workflow's activity rows. A claim takes activity
rows with ``SKIP LOCKED`` and, after that, never waits: it marks a ``created`` workflow
``running`` only if it can lock it at once, and otherwise leaves that candidate for the next
poll. A sweep requeues expired rows with ``SKIP LOCKED`` too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg_pool
from psycopg import conninfo, errors

from . import _engine as engine
from ._errors import NotFound
from ._models import (
    ActivityRow,
    Definition,
    FileRecord,
    PendingActivity,
    PutDefinitionResult,
    WorkflowRow,
    WorkflowStatus,
)
from ._open import StorageUnavailable
from ._sql import SqlStorage
from ._sqlbase import (
    ACTIVITY_COLUMNS,
    ACTIVITY_MUTABLE,
    WORKFLOW_COLUMNS,
    Dialect,
    Tx,
    activity_values,
    row_to_activity,
    row_to_workflow,
    schema,
)

__all__ = ["PostgresStorage"]

_DIALECT = Dialect(
    name="postgres",
    float_type="DOUBLE PRECISION",
    placeholder="%s",
    for_update=" FOR UPDATE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    integrity_errors=(errors.UniqueViolation,),
)

# pg_advisory_xact_lock key serializing schema creation: CREATE TABLE IF NOT EXISTS is not safe
# against itself (two servers starting on an empty database race on the catalog).
_SCHEMA_LOCK = 0x7472696F776B73  # "triowks"
_PUT_DEFINITION_ATTEMPTS = 50

# A claim takes the oldest rows among two sets, each read in order through its own partial index
# so that SKIP LOCKED streams (skips the rows other polls hold, stops at the limit) instead of
# sorting every pending row on each poll: pending rows that are due, and running rows whose
# lease expired with retries left.
_CLAIM_PENDING = (
    f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE worker = ? AND status = 'pending' "
    "AND scheduled_for <= ? ORDER BY scheduled_for, id LIMIT ? FOR UPDATE SKIP LOCKED"
)
_CLAIM_EXPIRED = (
    f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE worker = ? AND status = 'running' "
    "AND claimed_at + lease_seconds < ? AND retry_count < max_retries "
    "ORDER BY scheduled_for, id LIMIT ? FOR UPDATE SKIP LOCKED"
)
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS activities_pending_pg ON activities (worker, scheduled_for, id) "
    "WHERE status = 'pending'",
    "CREATE INDEX IF NOT EXISTS activities_lease_pg ON activities ((claimed_at + lease_seconds)) "
    "WHERE status = 'running'",
)
_UPDATE_ACTIVITY = f"UPDATE activities SET {', '.join(f'{c} = ?' for c in ACTIVITY_MUTABLE)} WHERE id = ?"


def describe(url: str) -> str:
    """``postgresql://user@host:port/dbname`` with any password left out (for error messages)."""
    try:
        parts = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable Postgres URL>"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


class PostgresStorage(SqlStorage):
    """Storage in a Postgres database; the schema is created on open if it is missing.

    ``max_threads`` is the size of the storage ``CapacityLimiter`` the server builds for it
    (``Storage.max_threads``). The pool holds up to ``max_threads + control_connections``
    connections: the extra ones are for the server's control-plane threads (heartbeats, the
    readiness probe, the lease sweep) and its opener, so that those never wait for a connection
    behind user work. A thread that still finds the pool empty waits up to ``acquire_timeout``
    seconds, then gets ``psycopg_pool.PoolTimeout``; the readiness probe :meth:`check` waits at
    most ``check_timeout`` seconds for its connection, so a database that is down makes it fail
    fast instead of hanging the probe.

    Blocking, like every backend: construct, call and close it from threads (the server does so
    through :func:`trioworks.core.run_in_thread`). Construction raises
    :exc:`~trioworks.server.StorageUnavailable`, naming the database (never the password), when
    the URL is malformed or no connection can be made within ``connect_timeout`` seconds.

    Every connection is checked (one empty round trip) as it leaves the pool, so connections
    broken by a database restart are replaced instead of failing requests. A transaction cut by
    the connection dying mid-way raises ``psycopg.OperationalError``, and its changes are not
    applied unless the ``COMMIT`` itself was what got lost.
    """

    dialect = _DIALECT

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
        try:
            conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise StorageUnavailable(f"bad Postgres URL: {exc}") from None
        self.url = url
        self.max_threads = max_threads
        self.check_timeout = check_timeout
        super().__init__()
        self._pool.close()  # the base's on-demand pool: replaced by psycopg_pool's
        # One direct attempt first: the pool would only report a timeout, libpq says why
        # (refused, unknown database, authentication failed).
        try:
            psycopg.connect(url, connect_timeout=max(1, round(connect_timeout))).close()
        except psycopg.OperationalError as exc:
            reason = " ".join(str(exc).split())
            raise StorageUnavailable(f"cannot connect to {describe(url)}: {reason}") from None
        pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max_threads + control_connections,
            kwargs={"autocommit": True},
            open=False,
            timeout=acquire_timeout,
            # One round trip per transaction buys recovery from a database restart: broken
            # connections are replaced before use instead of failing a request each.
            check=psycopg_pool.ConnectionPool.check_connection,
            name="trioworks-storage",
        )
        try:
            pool.open(wait=True, timeout=connect_timeout)
        except psycopg_pool.PoolTimeout as exc:
            pool.close()
            raise StorageUnavailable(
                f"cannot connect to {describe(url)} within {connect_timeout:g} s: {exc}"
            ) from None
        self._pool = pool  # type: ignore[assignment]  # same connection()/close()/closed surface
        try:
            self.create_schema()
        except BaseException:
            pool.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStorage({describe(self.url)!r}, max_threads={self.max_threads})"

    # -- backend hooks ----------------------------------------------------------------------
    def connect(self) -> Any:
        return psycopg.connect(self.url, autocommit=True)

    @contextlib.contextmanager
    def transaction(self, conn: Any) -> Iterator[Any]:
        with conn.transaction(), conn.cursor() as cursor:
            yield cursor

    def create_schema(self) -> None:
        with self._tx() as db:
            db.exec("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            for statement in (*schema(self.dialect), *_INDEXES):
                db.exec(statement)

    def check(self) -> None:
        if self._pool.closed:
            raise RuntimeError("storage is closed")
        with self._pool.connection(timeout=self.check_timeout) as conn:  # type: ignore[call-arg]
            conn.execute("SELECT 1")

    # -- Postgres-specific locking ------------------------------------------------------------
    def put_definition(self, definition: Definition, now: float) -> PutDefinitionResult:
        # SQLite has one writer; here two servers storing one name at once both pick version
        # N+1 and the primary key rejects the later. Running it again sees the winner's row and
        # answers as a serial run would (unchanged, or N+2). Each rejection means another
        # writer committed, so this ends; the bound only guards against a bug.
        for _ in range(_PUT_DEFINITION_ATTEMPTS - 1):
            try:
                return super().put_definition(definition, now)
            except errors.UniqueViolation:
                continue
        return super().put_definition(definition, now)

    def put_file(self, record: FileRecord) -> None:
        # One statement: the base's UPDATE-then-INSERT races when two uploads of one new file meet.
        with self._tx() as db:
            db.exec(
                "INSERT INTO files (workflow_id, activity_key, filename, size, content_type, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (workflow_id, activity_key, filename) DO UPDATE "
                "SET size = EXCLUDED.size, content_type = EXCLUDED.content_type, created_at = EXCLUDED.created_at",
                (
                    record.workflow_id,
                    record.activity_key,
                    record.filename,
                    record.size,
                    record.content_type,
                    record.created_at,
                ),
            )

    def meta_setdefault(self, key: str, value: str) -> str:
        # Two servers starting together both find no row: let the database pick the winner.
        with self._tx() as db:
            db.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))
            row = db.one("SELECT value FROM meta WHERE key = ?", (key,))
        assert row is not None
        return str(row[0])

    def _load(self, db: Tx, workflow_id: str, *, lock: bool) -> tuple[WorkflowRow, list[ActivityRow]]:
        # As the base, but a locking load also locks the activity rows (after the workflow row):
        # otherwise a claim could change a row between our read and our write-back.
        if not lock:
            return super()._load(db, workflow_id, lock=False)
        row = db.one(f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ? FOR UPDATE", (workflow_id,))
        if row is None:
            raise NotFound(f"workflow {workflow_id} not found")
        activities = db.all(
            f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE workflow_id = ? ORDER BY position FOR UPDATE",
            (workflow_id,),
        )
        return row_to_workflow(row), [row_to_activity(a) for a in activities]

    def _expire(self, db: Tx, where: str, params: tuple[Any, ...], now: float) -> int:
        """Fail expired running rows with no retry left, locking their workflows in id order."""
        expired = db.all(
            "SELECT DISTINCT workflow_id FROM activities WHERE status = 'running' "
            f"AND claimed_at + lease_seconds < ? AND retry_count >= max_retries{where} ORDER BY workflow_id",
            (now, *params),
        )
        for (workflow_id,) in expired:
            old = self._load(db, workflow_id, lock=True)
            workflow, rows = old[0], list(old[1])
            for i, row in enumerate(rows):
                if row.lease_expired(now) and row.retry_count >= row.max_retries:
                    rows[i] = failed = engine.expire_row(row, now)
                    if workflow.status is not WorkflowStatus.FAILED:
                        workflow, rows = engine.fail_workflow(workflow, rows, failed, now)
            self._save(db, old, (workflow, rows))
        return len(expired)

    def claim(self, worker: str, worker_id: str, max_activities: int, now: float) -> list[PendingActivity]:
        with self._tx() as db:
            self._expire(db, " AND worker = ?", (worker,), now)
            found = db.all(_CLAIM_EXPIRED, (worker, now, max_activities))
            found += db.all(_CLAIM_PENDING, (worker, now, max_activities))
            # The oldest of both sets; rows locked here but not taken stay as they are (and
            # locked, so skipped by other polls, only until this transaction ends).
            candidates = sorted(map(row_to_activity, found), key=lambda r: (r.scheduled_for, r.id))
            del candidates[max_activities:]
            if not candidates:
                return []
            workflow_ids = sorted({c.workflow_id for c in candidates})
            workflows = {
                r[0]: r
                for r in db.all(
                    "SELECT id, status, definition_name, definition_version FROM workflows WHERE id = ANY(?)",
                    (workflow_ids,),
                )
            }
            created = [w for w in workflow_ids if workflows[w][1] == WorkflowStatus.CREATED.value]
            if created:
                # Never wait here: we already hold activity locks (see the module docstring).
                locked = [
                    r[0]
                    for r in db.all(
                        "SELECT id FROM workflows WHERE id = ANY(?) AND status = 'created' "
                        "ORDER BY id FOR UPDATE SKIP LOCKED",
                        (created,),
                    )
                ]
                if locked:
                    db.exec(
                        "UPDATE workflows SET status = 'running', updated_at = ? WHERE id = ANY(?)",
                        (now, locked),
                    )
                busy = set(created) - set(locked)
                candidates = [c for c in candidates if c.workflow_id not in busy]
            out = []
            for candidate in candidates:
                row = engine.claim_row(candidate, worker_id, now)
                db.exec(_UPDATE_ACTIVITY, (*activity_values(row, ACTIVITY_MUTABLE), row.id))
                _, _, name, version = workflows[row.workflow_id]
                out.append(engine.pending_activity(row, self._definition(db, name, int(version))))
        return out

    def heartbeat(self, activity_id: str, worker_id: str, now: float) -> float:
        # The most frequent call (every activity, about three times a lease) locks only its own
        # row, not the whole workflow: claims of sibling rows go on meanwhile. Its row lock waits
        # for a transaction that holds the workflow (complete, fail), so a workflow failed by a
        # sibling is seen failed here; it holds nothing else, so it cannot be part of a deadlock.
        with self._tx() as db:
            found = db.one(
                f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE id = ? FOR UPDATE", (activity_id,)
            )
            if found is None:
                raise NotFound(f"activity {activity_id} not found")
            row = row_to_activity(found)
            workflow = db.one(f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?", (row.workflow_id,))
            assert workflow is not None  # activities reference their workflow
            engine.owned_check(row, worker_id, row_to_workflow(workflow), "heartbeat")
            db.exec("UPDATE activities SET claimed_at = ? WHERE id = ?", (now, activity_id))
        return row.lease_seconds

    def sweep(self, now: float) -> int:
        with self._tx() as db:
            failed = self._expire(db, "", (), now)
            ids = [
                r[0]
                for r in db.all(
                    "SELECT id FROM activities WHERE status = 'running' AND claimed_at + lease_seconds < ? "
                    "AND retry_count < max_retries ORDER BY id FOR UPDATE SKIP LOCKED",
                    (now,),
                )
            ]
            requeued = 0
            if ids:
                requeued = db.exec(
                    "UPDATE activities SET status = 'pending', retry_count = retry_count + 1, "
                    "claimed_at = NULL WHERE id = ANY(?)",
                    (ids,),
                )
        return failed + requeued
