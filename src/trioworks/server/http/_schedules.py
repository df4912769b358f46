"""Routes of ``/api/v1/schedules``: recurring schedules, as the original Kruxia Flow serves them
(``api/src/handlers/schedules.rs``).

- ``POST /api/v1/schedules`` (201), ``GET /api/v1/schedules`` (``{schedules, count}``, by name);
- ``GET``, ``PATCH`` (absent or null = unchanged) and ``DELETE`` (204) of
  ``/api/v1/schedules/{schedule_id}``.

The server's ``schedules`` task fires them (:class:`~trioworks.server.Server`). Input is
checked completely before the storage is called: 422 naming each bad field (the original
answers 400 with a message for a bad cadence or an unknown definition); 409 for a name in use;
404 for an unknown id.
"""

from __future__ import annotations

import builtins
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .._errors import NotFound, ValidationFailed
from .._schedules import NewSchedule, ScheduleChanges, ScheduleRow
from .._wire import iso
from ..rules import OVERLAP_POLICIES, Cadence, cadence_errors, missing_inputs
from ..storage import Storage
from ._api import stamp
from ._context import Context, json_body, respond
from ._requests import VERSION_STAMP, _Fields
from ._routes import Routes
from ._views import resolve_version

__all__ = ["routes", "schedule_view"]

routes = Routes()
_MAX_INTERVAL = 10 * 366 * 86400  # ten years: anything longer is a typo


class _ScheduleFields(_Fields):
    """The optional fields of a create or a PATCH (null = absent, as the original's serde)."""

    def text(self, name: builtins.str) -> builtins.str | None:
        return self.str(name, required=False) if self.data.get(name) is not None else None

    def interval(self) -> int | None:
        value = self.data.get("interval_seconds")
        if value is None:
            return None
        return self.int("interval_seconds", 0, 1, _MAX_INTERVAL)

    def policy(self) -> builtins.str | None:
        value = self.data.get("overlap_policy")
        if value is not None and value not in OVERLAP_POLICIES:
            self.add("overlap_policy", f"must be one of {', '.join(OVERLAP_POLICIES)}")
            return None
        return value

    def flag(self, name: builtins.str) -> builtins.bool | None:
        return None if self.data.get(name) is None else self.bool(name)

    def cadence(self, cadence: Cadence, now: float) -> None:
        for field, message in cadence_errors(cadence, now).items():
            if field not in self.errors:
                self.add(field, message)


def _version(f: _Fields) -> int | str | None:
    version = f.data.get("definition_version")
    if isinstance(version, str) and version.isdigit():
        return int(version)
    if isinstance(version, str) and VERSION_STAMP.match(version):
        return version
    if version is None or (isinstance(version, int) and not isinstance(version, bool) and version >= 1):
        return version
    f.add("definition_version", "must be a version number or a timestamp version like 20251105.143022.123456")
    return None


def _checked_definition(
    storage: Storage, name: str, version: int | str | None, input: dict[str, Any]
) -> int | None:
    """The pinned version's number (None: latest at fire time); 422 naming ``definition_name``,
    ``definition_version`` or each missing ``input.<key>``. One storage thread."""
    try:
        number = resolve_version(storage, name, version)
        stored = storage.get_definition(name, number)
    except NotFound as exc:
        field = "definition_name" if version is None else "definition_version"
        raise ValidationFailed.one(field, exc.message) from None
    missing = missing_inputs(stored.definition, input)
    if missing:
        raise ValidationFailed(
            {
                f"input.{k}": [f"required: the definition reads {{{{INPUT.{k}}}}} in {where}"]
                for k, where in sorted(missing.items())
            }
        )
    return number


async def schedule_view(ctx: Context, s: ScheduleRow) -> dict[str, Any]:
    """The original's ``ScheduleResponse``."""
    version = None
    if s.definition_version is not None:
        version = await stamp(ctx, s.definition_name, s.definition_version)
    return {
        "id": s.id,
        "name": s.name,
        "definition_name": s.definition_name,
        "definition_version": version,
        "input": s.input,
        "cron": s.cadence.cron,
        "timezone": s.cadence.timezone,
        "interval_seconds": s.cadence.interval_seconds,
        "overlap_policy": s.overlap_policy,
        "enabled": s.enabled,
        "next_run_at": iso(s.next_run_at),
        "last_run_at": iso(s.last_run_at),
        "last_workflow_id": s.last_workflow_id,
        "created_by": s.created_by,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
    }


@routes.post("/api/v1/schedules")
async def create_schedule(request: Request, ctx: Context) -> Response:
    """Create a recurring schedule: a cron expression (with an IANA timezone) or a fixed interval."""
    f = _ScheduleFields(await json_body(request, ctx))
    name, definition_name = f.str("name"), f.str("definition_name")
    if isinstance(name, str) and not name.strip():
        f.add("name", "must not be blank")
    version = _version(f)
    input_ = f.object("input", required=False)
    cadence = Cadence(f.text("cron"), f.text("timezone"), f.interval())
    policy, enabled = f.policy(), f.flag("enabled")
    now = ctx.clock()
    f.cadence(cadence, now)
    f.done()
    input_ = {} if input_ is None else input_
    number = await ctx.db(_checked_definition, ctx.storage, definition_name, version, input_)
    new = NewSchedule(
        name=name,
        definition_name=definition_name,
        definition_version=number if version is not None else None,
        input=input_,
        cadence=cadence,
        overlap_policy=policy or "skip",
        enabled=True if enabled is None else enabled,
        created_by=getattr(request.state, "client", None),
    )
    schedule = await ctx.db(ctx.storage.create_schedule, new, now)
    ctx.schedule_timer.set()
    return respond(await schedule_view(ctx, schedule), 201)


@routes.get("/api/v1/schedules")
async def list_schedules(request: Request, ctx: Context) -> Response:
    """Every schedule, by name: ``{schedules, count}``."""
    schedules = await ctx.db(ctx.storage.list_schedules)
    views = [await schedule_view(ctx, s) for s in schedules]
    return respond({"schedules": views, "count": len(views)})


@routes.get("/api/v1/schedules/{schedule_id}")
async def get_schedule(request: Request, ctx: Context) -> Response:
    """One schedule."""
    schedule = await ctx.db(ctx.storage.get_schedule, request.path_params["schedule_id"])
    return respond(await schedule_view(ctx, schedule))


@routes.route("/api/v1/schedules/{schedule_id}", "PATCH")
async def update_schedule(request: Request, ctx: Context) -> Response:
    """Change a schedule (absent = unchanged); a new cadence or re-enabling recomputes next_run_at."""
    f = _ScheduleFields(await json_body(request, ctx))
    changes = ScheduleChanges(
        input=f.object("input", required=False),
        cron=f.text("cron"),
        timezone=f.text("timezone"),
        interval_seconds=f.interval(),
        overlap_policy=f.policy(),
        enabled=f.flag("enabled"),
    )
    if changes.cron is not None or changes.interval_seconds is not None:
        f.cadence(changes.cadence(Cadence()), ctx.clock())
    f.done()
    schedule = await ctx.db(
        ctx.storage.update_schedule, request.path_params["schedule_id"], changes, ctx.clock()
    )
    ctx.schedule_timer.set()
    return respond(await schedule_view(ctx, schedule))


@routes.route("/api/v1/schedules/{schedule_id}", "DELETE")
async def delete_schedule(request: Request, ctx: Context) -> Response:
    """Delete a schedule (runs it started are kept)."""
    await ctx.db(ctx.storage.delete_schedule, request.path_params["schedule_id"])
    ctx.schedule_timer.set()
    return Response(status_code=204)
