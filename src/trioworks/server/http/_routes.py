"""Routes declared once, next to their handlers.

Each handler module keeps a :class:`Routes` and decorates each handler with the method and the
path it serves; :func:`~._app.build_app` mounts every module's routes in order. Adding a route
is one decorator on one handler: there is no name table or route list to edit besides.

A handler is ``async def handler(request, ctx) -> Response``. A route is *protected* unless it
says ``public=True``: the token is checked (when authentication is on), path and query are
checked for NUL characters, and the request is counted in the metrics.

A protected JSON route may instead be declared by its work alone (:meth:`Routes.work`),
``async def work(ctx, client, path_params, body) -> response body``: the HTTP front serves it
without Starlette (:mod:`._fast`), and the Starlette handler made from the same work answers
requests the front hands to the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from starlette.requests import Request
from starlette.responses import Response

from ._context import Context, json_body, respond

__all__ = ["Endpoint", "FastWork", "Handler", "Routes"]

Handler = Callable[[Request, Context], Awaitable[Response]]
FastWork = Callable[[Context, "str | None", Mapping[str, str], Any], Awaitable[Any]]
"""A JSON route's work: (ctx, the request's client, path parameters, decoded body) -> 200 body."""


@attrs.frozen
class Endpoint:
    path: str
    methods: tuple[str, ...]
    handler: Handler
    public: bool = False
    fast: FastWork | None = None


class Routes:
    """The routes of one handler module, in declaration order."""

    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def route(
        self, path: str, *methods: str, public: bool = False, fast: FastWork | None = None
    ) -> Callable[[Handler], Handler]:
        """Declare that the decorated handler serves ``methods`` on ``path`` (Starlette syntax)."""
        if fast is not None and public:
            raise ValueError("a fast route is a protected one")

        def declare(handler: Handler) -> Handler:
            self.endpoints.append(Endpoint(path, methods, handler, public, fast))
            return handler

        return declare

    def get(self, path: str, *, public: bool = False) -> Callable[[Handler], Handler]:
        return self.route(path, "GET", public=public)

    def post(self, path: str, *, public: bool = False) -> Callable[[Handler], Handler]:
        return self.route(path, "POST", public=public)

    def work(self, path: str, work: FastWork) -> FastWork:
        """Declare a protected JSON POST route served by ``work`` on both paths: the fast one,
        and a Starlette handler (decode the body, call ``work``, answer its result as JSON)."""

        async def handler(request: Request, ctx: Context) -> Response:
            data = await json_body(request, ctx)
            return respond(await work(ctx, request.state.client, request.path_params, data))

        handler.__name__ = handler.__qualname__ = work.__name__.removesuffix("_work")
        self.route(path, "POST", fast=work)(handler)
        return work
