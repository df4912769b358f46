""":class:`Tables`: what every SQL operation shares, one object handed to each part of the storage.

It owns the two injected pieces (:class:`~._dialect.Dialect`, :class:`~._dialect.Connections`)
and gives the operations transactions, the definitions cache, and loading, locking and writing
rows. :class:`~._sql.SqlStorage` (definitions, workflows, signals, files) and
:class:`~._queue.SqlQueue` (the activity queue) both work through it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import outcome

from .._errors import NotFound, ServerError, StorageUnavailable
from .._models import ActivityRow, Definition, WorkflowRow
from .._wire import load_definition
from ..rules import Plan, make_plan, waiting_counts
from ._dialect import Connections, Dialect, Tx
from ._rows import (
    ACTIVITY_COLUMNS,
    ACTIVITY_MUTABLE,
    UPDATE_ACTIVITY,
    UPDATE_WORKFLOW,
    WORKFLOW_COLUMNS,
    activity_values,
    loads,
    marks,
    row_to_activity,
    row_to_workflow,
    schema,
)

__all__ = ["Tables"]

logger = logging.getLogger("trioworks.server")

_IN_CHUNK = 500  # keys per IN (...) list: far below both databases' limits on parameters


class _WroteThenRefused(Exception):
    """A call of a batch refused after it wrote: the batch's transaction cannot keep its changes."""


class Tables:
    """Transactions and row access over one database. Thread-safe: one per storage."""

    def __init__(self, dialect: Dialect, connections: Connections) -> None:
        self.dialect = dialect
        self.connections = connections
        self._plans: dict[tuple[str, int], Plan] = {}  # definitions are immutable once stored
        self._cache_lock = threading.Lock()
        self._batch = threading.local()  # .db: the transaction run_batch runs in this thread

    @contextlib.contextmanager
    def tx(self) -> Iterator[Tx]:
        """One transaction; :exc:`StorageUnavailable` when the dialect says the database is down.

        Inside :meth:`run_batch` (same thread): the batch's transaction instead. A call of a
        batch that refuses (a :class:`ServerError`) before writing anything leaves no trace and
        the batch goes on; one that refuses after writing raises :exc:`_WroteThenRefused`
        instead, which makes :meth:`run_batch` start over with a transaction per call.
        """
        batch: Tx | None = getattr(self._batch, "db", None)
        if batch is not None:
            before = batch.writes
            try:
                yield batch
            except ServerError as exc:
                if batch.writes != before:
                    raise _WroteThenRefused from exc
                raise
            return
        if self.connections.closed:
            raise RuntimeError("storage is closed")
        try:
            with self.connections.transaction() as cursor:
                yield Tx(cursor, self.dialect)
        except self.dialect.unavailable_errors as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise StorageUnavailable(f"database unavailable: {reason}") from exc

    def run_batch(
        self, calls: Sequence[Callable[[], Any]], order: Callable[[Tx], Sequence[int]] | None = None
    ) -> list[outcome.Outcome[Any]]:
        """Run ``calls`` (storage methods that each open :meth:`tx` once) in one transaction.

        The calls run in the order ``order(db)`` gives (indexes into ``calls``; default: as
        given); one outcome per call, in the order of ``calls``. A call that refuses with a
        :class:`ServerError` (404, 409, ...) before writing has that error as its outcome, and
        the batch goes on. Anything else (a refusal after a write, a database error, a deadlock,
        a failed ``COMMIT``, a bug) fails the transaction: it is rolled back and every call runs
        again in a transaction of its own, so each gets the outcome it would have had alone.

        No savepoints: the queue's refusals all come before its writes, and a savepoint per
        call cost two statements per call (on Postgres a subtransaction each).
        """
        results: list[outcome.Outcome[Any] | None] = [None] * len(calls)
        try:
            with self.tx() as db:
                self._batch.db = db
                try:
                    for i in range(len(calls)) if order is None else order(db):
                        result = outcome.capture(calls[i])
                        if isinstance(result, outcome.Error) and not isinstance(result.error, ServerError):
                            raise result.error
                        results[i] = result
                    if any(r is None for r in results):
                        raise RuntimeError("run_batch: order() must name every call")
                finally:
                    self._batch.db = None
        except _WroteThenRefused:
            logger.debug("a call of a batch refused after writing: one transaction each")
            return [outcome.capture(call) for call in calls]
        except Exception as exc:
            logger.warning("a batch of %d storage calls failed (%s): one transaction each", len(calls), exc)
            return [outcome.capture(call) for call in calls]
        return results  # type: ignore[return-value]  # no None left: checked above

    def create_schema(self) -> None:
        """Create what is missing (idempotent), then bring an older database up to date."""
        with self.tx() as db:
            if self.dialect.schema_lock:
                db.exec(self.dialect.schema_lock)
            for statement in schema(self.dialect):
                db.exec(statement)
            columns = db.columns("activities")
            if "waiting_for" not in columns:
                self._add_waiting_for(db)
            if "iteration" not in columns:  # databases made before loops
                db.exec("ALTER TABLE activities ADD COLUMN iteration INTEGER NOT NULL DEFAULT 0")
            if "history" not in columns:
                db.exec("ALTER TABLE activities ADD COLUMN history TEXT")

    def _add_waiting_for(self, db: Tx) -> None:
        # Databases made before incremental scheduling: add the counter and fill it in for the
        # workflows still in progress (the others never read it).
        db.exec("ALTER TABLE activities ADD COLUMN waiting_for INTEGER NOT NULL DEFAULT 0")
        workflows = db.all(
            "SELECT id, definition_name, definition_version FROM workflows WHERE status IN ('created', 'running')"
        )
        for workflow_id, name, version in workflows:
            plan = self.plan(db, name, int(version))
            _, rows = self.load(db, workflow_id)
            db.many(
                "UPDATE activities SET waiting_for = ? WHERE id = ?",
                [(r.waiting_for, r.id) for r in waiting_counts(plan, rows) if r.waiting_for],
            )

    # -- reading and writing rows (inside a transaction) -------------------------------------
    def plan(self, db: Tx, name: str, version: int) -> Plan:
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

    def definition(self, db: Tx, name: str, version: int) -> Definition:
        return self.plan(db, name, version).definition

    def workflow(self, db: Tx, workflow_id: str, *, lock: bool) -> WorkflowRow:
        suffix = self.dialect.for_update if lock else ""
        row = db.one(f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?{suffix}", (workflow_id,))
        if row is None:
            raise NotFound(f"workflow {workflow_id} not found")
        return row_to_workflow(row)

    def load(self, db: Tx, workflow_id: str) -> tuple[WorkflowRow, list[ActivityRow]]:
        """A workflow and all its rows, unlocked: for reading only (a change loads what it changes)."""
        workflow = self.workflow(db, workflow_id, lock=False)
        activities = db.all(
            f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE workflow_id = ? ORDER BY position",
            (workflow_id,),
        )
        return workflow, [row_to_activity(a) for a in activities]

    def rows(self, db: Tx, workflow_id: str, keys: Sequence[str]) -> list[ActivityRow]:
        """These activities of one workflow, locked (Postgres) like every row a change reads."""
        return self._by_keys(
            db,
            f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE workflow_id = ? "
            f"AND activity_key IN ({{marks}}) ORDER BY position{self.dialect.for_update}",
            workflow_id,
            keys,
        )

    def release(self, db: Tx, workflow_id: str, keys: Sequence[str]) -> list[ActivityRow]:
        """These activities of one workflow with ``waiting_for`` one less: written and read back
        in one statement (locked on Postgres, as an ``UPDATE`` locks)."""
        return self._by_keys(
            db,
            "UPDATE activities SET waiting_for = waiting_for - 1 WHERE workflow_id = ? "
            f"AND activity_key IN ({{marks}}) RETURNING {ACTIVITY_COLUMNS}",
            workflow_id,
            keys,
        )

    @staticmethod
    def _by_keys(db: Tx, sql: str, workflow_id: str, keys: Sequence[str]) -> list[ActivityRow]:
        """The activity rows ``sql`` gives for ``keys``, in chunks of :data:`_IN_CHUNK` keys
        (``{marks}`` in ``sql`` is the ``IN`` list's placeholders)."""
        out = []
        for i in range(0, len(keys), _IN_CHUNK):
            chunk = keys[i : i + _IN_CHUNK]
            out += db.all(sql.format(marks=marks(len(chunk))), (workflow_id, *chunk))
        return [row_to_activity(r) for r in out]

    def write(self, db: Tx, rows: Iterable[ActivityRow], columns: Sequence[str] = ACTIVITY_MUTABLE) -> None:
        """Store ``rows``; only ``columns`` when the caller knows nothing else changed."""
        if columns is ACTIVITY_MUTABLE:
            sql = UPDATE_ACTIVITY
        else:
            sql = f"UPDATE activities SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?"
        params = [(*activity_values(r, columns), r.id) for r in rows]
        if len(params) == 1:  # the usual case; psycopg's executemany costs a pipeline sync more
            db.send(sql, params[0])
        else:
            db.many(sql, params)

    def write_changes(self, db: Tx, rows: Iterable[ActivityRow], before: Mapping[str, ActivityRow]) -> None:
        """Store ``rows``, each only in the columns that differ from its stored version in
        ``before`` (by key; every column when it is not there). Rows are copied with
        :func:`~.._models.evolve`, which keeps the objects of unchanged fields: a field holding
        another object is taken as changed (at worst a value is written again)."""
        groups: dict[tuple[str, ...], list[ActivityRow]] = {}
        for row in rows:
            old = before.get(row.key)
            columns = (
                ACTIVITY_MUTABLE
                if old is None
                else tuple(n for n in ACTIVITY_MUTABLE if getattr(row, n) is not getattr(old, n))
            )
            if columns:
                groups.setdefault(columns, []).append(row)
        for columns, group in groups.items():
            self.write(db, group, columns)

    def write_workflow(self, db: Tx, workflow: WorkflowRow) -> None:
        db.send(
            UPDATE_WORKFLOW, (workflow.status.value, workflow.updated_at, workflow.error_message, workflow.id)
        )
