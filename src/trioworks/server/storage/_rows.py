"""Rows and schema of the SQL backends: column lists, row <-> model mapping, the ``CREATE``
statements, and the shared ``UPDATE``/``INSERT`` texts.

JSON is stored as TEXT so that SQLite and Postgres read it back the same way.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .._models import ActivityRow, ActivityStatus, WorkflowRow, WorkflowStatus
from ._dialect import Dialect

__all__ = [
    "ACTIVITY_COLUMNS",
    "ACTIVITY_MUTABLE",
    "CLAIMED_COLUMNS",
    "COMPLETED_COLUMNS",
    "INSERT_ACTIVITY",
    "UPDATE_ACTIVITY",
    "UPDATE_WORKFLOW",
    "WORKFLOW_COLUMNS",
    "activity_values",
    "dumps",
    "loads",
    "marks",
    "row_to_activity",
    "row_to_workflow",
    "schema",
    "workflow_values",
]


def marks(count: int) -> str:
    """``?, ?, ?`` for an ``IN (...)`` of ``count`` values."""
    return ", ".join("?" * count)


def dumps(value: Any) -> str | None:
    # allow_nan=False: a value no response could carry is refused on the way in (the request
    # fails and rolls back) instead of stored to fail every later read of it.
    return None if value is None else json.dumps(value, separators=(",", ":"), allow_nan=False)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


WORKFLOW_COLUMNS = "id, definition_name, definition_version, status, input, created_at, updated_at, unique_key, error_message"


# Decoded inputs of the last workflows that completed activities: workflow id -> (text, value).
# A DAG run's input holds every node's static parameters and was decoded again on every
# completion (a tenth of the server's CPU per node on a 1,000-node graph). A short input is
# cheaper to decode than to look up, and would only push the large ones out.
_INPUTS: dict[str, tuple[str, Any]] = {}
_INPUTS_KEPT = 256  # workflows
_INPUTS_CHARS = 2**24  # of input text in all: a few large inputs are not kept
_INPUTS_SHORT = 512  # chars: decoded every time
_INPUTS_LOCK = threading.Lock()
_inputs_chars = 0  # the text kept in _INPUTS, under _INPUTS_LOCK


def _shared_input(workflow_id: str, text: str) -> Any:
    global _inputs_chars
    if len(text) < _INPUTS_SHORT:
        return loads(text)
    with _INPUTS_LOCK:
        found = _INPUTS.get(workflow_id)
    if found is not None and found[0] == text:
        return found[1]
    value = loads(text)
    with _INPUTS_LOCK:
        old = _INPUTS.pop(workflow_id, None)
        _inputs_chars += len(text) - (0 if old is None else len(old[0]))
        _INPUTS[workflow_id] = (text, value)
        while len(_INPUTS) > _INPUTS_KEPT or _inputs_chars > _INPUTS_CHARS:
            _inputs_chars -= len(_INPUTS.pop(next(iter(_INPUTS)))[0])
    return value


def row_to_workflow(r: Sequence[Any], *, shared_input: bool = False) -> WorkflowRow:
    """The workflow of a row of ``WORKFLOW_COLUMNS``.

    ``shared_input``: the input may be an object other rows share (decoded once per workflow, then
    found by comparing the stored text), for callers that only read it (scheduling's templates).
    """
    return WorkflowRow(
        id=r[0],
        definition_name=r[1],
        definition_version=int(r[2]),
        status=WorkflowStatus(r[3]),
        input=_shared_input(r[0], r[4]) if shared_input else loads(r[4]),
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
_JSON_FIELDS = frozenset({"parameters", "output", "error", "usage", "signal_data", "history"})
ACTIVITY_COLUMNS = ", ".join(name if name != "key" else "activity_key" for name in _ACTIVITY_FIELDS)
ACTIVITY_MUTABLE = tuple(
    n
    for n in _ACTIVITY_FIELDS
    if n not in ("id", "workflow_id", "key", "position", "worker", "activity_name")
)

# The columns rules.claim_row and rules.complete_row change (tests/server/test_storage_columns.py
# checks it): a claim and a completion write only these, not every mutable column with its JSON
# (parameters) encoded again, which was a fifth of a completion's CPU in the storage.
CLAIMED_COLUMNS = ("status", "claimed_by", "claimed_at", "started_at", "retry_count")
COMPLETED_COLUMNS = ("status", "output", "cost_usd", "usage", "completed_at", "error")

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
            waiting_for INTEGER NOT NULL DEFAULT 0, iteration INTEGER NOT NULL DEFAULT 0,
            history TEXT, UNIQUE (workflow_id, activity_key))""",
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
        # Signal timeouts: a waiting row's scheduled_for is its deadline (the server's timer
        # reads the earliest one).
        "CREATE INDEX IF NOT EXISTS activities_waiting ON activities (scheduled_for) WHERE status = 'waiting'",
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
