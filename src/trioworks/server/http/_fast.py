"""The routes a worker calls for every activity, served without Starlette: :class:`FastRoutes`.

Poll, heartbeat, complete and fail are nearly all of a busy server's requests, and small: for
them, building Starlette's request, matching the route list and rendering a ``JSONResponse``
cost more of the loop's time than the work itself. A route declared with ``Routes.work(path, work)``
(:class:`~._routes.Routes`) is matched here by its path segments, and served in one function:
the token checked, the request counted, the JSON body read (415, 413 and 400 as
:func:`~._context.json_body` says) and decoded, the route's work called (the function its
Starlette endpoint calls too) and its answer written as bytes. Errors get the app's bodies:
a :class:`~trioworks.server.ServerError` its status and body, anything else the 500 body.
So the bytes on the wire are the app's (``tests/server/test_direct_routes.py`` compares them).

What it does not take goes to the app as before: another route or method, a request with a
query string or a NUL in its path (the app's checks answer those).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import trio
from starlette.routing import Match, Route

from .._errors import PayloadTooLarge, ServerError
from ._context import Context, check_json_type, decode_json, json_bytes
from ._h1 import ClientGone, H1Connection, ProtocolError, RequestHead
from ._routes import Endpoint, FastWork

__all__ = ["FastRoutes"]

logger = logging.getLogger("trioworks.server")

_JSON = b"application/json"
_INTERNAL = json_bytes({"error": {"code": "INTERNAL_ERROR", "message": "internal server error"}})

# A route's path split at "/", with None where a parameter goes, and the parameters' names.
_Template = tuple[tuple[str | None, ...], tuple[str, ...], FastWork]


def _template(path: str, work: FastWork) -> _Template:
    parts = path.split("/")
    names = tuple(p[1:-1] for p in parts if p.startswith("{"))
    if any(":" in name for name in names):
        raise ValueError(f"fast route {path}: only plain {{name}} parameters")
    return tuple(None if p.startswith("{") else p for p in parts), names, work


def _header(head: RequestHead, name: bytes) -> str | None:
    """The first header ``name`` (lower case), as Starlette's ``request.headers.get`` reads it."""
    for key, value in head.headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _json_headers(body: bytes, first: tuple[tuple[bytes, bytes], ...] = ()) -> list[tuple[bytes, bytes]]:
    # In JSONResponse's order: the caller's headers, then content-length, then content-type.
    return [*first, (b"content-length", b"%d" % len(body)), (b"content-type", _JSON)]


class FastRoutes:
    """The ``fast`` routes of ``endpoints``, served for ``ctx`` (see the module docstring)."""

    def __init__(self, ctx: Context, endpoints: Iterable[Endpoint]) -> None:
        self.ctx = ctx
        self._table: dict[tuple[str, int], list[_Template]] = {}
        self.routes: list[tuple[str, str]] = []  # (method, path) of each route served here
        for endpoint in endpoints:
            if endpoint.fast is None:
                continue
            template = _template(endpoint.path, endpoint.fast)
            for method in endpoint.methods:
                self._table.setdefault((method, len(template[0])), []).append(template)
                self.routes.append((method, endpoint.path))
        self._requests = ctx.metrics.counter("server.requests")
        self._in_flight = ctx.metrics.gauge("server.requests_in_flight")

    def check_precedence(self, routes: Iterable[Any]) -> None:
        """Raise unless Starlette would pick each fast route's own endpoint for its paths (an
        earlier route of the app's table matching them first would be bypassed here)."""
        routes = list(routes)
        for method, path in self.routes:
            sample = "/".join("x" if p.startswith("{") else p for p in path.split("/"))
            scope = {"type": "http", "path": sample, "root_path": "", "method": method}
            first = next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)
            if not isinstance(first, Route) or first.path != path:
                raise RuntimeError(f"fast route {method} {path} is shadowed by {first!r}")

    def match(self, head: RequestHead) -> tuple[FastWork, dict[str, str]] | None:
        """The work and path parameters of a request this serves; None for any other."""
        if head.query or "\x00" in head.path:
            return None
        parts = head.path.split("/")
        for template, names, work in self._table.get((head.method, len(parts)), ()):
            values = []
            for want, got in zip(template, parts, strict=True):
                if want is None:
                    if not got:
                        break
                    values.append(got)
                elif want != got:
                    break
            else:
                return work, dict(zip(names, values, strict=True))
        return None

    async def serve(
        self, conn: H1Connection, head: RequestHead, work: FastWork, params: dict[str, str]
    ) -> None:
        """Answer one request :meth:`match` took, as the app's endpoint would."""
        ctx = self.ctx
        try:
            client = None if ctx.auth is None else ctx.auth.verify(_header(head, b"authorization"))
            self._requests.inc()
            self._in_flight.inc()
            try:
                data = await self._json(conn, head)
                answer = await work(ctx, client, params, data)
            finally:
                self._in_flight.dec()
            body = json_bytes(answer)
            status, headers = 200, _json_headers(body)
        except ServerError as exc:
            if exc.status >= 500:  # the database is down: one line per request, as the app logs it
                logger.warning("%s %s: %d %s", head.method, head.path, exc.status, exc.message)
            body = json_bytes(exc.body())
            status = exc.status
            headers = _json_headers(body, ((b"www-authenticate", b"Bearer"),) if status == 401 else ())
        except ClientGone:  # nothing was stored; nobody to answer
            logger.info("client disconnected during %s %s", head.method, head.path)
            conn.closing = True
            return
        except ProtocolError as exc:  # a malformed or oversized body: its 4xx, then close
            logger.info("client disconnected during %s %s", head.method, head.path)
            await conn.error(exc.status, str(exc))
            return
        except Exception as exc:
            logger.exception("unhandled error on %s %s", head.method, head.path, exc_info=exc)
            status, headers, body = 500, _json_headers(_INTERNAL), _INTERNAL
        try:
            await conn.respond(status, headers, body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            conn.closing = True  # nobody to answer

    async def _json(self, conn: H1Connection, head: RequestHead) -> Any:
        """The decoded body, as :func:`~._context.json_body` reads it through Starlette."""
        ctx = self.ctx
        check_json_type((_header(head, b"content-type") or "").split(";")[0].strip().lower())
        cap = ctx.max_body_bytes
        declared = _header(head, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise PayloadTooLarge(f"request body of {declared} bytes exceeds the {cap} byte limit")
        chunks, size, more = [], 0, True
        while more:
            chunk, more = await conn.read()
            size += len(chunk)
            if size > cap:
                raise PayloadTooLarge(f"request body exceeds the {cap} byte limit")
            chunks.append(chunk)
        return await decode_json(chunks[0] if len(chunks) == 1 else b"".join(chunks), ctx)
