""":class:`SqlStorage`: the :class:`Storage` operations written once in portable SQL.

A backend is not a subclass: it is the :class:`~._dialect.Dialect` and the
:class:`~._dialect.Connections` handed to ``SqlStorage(dialect, connections)`` (SQLite:
``BEGIN IMMEDIATE`` on a per-thread connection; Postgres: the driver's transaction on a pooled
one). The rules themselves live in :mod:`trioworks.server.rules`; this module (definitions,
workflows, signals, files) and its :class:`~._queue.SqlQueue` component (the activity queue)
only load rows through :class:`~._tables.Tables`, call the rules and write what changed.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import attrs
import outcome

from .. import rules
from .._errors import BadRequest, Conflict, NotFound
from .._models import (
    ActivityRow,
    ActivityStatus,
    Definition,
    DefinitionSummary,
    FileRecord,
    PendingActivity,
    PutDefinitionResult,
    StoredDefinition,
    WorkflowPage,
    WorkflowRow,
    WorkflowStatus,
)
from .._schedules import NewSchedule, ScheduleChanges, ScheduleFire, ScheduleRow
from .._wire import canonical_json, definition_body
from ._dialect import Connections, Dialect, Tx
from ._interface import BATCHABLE, StorageCall, run_each
from ._queue import SqlQueue
from ._rows import INSERT_ACTIVITY, WORKFLOW_COLUMNS, activity_values, loads, row_to_workflow, workflow_values
from ._schedules import SqlSchedules
from ._tables import Tables

__all__ = ["SqlStorage"]

S = ActivityStatus


_PUT_DEFINITION_ATTEMPTS = 50


class SqlStorage:
    """The :class:`Storage` operations over ``connections``, in SQL spoken as ``dialect`` says.

    The schema is created (or brought up to date) on construction; if that fails,
    ``connections`` is closed and the error propagates. ``max_threads`` is
    :attr:`Storage.max_threads`, the size of the limiter the server builds for this storage.
    Blocking, like every backend: construct, call and close it from threads.
    """

    def __init__(self, dialect: Dialect, connections: Connections, *, max_threads: int = 4) -> None:
        self.dialect = dialect
        self.connections = connections
        self.max_threads = max_threads
        self.tables = Tables(dialect, connections)
        self.queue = SqlQueue(self.tables)
        self.schedules = SqlSchedules(self.tables, self.insert_workflow)
        try:
            self.tables.create_schema()
            self.schedules.create_schema()
        except BaseException:
            connections.close()
            raise

    def _tx(self) -> AbstractContextManager[Tx]:
        # One transaction, for tests that plant rows as an older version left them.
        return self.tables.tx()

    # -- plumbing -----------------------------------------------------------------------------
    def close(self) -> None:
        self.connections.close()

    def check(self) -> None:
        if self.connections.closed:
            raise RuntimeError("storage is closed")
        self.connections.check()

    def meta_setdefault(self, key: str, value: str) -> str:
        # Two servers starting together both find no row: let the database pick the winner.
        with self.tables.tx() as db:
            db.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))
            row = db.one("SELECT value FROM meta WHERE key = ?", (key,))
        assert row is not None
        return str(row[0])

    def meta_take(self, key: str) -> str | None:
        with self.tables.tx() as db:
            row = db.one("SELECT value FROM meta WHERE key = ?", (key,))
            db.exec("DELETE FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def bind_worker(self, worker_id: str, client_id: str) -> str:
        with self.tables.tx() as db:
            db.exec(
                "INSERT INTO workers (worker_id, client_id) VALUES (?, ?) ON CONFLICT (worker_id) DO NOTHING",
                (worker_id, client_id),
            )
            row = db.one("SELECT client_id FROM workers WHERE worker_id = ?", (worker_id,))
        assert row is not None
        return str(row[0])

    def worker_client(self, worker_id: str) -> str | None:
        with self.tables.tx() as db:
            row = db.one("SELECT client_id FROM workers WHERE worker_id = ?", (worker_id,))
        return None if row is None else str(row[0])

    # -- the activity queue: its own component ------------------------------------------------
    def claim(self, worker: str, worker_id: str, max_activities: int, now: float) -> list[PendingActivity]:
        return self.queue.claim(worker, worker_id, max_activities, now)

    def heartbeat(self, activity_id: str, worker_id: str, now: float) -> float:
        return self.queue.heartbeat(activity_id, worker_id, now)

    def complete(
        self,
        activity_id: str,
        worker_id: str,
        output: dict[str, Any],
        cost_usd: float,
        usage: list[dict[str, Any]] | None,
        now: float,
    ) -> list[str]:
        return self.queue.complete(activity_id, worker_id, output, cost_usd, usage, now)

    def fail(
        self,
        activity_id: str,
        worker_id: str,
        error: dict[str, Any],
        cost_usd: float,
        usage: list[dict[str, Any]] | None,
        now: float,
    ) -> bool:
        return self.queue.fail(activity_id, worker_id, error, cost_usd, usage, now)

    def run_batch(self, calls: Sequence[StorageCall]) -> list[outcome.Outcome[Any]]:
        """One transaction for every call (see :meth:`~._tables.Tables.run_batch`);
        on Postgres in the order of their rows' locks (:meth:`~._queue.SqlQueue.lock_order`)."""
        unknown = {c.method for c in calls} - BATCHABLE
        if unknown:
            raise ValueError(f"run_batch runs {sorted(BATCHABLE)}, not {sorted(unknown)}")
        if len(calls) < 2:  # nothing to share
            return run_each(self, calls)
        fns = [functools.partial(getattr(self, c.method), *c.args) for c in calls]
        order = None if not self.dialect.for_update else functools.partial(self.queue.lock_order, calls=calls)
        return self.tables.run_batch(fns, order)

    def sweep(self, now: float) -> int:
        return self.queue.sweep(now)

    def cancel_workflow(self, workflow_id: str, now: float) -> WorkflowRow:
        return self.queue.cancel(workflow_id, now)

    def next_wait_deadline(self) -> float | None:
        return self.queue.next_wait_deadline()

    def expire_waits(self, now: float) -> int:
        return self.queue.expire_waits(now)

    # -- definitions --------------------------------------------------------------------------
    def put_definition(self, definition: Definition, now: float) -> PutDefinitionResult:
        # Two writers storing one name at once (Postgres; SQLite has one writer) both pick
        # version N+1 and the primary key rejects the later. Running it again sees the winner's
        # row and answers as a serial run would (unchanged, or N+2). Each rejection means
        # another writer committed, so this ends; the bound only guards against a bug.
        for _ in range(_PUT_DEFINITION_ATTEMPTS - 1):
            try:
                return self._put_definition(definition, now)
            except self.dialect.integrity_errors:
                continue
        return self._put_definition(definition, now)

    def _put_definition(self, definition: Definition, now: float) -> PutDefinitionResult:
        body = canonical_json(definition_body(definition))
        with self.tables.tx() as db:
            latest = db.one(
                "SELECT version, body, created_at FROM definitions WHERE name = ? ORDER BY version DESC LIMIT 1",
                (definition.name,),
            )
            # A body stored by this version is canonical already: equal text is the usual answer.
            if latest is not None and (latest[1] == body or canonical_json(loads(latest[1])) == body):
                return PutDefinitionResult(definition.name, int(latest[0]), float(latest[2]), unchanged=True)
            version = 1 if latest is None else int(latest[0]) + 1
            db.exec(
                "INSERT INTO definitions (name, version, body, activity_count, created_at) VALUES (?, ?, ?, ?, ?)",
                (definition.name, version, body, len(definition.activities), now),
            )
        return PutDefinitionResult(definition.name, version, now, unchanged=False)

    def list_definitions(self) -> list[DefinitionSummary]:
        with self.tables.tx() as db:
            rows = db.all(
                "SELECT d.name, d.version, d.activity_count, d.created_at FROM definitions d "
                "WHERE d.version = (SELECT MAX(version) FROM definitions e WHERE e.name = d.name) "
                "ORDER BY d.name"
            )
        return [DefinitionSummary(r[0], int(r[1]), int(r[2]), float(r[3])) for r in rows]

    def definition_versions(self, name: str) -> list[DefinitionSummary]:
        with self.tables.tx() as db:
            rows = db.all(
                "SELECT name, version, activity_count, created_at FROM definitions WHERE name = ? "
                "ORDER BY version",
                (name,),
            )
        if not rows:
            raise NotFound(f"workflow definition {name!r} not found")
        return [DefinitionSummary(r[0], int(r[1]), int(r[2]), float(r[3])) for r in rows]

    def get_definition(self, name: str, version: int | None = None) -> StoredDefinition:
        with self.tables.tx() as db:
            return self._get_definition(db, name, version)

    def _get_definition(self, db: Tx, name: str, version: int | None) -> StoredDefinition:
        if version is None:
            row = db.one(
                "SELECT version, created_at FROM definitions WHERE name = ? ORDER BY version DESC LIMIT 1",
                (name,),
            )
        else:
            row = db.one(
                "SELECT version, created_at FROM definitions WHERE name = ? AND version = ?", (name, version)
            )
        if row is None:
            which = f"{name!r}" + ("" if version is None else f" version {version}")
            raise NotFound(f"workflow definition {which} not found")
        return StoredDefinition(self.tables.definition(db, name, int(row[0])), int(row[0]), float(row[1]))

    def create_workflow(
        self,
        definition_name: str,
        version: int | None,
        input: dict[str, Any],
        unique_key: str | None,
        now: float,
    ) -> WorkflowRow:
        with self.tables.tx() as db:
            return self.insert_workflow(db, definition_name, version, input, unique_key, now)

    def insert_workflow(
        self,
        db: Tx,
        definition_name: str,
        version: int | None,
        input: dict[str, Any],
        unique_key: str | None,
        now: float,
    ) -> WorkflowRow:
        """:meth:`create_workflow` inside the caller's transaction (a schedule firing)."""
        stored = self._get_definition(db, definition_name, version)
        if unique_key is not None:
            existing = db.one("SELECT id FROM workflows WHERE unique_key = ?", (unique_key,))
            if existing is not None:
                raise Conflict(
                    f"a workflow with unique_key {unique_key!r} already exists: {existing[0]}",
                    details={"workflow_id": existing[0]},
                )
        workflow = WorkflowRow(
            id=str(uuid.uuid4()),
            definition_name=definition_name,
            definition_version=stored.version,
            status=WorkflowStatus.CREATED,
            input=input,
            created_at=now,
            updated_at=now,
            unique_key=unique_key,
        )
        rows = rules.new_activities(workflow, stored.definition)
        advanced, rows = rules.advance(workflow, stored.definition, rows, now)
        plan = self.tables.plan(db, definition_name, stored.version)
        try:
            db.exec(
                f"INSERT INTO workflows ({WORKFLOW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                workflow_values(advanced),
            )
        except self.dialect.integrity_errors as exc:  # a concurrent submit won the unique_key
            raise Conflict(f"a workflow with unique_key {unique_key!r} already exists") from exc
        db.many(INSERT_ACTIVITY, [activity_values(row) for row in rules.waiting_counts(plan, rows)])
        return workflow

    def list_workflows(
        self,
        *,
        status: str | None,
        definition_name: str | None,
        limit: int,
        offset: int,
        created_after: float | None = None,
        created_before: float | None = None,
    ) -> WorkflowPage:
        where: list[str] = []
        params: list[Any] = []
        if created_after is not None:
            where.append("created_at > ?")
            params.append(created_after)
        if created_before is not None:
            where.append("created_at < ?")
            params.append(created_before)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if definition_name is not None:
            where.append("definition_name = ?")
            params.append(definition_name)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self.tables.tx() as db:
            total = db.one(f"SELECT COUNT(*) FROM workflows{clause}", params)
            rows = db.all(
                f"SELECT {WORKFLOW_COLUMNS} FROM workflows{clause} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
        # A listing shows no input (and a client polls it for a run's status): shared, not decoded again
        page = [row_to_workflow(r, shared_input=True) for r in rows]
        return WorkflowPage(page, int(total[0]) if total else 0)

    def get_workflow(self, workflow_id: str) -> tuple[WorkflowRow, list[ActivityRow]]:
        with self.tables.tx() as db:
            return self.tables.load(db, workflow_id)

    def signal(
        self, workflow_id: str, activity_key: str, event_name: str, data: dict[str, Any] | None, now: float
    ) -> str:
        with self.tables.tx() as db:
            workflow = self.tables.workflow(db, workflow_id, lock=True)
            found = self.tables.rows(db, workflow_id, [activity_key])
            if not found:
                raise NotFound(f"workflow {workflow_id} has no activity {activity_key!r}")
            row = found[0]
            definition = self.tables.definition(db, workflow.definition_name, workflow.definition_version)
            spec = definition.activity(activity_key)
            expected = rules.signal_wait(spec.settings)
            if expected is None:
                raise BadRequest(f"activity {activity_key!r} does not wait for a signal")
            if expected.event_name is not None and expected.event_name != event_name:
                raise BadRequest(
                    f"activity {activity_key!r} waits for event {expected.event_name!r}, not {event_name!r}"
                )
            if row.signal_data is not None or row.status not in (S.NOT_SCHEDULED, S.WAITING):
                raise Conflict(f"activity {activity_key!r} was already signalled or is {row.status.value}")
            # The worker sees the signal's data as ``signal_data`` (the original SDK's ctx.signal),
            # templates as SIGNAL: the parameters of a waiting row are rendered now.
            new_row = attrs.evolve(row, signal_data=data if data is not None else {})
            if row.status is S.WAITING:
                plan = self.tables.plan(db, workflow.definition_name, workflow.definition_version)
                reads = self.tables.rows(db, workflow_id, plan.reads[activity_key])
                ctx = rules.template_context(workflow, reads, plan.definition)
                new_row = rules.start_row(spec, new_row, ctx, now)
            self.tables.write(db, [new_row])
            if new_row.status is S.FAILED:
                self.queue.fail_workflow(db, workflow, new_row, now)
        if row.status is S.WAITING:
            return f"activity {activity_key!r} resumed by event {event_name!r}"
        return (
            f"signal {event_name!r} stored; activity {activity_key!r} will start when its dependencies finish"
        )

    # -- files --------------------------------------------------------------------------------
    def activity_exists(self, workflow_id: str, activity_key: str) -> bool:
        with self.tables.tx() as db:
            row = db.one(
                "SELECT 1 FROM activities WHERE workflow_id = ? AND activity_key = ?",
                (workflow_id, activity_key),
            )
        return row is not None

    def activity_claim(self, workflow_id: str, activity_key: str) -> tuple[ActivityStatus, str | None] | None:
        with self.tables.tx() as db:
            row = db.one(
                "SELECT status, claimed_by FROM activities WHERE workflow_id = ? AND activity_key = ?",
                (workflow_id, activity_key),
            )
        return None if row is None else (ActivityStatus(row[0]), row[1])

    def put_file(self, record: FileRecord) -> None:
        # One statement: an UPDATE-then-INSERT races when two uploads of one new file meet.
        with self.tables.tx() as db:
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

    def get_file(self, workflow_id: str, activity_key: str, filename: str) -> FileRecord:
        with self.tables.tx() as db:
            row = db.one(
                "SELECT size, content_type, created_at FROM files "
                "WHERE workflow_id = ? AND activity_key = ? AND filename = ?",
                (workflow_id, activity_key, filename),
            )
        if row is None:
            raise NotFound(
                f"file {filename!r} of activity {activity_key!r} in workflow {workflow_id} not found"
            )
        return FileRecord(workflow_id, activity_key, filename, int(row[0]), row[1], float(row[2]))

    def list_files(self, workflow_id: str, activity_key: str) -> list[FileRecord]:
        with self.tables.tx() as db:
            rows = db.all(
                "SELECT filename, size, content_type, created_at FROM files "
                "WHERE workflow_id = ? AND activity_key = ? ORDER BY filename",
                (workflow_id, activity_key),
            )
        return [FileRecord(workflow_id, activity_key, r[0], int(r[1]), r[2], float(r[3])) for r in rows]

    # -- schedules: their own component -------------------------------------------------------
    def create_schedule(self, new: NewSchedule, now: float) -> ScheduleRow:
        return self.schedules.create(new, now)

    def list_schedules(self) -> list[ScheduleRow]:
        return self.schedules.rows()

    def get_schedule(self, schedule_id: str) -> ScheduleRow:
        return self.schedules.get(schedule_id)

    def update_schedule(self, schedule_id: str, changes: ScheduleChanges, now: float) -> ScheduleRow:
        return self.schedules.update(schedule_id, changes, now)

    def delete_schedule(self, schedule_id: str) -> None:
        self.schedules.delete(schedule_id)

    def next_schedule_due(self) -> float | None:
        return self.schedules.next_due()

    def fire_schedules(self, now: float, limit: int) -> list[ScheduleFire]:
        return self.schedules.fire(now, limit)
