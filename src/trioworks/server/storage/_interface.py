"""The storage interface every backend implements (SQLite here, Postgres alongside).

Every method is **synchronous and one transaction**: it either applies all its changes or none
(a method that raises a :class:`~trioworks.server.ServerError` has changed nothing). The server
calls them only through :func:`trioworks.core.run_in_thread` on the storage's own
``CapacityLimiter``, never on the Trio loop. ``now`` is always passed in (POSIX seconds from the
server's injectable clock), so that lease and retry tests run on virtual time.

:meth:`Storage.run_batch` runs several queue calls (claim, complete, fail) together, each
answering exactly as it would alone: the server gathers the calls that arrive while a storage
call is in flight (:class:`trioworks.core.ThreadBatcher`). The SQL backends run them in one
transaction (a call that refuses before writing leaves no trace; anything else starts the batch
over, a transaction per call); :func:`run_each` is the default, one call after the other.

Concurrency contract: two concurrent :meth:`Storage.claim` calls never return the same activity;
changes to one workflow's activities are serialized (SQLite: one writer; Postgres: the workflow
row is locked ``FOR UPDATE`` and claims use ``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import outcome

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
)
from .._schedules import NewSchedule, ScheduleChanges, ScheduleFire, ScheduleRow

__all__ = ["BATCHABLE", "Storage", "StorageCall", "run_each"]

BATCHABLE = frozenset({"claim", "complete", "fail"})
"""The :class:`Storage` methods :meth:`Storage.run_batch` accepts."""


@attrs.frozen
class StorageCall:
    """One call of a :class:`Storage` method, for :meth:`Storage.run_batch`:
    ``getattr(storage, method)(*args)``. ``method`` is one of :data:`BATCHABLE`."""

    method: str
    args: tuple[Any, ...]


def run_each(storage: Storage, calls: Sequence[StorageCall]) -> list[outcome.Outcome[Any]]:
    """The default :meth:`Storage.run_batch`: each call on its own, in order, its outcome captured."""
    return [outcome.capture(getattr(storage, call.method), *call.args) for call in calls]


@runtime_checkable
class Storage(Protocol):
    """Durable state of the reference server. See the module docstring for the contract."""

    max_threads: int
    """How many threads may call this storage at once (the size of its CapacityLimiter)."""

    def close(self) -> None:
        """Release connections. Idempotent."""

    def check(self) -> None:
        """Raise if the database cannot serve a query (readiness probe)."""

    def meta_setdefault(self, key: str, value: str) -> str:
        """The stored value of ``key``, storing ``value`` first if there is none (e.g. JWT secret)."""

    def meta_take(self, key: str) -> str | None:
        """Remove ``key``, returning the value it had (None if none)."""

    def bind_worker(self, worker_id: str, client_id: str) -> str:
        """The client ``worker_id`` belongs to, binding it to ``client_id`` if it is new."""

    def worker_client(self, worker_id: str) -> str | None:
        """The client ``worker_id`` is bound to, or None (never bound: it polled no activity)."""

    # -- definitions --------------------------------------------------------------------
    def put_definition(self, definition: Definition, now: float) -> PutDefinitionResult:
        """Store a new version unless the latest version is identical (``unchanged=True``)."""

    def list_definitions(self) -> list[DefinitionSummary]:
        """The latest version of each definition, by name."""

    def definition_versions(self, name: str) -> list[DefinitionSummary]:
        """Every version of ``name``, oldest first; :exc:`NotFound` if none."""

    def get_definition(self, name: str, version: int | None = None) -> StoredDefinition:
        """Raise :exc:`NotFound` naming the definition (and version)."""

    # -- workflows ----------------------------------------------------------------------
    def create_workflow(
        self,
        definition_name: str,
        version: int | None,
        input: dict[str, Any],
        unique_key: str | None,
        now: float,
    ) -> WorkflowRow:
        """Create a workflow and schedule its root activities. 404 no definition; 409 duplicate key."""

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
        """Newest first; ``created_after`` / ``created_before`` are exclusive bounds.

        A row's ``input`` may be shared with other calls' rows: read it, do not change it.
        """

    def get_workflow(self, workflow_id: str) -> tuple[WorkflowRow, list[ActivityRow]]:
        """The workflow and its activities in definition order; :exc:`NotFound` otherwise."""

    def cancel_workflow(self, workflow_id: str, now: float) -> WorkflowRow:
        """Cancel a created or running workflow; returns its row (cancelled).

        Every activity not completed or skipped is failed with ``WORKFLOW_CANCELLED`` (pending
        rows are never handed out; a running row's heartbeat, completion and failure get 409).
        Idempotent for a cancelled workflow; :exc:`NotFound` unknown id; :exc:`Conflict` naming
        the status of a completed or failed one.
        """

    def signal(
        self, workflow_id: str, activity_key: str, event_name: str, data: dict[str, Any] | None, now: float
    ) -> str:
        """Deliver a signal to a ``wait_for_signal`` activity; returns a message for the caller."""

    # -- the activity queue -------------------------------------------------------------
    def claim(self, worker: str, worker_id: str, max_activities: int, now: float) -> list[PendingActivity]:
        """Claim up to ``max_activities`` rows of ``worker``, oldest ``scheduled_for`` first.

        Claims ``pending`` rows due by ``now`` and steals ``running`` rows whose lease expired
        and that have retries left (``retry_count + 1``); expired rows with no retry left are
        failed on the way (and so is their workflow).
        """

    def heartbeat(self, activity_id: str, worker_id: str, now: float) -> float:
        """Extend the lease (``claimed_at = now``); returns the lease in seconds.

        404 unknown id; 409 unless it is this worker's claim, running, in a workflow not failed.
        """

    def complete(
        self,
        activity_id: str,
        worker_id: str,
        output: dict[str, Any],
        cost_usd: float,
        usage: list[dict[str, Any]] | None,
        now: float,
    ) -> list[str]:
        """Record the output and advance the workflow; returns warnings. Idempotent for the same worker."""

    def fail(
        self,
        activity_id: str,
        worker_id: str,
        error: dict[str, Any],
        cost_usd: float,
        usage: list[dict[str, Any]] | None,
        now: float,
    ) -> bool:
        """Record a failure; returns ``will_retry``. A final failure fails the workflow."""

    def run_batch(self, calls: Sequence[StorageCall]) -> list[outcome.Outcome[Any]]:
        """Run ``calls`` (each one of :data:`BATCHABLE`); one outcome per call, in order.

        Each call returns or raises exactly what it would alone, and a call that raises changes
        nothing (the others are unaffected). The calls may run in any order (as concurrent
        calls would) and together in one transaction. Never raises: an error is its call's.
        """
        return run_each(self, calls)

    def sweep(self, now: float) -> int:
        """Requeue (or fail, with no retry left) every running row whose lease expired; the count."""

    def next_wait_deadline(self) -> float | None:
        """The earliest signal timeout among ``waiting`` rows (POSIX seconds); None if none."""

    def expire_waits(self, now: float) -> int:
        """Apply ``settings.wait_for_signal.on_timeout`` to every waiting row whose timeout
        passed by ``now`` (fail, skip or continue); the count."""

    # -- files --------------------------------------------------------------------------
    def activity_exists(self, workflow_id: str, activity_key: str) -> bool: ...

    def activity_claim(self, workflow_id: str, activity_key: str) -> tuple[ActivityStatus, str | None] | None:
        """The activity's status and ``claimed_by``; None if the workflow has no such activity."""

    def put_file(self, record: FileRecord) -> None:
        """Insert or replace the metadata of one file."""

    def get_file(self, workflow_id: str, activity_key: str, filename: str) -> FileRecord:
        """:exc:`NotFound` naming the file otherwise."""

    def list_files(self, workflow_id: str, activity_key: str) -> list[FileRecord]: ...

    # -- schedules ----------------------------------------------------------------------
    def create_schedule(self, new: NewSchedule, now: float) -> ScheduleRow:
        """Store a schedule; its first ``next_run_at`` is the cadence's first occurrence after
        ``now``. 422 naming the cadence field; 409 if the name exists. The definition is not
        looked up here (the caller checks it)."""

    def list_schedules(self) -> list[ScheduleRow]:
        """Every schedule, by name."""

    def get_schedule(self, schedule_id: str) -> ScheduleRow:
        """:exc:`NotFound` naming the id otherwise."""

    def update_schedule(self, schedule_id: str, changes: ScheduleChanges, now: float) -> ScheduleRow:
        """Apply a PATCH (see :class:`~trioworks.server._schedules.ScheduleChanges`)."""

    def delete_schedule(self, schedule_id: str) -> None:
        """:exc:`NotFound` naming the id otherwise."""

    def next_schedule_due(self) -> float | None:
        """The earliest ``next_run_at`` of an enabled schedule (POSIX seconds); None if none."""

    def fire_schedules(self, now: float, limit: int) -> list[ScheduleFire]:
        """Fire up to ``limit`` schedules due by ``now`` (each occurrence once, across servers)."""
