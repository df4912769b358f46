"""Backend-independent orchestration: pure functions from rows to rows.

A storage backend loads a workflow's rows inside its transaction, calls these functions and
writes back the rows that changed. Nothing here touches a database, a clock or Trio: ``now`` is
passed in, so every rule (scheduling, conditions, skip propagation, retries, leases, workflow
completion and failure) is tested once for every backend.
"""

from __future__ import annotations

import datetime
import decimal
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._errors import Conflict
from .._models import (
    DEFAULT_LEASE_SECONDS,
    ActivityDef,
    ActivityRow,
    ActivityStatus,
    Definition,
    PendingActivity,
    WorkflowRow,
    WorkflowStatus,
    evolve,
)
from ._definitions import retry_settings
from ._templates import TemplateContext, TemplateError, evaluate_condition, render
from ._timing import ScheduleError, add_duration, parse_instant, signal_wait

__all__ = [
    "advance",
    "claim_row",
    "complete_row",
    "expire_row",
    "fail_row",
    "fail_workflow",
    "iteration_outputs",
    "new_activities",
    "next_iteration",
    "owned_check",
    "pending_activity",
    "schedule_row",
    "start_row",
    "undeliverable_row",
    "wait_timeout",
    "workflow_failure",
]

S = ActivityStatus


def new_activities(workflow: WorkflowRow, definition: Definition) -> list[ActivityRow]:
    """One ``not_scheduled`` row per activity of ``definition``; call :func:`advance` next."""
    rows = []
    for position, spec in enumerate(definition.activities):
        timeout = (spec.settings or {}).get("timeout_seconds")
        rows.append(
            ActivityRow(
                id=str(uuid.uuid4()),
                workflow_id=workflow.id,
                key=spec.key,
                position=position,
                worker=spec.worker,
                activity_name=spec.activity_name,
                status=S.NOT_SCHEDULED,
                max_retries=retry_settings(spec.settings).max_retries,
                lease_seconds=float(timeout) if timeout else DEFAULT_LEASE_SECONDS,
            )
        )
    return rows


def _context(workflow: WorkflowRow, rows: Sequence[ActivityRow], definition: Definition) -> TemplateContext:
    return template_context(workflow, rows, definition)


def template_context(
    workflow: WorkflowRow, rows: Iterable[ActivityRow], definition: Definition | None = None
) -> TemplateContext:
    """What the templates of ``workflow`` see, given these rows (any subset of its activities).

    With ``definition``, outputs declared ``type: file`` / ``folder`` are also under
    ``FILE.<key>.<name>`` / ``FOLDER.<key>.<name>``.
    """
    rows = list(rows)
    outputs = {r.key: r.output or {} for r in rows if r.status is S.COMPLETED}
    specs = _specs(definition) if definition is not None else {}
    for r in rows:
        if r.key in specs and specs[r.key].iteration_scoped:
            outputs[r.key] = iteration_outputs(specs[r.key], r)
    statuses = {r.key: r.status.value for r in rows if r.status.terminal}
    started = datetime.datetime.fromtimestamp(workflow.created_at, datetime.UTC).isoformat()
    info = {
        "id": workflow.id,
        "name": workflow.definition_name,
        "version": workflow.definition_version,
        "status": workflow.status.value,
        "created_at": started,
        "started_at": started,
    }
    files: dict[str, dict[str, dict[str, Any]]] = {"FILE": {}, "FOLDER": {}}
    for key, output in outputs.items():
        for out in specs[key].outputs if key in specs else ():
            if out.type in ("file", "folder") and out.name in output:
                files[out.type.upper()].setdefault(key, {})[out.name] = output[out.name]
    return TemplateContext(
        workflow_id=workflow.id,
        input=workflow.input,
        outputs=outputs,
        statuses=statuses,
        workflow=info,
        files=files["FILE"],
        folders=files["FOLDER"],
    )


# The last definitions' activities by key (a definition is immutable; the SQL layer keeps one
# object per stored version): a dict built per completion cost O(activities) each time.
_SPECS: dict[int, tuple[Definition, dict[str, ActivityDef]]] = {}
_SPECS_KEPT = 64


def _specs(definition: Definition) -> Mapping[str, ActivityDef]:
    found = _SPECS.get(id(definition))
    if found is not None and found[0] is definition:
        return found[1]
    specs = {a.key: a for a in definition.activities}
    if len(_SPECS) >= _SPECS_KEPT:
        _SPECS.clear()  # rare (many versions in use); threads may race here harmlessly
    _SPECS[id(definition)] = (definition, specs)
    return specs


def iteration_outputs(spec: ActivityDef, row: ActivityRow) -> dict[str, Any]:
    """What templates see of an iteration-scoped activity: each output name (declared or
    returned) maps to the list of its values, one per finished iteration (empty before the first
    one), and ``status`` to the row's status (as the original)."""
    values: dict[str, list[Any]] = {o.name: [] for o in spec.outputs}
    for name, past in (row.history or {}).items():
        values[name] = list(past)
    if row.status is S.COMPLETED:
        for name, value in (row.output or {}).items():
            values.setdefault(name, []).append(value)
    return {**values, "status": row.status.value}


def next_iteration(row: ActivityRow, scoped: bool) -> ActivityRow:
    """A finished loop body row made ready to run again: ``iteration`` one more, the finished
    iteration's outputs appended to ``history`` when ``scoped``; ``output`` stays (the latest)."""
    history = row.history
    if scoped and row.status is S.COMPLETED:
        history = {name: list(values) for name, values in (row.history or {}).items()}
        for name, value in (row.output or {}).items():
            history.setdefault(name, []).append(value)
    return evolve(
        row,
        status=S.NOT_SCHEDULED,
        iteration=row.iteration + 1,
        history=history,
        retry_count=0,
        parameters=None,
        scheduled_for=None,
        claimed_by=None,
        claimed_at=None,
        started_at=None,
        completed_at=None,
        error=None,
        signal_data=None,
    )


def activity_info(spec: ActivityDef, row: ActivityRow) -> dict[str, Any]:
    """``ACTIVITY``: the current activity's ``iteration``, ``accumulated_cost_usd`` and
    ``remaining_budget_usd`` (decimal strings, as the original; no budget: ``"0.00"``), ``status``."""
    limit = ((spec.settings or {}).get("budget") or {}).get("limit")
    spent = decimal.Decimal(repr(row.cost_usd))
    remaining = "0.00"
    if isinstance(limit, int | float) and not isinstance(limit, bool):
        remaining = _decimal(max(decimal.Decimal(repr(limit)) - spent, decimal.Decimal(0)))
    return {
        "iteration": row.iteration,
        "accumulated_cost_usd": _decimal(spent),
        "remaining_budget_usd": remaining,
        "status": S.PENDING.value,
    }


def _decimal(value: decimal.Decimal) -> str:
    return format(value.normalize(), "f")


def _template_failure(row: ActivityRow, exc: TemplateError, now: float) -> ActivityRow:
    code = "INVALID_SCHEDULE" if isinstance(exc, ScheduleError) else "TEMPLATE_ERROR"
    error = {"code": code, "message": str(exc), "retryable": False}
    return evolve(row, status=S.FAILED, error=error, completed_at=now)


def schedule_row(
    spec: ActivityDef,
    row: ActivityRow,
    by_key: Mapping[str, ActivityRow],
    ctx: TemplateContext | None,
    now: float,
) -> ActivityRow | None:
    """The new state of a ``not_scheduled`` row, or None while its dependencies are unfinished.

    ``ctx`` None: the activity has no template, condition, delay or signal wait
    (:attr:`~._progress.Plan.plain`), so nothing is rendered.

    A row that waits for a signal (none stored yet) becomes ``waiting`` with its parameters
    unrendered (they may read ``SIGNAL``) and ``scheduled_for`` its signal timeout (None: none);
    otherwise :func:`start_row`.
    """
    forward = [d for d in spec.depends_on if not d.back_edge]  # a back-edge is read by progress()
    deps = [by_key[d.activity_key] for d in forward]
    if any(not d.status.terminal or d.status is S.FAILED for d in deps):
        return None  # a failed dependency fails the whole workflow instead
    if deps and all(d.status is S.SKIPPED for d in deps):
        return evolve(row, status=S.SKIPPED, completed_at=now)
    if ctx is None:
        return evolve(row, status=S.PENDING, parameters=spec.parameters, scheduled_for=now)
    conditioned = [d for d in forward if d.conditions]
    try:
        if conditioned and not any(
            all(evaluate_condition(c, ctx) for c in d.conditions) for d in conditioned
        ):
            return evolve(row, status=S.SKIPPED, completed_at=now)
    except TemplateError as exc:
        return _template_failure(row, exc, now)
    wait = signal_wait(spec.settings)
    if wait is not None and row.signal_data is None:
        deadline = None if wait.timeout_seconds is None else now + wait.timeout_seconds
        return evolve(row, status=S.WAITING, scheduled_for=deadline)
    return start_row(spec, row, ctx, now)


def start_row(
    spec: ActivityDef, row: ActivityRow, ctx: TemplateContext, now: float, signal: Any = None
) -> ActivityRow:
    """``row`` made ``pending``: parameters rendered, ``scheduled_for`` its ready time.

    ``SIGNAL`` is ``signal`` or else the row's stored signal data. The ready time is ``now``
    plus ``settings.delay``, or ``settings.scheduled_for`` (a past time: ``now``); both are
    templates rendered here. A template or schedule that does not resolve fails the row.
    """
    ctx = evolve(
        ctx, signal=signal if signal is not None else row.signal_data, activity=activity_info(spec, row)
    )
    try:
        parameters = render(spec.parameters, ctx)
        # As the original: a delay or schedule applies to a loop's first iteration only.
        ready = ready_at(spec.settings, ctx, now) if row.iteration == 0 else now
    except TemplateError as exc:
        return _template_failure(row, exc, now)
    return evolve(row, status=S.PENDING, parameters=parameters, scheduled_for=ready)


def ready_at(settings: Mapping[str, Any] | None, ctx: TemplateContext, now: float) -> float:
    """When an activity that becomes ready at ``now`` may be handed out (see :func:`start_row`)."""
    settings = settings or {}
    if settings.get("delay") is not None:
        return add_duration(now, render(settings["delay"], ctx))
    if settings.get("scheduled_for") is not None:
        return max(now, parse_instant(render(settings["scheduled_for"], ctx)))
    return now


def wait_timeout(spec: ActivityDef, row: ActivityRow, ctx: TemplateContext, now: float) -> ActivityRow:
    """A ``waiting`` row whose signal timeout passed, after its ``on_timeout``: ``fail``
    (failed, ``SIGNAL_TIMEOUT``), ``skip`` (skipped) or ``continue`` (started with ``SIGNAL`` an
    empty map). A row whose wait has no timeout (a database from before timeouts) only loses
    its ``scheduled_for``."""
    wait = signal_wait(spec.settings)
    if wait is None or wait.timeout_seconds is None:
        return evolve(row, scheduled_for=None)
    if wait.on_timeout == "skip":
        return evolve(row, status=S.SKIPPED, completed_at=now)
    if wait.on_timeout == "continue":
        return start_row(spec, row, ctx, now, signal={})
    event = f"signal {wait.event_name!r}" if wait.event_name else "a signal"
    error = {
        "code": "SIGNAL_TIMEOUT",
        "message": f"activity {row.key!r}: {event} not received within {wait.timeout_seconds:g} s",
        "retryable": False,
    }
    return evolve(row, status=S.FAILED, error=error, completed_at=now)


def advance(
    workflow: WorkflowRow, definition: Definition, rows: Sequence[ActivityRow], now: float
) -> tuple[WorkflowRow, list[ActivityRow]]:
    """Schedule every activity whose dependencies are done, propagate skips, settle the workflow.

    Returns the new workflow row and the new list of rows (same order). A workflow that is
    already finished (completed, failed, cancelled) is returned unchanged. Linear in the number of activities per
    pass; a chain of skips takes one pass per link. This is the rule as a whole; a completion
    applies it incrementally with :func:`._progress.progress`, which a property test holds to it.
    A loop's next iteration is decided by :func:`._progress.progress` when the loop's tail
    completes (an event this function never sees: it runs when a workflow is created).
    """
    rows = list(rows)
    if workflow.status.finished:
        return workflow, rows
    specs = {a.key: a for a in definition.activities}
    by_key = {r.key: r for r in rows}
    ctx = _context(workflow, rows, definition)  # scheduling never completes anything: outputs are fixed here
    changed = True
    while changed:
        changed = False
        for i, row in enumerate(rows):
            if row.status is not S.NOT_SCHEDULED:
                continue
            new = schedule_row(specs[row.key], row, by_key, ctx, now)
            if new is not None:
                rows[i] = by_key[row.key] = new
                changed = True
                if new.status is S.FAILED:
                    return fail_workflow(workflow, rows, new, now)
                if new.status is S.SKIPPED:
                    ctx = _context(workflow, rows, definition)  # {{key.status}} of a skip seen at once
    if all(r.status in (S.COMPLETED, S.SKIPPED) for r in rows):
        workflow = evolve(workflow, status=WorkflowStatus.COMPLETED, updated_at=now)
    return workflow, rows


def fail_workflow(
    workflow: WorkflowRow, rows: Sequence[ActivityRow], failed: ActivityRow, now: float
) -> tuple[WorkflowRow, list[ActivityRow]]:
    """Fail the workflow because ``failed`` failed for good; unclaimed activities fail with it.

    Running activities keep their claim (with no retry left): their worker learns through a 409
    on its next heartbeat; a completion or failure it reports is still recorded.
    """
    workflow, cascade = workflow_failure(workflow, failed, now)
    new_rows = [
        evolve(r, status=S.FAILED, error=cascade, completed_at=now)
        if r.status.unclaimed
        # A running one keeps its claim but loses its retries: when its lease expires it fails
        # instead of being stolen, and a failure report from it is final.
        else evolve(r, max_retries=r.retry_count)
        if r.status is S.RUNNING
        else r
        for r in rows
    ]
    return workflow, new_rows


def workflow_failure(
    workflow: WorkflowRow, failed: ActivityRow, now: float
) -> tuple[WorkflowRow, dict[str, Any]]:
    """The failed workflow row and the error its unclaimed activities get (see :func:`fail_workflow`)."""
    error = failed.error or {}
    message = f"activity {failed.key!r} failed: {error.get('code', 'ERROR')}: {error.get('message', '')}"
    cascade = {
        "code": "WORKFLOW_FAILED",
        "message": f"not run: activity {failed.key!r} failed",
        "retryable": False,
    }
    workflow = evolve(workflow, status=WorkflowStatus.FAILED, error_message=message, updated_at=now)
    return workflow, cascade


def workflow_cancellation(workflow: WorkflowRow, now: float) -> tuple[WorkflowRow, dict[str, Any]] | None:
    """The cancelled workflow row and the error its unfinished activities get.

    None if it is cancelled already (cancelling is idempotent); :exc:`Conflict` naming its
    status if it completed or failed.
    """
    if workflow.status is WorkflowStatus.CANCELLED:
        return None
    if workflow.status.finished:
        raise Conflict(
            f"cannot cancel workflow {workflow.id}: it is {workflow.status.value}",
            details={"status": workflow.status.value},
        )
    error = {
        "code": "WORKFLOW_CANCELLED",
        "message": "not run: its workflow was cancelled",
        "retryable": False,
    }
    cancelled = evolve(workflow, status=WorkflowStatus.CANCELLED, error_message="cancelled", updated_at=now)
    return cancelled, error


def claim_row(row: ActivityRow, worker_id: str, now: float) -> ActivityRow:
    """Claim a pending row, or steal a running one whose lease expired (one more retry used)."""
    stolen = row.status is S.RUNNING
    return evolve(
        row,
        status=S.RUNNING,
        claimed_by=worker_id,
        claimed_at=now,
        started_at=now,
        retry_count=row.retry_count + 1 if stolen else row.retry_count,
    )


def expire_row(row: ActivityRow, now: float) -> ActivityRow:
    """A running row whose lease expired with no retry left: failed."""
    error = {
        "code": "LEASE_EXPIRED",
        "message": f"no heartbeat from worker {row.claimed_by!r} within the {row.lease_seconds:g} s lease",
        "retryable": True,
    }
    return evolve(row, status=S.FAILED, error=error, completed_at=now)


def owned_check(row: ActivityRow, worker_id: str, workflow: WorkflowRow, action: str) -> None:
    """Raise :exc:`Conflict` unless ``worker_id`` holds ``row``'s live claim."""
    if row.claimed_by != worker_id:
        raise Conflict(
            f"activity {row.id} ({row.key!r}) is claimed by another worker, not {worker_id!r}",
            details={"status": row.status.value},
        )
    if workflow.status is WorkflowStatus.CANCELLED:  # before the row's own status: the real cause
        raise Conflict(f"cannot {action} activity {row.id} ({row.key!r}): its workflow was cancelled")
    if row.status is not S.RUNNING:
        raise Conflict(f"cannot {action} activity {row.id} ({row.key!r}): it is {row.status.value}")
    if workflow.status is WorkflowStatus.FAILED:
        raise Conflict(f"cannot {action} activity {row.id} ({row.key!r}): its workflow failed")


def complete_row(
    row: ActivityRow, output: dict[str, Any], cost_usd: float, usage: list[dict[str, Any]] | None, now: float
) -> ActivityRow:
    # Cost accumulates over attempts: a failed attempt's spend is not lost by the retry's success.
    return evolve(
        row,
        status=S.COMPLETED,
        output=output,
        cost_usd=row.cost_usd + cost_usd,
        usage=usage,
        completed_at=now,
        error=None,
    )


def fail_row(
    row: ActivityRow,
    definition: Definition,
    error: dict[str, Any],
    cost_usd: float,
    usage: list[dict[str, Any]] | None,
    now: float,
) -> tuple[ActivityRow, bool]:
    """The failed (or requeued) row and ``will_retry``.

    ``will_retry = retryable and retry_count < max_retries``; a retry requeues the row as
    ``pending`` at ``now + backoff`` with ``retry_count + 1``. ``claimed_by`` is kept so that a
    repeated fail from the same worker is answered idempotently.
    """
    cost = row.cost_usd + cost_usd
    will_retry = bool(error.get("retryable")) and row.retry_count < row.max_retries
    if not will_retry:
        return evolve(row, status=S.FAILED, error=error, cost_usd=cost, usage=usage, completed_at=now), False
    policy = retry_settings(_specs(definition)[row.key].settings)
    retry_number = row.retry_count + 1
    requeued = evolve(
        row,
        status=S.PENDING,
        error=error,
        cost_usd=cost,
        usage=usage,
        retry_count=retry_number,
        scheduled_for=now + policy.backoff(retry_number),
        claimed_at=None,
    )
    return requeued, True


def undeliverable_row(row: ActivityRow, problem: str, now: float) -> ActivityRow:
    """A pending row whose data no response can carry (stored before the edge checked it):
    failed for good, so that it fails its own workflow and no other workflow's poll."""
    error = {
        "code": "INVALID_DATA",
        "message": f"activity {row.key!r} cannot be sent to a worker: {problem}",
        "retryable": False,
    }
    return evolve(row, status=S.FAILED, error=error, completed_at=now)


def pending_activity(row: ActivityRow, definition: Definition) -> PendingActivity:
    spec = _specs(definition).get(row.key) or definition.activity(row.key)
    timeout = (spec.settings or {}).get("timeout_seconds")
    return PendingActivity(
        activity_id=row.id,
        workflow_id=row.workflow_id,
        activity_key=row.key,
        worker=row.worker,
        activity_name=row.activity_name,
        parameters=row.parameters or {},
        settings=spec.settings,
        # The wire type is int: round a fractional lease up, never down to 0.
        timeout_seconds=None if timeout is None else math.ceil(timeout),
        output_definitions=list(spec.outputs) or None,
        signal_data=row.signal_data,
    )
