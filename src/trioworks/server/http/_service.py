"""Routes about the server itself: liveness, readiness, version, tokens, metrics."""

from __future__ import annotations

import trio
from starlette.requests import Request
from starlette.responses import Response

import trioworks

from ...core import run_in_thread
from .._errors import UnsupportedMediaType
from ._auth import FORM, token_form
from ._context import Context, read_body, respond
from ._routes import Routes

__all__ = ["FEATURES", "routes"]

routes = Routes()
FEATURES = ["workflows", "definitions", "templates", "conditions", "signals", "retries", "files", "oauth2"]
_READY_TIMEOUT = 5.0
TOKEN_BODY_BYTES = 4096


@routes.get("/health", public=True)
async def health(request: Request, ctx: Context) -> Response:
    return respond({"status": "ok"})


@routes.get("/health/ready", public=True)
async def ready(request: Request, ctx: Context) -> Response:
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


@routes.get("/api/v1/info", public=True)
async def info(request: Request, ctx: Context) -> Response:
    return respond({"version": trioworks.__version__, "api_version": "v1", "features": FEATURES})


@routes.post("/api/v1/oauth/token", public=True)
async def token(request: Request, ctx: Context) -> Response:
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


@routes.get("/api/v1/metrics")
async def metrics(request: Request, ctx: Context) -> Response:
    return respond({"metrics": ctx.metrics.snapshot()})
