"""The ASGI application: Starlette over the routes each handler module declares, auth, and the
error body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .._errors import ServerError, ValidationFailed
from . import _api, _files, _ops, _schedules, _service
from ._context import Context, on_disconnect, on_http_error, on_server_error, on_unexpected
from ._fast import FastRoutes
from ._routes import Endpoint, Handler

__all__ = ["build_app"]

# Mounted in this order (Starlette takes the first route whose path and method match).
_MODULES = (_service, _ops, _api, _files, _schedules)


def _check_url(request: Request) -> None:
    """422 naming the path or query parameter that holds a NUL (``%00``): no id, key or name
    has one, and Postgres text cannot store one (it made each of these routes a 500)."""
    for where, params in (("path", request.path_params), ("query", request.query_params)):
        for name, value in params.items():
            if isinstance(value, str) and "\x00" in value:
                raise ValidationFailed.one(name, f"{where} parameter must not contain a NUL character")


def _public(handler: Handler, ctx: Context) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(request, ctx)

    return endpoint


def _protected(handler: Handler, ctx: Context) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        # The token's client (None without authentication), for the handlers' tenancy checks.
        request.state.client = None
        if ctx.auth is not None:
            request.state.client = ctx.auth.verify(request.headers.get("authorization"))
        _check_url(request)
        ctx.counter("server.requests").inc()
        in_flight = ctx.metrics.gauge("server.requests_in_flight")
        in_flight.inc()
        try:
            return await handler(request, ctx)
        finally:
            in_flight.dec()

    return endpoint


def _mount(endpoint: Endpoint, ctx: Context) -> Route:
    wrap = _public if endpoint.public else _protected
    return Route(
        endpoint.path,
        wrap(endpoint.handler, ctx),
        methods=list(endpoint.methods),
        name=endpoint.handler.__name__,
    )


def build_app(ctx: Context) -> Starlette:
    """The Starlette app serving the whole API for ``ctx``."""
    endpoints = [endpoint for module in _MODULES for endpoint in module.routes.endpoints]
    app = Starlette(
        routes=[_mount(endpoint, ctx) for endpoint in endpoints],
        exception_handlers={
            ServerError: on_server_error,
            HTTPException: on_http_error,
            ClientDisconnect: on_disconnect,
            Exception: on_unexpected,
        },
    )
    app.state.endpoints = endpoints  # the route table, for the OpenAPI document (_ops)
    # The worker routes served without Starlette by the direct responder (_direct, _fast).
    app.state.fast = FastRoutes(ctx, endpoints)
    app.state.fast.check_precedence(app.routes)
    return app
