"""The ASGI application: Starlette routing over the handlers, auth, and the error body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

import trioworks

from ..core import run_in_thread
from ._api import HANDLERS
from ._auth import FORM, token_form
from ._errors import ServerError, UnsupportedMediaType, ValidationFailed
from ._files import download, upload
from ._http import Context, on_disconnect, on_http_error, on_server_error, on_unexpected, read_body, respond

__all__ = ["FEATURES", "build_app"]

Handler = Callable[[Request, Context], Awaitable[Response]]
FEATURES = ["workflows", "definitions", "templates", "conditions", "signals", "retries", "files", "oauth2"]
_READY_TIMEOUT = 5.0
TOKEN_BODY_BYTES = 4096


def _check_url(request: Request) -> None:
    """422 naming the path or query parameter that holds a NUL (``%00``): no id, key or name
    has one, and Postgres text cannot store one (it made each of these routes a 500)."""
    for where, params in (("path", request.path_params), ("query", request.query_params)):
        for name, value in params.items():
            if isinstance(value, str) and "\x00" in value:
                raise ValidationFailed.one(name, f"{where} parameter must not contain a NUL character")


def build_app(ctx: Context) -> Starlette:
    """The Starlette app serving the whole API for ``ctx``."""

    def protected(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            # The token's client (None without authentication), for the handlers' tenancy checks.
            request.state.client = None
            if ctx.auth is not None:
                request.state.client = ctx.auth.verify(request.headers.get("authorization"))
            _check_url(request)
            ctx.metrics.counter("server.requests").inc()
            in_flight = ctx.metrics.gauge("server.requests_in_flight")
            in_flight.inc()
            try:
                return await handler(request, ctx)
            finally:
                in_flight.dec()

        return endpoint

    async def health(request: Request) -> Response:
        return respond({"status": "ok"})

    async def ready(request: Request) -> Response:
        check = {"status": "ok"}
        with trio.move_on_after(_READY_TIMEOUT) as scope:
            try:
                # Abandoned on timeout: a probe must answer in time even if the database hangs
                # (the thread keeps its control-limiter slot until it returns).
                await run_in_thread(ctx.storage.check, limiter=ctx.control_limiter, abandon_on_cancel=True)
            except Exception as exc:
                check = {"status": "error", "message": str(exc) or type(exc).__name__}
        if scope.cancelled_caught:
            check = {"status": "error", "message": f"no answer within {_READY_TIMEOUT:g} s"}
        ok = check["status"] == "ok"
        body = {"status": "ready" if ok else "not_ready", "checks": {"database": check}}
        return respond(body, 200 if ok else 503)

    async def info(request: Request) -> Response:
        return respond({"version": trioworks.__version__, "api_version": "v1", "features": FEATURES})

    async def token(request: Request) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in ("application/json", FORM):
            raise UnsupportedMediaType(
                f"token requests must be JSON or {FORM}, got {kind or 'no content type'!r}"
            )
        # Unauthenticated: read at most a few KB, so that nobody can make the server buffer more.
        form = token_form(kind, await read_body(request, TOKEN_BODY_BYTES))
        if ctx.auth is None:  # insecure development mode: any well-formed request gets a token
            return respond({"access_token": "insecure-dev", "token_type": "Bearer", "expires_in": 3600})
        return respond(ctx.auth.issue(form))

    async def metrics(request: Request, ctx: Context) -> Response:
        return respond({"metrics": ctx.metrics.snapshot()})

    def api(path: str, name: str, method: str) -> Route:
        return Route(f"/api/v1{path}", protected(HANDLERS[name]), methods=[method], name=name)

    files = "/workflows/{workflow_id}/activities/{activity_key}/files/{filename:path}"
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/api/v1/info", info, methods=["GET"]),
        Route("/api/v1/oauth/token", token, methods=["POST"]),
        Route("/api/v1/metrics", protected(metrics), methods=["GET"]),
        api("/workers/poll", "poll", "POST"),
        api("/activities/{activity_id}/heartbeat", "heartbeat", "POST"),
        api("/activities/{activity_id}/complete", "complete", "POST"),
        api("/activities/{activity_id}/fail", "fail", "POST"),
        api("/workflow_definitions", "put_definition", "POST"),
        api("/workflow_definitions", "list_definitions", "GET"),
        api("/workflow_definitions/{name}", "get_definition", "GET"),
        api("/workflows", "submit", "POST"),
        api("/workflows", "list_workflows", "GET"),
        api("/workflows/start", "start", "POST"),
        api("/workflows/{workflow_id}", "get_workflow", "GET"),
        api("/workflows/{workflow_id}/output", "workflow_output", "GET"),
        api("/workflows/{workflow_id}/signal", "signal", "POST"),
        api("/workflows/{workflow_id}/activities/{activity_key}/output", "activity_output", "GET"),
        Route(f"/api/v1{files}", protected(upload), methods=["POST", "PUT"]),
        Route(f"/api/v1{files}", protected(download), methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={
            ServerError: on_server_error,
            HTTPException: on_http_error,
            ClientDisconnect: on_disconnect,
            Exception: on_unexpected,
        },
    )
