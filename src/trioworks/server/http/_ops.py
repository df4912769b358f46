"""Routes for operating the server: cost, worker queues, ``/metrics``, the OpenAPI document.

- ``GET /api/v1/workflows/{id}/cost`` and ``.../cost/history``: the original's cost summary and
  per-activity cost lines (amounts as decimal strings, as the original's ``Decimal``);
- ``GET /api/v1/queues``: when this server last answered a poll of each worker queue;
- ``GET /metrics``: every server metric in the Prometheus text format (public, as scrapers expect;
  counts only);
- ``GET /api/v1/openapi.json`` and ``GET /api/v1/docs``: generated from the route table itself,
  so a route cannot be served without being documented.
"""

from __future__ import annotations

import html
import inspect
import re
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

import trioworks

from ...core import PROMETHEUS_CONTENT_TYPE, prometheus_text
from .._errors import BadRequest
from .._models import ActivityRow
from .._wire import iso
from ..storage import Storage
from ._context import Context, respond
from ._queries import int_query, time_query
from ._routes import Endpoint, Routes
from ._views import decimal_text

__all__ = ["openapi_document", "routes"]

routes = Routes()


@routes.get("/api/v1/workflows/{workflow_id}/cost")
async def workflow_cost(request: Request, ctx: Context) -> Response:
    """Cost summary of one workflow (the original's ``WorkflowCostSummary``)."""
    workflow, rows = await ctx.db(ctx.storage.get_workflow, request.path_params["workflow_id"])
    costed = [a for a in rows if a.cost_usd or a.usage]
    return respond(
        {
            "workflow_id": workflow.id,
            "workflow_name": workflow.definition_name,
            "total_cost_usd": decimal_text(sum(a.cost_usd for a in rows)),
            "budget_limit_usd": None,  # trioworks definitions have no workflow-level budget
            "budget_remaining_usd": None,
            "total_activities": len(costed),
        }
    )


def _cost_lines(a: ActivityRow) -> Iterator[dict[str, Any]]:
    base = {
        "activity_key": a.key,
        "attempt": a.retry_count + 1,
        "budget_limit_usd": None,
        "budget_exceeded": False,
        "budget_event": None,
        "created_at": iso(a.completed_at or a.started_at),
    }
    entries = a.usage or []
    given = sum(float(e.get("cost_usd") or 0) for e in entries)
    counted = 0.0
    for entry in entries:
        prompt, output = entry.get("input_tokens"), entry.get("output_tokens")
        cached = entry.get("cache_read_tokens")
        counts = [n for n in (prompt, output, cached) if isinstance(n, int)]
        cost = entry.get("cost_usd")
        if cost is None and len(entries) == 1:  # one call, priced as a whole
            cost = a.cost_usd - given
        counted += float(cost or 0)
        yield {
            **base,
            "cost_usd": decimal_text(float(cost or 0)),
            "prompt_tokens": prompt,
            "output_tokens": output,
            "total_tokens": sum(counts) if counts else None,
            "cached_tokens": cached,
            "provider": entry.get("provider"),
            "model": entry.get("model"),
        }
    lump = a.cost_usd - counted
    if lump > 1e-12 or not entries:  # a lump-sum report: one line, no provider or model
        yield {
            **base,
            "cost_usd": decimal_text(lump),
            "prompt_tokens": None,
            "output_tokens": None,
            "total_tokens": None,
            "cached_tokens": None,
            "provider": None,
            "model": None,
        }


@routes.get("/api/v1/workflows/{workflow_id}/cost/history")
async def workflow_cost_history(request: Request, ctx: Context) -> Response:
    """Cost lines of one workflow, oldest first: one per usage entry, or one lump-sum line."""
    _, rows = await ctx.db(ctx.storage.get_workflow, request.path_params["workflow_id"])
    costed = sorted((a for a in rows if a.cost_usd or a.usage), key=lambda a: a.completed_at or 0.0)
    return respond([line for a in costed for line in _cost_lines(a)])


@routes.get("/api/v1/queues")
async def queues(request: Request, ctx: Context) -> Response:
    """When this server last answered a poll of each worker queue (since it started)."""
    now = ctx.clock()
    return respond(
        {
            "queues": [
                {"worker": worker, "last_polled_at": iso(at), "idle_seconds": round(now - at, 3)}
                for worker, at in sorted(ctx.polled.items())
            ]
        }
    )


@routes.get("/metrics", public=True)
async def metrics(request: Request, ctx: Context) -> Response:
    """Every server metric in the Prometheus text format."""
    return Response(prometheus_text(ctx.metrics), media_type=PROMETHEUS_CONTENT_TYPE)


def openapi_document(endpoints: list[Endpoint]) -> dict[str, Any]:
    """An OpenAPI 3.1 document of ``endpoints`` (summary from each handler's docstring)."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        doc = inspect.getdoc(endpoint.handler) or endpoint.handler.__name__.replace("_", " ")
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"\{(\w+)(?::\w+)?\}", endpoint.path)
        ]
        for method in endpoint.methods:
            operation: dict[str, Any] = {
                "operationId": endpoint.handler.__name__,
                "summary": doc.splitlines()[0],
                "parameters": parameters,
                "responses": {"200": {"description": "success"}},
            }
            if not endpoint.public:
                operation["security"] = [{"bearer_auth": []}]
            paths.setdefault(re.sub(r"\{(\w+):\w+\}", r"{\1}", endpoint.path), {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "trioworks workflow server (Kruxia Flow API)", "version": trioworks.__version__},
        "paths": paths,
        "components": {"securitySchemes": {"bearer_auth": {"type": "http", "scheme": "bearer"}}},
    }


@routes.get("/api/v1/openapi.json", public=True)
async def openapi(request: Request, ctx: Context) -> Response:
    """This API's OpenAPI document, generated from the route table."""
    return respond(openapi_document(request.app.state.endpoints))


@routes.get("/api/v1/docs", public=True)
async def docs(request: Request, ctx: Context) -> Response:
    """A readable page of every route (self-contained: no script from elsewhere)."""
    rows = "".join(
        f"<tr><td>{m.upper()}</td><td><code>{html.escape(path)}</code></td>"
        f"<td>{html.escape(op['summary'])}</td><td>{'' if 'security' in op else 'public'}</td></tr>"
        for path, ops in openapi_document(request.app.state.endpoints)["paths"].items()
        for m, op in ops.items()
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>trioworks API</title></head><body>"
        f"<h1>trioworks workflow server {html.escape(trioworks.__version__)}</h1>"
        "<p>The machine-readable document: <a href='/api/v1/openapi.json'>/api/v1/openapi.json</a>.</p>"
        f"<table><tr><th>method</th><th>path</th><th>what</th><th></th></tr>{rows}</table></body></html>"
    )
    return HTMLResponse(page)


_GROUPS = ("provider", "model", "definition", "day")
_MAX_ANALYZED = 10_000  # workflows read per analytics request (newest first)


def _analytics(
    storage: Storage, start: float, end: float, group_by: str | None, limit: int
) -> dict[str, Any]:
    """The original's cost analytics over workflows created in ``[start, end)`` (one storage thread)."""
    page = storage.list_workflows(
        status=None,
        definition_name=None,
        limit=_MAX_ANALYZED,
        offset=0,
        created_after=start - 1e-6,
        created_before=end + 1e-6,  # the range includes both ends
    )
    groups: dict[Any, dict[str, Any]] = {}
    tops: list[tuple[float, Any, int]] = []  # (cost, workflow, cost lines)
    definitions: dict[str, list[float]] = {}  # name -> [workflows, cost]
    total = tokens = cached = prompt = lines = 0.0
    for summary in page.workflows:
        workflow, rows = storage.get_workflow(summary.id)
        history = [line for a in rows if a.cost_usd or a.usage for line in _cost_lines(a)]
        if not history:
            continue
        cost = sum(a.cost_usd for a in rows)
        total += cost
        lines += len(history)
        tops.append((cost, workflow, len(history)))
        d = definitions.setdefault(workflow.definition_name, [0, 0.0])
        d[0] += 1
        d[1] += cost
        for line in history:
            tokens += line["total_tokens"] or 0
            cached += line["cached_tokens"] or 0
            prompt += line["prompt_tokens"] or 0
            if group_by is None:
                continue
            key = {
                "provider": line["provider"],
                "model": f"{line['provider']}/{line['model']}" if line["model"] else None,
                "definition": workflow.definition_name,
                "day": (line["created_at"] or "")[:10],
            }[group_by]
            g = groups.setdefault(
                key, {"key": key, "cost": 0.0, "activities": 0, "workflows": set(), "tokens": 0}
            )
            g["cost"] += float(line["cost_usd"])
            g["activities"] += 1
            g["workflows"].add(workflow.id)
            g["tokens"] += line["total_tokens"] or 0
    count = len(tops)
    ordered = sorted(groups.values(), key=lambda g: g["key"] if group_by == "day" else -g["cost"])
    return {
        "total_workflows": count,
        "total_cost_usd": decimal_text(total),
        "avg_cost_per_activity": decimal_text(total / lines if lines else 0.0),
        "start_date": iso(start),
        "end_date": iso(end),
        "total_activities": int(lines),
        "avg_cost_per_workflow": decimal_text(total / count if count else 0.0),
        "total_tokens": int(tokens),
        "cached_tokens": int(cached),
        "cache_hit_rate": cached / prompt if prompt else None,
        "budget_aborts": 0,
        "budget_downgrades": 0,
        "group_by": group_by,
        **(
            {
                "groups": [
                    {
                        "key": g["key"],
                        "total_cost_usd": decimal_text(g["cost"]),
                        "activities": g["activities"],
                        "workflows": len(g["workflows"]),
                        "total_tokens": g["tokens"],
                    }
                    for g in ordered
                ]
            }
            if group_by
            else {}
        ),
        "top_workflows": [
            {
                "workflow_id": w.id,
                "definition_name": w.definition_name,
                "status": w.status.value,
                "created_at": iso(w.created_at),
                "total_cost_usd": decimal_text(cost),
                "activities": n,
                "budget_limit_usd": None,
            }
            for cost, w, n in sorted(tops, key=lambda t: -t[0])[:limit]
        ],
        "top_definitions": [
            {
                "definition_name": name,
                "workflows": int(n),
                "total_cost_usd": decimal_text(cost),
                "avg_cost_per_workflow": decimal_text(cost / n),
            }
            for name, (n, cost) in sorted(definitions.items(), key=lambda d: -d[1][1])[:limit]
        ],
        "budget_events": [],
    }


@routes.get("/api/v1/cost/analytics")
async def cost_analytics(request: Request, ctx: Context) -> Response:
    """Cost over the workflows created from ``start_date`` (default 30 days ago) to ``end_date`` (now)."""
    now = ctx.clock()
    start = time_query(request, "start_date")
    end = time_query(request, "end_date")
    start = now - 30 * 86400 if start is None else start
    end = now if end is None else end
    group_by = request.query_params.get("group_by")
    if group_by is not None and group_by not in _GROUPS:
        raise BadRequest(f"group_by must be one of {', '.join(_GROUPS)}, got {group_by!r}")
    limit = int_query(request, "limit", 10, 1, 10_000)
    return respond(await ctx.db(_analytics, ctx.storage, start, end, group_by, limit))
