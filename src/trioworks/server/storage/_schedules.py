""":class:`SqlSchedules`: the ``workflow_schedules`` table and the firing of due schedules.

A component of :class:`~._sql.SqlStorage` (as :class:`~._queue.SqlQueue` is), over the same
:class:`~._tables.Tables`. The table is the original Kruxia Flow's (migration
``20260719000003_workflow_schedules``), with times as POSIX seconds like every table here.

Firing (:meth:`SqlSchedules.fire`) is one transaction per batch: it reads the due rows
(Postgres: ``FOR UPDATE SKIP LOCKED``, so another server's tick passes them by), claims each
occurrence with a conditional ``UPDATE ... WHERE next_run_at = <the occurrence read>`` (exactly
one server or tick wins it, on SQLite too), and creates the run in that same transaction with
``unique_key = schedule:<name>:<occurrence epoch>``. The run and the advance commit together or
not at all: a crash or restart neither loses a due occurrence nor fires one twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from .. import rules
from .._errors import Conflict, NotFound, ServerError, ValidationFailed
from .._models import WorkflowRow, WorkflowStatus
from .._schedules import NewSchedule, ScheduleChanges, ScheduleFire, ScheduleRow
from ..rules import Cadence, cadence_errors, next_occurrence
from ._dialect import Dialect, Tx
from ._rows import dumps, loads
from ._tables import Tables

__all__ = ["SCHEDULE_COLUMNS", "InsertWorkflow", "SqlSchedules", "schedule_schema"]

logger = logging.getLogger("trioworks.server")

SCHEDULE_COLUMNS = (
    "id, name, definition_name, definition_version, input, cron, timezone, interval_seconds, "
    "overlap_policy, enabled, next_run_at, last_run_at, last_workflow_id, created_by, created_at, updated_at"
)
_ACTIVE = (WorkflowStatus.CREATED.value, WorkflowStatus.RUNNING.value)

InsertWorkflow = Callable[[Tx, str, int | None, dict[str, Any], str | None, float], WorkflowRow]
"""``SqlStorage.insert_workflow``: create a run inside the caller's transaction."""


def schedule_schema(dialect: Dialect) -> list[str]:
    """``CREATE ... IF NOT EXISTS`` of the schedules table (idempotent)."""
    f = dialect.float_type
    return [
        f"""CREATE TABLE IF NOT EXISTS workflow_schedules (
            id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, definition_name TEXT NOT NULL,
            definition_version INTEGER, input TEXT NOT NULL, cron TEXT, timezone TEXT,
            interval_seconds INTEGER, overlap_policy TEXT NOT NULL, enabled INTEGER NOT NULL,
            next_run_at {f} NOT NULL, last_run_at {f}, last_workflow_id TEXT, created_by TEXT,
            created_at {f} NOT NULL, updated_at {f} NOT NULL)""",
        # A tick reads the enabled rows by next_run_at (the earliest, then the due ones).
        "CREATE INDEX IF NOT EXISTS workflow_schedules_due ON workflow_schedules (next_run_at) WHERE enabled = 1",
    ]


def _row(r: Sequence[Any]) -> ScheduleRow:
    return ScheduleRow(
        id=r[0],
        name=r[1],
        definition_name=r[2],
        definition_version=None if r[3] is None else int(r[3]),
        input=loads(r[4]),
        cadence=Cadence(r[5], r[6], None if r[7] is None else int(r[7])),
        overlap_policy=r[8],
        enabled=bool(r[9]),
        next_run_at=float(r[10]),
        last_run_at=None if r[11] is None else float(r[11]),
        last_workflow_id=r[12],
        created_by=r[13],
        created_at=float(r[14]),
        updated_at=float(r[15]),
    )


def _checked(cadence: Cadence, now: float) -> None:
    errors = cadence_errors(cadence, now)
    if errors:
        raise ValidationFailed({field: [message] for field, message in errors.items()})


class SqlSchedules:
    """Schedules over ``tables``; ``insert_workflow`` creates a run in a given transaction."""

    def __init__(self, tables: Tables, insert_workflow: InsertWorkflow) -> None:
        self.tables = tables
        self.insert_workflow = insert_workflow

    def create_schema(self) -> None:
        with self.tables.tx() as db:
            if self.tables.dialect.schema_lock:
                db.exec(self.tables.dialect.schema_lock)
            for statement in schedule_schema(self.tables.dialect):
                db.exec(statement)

    def _get(self, db: Tx, schedule_id: str, *, lock: bool = False) -> ScheduleRow:
        suffix = self.tables.dialect.for_update if lock else ""
        row = db.one(
            f"SELECT {SCHEDULE_COLUMNS} FROM workflow_schedules WHERE id = ?{suffix}", (schedule_id,)
        )
        if row is None:
            raise NotFound(f"schedule {schedule_id} not found")
        return _row(row)

    # -- CRUD ---------------------------------------------------------------------------------
    def create(self, new: NewSchedule, now: float) -> ScheduleRow:
        _checked(new.cadence, now)
        # The first interval occurrence is one period after creation; cron's next match.
        next_run_at = next_occurrence(new.cadence, now, now)
        schedule = ScheduleRow(
            id=str(uuid.uuid4()),
            name=new.name,
            definition_name=new.definition_name,
            definition_version=new.definition_version,
            input=new.input,
            cadence=new.cadence,
            overlap_policy=new.overlap_policy,
            enabled=new.enabled,
            next_run_at=next_run_at,
            last_run_at=None,
            last_workflow_id=None,
            created_by=new.created_by,
            created_at=now,
            updated_at=now,
        )
        with self.tables.tx() as db:
            if db.one("SELECT id FROM workflow_schedules WHERE name = ?", (new.name,)) is not None:
                raise Conflict(f"schedule name {new.name!r} already exists")
            try:
                db.exec(
                    f"INSERT INTO workflow_schedules ({SCHEDULE_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        schedule.id,
                        schedule.name,
                        schedule.definition_name,
                        schedule.definition_version,
                        dumps(schedule.input),
                        schedule.cadence.cron,
                        schedule.cadence.timezone,
                        schedule.cadence.interval_seconds,
                        schedule.overlap_policy,
                        int(schedule.enabled),
                        schedule.next_run_at,
                        None,
                        None,
                        schedule.created_by,
                        now,
                        now,
                    ),
                )
            except self.tables.dialect.integrity_errors as exc:  # a concurrent create won the name
                raise Conflict(f"schedule name {new.name!r} already exists") from exc
        return schedule

    def rows(self) -> list[ScheduleRow]:
        with self.tables.tx() as db:
            rows = db.all(f"SELECT {SCHEDULE_COLUMNS} FROM workflow_schedules ORDER BY name")
        return [_row(r) for r in rows]

    def get(self, schedule_id: str) -> ScheduleRow:
        with self.tables.tx() as db:
            return self._get(db, schedule_id)

    def update(self, schedule_id: str, changes: ScheduleChanges, now: float) -> ScheduleRow:
        with self.tables.tx() as db:
            current = self._get(db, schedule_id, lock=True)
            cadence = changes.cadence(current.cadence)
            _checked(cadence, now)
            enabled = current.enabled if changes.enabled is None else changes.enabled
            next_run_at = current.next_run_at
            if changes.changes_cadence or (enabled and not current.enabled):
                next_run_at = next_occurrence(cadence, now, now)
            db.exec(
                "UPDATE workflow_schedules SET input = ?, cron = ?, timezone = ?, interval_seconds = ?, "
                "overlap_policy = ?, enabled = ?, next_run_at = ?, updated_at = ? WHERE id = ?",
                (
                    dumps(current.input if changes.input is None else changes.input),
                    cadence.cron,
                    cadence.timezone,
                    cadence.interval_seconds,
                    changes.overlap_policy or current.overlap_policy,
                    int(enabled),
                    next_run_at,
                    now,
                    schedule_id,
                ),
            )
            return self._get(db, schedule_id)

    def delete(self, schedule_id: str) -> None:
        with self.tables.tx() as db:
            if not db.exec("DELETE FROM workflow_schedules WHERE id = ?", (schedule_id,)):
                raise NotFound(f"schedule {schedule_id} not found")

    # -- firing -------------------------------------------------------------------------------
    def next_due(self) -> float | None:
        """The earliest ``next_run_at`` of an enabled schedule; None if there is none."""
        with self.tables.tx() as db:
            row = db.one("SELECT MIN(next_run_at) FROM workflow_schedules WHERE enabled = 1")
        return None if row is None or row[0] is None else float(row[0])

    def fire(self, now: float, limit: int) -> list[ScheduleFire]:
        """Fire up to ``limit`` schedules due by ``now``, earliest first; what each did.

        Each due occurrence fires once (missed ones while the server was down collapse into
        this one run) and ``next_run_at`` moves to the first occurrence after ``now``. With
        ``overlap_policy: skip`` no run starts while the previous run is created or running;
        a submission that fails (definition deleted, input it now requires) is reported and
        the schedule still advances, so a broken schedule does not fire every tick.
        """
        fires: list[ScheduleFire] = []
        with self.tables.tx() as db:
            due = db.all(
                f"SELECT {SCHEDULE_COLUMNS} FROM workflow_schedules WHERE enabled = 1 AND next_run_at <= ? "
                f"ORDER BY next_run_at LIMIT ?{self.tables.dialect.skip_locked}",
                (now, limit),
            )
            for schedule in map(_row, due):
                fire = self._fire_one(db, schedule, now)
                if fire is not None:
                    fires.append(fire)
        return fires

    def _fire_one(self, db: Tx, schedule: ScheduleRow, now: float) -> ScheduleFire | None:
        occurrence = schedule.next_run_at
        try:
            following = next_occurrence(schedule.cadence, occurrence, now)
        except ValueError as exc:  # checked when stored: the timezone database changed since
            logger.error("schedule %r disabled: its cadence no longer computes (%s)", schedule.name, exc)
            db.exec(
                "UPDATE workflow_schedules SET enabled = 0, updated_at = ? WHERE id = ?", (now, schedule.id)
            )
            return ScheduleFire(schedule.id, schedule.name, occurrence, None, "error", str(exc))
        # The claim: only the tick that read this occurrence moves it on (another server's tick,
        # or one that read the row before a PATCH, updates nothing and fires nothing).
        claimed = db.exec(
            "UPDATE workflow_schedules SET next_run_at = ?, updated_at = ? "
            "WHERE id = ? AND next_run_at = ? AND enabled = 1",
            (following, now, schedule.id, occurrence),
        )
        if not claimed:
            return None
        if schedule.overlap_policy == "skip" and schedule.last_workflow_id is not None:
            previous = db.one("SELECT status FROM workflows WHERE id = ?", (schedule.last_workflow_id,))
            if previous is not None and previous[0] in _ACTIVE:
                return ScheduleFire(schedule.id, schedule.name, occurrence, None, "overlap")
        key = f"schedule:{schedule.name}:{int(occurrence)}"
        # A savepoint around the run: a refused one (even by the database, e.g. a unique_key
        # taken meanwhile) is undone alone, and the claim above still commits, so one broken
        # schedule cannot roll the batch back and be read as due again at once.
        refused: tuple[type[BaseException], ...] = (ServerError, *self.tables.dialect.integrity_errors)
        db.exec("SAVEPOINT schedule_run")
        try:
            workflow = self._submit(db, schedule, key, now)
        except refused as exc:
            db.exec("ROLLBACK TO SAVEPOINT schedule_run")
            if isinstance(exc, Conflict):  # a run of this occurrence exists (submitted with its key)
                return ScheduleFire(schedule.id, schedule.name, occurrence, None, "duplicate")
            message = exc.message if isinstance(exc, ServerError) else str(exc)
            logger.warning("schedule %r did not fire: %s", schedule.name, message)
            return ScheduleFire(schedule.id, schedule.name, occurrence, None, "error", message)
        db.exec("RELEASE SAVEPOINT schedule_run")
        db.exec(
            "UPDATE workflow_schedules SET last_run_at = ?, last_workflow_id = ? WHERE id = ?",
            (now, workflow.id, schedule.id),
        )
        return ScheduleFire(schedule.id, schedule.name, occurrence, workflow.id)

    def _submit(self, db: Tx, schedule: ScheduleRow, key: str, now: float) -> WorkflowRow:
        name, version = schedule.definition_name, schedule.definition_version
        definition = self.tables.definition(db, name, version) if version is not None else None
        if definition is None:
            latest = db.one("SELECT MAX(version) FROM definitions WHERE name = ?", (name,))
            if latest is None or latest[0] is None:
                raise NotFound(f"workflow definition {name!r} not found")
            definition = self.tables.definition(db, name, int(latest[0]))
        missing = rules.missing_inputs(definition, schedule.input)
        if missing:
            raise ValidationFailed({f"input.{k}": ["required"] for k in sorted(missing)})
        return self.insert_workflow(db, name, version, schedule.input, key, now)
