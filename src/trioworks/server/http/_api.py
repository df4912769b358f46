"""Routes of ``/api/v1``: worker queue, definitions, workflows.

Each handler checks its input completely (422 naming the field) before calling the storage,
so bad input never changes the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import attrs
from starlette.requests import Request
from starlette.responses import Response

from ...core import run_in_thread
from .._errors import BadRequest, NotFound, ValidationFailed
from .._models import ActivityRow, ActivityStatus, WorkflowRow, WorkflowStatus
from .._wire import converter, definition_body, iso
from ..rules import KEY_PATTERN, MissingSecret, fill_secrets, missing_inputs, parse_definition, secret_names
from ..storage import Storage
from ._context import Context, json_body, media_type, read_body, respond
from ._limits import load_yaml
from ._queries import int_query, time_query, version_query
from ._requests import (
    SubmitRequest,
    parse_complete,
    parse_fail,
    parse_poll,
    parse_signal,
    parse_submit,
    parse_worker,
)
from ._routes import Routes
from ._views import (
    activity_view,
    decimal_text,
    first_failure,
    outputs_list,
    resolve_version,
    terminal_keys,
    version_stamp,
    workflow_summary,
)

__all__ = ["complete_work", "fail_work", "heartbeat_work", "poll_work", "routes"]

routes = Routes()
_MAX_QUEUES = 10_000  # worker queues remembered in ctx.polled (a client inventing names cannot grow it)
_PAUSED = "paused"  # a status of the original's list filter; no trioworks workflow is ever paused


async def stamp(ctx: Context, name: str, version: int) -> str | None:
    """The original's version string of ``name`` version ``version`` (cached: versions never change)."""
    if (name, version) not in ctx.stamps:
        try:
            versions = await ctx.db(ctx.storage.definition_versions, name)
        except NotFound:
            return None
        ctx.stamps.update({(name, v.version): version_stamp(v.created_at) for v in versions})
    return ctx.stamps.get((name, version))


# -- worker queue ------------------------------------------------------------------------------
# Each route's work takes the request's client, path parameters and decoded body and returns the
# response body (200): the Starlette endpoint below and the fast path (_fast.py, which serves
# these four routes without Starlette) both call it, so both answer alike.
async def poll_work(ctx: Context, client: str | None, params: Mapping[str, str], data: Any) -> Any:
    body = parse_poll(data)
    if ctx.auth is not None and client is not None:
        ctx.auth.check_worker(client, body.worker)
    await ctx.check_owner(client, body.worker_id, bind=True)
    if len(ctx.polled) >= _MAX_QUEUES and body.worker not in ctx.polled:
        ctx.polled.clear()
    ctx.polled[body.worker] = ctx.clock()
    claimed = await ctx.queue(
        ctx.storage.claim, body.worker, body.worker_id, body.max_activities, ctx.clock()
    )
    ctx.counter("server.activities_claimed").inc(len(claimed))
    handed = []
    for activity in claimed:  # secrets go into the hand-out only, never into a stored row
        if not secret_names(activity.parameters):
            handed.append(activity)  # nothing to fill (the usual case): no copy
            continue
        try:
            parameters = fill_secrets(activity.parameters, ctx.secrets)
        except MissingSecret as exc:  # deployed while the server had it, restarted without
            error = {"code": "SECRET_MISSING", "message": str(exc), "retryable": False}
            await ctx.queue(
                ctx.storage.fail, activity.activity_id, body.worker_id, error, 0.0, None, ctx.clock()
            )
            continue
        handed.append(attrs.evolve(activity, parameters=parameters))
    return {"activities": [converter.unstructure(a) for a in handed], "count": len(handed)}


async def heartbeat_work(ctx: Context, client: str | None, params: Mapping[str, str], data: Any) -> Any:
    body = parse_worker(data)
    await ctx.check_owner(client, body.worker_id)
    lease = await ctx.control(ctx.storage.heartbeat, params["activity_id"], body.worker_id, ctx.clock())
    # The spec's 30 s, but never more than a third of a shorter lease.
    return {"acknowledged": True, "next_heartbeat_seconds": max(1, min(30, int(lease // 3)))}


async def complete_work(ctx: Context, client: str | None, params: Mapping[str, str], data: Any) -> Any:
    body = parse_complete(data)
    await ctx.check_owner(client, body.worker_id)
    warnings = await ctx.queue(
        ctx.storage.complete,
        params["activity_id"],
        body.worker_id,
        body.output,
        body.cost_usd,
        body.usage,
        ctx.clock(),
    )
    ctx.counter("server.activities_completed").inc()
    ctx.timers.set()  # a dependent may now wait for a signal with a timeout
    return {"acknowledged": True, **({"warnings": warnings} if warnings else {})}


async def fail_work(ctx: Context, client: str | None, params: Mapping[str, str], data: Any) -> Any:
    body = parse_fail(data)
    await ctx.check_owner(client, body.worker_id)
    will_retry = await ctx.queue(
        ctx.storage.fail,
        params["activity_id"],
        body.worker_id,
        body.error,
        body.cost_usd,
        body.usage,
        ctx.clock(),
    )
    ctx.counter("server.activities_retried" if will_retry else "server.activities_failed").inc()
    return {"acknowledged": True, "will_retry": will_retry}


routes.work("/api/v1/workers/poll", poll_work)
routes.work("/api/v1/activities/{activity_id}/heartbeat", heartbeat_work)
routes.work("/api/v1/activities/{activity_id}/complete", complete_work)
routes.work("/api/v1/activities/{activity_id}/fail", fail_work)


# -- definitions -------------------------------------------------------------------------------
@routes.post("/api/v1/workflow_definitions")
async def put_definition(request: Request, ctx: Context) -> Response:
    return await _deploy(await _definition_data(request, ctx), ctx)


async def _definition_data(request: Request, ctx: Context) -> Any:
    """A definition body: JSON if the content type says so, otherwise YAML, whatever the type.

    As the original does: ``curl --data-binary @flow.yaml`` sends the file with curl's default
    ``application/x-www-form-urlencoded``, and JSON is YAML anyway. The YAML bounds of
    :func:`load_yaml` (alias bombs, depth) hold for every type.
    """
    kind = media_type(request)
    if kind == "application/json" or kind.endswith("+json"):
        return await json_body(request, ctx)
    body = await read_body(request, ctx.max_body_bytes)
    if not body.strip():
        raise BadRequest("request body is empty: expected a workflow definition (YAML or JSON)")
    return await run_in_thread(load_yaml, body, limiter=ctx.file_limiter)  # CPU, not storage


async def _deploy(data: Any, ctx: Context) -> Response:
    definition = parse_definition(data)
    missing = {
        f"activities[{i}].parameters": [str(MissingSecret(names))]
        for i, a in enumerate(definition.activities)
        if (names := sorted(secret_names(a.parameters) - set(ctx.secrets)))
    }
    if missing:  # loud at deploy rather than a null at run time (the original's)
        raise ValidationFailed(missing)
    result = await ctx.db(ctx.storage.put_definition, definition, ctx.clock())
    body: dict[str, Any] = {
        "name": result.name,
        "version": version_stamp(result.created_at),
        "version_number": result.version,
        "created_at": iso(result.created_at),
    }
    if result.unchanged:
        return respond({**body, "unchanged": True}, 200)
    return respond(body, 201)


@routes.get("/api/v1/workflow_definitions")
async def list_definitions(request: Request, ctx: Context) -> Response:
    summaries = await ctx.db(ctx.storage.list_definitions)
    definitions = [
        {
            "name": s.name,
            "version": version_stamp(s.created_at),
            "version_number": s.version,
            "activity_count": s.activity_count,
            "created_at": iso(s.created_at),
        }
        for s in summaries
    ]
    return respond({"definitions": definitions, "total": len(definitions)})


@routes.get("/api/v1/workflow_definitions/{name}")
async def get_definition(request: Request, ctx: Context) -> Response:
    name = request.path_params["name"]
    version = version_query(request)
    stored = await ctx.db(
        lambda: ctx.storage.get_definition(name, resolve_version(ctx.storage, name, version))
    )
    body = definition_body(stored.definition)
    return respond(
        {
            **body,
            "version": version_stamp(stored.created_at),
            "version_number": stored.version,
            "created_at": iso(stored.created_at),
        }
    )


@routes.get("/api/v1/workflow_definitions/{name}/versions")
async def definition_versions(request: Request, ctx: Context) -> Response:
    """Every version of one definition, oldest first (a trioworks addition, for ``definitions show``)."""
    versions = await ctx.db(ctx.storage.definition_versions, request.path_params["name"])
    listed = [
        {
            "name": v.name,
            "version": version_stamp(v.created_at),
            "version_number": v.version,
            "activity_count": v.activity_count,
            "created_at": iso(v.created_at),
        }
        for v in versions
    ]
    return respond({"versions": listed, "total": len(listed)})


# -- workflows ---------------------------------------------------------------------------------
@routes.post("/api/v1/workflows")
async def submit(request: Request, ctx: Context) -> Response:
    data = await json_body(request, ctx)
    if isinstance(data, dict) and "activities" in data and "definition_name" not in data:
        return await _deploy(data, ctx)  # the original SDK's KruxiaFlow.deploy() posts definitions here
    return await _start(parse_submit(data), ctx)


@routes.post("/api/v1/workflows/start")
async def start(request: Request, ctx: Context) -> Response:
    """``POST /api/v1/workflows/start`` of the original SDK: ``{name, inputs?, version?}``."""
    data = await json_body(request, ctx)
    if not isinstance(data, dict):
        data = {"definition_name": data}  # parse_submit reports the bad body
    renamed: dict[str, Any] = {
        "definition_name": data.get("name"),
        "input": data.get("inputs") if data.get("inputs") is not None else {},
        "version": data.get("version"),
    }
    try:
        body = parse_submit(renamed)
    except ValidationFailed as exc:  # name the fields as this route's caller sent them
        names = {"definition_name": "name", "input": "inputs"}
        raise ValidationFailed({names.get(k, k): v for k, v in exc.field_errors.items()}) from None
    return await _start(body, ctx)


def _checked_start(storage: Storage, body: SubmitRequest, now: float) -> WorkflowRow:
    """Resolve the version, refuse missing inputs (422 naming each), create: one storage thread."""
    name = body.definition_name
    stored = storage.get_definition(name, resolve_version(storage, name, body.version))
    missing = missing_inputs(stored.definition, body.input)
    if missing:
        raise ValidationFailed(
            {
                f"input.{k}": [f"required: the definition reads {{{{INPUT.{k}}}}} in {where}"]
                for k, where in sorted(missing.items())
            }
        )
    return storage.create_workflow(name, stored.version, body.input, body.unique_key, now)


async def _start(body: SubmitRequest, ctx: Context) -> Response:
    workflow = await ctx.db(_checked_start, ctx.storage, body, ctx.clock())
    ctx.metrics.counter("server.workflows_started").inc()
    ctx.timers.set()
    return respond(
        {
            "workflow_id": workflow.id,
            "definition_name": workflow.definition_name,
            "definition_version": await stamp(ctx, workflow.definition_name, workflow.definition_version),
            "definition_version_number": workflow.definition_version,
            "status": "created",
            "created_at": iso(workflow.created_at),
        },
        201,
    )


async def _workflow_summary(ctx: Context, w: WorkflowRow) -> dict[str, Any]:
    return workflow_summary(w, await stamp(ctx, w.definition_name, w.definition_version))


@routes.get("/api/v1/workflows")
async def list_workflows(request: Request, ctx: Context) -> Response:
    status = request.query_params.get("status")
    statuses = [*(s.value for s in WorkflowStatus), _PAUSED]
    if status is not None and status not in statuses:
        raise ValidationFailed.one("status", f"must be one of {', '.join(statuses)}")
    name = request.query_params.get("definition_name")
    limit = int_query(request, "limit", 100, 1, 1000)
    offset = int_query(request, "offset", 0, 0, 2**31)
    after, before = time_query(request, "created_after"), time_query(request, "created_before")
    if after is not None and before is not None and after >= before:
        raise ValidationFailed.one("created_after", "created_after must be before created_before")
    page = await ctx.db(
        lambda: ctx.storage.list_workflows(
            status=status,
            definition_name=name,
            limit=limit,
            offset=offset,
            created_after=after,
            created_before=before,
        )
    )
    return respond(
        {
            "workflows": [await _workflow_summary(ctx, w) for w in page.workflows],
            "total": page.total,
            "count": len(page.workflows),
            "limit": limit,
            "offset": offset,
        }
    )


@routes.get("/api/v1/workflows/{workflow_id}")
async def get_workflow(request: Request, ctx: Context) -> Response:
    workflow, rows = await ctx.db(ctx.storage.get_workflow, request.path_params["workflow_id"])
    body = await _workflow_summary(ctx, workflow)
    body["error_message"] = first_failure(rows) or workflow.error_message  # as the original
    return respond(
        {
            **body,
            "input": workflow.input,
            "state_data": {},
            "activities": [activity_view(a) for a in rows],
            "queues": _waiting_queues(ctx, rows),
        }
    )


def _waiting_queues(ctx: Context, rows: list[ActivityRow]) -> dict[str, dict[str, Any]]:
    """Each worker queue an activity of this workflow waits in (pending), and when this server
    last answered a poll of it (None: never since it started): ``status`` and ``run --wait``
    say so when nobody is polling, instead of waiting silently."""
    now = ctx.clock()
    waiting = sorted({a.worker for a in rows if a.status is ActivityStatus.PENDING})
    out: dict[str, dict[str, Any]] = {}
    for worker in waiting:
        at = ctx.polled.get(worker)
        out[worker] = {
            "last_polled_at": iso(at),
            "idle_seconds": None if at is None else round(now - at, 3),
        }
    return out


@routes.get("/api/v1/workflows/{workflow_id}/output")
async def workflow_output(request: Request, ctx: Context) -> Response:
    workflow, rows = await ctx.db(ctx.storage.get_workflow, request.path_params["workflow_id"])
    if workflow.status is not WorkflowStatus.COMPLETED:
        raise BadRequest(f"workflow {workflow.id} is {workflow.status.value}, not completed: no output yet")
    output = {a.key: a.output for a in rows if a.status is ActivityStatus.COMPLETED}
    total = sum(a.cost_usd for a in rows)
    stored = await ctx.db(ctx.storage.get_definition, workflow.definition_name, workflow.definition_version)
    terminal = terminal_keys(stored.definition)
    ends = [a.completed_at for a in rows if a.key in terminal and a.completed_at is not None]
    return respond(
        {
            "workflow_id": workflow.id,
            "status": workflow.status.value,
            "total_cost_usd": decimal_text(total),
            "completed_at": iso(max(ends)) if ends else None,
            "outputs": {
                a.key: {
                    "status": a.status.value,
                    "output": outputs_list(a.output),
                    "cost_usd": decimal_text(a.cost_usd),
                    "completed_at": iso(a.completed_at) if a.status.terminal else None,
                    "is_terminal": a.key in terminal,
                }
                for a in rows
            },
            "terminal_outputs": sorted(terminal),
            # trioworks' own shape, kept for its clients: {activity_key: {name: value}}
            "output": output,
            "cost_usd": total,
        }
    )


@routes.get("/api/v1/workflows/{workflow_id}/activities/{activity_key}/output")
async def activity_output(request: Request, ctx: Context) -> Response:
    workflow_id, key = request.path_params["workflow_id"], request.path_params["activity_key"]
    _, rows = await ctx.db(ctx.storage.get_workflow, workflow_id)
    row = next((a for a in rows if a.key == key), None)
    if row is None:
        raise NotFound(f"workflow {workflow_id} has no activity {key!r}")
    if row.status is not ActivityStatus.COMPLETED:
        raise BadRequest(
            f"Activity '{key}' is {row.status.value}, not completed. "
            "Output is only available for completed activities."
        )
    files = await ctx.db(ctx.storage.list_files, workflow_id, key)
    return respond(
        {
            "workflow_id": workflow_id,
            "activity_key": key,
            "status": row.status.value,
            "output": outputs_list(row.output),
            "cost_usd": decimal_text(row.cost_usd),
            "completed_at": iso(row.completed_at),
            "files": [
                {
                    "filename": f.filename,
                    "size": f.size,
                    "content_type": f.content_type,
                    "download_url": (
                        f"/api/v1/workflows/{workflow_id}/activities/{key}/files/{quote(f.filename)}"
                    ),
                    "created_at": iso(f.created_at),
                }
                for f in files
            ],
        }
    )


@routes.post("/api/v1/workflows/{workflow_id}/signal")
async def signal(request: Request, ctx: Context) -> Response:
    body = parse_signal(await json_body(request, ctx))
    if not KEY_PATTERN.match(body.activity_key):
        raise ValidationFailed.one("activity_key", f"must match {KEY_PATTERN.pattern}")
    message = await ctx.db(
        ctx.storage.signal,
        request.path_params["workflow_id"],
        body.activity_key,
        body.event_name,
        body.data,
        ctx.clock(),
    )
    return respond({"signaled": True, "message": message})


@routes.post("/api/v1/workflows/{workflow_id}/cancel")
async def cancel(request: Request, ctx: Context) -> Response:
    """Cancel a created or running workflow (the original SDK's ``cancel_workflow``); idempotent."""
    workflow = await ctx.db(ctx.storage.cancel_workflow, request.path_params["workflow_id"], ctx.clock())
    ctx.metrics.counter("server.workflows_cancelled").inc()
    return respond({**(await _workflow_summary(ctx, workflow)), "cancelled": True})
