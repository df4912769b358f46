"""The server's data: workflow definitions, workflow and activity rows, file metadata.

All frozen attrs classes. Rows are what a :class:`~trioworks.server.Storage` stores and
returns; times are POSIX seconds (floats) from the server's injectable clock, rendered as
ISO 8601 only at the HTTP edge.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable
from typing import Any, TypeVar, cast

import attrs

__all__ = [
    "ActivityDef",
    "ActivityRow",
    "ActivityStatus",
    "Definition",
    "DefinitionSummary",
    "Dependency",
    "FileRecord",
    "OutputDef",
    "PendingActivity",
    "PutDefinitionResult",
    "RetrySettings",
    "StoredDefinition",
    "WorkflowPage",
    "WorkflowRow",
    "WorkflowStatus",
    "evolve",
]

JSON = Any
DEFAULT_LEASE_SECONDS = 60.0


class WorkflowStatus(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # by POST /api/v1/workflows/{id}/cancel

    @property
    def finished(self) -> bool:
        """Completed, failed or cancelled: nothing of it runs or is scheduled any more."""
        return self in (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED)


class ActivityStatus(enum.StrEnum):
    NOT_SCHEDULED = "not_scheduled"
    WAITING = "waiting"  # ready, but settings.wait_for_signal and no signal yet
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"  # its conditions were all false, or every dependency was skipped

    @property
    def terminal(self) -> bool:
        return self in (ActivityStatus.COMPLETED, ActivityStatus.FAILED, ActivityStatus.SKIPPED)

    @property
    def unclaimed(self) -> bool:
        return self in (ActivityStatus.NOT_SCHEDULED, ActivityStatus.WAITING, ActivityStatus.PENDING)


@attrs.frozen
class Dependency:
    """``activity_key`` must finish first; the dependency holds when all ``conditions`` are true.

    Definitions may give one ``condition`` (the spec) or a list of ``conditions`` (the original
    SDK); both end up here, normalized (see :func:`normalize_condition`).
    """

    activity_key: str
    conditions: tuple[str, ...] = ()
    # A loop's back-edge (set at deploy, see rules/_definitions.py): ignored on the first
    # iteration; when the loop's last activity completes, its conditions decide whether the loop
    # runs again.
    back_edge: bool = False


@attrs.frozen
class OutputDef:
    name: str
    type: str = "value"  # value | file | folder


@attrs.frozen
class ActivityDef:
    key: str
    worker: str
    activity_name: str
    parameters: dict[str, JSON] = attrs.field(factory=dict)
    depends_on: tuple[Dependency, ...] = ()
    outputs: tuple[OutputDef, ...] = ()
    settings: dict[str, JSON] | None = None
    # Loops: outputs kept per iteration (templates see lists); at most this many iterations.
    iteration_scoped: bool = False
    iteration_limit: int | None = None


@attrs.frozen
class Definition:
    name: str
    activities: tuple[ActivityDef, ...]
    description: str | None = None

    def activity(self, key: str) -> ActivityDef:
        for activity in self.activities:
            if activity.key == key:
                return activity
        raise KeyError(key)


@attrs.frozen
class StoredDefinition:
    definition: Definition
    version: int
    created_at: float


@attrs.frozen
class DefinitionSummary:
    name: str
    version: int
    activity_count: int
    created_at: float


@attrs.frozen
class PutDefinitionResult:
    name: str
    version: int
    created_at: float
    unchanged: bool


@attrs.frozen
class RetrySettings:
    """``settings.retry`` of an activity. ``max_attempts=1`` means no retry."""

    max_attempts: int = 1
    strategy: str = "exponential"  # exponential | fixed
    base_seconds: float = 2.0
    factor: float = 2.0
    max_seconds: float = 300.0

    @property
    def max_retries(self) -> int:
        return self.max_attempts - 1

    def backoff(self, retry_number: int) -> float:
        """Delay before retry ``retry_number`` (1 for the first retry)."""
        if self.strategy == "fixed":
            return min(self.base_seconds, self.max_seconds)
        try:
            return min(self.base_seconds * self.factor ** (retry_number - 1), self.max_seconds)
        except OverflowError:  # factor ** n past the largest double: the cap applies anyway
            return self.max_seconds


@attrs.frozen
class WorkflowRow:
    id: str
    definition_name: str
    definition_version: int
    status: WorkflowStatus
    input: dict[str, JSON]
    created_at: float
    updated_at: float
    unique_key: str | None = None
    error_message: str | None = None


@attrs.frozen
class ActivityRow:
    """One activity of one workflow; ``parameters`` are resolved once it is scheduled."""

    id: str
    workflow_id: str
    key: str
    position: int  # order in the definition, for stable listings
    worker: str
    activity_name: str
    status: ActivityStatus
    max_retries: int = 0
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    retry_count: int = 0
    parameters: dict[str, JSON] | None = None
    scheduled_for: float | None = None
    claimed_by: str | None = None
    claimed_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    output: dict[str, JSON] | None = None
    error: dict[str, JSON] | None = None
    cost_usd: float = 0.0
    usage: list[dict[str, JSON]] | None = None
    signal_data: dict[str, JSON] | None = None
    # Bookkeeping for incremental scheduling: how many of its distinct dependencies have not
    # completed or been skipped yet (meaningful while it is not_scheduled).
    waiting_for: int = 0
    # Loops: how many iterations of its loop finished before this one (``ACTIVITY.iteration``),
    # and the outputs of those iterations, by name (iteration-scoped activities only).
    iteration: int = 0
    history: dict[str, list[JSON]] | None = None

    def lease_expired(self, now: float) -> bool:
        return (
            self.status is ActivityStatus.RUNNING
            and self.claimed_at is not None
            and now > self.claimed_at + self.lease_seconds
        )


@attrs.frozen
class PendingActivity:
    """What a poll hands a worker (the spec's ``PendingActivity``)."""

    activity_id: str
    workflow_id: str
    activity_key: str
    worker: str
    activity_name: str
    parameters: dict[str, JSON]
    settings: dict[str, JSON] | None
    timeout_seconds: int | None
    output_definitions: list[OutputDef] | None = None
    signal_data: dict[str, JSON] | None = None


@attrs.frozen
class WorkflowPage:
    workflows: list[WorkflowRow]
    total: int


@attrs.frozen
class FileRecord:
    workflow_id: str
    activity_key: str
    filename: str
    size: int
    content_type: str
    created_at: float


T = TypeVar("T", bound=attrs.AttrsInstance)
# Per class: its fields' values as a tuple (one C call) and each field's position; None for a
# class whose __init__ does not take every field positionally, in order.
_SHAPES: dict[type, tuple[Callable[[Any], tuple[Any, ...]], dict[str, int]] | None] = {}


def _shape(cls: type[T]) -> tuple[Callable[[Any], tuple[Any, ...]], dict[str, int]] | None:
    if cls not in _SHAPES:
        fields = attrs.fields(cls)
        positional = len(fields) > 1 and all(f.init and not f.kw_only and f.alias == f.name for f in fields)
        _SHAPES[cls] = (
            (operator.attrgetter(*(f.name for f in fields)), {f.name: i for i, f in enumerate(fields)})
            if positional
            else None
        )
    return _SHAPES[cls]


def evolve(inst: T, **changes: Any) -> T:
    """:func:`attrs.evolve`, about twice as fast for the row classes that scheduling copies on
    every completion (attrs looks the fields up on every call): same validation, same errors."""
    shape = _shape(type(inst))
    if shape is None or not changes.keys() <= shape[1].keys():
        evolved: T = attrs.evolve(cast(Any, inst), **changes)  # its TypeError names an unknown field
        return evolved
    get, index = shape
    values = list(get(inst))
    for name, value in changes.items():
        values[index[name]] = value
    return type(inst)(*values)
