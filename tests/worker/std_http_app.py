"""A local HTTP server for the ``http_request`` tests (a Starlette app on the server's HTTP front, port 0)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from trioworks.server.http import asgi_responder, serve_http


async def json_route(request: Request) -> Response:
    return JSONResponse({"args": dict(request.query_params), "url": str(request.url)})


async def geo(request: Request) -> Response:
    body = b'{"properties": {"periods": [{"temperature": 72, "shortForecast": "Sunny"}]}}'
    return Response(body, media_type="application/geo+json")


async def text(request: Request) -> Response:
    return PlainTextResponse("Hello, world!")


async def untyped(request: Request) -> Response:
    response = Response(b'{"n": 1}')
    del response.headers["content-type"]
    return response


async def echo(request: Request) -> Response:
    return JSONResponse(
        {
            "method": request.method,
            "json": await request.json() if await request.body() else None,
            "headers": {k.lower(): v for k, v in request.headers.items()},
        }
    )


async def status(request: Request) -> Response:
    return JSONResponse({"error": "nope"}, status_code=int(request.path_params["code"]))


async def big(request: Request) -> Response:
    return PlainTextResponse("x" * int(request.query_params["n"]))


async def slow(request: Request) -> Response:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


APP = Starlette(
    routes=[
        Route("/json", json_route),
        Route("/geo", geo),
        Route("/text", text),
        Route("/untyped", untyped),
        Route("/echo", echo, methods=["GET", "POST", "PUT", "DELETE", "HEAD"]),
        Route("/status/{code:int}", status),
        Route("/big", big),
        Route("/slow", slow),
    ]
)


@contextlib.asynccontextmanager
async def http_app() -> AsyncIterator[str]:
    """Serve :data:`APP` on 127.0.0.1 (port 0) for the block; yields its base URL."""
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            functools.partial(serve_http, asgi_responder(APP), "127.0.0.1", 0, grace=0.1)
        )
        yield urls[0]
        nursery.cancel_scope.cancel()
