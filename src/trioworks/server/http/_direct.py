"""The app's routes called directly, without Starlette's middleware and ASGI layers.

Starlette runs every request through its error middleware, exception middleware and router,
each an ASGI layer with its own closures and messages: most of the server's CPU for a small
request (``docs/performance.md``). :func:`direct_responder` keeps what decides the answer and
drops the layers: it picks the route exactly as Starlette's router does (the first route of
the app's own table that matches path and method), calls its endpoint with a Starlette
:class:`~starlette.requests.Request`, maps an exception through the app's own exception
handlers (most specific class first, as Starlette), and writes the endpoint's
:class:`~starlette.responses.Response` (its status, headers and body bytes) in one send. So the
status codes, error bodies and JSON bytes are the app's, and the route table stays the one
source of truth.

Before that, the routes a worker calls for every activity (poll, heartbeat, complete, fail) are
served without Starlette at all, by the app's :class:`~._fast.FastRoutes` (``app.state.fast``).

What it does not handle goes to the ASGI ``fallback`` (the app itself): no route matches
(Starlette's 404, 405, redirects), an endpoint that is not a coroutine function, an app with
middleware. A response that is not a plain body (streamed, or with a background task) is sent
through the ASGI interface of the response itself.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from ._asgi import Exchange, asgi_responder, http_scope
from ._fast import FastRoutes
from ._front import Respond
from ._h1 import H1Connection, RequestHead

__all__ = ["direct_responder"]

logger = logging.getLogger("trioworks.server.http")

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


def _handler_for(handlers: dict[Any, ErrorHandler], exc: Exception) -> ErrorHandler | None:
    for cls in type(exc).__mro__:  # the most specific handler, as Starlette looks it up
        if cls in handlers:
            return handlers[cls]
    return None


def direct_responder(app: Starlette) -> Respond:
    """The :data:`~._front.Respond` serving ``app``'s routes directly (see the module docstring)."""
    fallback = asgi_responder(app)
    if app.user_middleware:  # middleware must see every request: no shortcut
        return fallback
    # Each route, with the endpoint to call directly (None: through the app).
    table: list[tuple[BaseRoute, Endpoint | None]] = [
        (route, route.endpoint)
        if isinstance(route, Route) and inspect.iscoroutinefunction(route.endpoint)
        else (route, None)
        for route in app.routes
    ]
    handlers: dict[Any, ErrorHandler] = dict(app.exception_handlers)
    fast: FastRoutes | None = getattr(app.state, "fast", None)

    async def respond(conn: H1Connection, head: RequestHead) -> None:
        if fast is not None:
            found = fast.match(head)
            if found is not None:
                await fast.serve(conn, head, *found)
                return
        scope = http_scope(conn, head)
        endpoint: Endpoint | None = None  # stays None without a route: Starlette's 404, 405, redirect
        for route, direct in table:
            match, child = route.matches(scope)
            if match is Match.FULL:
                endpoint = direct
                break
        if endpoint is None:
            await fallback(conn, head)
            return
        scope.update(child)
        scope["app"] = app
        scope["router"] = app.router
        exchange = Exchange(conn)
        request = Request(scope, exchange.receive)
        failure: Exception | None = None
        try:
            try:
                response = await endpoint(request)
            except Exception as exc:
                handler = _handler_for(handlers, exc)
                if handler is None:
                    raise
                response = await handler(request, exc)
            if exchange.gone:
                pass  # nobody to answer, or a bad body: settle() below
            elif type(response).__call__ is Response.__call__ and response.background is None:
                try:
                    await conn.respond(response.status_code, response.raw_headers, bytes(response.body))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    exchange.gone = True  # nobody to answer; the connection closes
            else:  # streamed, or with a background task: through its own ASGI interface
                await response(scope, exchange.receive, exchange.send)
        except Exception as exc:
            failure = exc
        await exchange.settle(failure)

    return respond
