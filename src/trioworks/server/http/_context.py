"""HTTP helpers: capped body reading, JSON decoding, the error body, the request context.

:class:`Context` carries what every handler needs (storage, limiters, clock) and is the only
way handlers reach the storage: :meth:`Context.db` runs a storage method in a thread on the
storage limiter, :meth:`Context.queue` a queue call (claim, complete, fail) batched with the
others in flight (:meth:`Storage.run_batch` through :class:`~trioworks.core.ThreadBatcher`, on the
same limiter), :meth:`Context.control` on the separate control-plane limiter.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import trio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...core import Counter, Metrics, ThreadBatcher, run_in_thread
from .._errors import BadRequest, Forbidden, PayloadTooLarge, ServerError, UnsupportedMediaType
from ..storage import FileStore, Storage, StorageCall
from ._auth import Authenticator
from ._limits import load_json

__all__ = [
    "Context",
    "Wakeup",
    "check_json_type",
    "decode_json",
    "error_response",
    "json_body",
    "json_bytes",
    "read_body",
    "respond",
]

T = TypeVar("T")
logger = logging.getLogger("trioworks.server")

_MAX_OWNERS = 10_000
_BIG_JSON = 256 * 1024  # decode bodies larger than this in a thread, off the loop


class Wakeup:
    """A nudge for the server's signal-timeout timer: :meth:`set` after a change that may have
    made a timed wait (a workflow started, an activity completed); the timer then reads the
    earliest deadline again instead of sleeping to the one it knew."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        """Return once :meth:`set` was called since the last :meth:`wait` returned."""
        await self._event.wait()
        self._event = trio.Event()


@attrs.frozen
class Context:
    storage: Storage
    auth: Authenticator | None  # None: --insecure-dev, no authentication
    clock: Callable[[], float]
    storage_limiter: trio.CapacityLimiter
    control_limiter: trio.CapacityLimiter
    file_limiter: trio.CapacityLimiter
    max_body_bytes: int
    max_file_bytes: int
    files: FileStore
    metrics: Metrics
    # SECRET.<name> -> value (KRUXIAFLOW_SECRET_<NAME>): filled into parameters at hand-out only.
    secrets: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    # worker_id -> client, as bound in the storage (bindings never change, so caching is safe);
    # cleared when it passes _MAX_OWNERS entries, so a client inventing ids cannot grow it.
    owners: dict[str, str] = attrs.field(factory=dict)
    timers: Wakeup = attrs.field(factory=Wakeup)
    # The server's schedules task: set after a schedule was created, changed or deleted.
    schedule_timer: Wakeup = attrs.field(factory=Wakeup)
    # (definition name, version number) -> the original's version string (immutable: cacheable).
    stamps: dict[tuple[str, int], str] = attrs.field(factory=dict)
    # worker queue -> when this server last answered a poll of it (clock seconds): lets
    # `status` / `run --wait` say that nobody is polling a workflow's queue.
    polled: dict[str, float] = attrs.field(factory=dict)
    # Queue calls run in batches of at most this many (one transaction: its locks are held
    # until the last call is done), at most `batches` batches at once.
    batch_size: int = 32
    batches: int = 1
    batcher: ThreadBatcher[StorageCall, Any] = attrs.field(init=False)
    counters: dict[str, Counter] = attrs.field(factory=dict)  # see counter()

    @batcher.default
    def _batcher(self) -> ThreadBatcher[StorageCall, Any]:
        return ThreadBatcher(
            self.storage.run_batch,
            limiter=self.storage_limiter,
            max_batch=self.batch_size,
            max_batches=self.batches,
            metrics=self.metrics,
            name="server.queue",
        )

    async def queue(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the storage queue method ``fn`` (claim, complete or fail) in the next batch.

        Calls that arrive while a batch is in flight are gathered into the next one: one thread
        hop and (SQL) one transaction for all, each call answering as it would alone (see
        :meth:`Storage.run_batch`). A checkpoint; cancelled before its batch starts, the call
        never runs; once it started, it is not abandoned (as :meth:`db`).
        """
        result: T = await self.batcher.submit(StorageCall(fn.__name__, args))
        return result

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a storage method in a thread under the storage limiter (a checkpoint).

        Not abandoned on cancel: a transaction that started runs to its commit or rollback.
        """
        return await run_in_thread(fn, *args, limiter=self.storage_limiter)

    async def check_worker_id(self, request: Request, worker_id: str, *, bind: bool = False) -> None:
        """403 if ``worker_id`` belongs to another client than the request's (see :meth:`check_owner`)."""
        await self.check_owner(getattr(request.state, "client", None), worker_id, bind=bind)

    async def check_owner(self, client: str | None, worker_id: str, *, bind: bool = False) -> None:
        """403 if ``worker_id`` belongs to another client than ``client`` (the request's).

        With ``bind`` (a poll) a new ``worker_id`` is bound to the request's client first; other
        requests only look (so a refused one stores nothing): an id that was never bound holds
        no claim made with authentication, so the claim check that follows refuses it anyway.
        A no-op without authentication (``--insecure-dev``, ``client`` None).
        """
        if client is None or self.owners.get(worker_id) == client:
            return
        if bind:
            owner: str | None = await self.control(self.storage.bind_worker, worker_id, client)
        else:
            owner = await self.control(self.storage.worker_client, worker_id)
            if owner is None:
                return
        if owner != client:
            raise Forbidden(f"worker_id {worker_id!r} belongs to another client, not {client!r}")
        if len(self.owners) >= _MAX_OWNERS:
            self.owners.clear()
        self.owners[worker_id] = client

    def counter(self, name: str) -> Counter:
        """The metrics counter ``name`` (looked up once, then from a plain dict)."""
        counter = self.counters.get(name)
        if counter is None:
            counter = self.counters[name] = self.metrics.counter(name)
        return counter

    async def control(self, fn: Callable[..., T], *args: Any) -> T:
        """Like :meth:`db` on the control-plane limiter (heartbeats, readiness), so these never
        queue behind polls and completions for a thread."""
        return await run_in_thread(fn, *args, limiter=self.control_limiter)


def respond(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


# Starlette's JSONResponse.render, with the encoder built once instead of per response.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


def json_bytes(body: Any) -> bytes:
    """``body`` encoded exactly as :func:`respond` (a Starlette ``JSONResponse``) encodes it."""
    return _ENCODER.encode(body).encode("utf-8")


def error_response(exc: ServerError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    409: "CONFLICT",
    422: "VALIDATION_ERROR",
}


async def on_server_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServerError)
    if exc.status >= 500:  # the database is down: one line per request, not a traceback
        logger.warning("%s %s: %d %s", request.method, request.url.path, exc.status, exc.message)
    return error_response(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route 404, wrong method 405) in the spec's error body."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "BAD_REQUEST" if exc.status_code < 500 else "INTERNAL_ERROR")
    message = exc.detail if exc.status_code != 404 else f"no route {request.method} {request.url.path}"
    return JSONResponse(
        {"error": {"code": code, "message": str(message)}}, status_code=exc.status_code, headers=exc.headers
    )


class _NoResponse(Response):
    """Sends nothing: the client is gone (the HTTP front closes the connection, and answers a
    malformed or oversized body itself with its 4xx)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return None


async def on_disconnect(request: Request, exc: Exception) -> Response:
    """The client went away mid-body (an upload cut short): nothing was stored, nobody to answer."""
    logger.info("client disconnected during %s %s", request.method, request.url.path)
    return _NoResponse()


async def on_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"error": {"code": "INTERNAL_ERROR", "message": "internal server error"}}, status_code=500
    )


async def read_body(request: Request, cap: int) -> bytes:
    """The whole body, refusing (413) as soon as it passes ``cap`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the {cap} byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge(f"request body exceeds the {cap} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def check_json_type(kind: str, also: tuple[str, ...] = ()) -> None:
    """415 unless the media type ``kind`` is JSON, absent, or one of ``also``."""
    if kind and kind != "application/json" and not kind.endswith("+json") and kind not in also:
        raise UnsupportedMediaType(f"expected Content-Type: application/json, got {kind!r}")


async def decode_json(body: bytes, ctx: Context) -> Any:
    """The decoded JSON ``body``: 400 for an empty or undecodable one; a large one in a thread."""
    if not body.strip():
        raise BadRequest("request body is empty: expected a JSON object")
    if len(body) > _BIG_JSON:
        return await run_in_thread(load_json, body, limiter=ctx.file_limiter)
    return load_json(body)


async def json_body(request: Request, ctx: Context, *, also: tuple[str, ...] = ()) -> Any:
    """The decoded JSON body (raw bytes for a type in ``also``).

    415 unless the content type is JSON, absent, or one of ``also``; 413 past the body cap;
    400 for an empty or undecodable body.
    """
    kind = media_type(request)
    check_json_type(kind, also)
    body = await read_body(request, ctx.max_body_bytes)
    if kind in also:
        if not body.strip():
            raise BadRequest("request body is empty: expected a JSON object")
        return body  # the caller decodes its other formats (raw bytes)
    return await decode_json(body, ctx)
