""":class:`SqlStorage`: the :class:`Storage` operations written once in portable SQL.

A backend subclasses it with a :class:`Dialect`, a ``connect()`` and a ``transaction()``
(SQLite: ``BEGIN IMMEDIATE``; Postgres: the driver's transaction). The rules themselves live in
:mod:`._engine` and :mod:`._progress`; this module (definitions, workflows, signals, files) and
:mod:`._sqlqueue` (the activity queue) only load rows, call the rules and write what changed.
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
    PutDefinitionResult,
    StoredDefinition,
    WorkflowPage,
    WorkflowRow,
    WorkflowStatus,
)
from ._progress import waiting_counts
from ._sqlbase import (
    INSERT_ACTIVITY,
    WORKFLOW_COLUMNS,
    Tx,
    activity_values,
    loads,
    row_to_workflow,
    workflow_values,
)
from ._sqlqueue import SqlQueue
from ._wire import canonical_json, definition_body

__all__ = ["SqlStorage"]

S = ActivityStatus


_PUT_DEFINITION_ATTEMPTS = 50


class SqlStorage(SqlQueue):
    """The :class:`Storage` operations. Subclasses set ``dialect`` and implement ``connect``/``transaction``."""

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
            plan = self._plan(db, definition_name, stored.version)
            try:
                db.exec(
                    f"INSERT INTO workflows ({WORKFLOW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    workflow_values(advanced),
                )
            except self.dialect.integrity_errors as exc:  # a concurrent submit won the unique_key
                raise Conflict(f"a workflow with unique_key {unique_key!r} already exists") from exc
            db.many(INSERT_ACTIVITY, [activity_values(row) for row in waiting_counts(plan, rows)])
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
            return self._load(db, workflow_id)

    def signal(
        self, workflow_id: str, activity_key: str, event_name: str, data: dict[str, Any] | None, now: float
    ) -> str:
        with self._tx() as db:
            workflow = self._workflow(db, workflow_id, lock=True)
            found = self._rows(db, workflow_id, [activity_key])
            if not found:
                raise NotFound(f"workflow {workflow_id} has no activity {activity_key!r}")
            row = found[0]
            definition = self._definition(db, workflow.definition_name, workflow.definition_version)
            expected = (definition.activity(activity_key).settings or {}).get("wait_for_signal")
            if not expected:
                raise BadRequest(f"activity {activity_key!r} does not wait for a signal")
            if isinstance(expected, str) and expected != event_name:
                raise BadRequest(
                    f"activity {activity_key!r} waits for event {expected!r}, not {event_name!r}"
                )
            if row.signal_data is not None or row.status not in (S.NOT_SCHEDULED, S.WAITING):
                raise Conflict(f"activity {activity_key!r} was already signalled or is {row.status.value}")
            # The worker sees the signal's data as ``signal_data`` (the original SDK's ctx.signal).
            new_row = attrs.evolve(row, signal_data=data if data is not None else {})
            if row.status is S.WAITING:
                new_row = attrs.evolve(new_row, status=S.PENDING, scheduled_for=now)
            self._write(db, [new_row])
        if row.status is S.WAITING:
            return f"activity {activity_key!r} resumed by event {event_name!r}"
        return (
            f"signal {event_name!r} stored; activity {activity_key!r} will start when its dependencies finish"
        )

    # -- files --------------------------------------------------------------------------------
    def activity_exists(self, workflow_id: str, activity_key: str) -> bool:
        with self._tx() as db:
            row = db.one(
                "SELECT 1 FROM activities WHERE workflow_id = ? AND activity_key = ?",
                (workflow_id, activity_key),
            )
        return row is not None

    def activity_claim(self, workflow_id: str, activity_key: str) -> tuple[ActivityStatus, str | None] | None:
        with self._tx() as db:
            row = db.one(
                "SELECT status, claimed_by FROM activities WHERE workflow_id = ? AND activity_key = ?",
                (workflow_id, activity_key),
            )
        return None if row is None else (ActivityStatus(row[0]), row[1])

    def put_file(self, record: FileRecord) -> None:
        # One statement: an UPDATE-then-INSERT races when two uploads of one new file meet.
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
