""":class:`SqlStorage`: the :class:`Storage` operations written once in portable SQL.

A backend subclasses it with a :class:`Dialect`, a ``connect()`` and a ``transaction()``
(SQLite: ``BEGIN IMMEDIATE``; Postgres: the driver's transaction). The rules themselves live in
:mod:`._engine`; this module only loads rows, calls the engine and writes back what changed.
"""

from __future__ import annotations

import uuid
from typing import Any

import attrs

from . import _engine as engine
from ._errors import BadRequest, Conflict, NotFound
from ._models import (
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
from ._sqlbase import (
    ACTIVITY_COLUMNS,
    ACTIVITY_MUTABLE,
    INSERT_ACTIVITY,
    UPDATE_ACTIVITY,
    WORKFLOW_COLUMNS,
    SqlBase,
    Tx,
    activity_values,
    loads,
    row_to_activity,
    row_to_workflow,
    workflow_values,
)
from ._wire import canonical_json, definition_body

__all__ = ["SqlStorage"]

S = ActivityStatus


class SqlStorage(SqlBase):
    """The :class:`Storage` operations. Subclasses set ``dialect`` and implement ``connect``/``transaction``."""

    # -- definitions --------------------------------------------------------------------------
    def put_definition(self, definition: Definition, now: float) -> PutDefinitionResult:
        body = canonical_json(definition_body(definition))
        with self._tx() as db:
            latest = db.one(
                "SELECT version, body, created_at FROM definitions WHERE name = ? ORDER BY version DESC LIMIT 1",
                (definition.name,),
            )
            if latest is not None and canonical_json(loads(latest[1])) == body:
                return PutDefinitionResult(definition.name, int(latest[0]), float(latest[2]), unchanged=True)
            version = 1 if latest is None else int(latest[0]) + 1
            db.exec(
                "INSERT INTO definitions (name, version, body, activity_count, created_at) VALUES (?, ?, ?, ?, ?)",
                (definition.name, version, body, len(definition.activities), now),
            )
        return PutDefinitionResult(definition.name, version, now, unchanged=False)

    def list_definitions(self) -> list[DefinitionSummary]:
        with self._tx() as db:
            rows = db.all(
                "SELECT d.name, d.version, d.activity_count, d.created_at FROM definitions d "
                "WHERE d.version = (SELECT MAX(version) FROM definitions e WHERE e.name = d.name) "
                "ORDER BY d.name"
            )
        return [DefinitionSummary(r[0], int(r[1]), int(r[2]), float(r[3])) for r in rows]

    def get_definition(self, name: str, version: int | None = None) -> StoredDefinition:
        with self._tx() as db:
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
        return StoredDefinition(self._definition(db, name, int(row[0])), int(row[0]), float(row[1]))

    def create_workflow(
        self,
        definition_name: str,
        version: int | None,
        input: dict[str, Any],
        unique_key: str | None,
        now: float,
    ) -> WorkflowRow:
        with self._tx() as db:
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
            rows = engine.new_activities(workflow, stored.definition)
            advanced, rows = engine.advance(workflow, stored.definition, rows, now)
            try:
                db.exec(
                    f"INSERT INTO workflows ({WORKFLOW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    workflow_values(advanced),
                )
            except self.dialect.integrity_errors as exc:  # a concurrent submit won the unique_key
                raise Conflict(f"a workflow with unique_key {unique_key!r} already exists") from exc
            for row in rows:
                db.exec(INSERT_ACTIVITY, activity_values(row))
        return workflow

    def list_workflows(
        self, *, status: str | None, definition_name: str | None, limit: int, offset: int
    ) -> WorkflowPage:
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if definition_name is not None:
            where.append("definition_name = ?")
            params.append(definition_name)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._tx() as db:
            total = db.one(f"SELECT COUNT(*) FROM workflows{clause}", params)
            rows = db.all(
                f"SELECT {WORKFLOW_COLUMNS} FROM workflows{clause} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
        return WorkflowPage([row_to_workflow(r) for r in rows], int(total[0]) if total else 0)

    def get_workflow(self, workflow_id: str) -> tuple[WorkflowRow, list[ActivityRow]]:
        with self._tx() as db:
            return self._load(db, workflow_id, lock=False)

    def signal(
        self, workflow_id: str, activity_key: str, event_name: str, data: dict[str, Any] | None, now: float
    ) -> str:
        with self._tx() as db:
            old = self._load(db, workflow_id, lock=True)
            workflow, rows = old
            index = next((i for i, r in enumerate(rows) if r.key == activity_key), None)
            if index is None:
                raise NotFound(f"workflow {workflow_id} has no activity {activity_key!r}")
            definition = self._definition(db, workflow.definition_name, workflow.definition_version)
            expected = (definition.activity(activity_key).settings or {}).get("wait_for_signal")
            if not expected:
                raise BadRequest(f"activity {activity_key!r} does not wait for a signal")
            if isinstance(expected, str) and expected != event_name:
                raise BadRequest(
                    f"activity {activity_key!r} waits for event {expected!r}, not {event_name!r}"
                )
            row = rows[index]
            if row.signal_data is not None or row.status not in (S.NOT_SCHEDULED, S.WAITING):
                raise Conflict(f"activity {activity_key!r} was already signalled or is {row.status.value}")
            # The worker sees the signal's data as ``signal_data`` (the original SDK's ctx.signal).
            new_row = attrs.evolve(row, signal_data=data if data is not None else {})
            if row.status is S.WAITING:
                new_row = attrs.evolve(new_row, status=S.PENDING, scheduled_for=now)
            rows = [*rows[:index], new_row, *rows[index + 1 :]]
            self._save(db, old, (workflow, rows))
        if row.status is S.WAITING:
            return f"activity {activity_key!r} resumed by event {event_name!r}"
        return (
            f"signal {event_name!r} stored; activity {activity_key!r} will start when its dependencies finish"
        )

    # -- the queue ---------------------------------------------------------------------------
    def _expire(self, db: Tx, where: str, params: tuple[Any, ...], now: float) -> int:
        """Fail expired running rows with no retry left (and their workflows)."""
        expired = db.all(
            f"SELECT DISTINCT workflow_id FROM activities WHERE status = 'running' AND claimed_at + lease_seconds < ? "
            f"AND retry_count >= max_retries{where}",
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
            candidates = db.all(
                f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE worker = ? AND ("
                "(status = 'pending' AND scheduled_for <= ?) OR "
                "(status = 'running' AND claimed_at + lease_seconds < ? AND retry_count < max_retries)) "
                f"ORDER BY scheduled_for, id LIMIT ?{self.dialect.skip_locked}",
                (worker, now, now, max_activities),
            )
            claimed = []
            for raw in candidates:
                row = engine.claim_row(row_to_activity(raw), worker_id, now)
                db.exec(UPDATE_ACTIVITY, (*activity_values(row, ACTIVITY_MUTABLE), row.id))
                claimed.append(row)
            for workflow_id in sorted({r.workflow_id for r in claimed}):
                db.exec(
                    "UPDATE workflows SET status = 'running', updated_at = ? WHERE id = ? AND status = 'created'",
                    (now, workflow_id),
                )
            out = []
            for row in claimed:
                wf = db.one(
                    "SELECT definition_name, definition_version FROM workflows WHERE id = ?",
                    (row.workflow_id,),
                )
                assert wf is not None
                out.append(engine.pending_activity(row, self._definition(db, wf[0], int(wf[1]))))
        return out

    def _activity(self, db: Tx, activity_id: str) -> tuple[tuple[WorkflowRow, list[ActivityRow]], int]:
        row = db.one("SELECT workflow_id FROM activities WHERE id = ?", (activity_id,))
        if row is None:
            raise NotFound(f"activity {activity_id} not found")
        loaded = self._load(db, row[0], lock=True)
        index = next(i for i, r in enumerate(loaded[1]) if r.id == activity_id)
        return loaded, index

    def heartbeat(self, activity_id: str, worker_id: str, now: float) -> float:
        with self._tx() as db:
            (workflow, rows), index = self._activity(db, activity_id)
            engine.owned_check(rows[index], worker_id, workflow, "heartbeat")
            db.exec("UPDATE activities SET claimed_at = ? WHERE id = ?", (now, activity_id))
        return rows[index].lease_seconds

    def complete(
        self,
        activity_id: str,
        worker_id: str,
        output: dict[str, Any],
        cost_usd: float,
        usage: list[dict[str, Any]] | None,
        now: float,
    ) -> list[str]:
        with self._tx() as db:
            old, index = self._activity(db, activity_id)
            workflow, rows = old
            row = rows[index]
            if row.status is S.COMPLETED and row.claimed_by == worker_id:
                return ["activity was already completed by this worker; output unchanged"]
            warnings = []
            if (
                workflow.status is WorkflowStatus.FAILED
                and row.status is S.RUNNING
                and row.claimed_by == worker_id
            ):
                warnings.append(f"workflow already failed: {workflow.error_message}")
            else:
                engine.owned_check(row, worker_id, workflow, "complete")
            rows = list(rows)
            rows[index] = engine.complete_row(row, output, cost_usd, usage, now)
            definition = self._definition(db, workflow.definition_name, workflow.definition_version)
            new = engine.advance(workflow, definition, rows, now)
            self._save(db, old, new)
        return warnings

    def fail(
        self,
        activity_id: str,
        worker_id: str,
        error: dict[str, Any],
        cost_usd: float,
        usage: list[dict[str, Any]] | None,
        now: float,
    ) -> bool:
        with self._tx() as db:
            old, index = self._activity(db, activity_id)
            workflow, rows = old
            row = rows[index]
            if row.claimed_by == worker_id and row.error == error:
                if row.status is S.FAILED:
                    return False  # the same report again
                if row.status is S.PENDING:
                    return True
            if not (
                workflow.status is WorkflowStatus.FAILED
                and row.status is S.RUNNING
                and row.claimed_by == worker_id
            ):
                engine.owned_check(row, worker_id, workflow, "fail")
            definition = self._definition(db, workflow.definition_name, workflow.definition_version)
            new_row, will_retry = engine.fail_row(row, definition, error, cost_usd, usage, now)
            rows = list(rows)
            rows[index] = new_row
            if will_retry or workflow.status is WorkflowStatus.FAILED:
                new = (workflow, rows)  # requeued; or recorded in a workflow that already failed
            else:
                new = engine.fail_workflow(workflow, rows, new_row, now)
            self._save(db, old, new)
        return will_retry

    def sweep(self, now: float) -> int:
        with self._tx() as db:
            failed = self._expire(db, "", (), now)
            requeued = db.exec(
                "UPDATE activities SET status = 'pending', retry_count = retry_count + 1, claimed_at = NULL "
                "WHERE status = 'running' AND claimed_at + lease_seconds < ? AND retry_count < max_retries",
                (now,),
            )
        return failed + requeued

    # -- files --------------------------------------------------------------------------------
    def activity_exists(self, workflow_id: str, activity_key: str) -> bool:
        with self._tx() as db:
            row = db.one(
                "SELECT 1 FROM activities WHERE workflow_id = ? AND activity_key = ?",
                (workflow_id, activity_key),
            )
        return row is not None

    def put_file(self, record: FileRecord) -> None:
        values = (record.size, record.content_type, record.created_at)
        keys = (record.workflow_id, record.activity_key, record.filename)
        with self._tx() as db:
            updated = db.exec(
                "UPDATE files SET size = ?, content_type = ?, created_at = ? "
                "WHERE workflow_id = ? AND activity_key = ? AND filename = ?",
                (*values, *keys),
            )
            if not updated:
                db.exec(
                    "INSERT INTO files (workflow_id, activity_key, filename, size, content_type, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (*keys, *values),
                )

    def get_file(self, workflow_id: str, activity_key: str, filename: str) -> FileRecord:
        with self._tx() as db:
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
        with self._tx() as db:
            rows = db.all(
                "SELECT filename, size, content_type, created_at FROM files "
                "WHERE workflow_id = ? AND activity_key = ? ORDER BY filename",
                (workflow_id, activity_key),
            )
        return [FileRecord(workflow_id, activity_key, r[0], int(r[1]), r[2], float(r[3])) for r in rows]
