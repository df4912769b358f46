"""HTTP client of the worker API: OAuth token cache, error mapping, retries.

A thin layer over httpx; pass ``transport=`` (e.g. :class:`httpx.MockTransport` or
:class:`httpx.ASGITransport`) to talk to a fake or in-process server.

The small JSON calls (poll, heartbeat, complete, fail, the token fetch) encode their body once
and, on the default transport with no proxy, go straight to its
:class:`~trioworks.worker._direct.DirectPool` as request bytes built here (a fixed head prepared
once, plus the path, the token and the length): no :class:`httpx.Request` or
:class:`httpx.Response` is built for them, which on the bench machine was about 0.15 ms of CPU per
call. With any other transport (a proxy, a test's :class:`httpx.MockTransport`, an ASGI app) they,
like uploads and downloads, build an :class:`httpx.Request` and hand it straight to the transport
(:class:`httpx.AsyncClient` would add URL merging, cookie jars, auth and redirect handling and
event hooks that these calls never use). The default transport is
:class:`~trioworks.worker._transport.WorkerTransport`, which goes through the proxy the
environment sets for ``api_url`` if any.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import logging
import random
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import trio

from .. import __version__
from ..core import RetryPolicy, retry
from ._config import WorkerConfig
from ._direct import BUFFERED, DirectPool, Key
from ._errors import ApiError, AuthenticationError, LeaseLostError
from ._transport import WorkerTransport, environment_proxy
from ._wire import PendingActivity, pending_activity

__all__ = ["EncodedJSON", "WorkerApiClient", "encode_json", "is_transient"]

logger = logging.getLogger("trioworks.worker.client")

T = TypeVar("T")

TOKEN_PATH = "/api/v1/oauth/token"

# The bytes httpx would send for ``json=`` (its encoder's options), with one encoder built once.
_encode = jsonlib.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class EncodedJSON(bytes):
    """UTF-8 JSON text, put as it is into a call's body where it is a top-level value.

    A result's output is encoded once, when the worker checks that it is JSON, and that text is
    what complete sends.
    """


def encode_json(value: Any) -> EncodedJSON:
    """``value`` as the worker sends it; TypeError/ValueError when it is not JSON (NaN, a set, a
    lone surrogate...)."""
    return EncodedJSON(_encode(value).encode())


def _body(payload: dict[str, Any]) -> bytes:
    for value in payload.values():
        if isinstance(value, EncodedJSON):
            break
    else:
        return _encode(payload).encode()
    parts = [
        _encode(key).encode() + b":" + (value if isinstance(value, EncodedJSON) else _encode(value).encode())
        for key, value in payload.items()
    ]
    return b"{" + b",".join(parts) + b"}"


# A path made only of these characters is sent as it is (httpx would not escape any of them).
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/_.~-]*")
# A header value we may put on the wire as it is: visible ASCII and spaces.
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")


class _Answer:
    """Status, reason phrase and body of a small call's answer (from either path)."""

    __slots__ = ("content", "reason", "status")

    def __init__(self, status: int, reason: str, content: bytes) -> None:
        self.status = status
        self.reason = reason
        self.content = content

    def json(self) -> Any:
        try:  # UTF-8, as servers send (skips json's encoding detection)
            return jsonlib.loads(self.content.decode())
        except ValueError:  # any other encoding json accepts, or the real error
            return jsonlib.loads(self.content)


def is_transient(exc: BaseException) -> bool:
    """Network errors, timeouts, 5xx and 429: worth another try."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, ApiError) and exc.transient


REPORT_RETRY = RetryPolicy(
    max_attempts=1_000_000, base_delay=0.2, factor=2.0, max_delay=5.0, jitter=0.5, retry_on=is_transient
)
"""Complete/fail/upload: retried on transient errors until the caller's deadline."""


def _error_of(response: httpx.Response | _Answer, method: str, path: str) -> ApiError:
    if isinstance(response, httpx.Response):
        status, reason, content = response.status_code, response.reason_phrase, response.content
    else:
        status, reason, content = response.status, response.reason, response.content
    code, message = "HTTP_ERROR", reason or ""
    try:
        body = jsonlib.loads(content)
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            code = str(err.get("code", code))
            message = str(err.get("message", message))
    except ValueError:
        if content:
            message = (
                response.text if isinstance(response, httpx.Response) else content.decode("utf-8", "replace")
            )[:200]
    kind = AuthenticationError if status == 401 else ApiError
    return kind(method, path, status, code, message)


class WorkerApiClient:
    """Worker calls of the Kruxia Flow API.

    Token handling: the token is fetched on first use, cached, refreshed ahead of its
    ``expires_in`` (at 90 % of its life, at most 60 s early), and a 401 on any call clears it and
    retries that call once with a fresh one. Empty ``client_id``: no ``Authorization`` header.

    Error handling: a 4xx/5xx answer raises :class:`ApiError` (:class:`AuthenticationError` for a
    401 that survives the retry, :class:`LeaseLostError` for 404/409 on activity calls); network
    failures raise :class:`httpx.TransportError`. Only methods taking ``retry_policy`` retry.

    Every method is a checkpoint; cancelling one abandons the request (the connection is closed).
    """

    def __init__(
        self,
        config: WorkerConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._rng = rng
        self._base = config.api_url.rstrip("/")
        if transport is None:
            # No pool limit: the number of concurrent calls is already bounded by the work slots
            # (one heartbeat + one report or transfer per activity, plus the poller), and a
            # control-plane call must never queue behind file transfers for a connection.
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
            transport = WorkerTransport(limits=limits, proxy=environment_proxy(self._base))
        self._transport = transport
        self._headers = {"User-Agent": f"trioworks-worker/{__version__}", "Accept": "application/json"}
        self._extensions = {"timeout": httpx.Timeout(config.request_timeout).as_dict()}
        # JSON calls read their whole (small) answer at once: the transport may take its direct path.
        self._buffered = {**self._extensions, BUFFERED: True}
        self._direct: DirectPool | None = None
        self._key: Key = (b"", b"", 0)
        self._prefix = ""
        self._head = b""
        url = httpx.URL(self._base)
        if (
            isinstance(transport, WorkerTransport)
            and transport.direct is not None
            and url.scheme in ("http", "https")
            and url.host
            and not url.query
            and not url.fragment
        ):
            # The small JSON calls' own path (see the module's docstring): what httpx would send.
            self._direct = transport.direct
            self._key = (url.raw_scheme, url.raw_host, url.port or (443 if url.scheme == "https" else 80))
            self._prefix = url.raw_path.decode("ascii").rstrip("/")
            fixed = [("Host", url.netloc.decode("ascii")), *self._headers.items()]
            fixed.append(("Content-Type", "application/json"))
            self._head = "".join(f"{name}: {value}\r\n" for name, value in fixed).encode("ascii")
        self._token: str | None = None
        self._auth_line = b""
        self._refresh_at = 0.0
        self._token_lock = trio.Lock()
        self.token_fetches = 0

    async def __aenter__(self) -> WorkerApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await self._transport.aclose()

    # -- auth ----------------------------------------------------------------

    async def _authorization(self) -> str | None:
        """The ``Authorization`` header's value (fetching a token when due), or None."""
        if not self._config.client_id:
            return None
        if self._token is None or trio.current_time() >= self._refresh_at:
            async with self._token_lock:  # one fetch at a time; the others reuse its token
                if self._token is None or trio.current_time() >= self._refresh_at:
                    await self._fetch_token()
        return f"Bearer {self._token}"

    async def _auth_headers(self) -> dict[str, str]:
        value = await self._authorization()
        return {"Authorization": value} if value is not None else {}

    async def _fetch_token(self) -> None:
        body = {
            "grant_type": "client_credentials",
            "client_id": self._config.client_id,
            "client_secret": self._config.client_secret,
        }
        response = await self._exchange_json("POST", TOKEN_PATH, _encode(body).encode(), None)
        if response.status != 200:
            error = _error_of(response, "POST", TOKEN_PATH)
            if 400 <= response.status < 500:
                raise AuthenticationError(*error.args)
            raise error
        answer = response.json()
        expires_in = float(answer.get("expires_in") or 3600)
        token = str(answer["access_token"])
        if not _HEADER_VALUE.fullmatch(token):
            raise ValueError("the token endpoint answered a token that cannot go in a header")
        self._token = token
        self._auth_line = f"Authorization: Bearer {token}\r\n".encode("ascii")
        self._refresh_at = trio.current_time() + expires_in - min(60.0, expires_in * 0.1)
        self.token_fetches += 1
        logger.debug("fetched a token valid for %.0f s", expires_in)

    def _forget(self, authorization: str) -> None:
        # Only drop the token this request used: another task may already hold a newer one.
        if authorization == f"Bearer {self._token}":
            self._token = None

    # -- requests ------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | AsyncIterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        buffered: bool = False,
    ) -> httpx.Request:
        return httpx.Request(
            method,
            self._base + path,
            content=content,
            headers={**self._headers, **(headers or {})},
            extensions=self._buffered if buffered else self._extensions,
        )

    async def _exchange_json(self, method: str, path: str, body: bytes, authorization: str | None) -> _Answer:
        """One small JSON exchange (``body`` already encoded), on the direct path when there is one."""
        direct = self._direct
        if direct is None:
            headers = {"Content-Type": "application/json"}
            if authorization is not None:
                headers["Authorization"] = authorization
            response = await self._exchange(
                self._request(method, path, content=body, headers=headers, buffered=True)
            )
            return _Answer(response.status_code, response.reason_phrase, response.content)
        target = self._prefix + path
        raw_target = (
            target.encode("ascii")
            if _PLAIN_PATH.fullmatch(target)
            else httpx.URL(self._base + path).raw_path  # escaped as httpx would
        )
        data = b"".join(
            (
                method.encode("ascii"),
                b" ",
                raw_target,
                b" HTTP/1.1\r\n",
                self._head,
                self._auth_line if authorization is not None else b"",
                b"Content-Length: %d\r\n\r\n" % len(body),
                body,
            )
        )
        timeout = self._config.request_timeout
        reply = await direct.call(self._key, data, timeout, timeout)
        return _Answer(reply.status, reply.reason.decode("ascii", "replace"), reply.content)

    async def _call(self, method: str, path: str, payload: Any, *, lease: bool = False) -> Any:
        """A small JSON call: the answer's decoded body (``{}`` when empty); ApiError on 4xx/5xx.

        ``payload``'s top-level values may be :class:`EncodedJSON`.
        """
        body = _body(payload)
        for attempt in (1, 2):
            authorization = await self._authorization()
            response = await self._exchange_json(method, path, body, authorization)
            if response.status == 401 and attempt == 1 and authorization is not None:
                self._forget(authorization)
                continue
            break
        if response.status < 400:
            return response.json() if response.content else {}
        error = _error_of(response, method, path)
        if lease and response.status in (404, 409):
            raise LeaseLostError(*error.args)
        raise error

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        body: Callable[[], AsyncIterable[bytes]],
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A streamed request (an upload): ``body()`` gives a fresh iterator per attempt."""
        for attempt in (1, 2):
            auth = await self._auth_headers()
            response = await self._exchange(
                self._request(method, path, content=body(), headers={**(headers or {}), **auth})
            )
            if response.status_code == 401 and attempt == 1 and auth:
                self._forget(auth["Authorization"])
                continue
            break
        if response.status_code < 400:
            return response
        raise _error_of(response, method, path)

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read the whole response (closing it even when cancelled)."""
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    @contextlib.asynccontextmanager
    async def _open(self, request: httpx.Request) -> AsyncIterator[httpx.Response]:
        """Send ``request``; the response's body is read by the caller and closed on the way out."""
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            yield response
        finally:
            await response.aclose()

    async def _retried(
        self, method: str, path: str, once: Callable[[], Awaitable[T]], policy: RetryPolicy
    ) -> T:
        def log(attempt: int, exc: BaseException, delay: float) -> None:
            logger.warning("%s %s failed (%s), retry %d in %.2f s", method, path, exc, attempt, delay)

        return await retry(once, policy, on_retry=log, rng=self._rng)

    async def _report(
        self, kind: str, activity_id: str, body: dict[str, Any], policy: RetryPolicy | None
    ) -> Any:
        path = f"/api/v1/activities/{activity_id}/{kind}"
        payload = {"worker_id": self._config.worker_id, **body}
        if policy is None:
            return await self._call("POST", path, payload, lease=True)

        async def once() -> Any:
            return await self._call("POST", path, payload, lease=True)

        return await self._retried("POST", path, once, policy)

    # -- worker calls -----------------------------------------------------------

    async def poll(self, max_activities: int) -> list[PendingActivity]:
        """``POST /api/v1/workers/poll`` once (no retry: the poller has its own backoff)."""
        data = await self._call(
            "POST",
            "/api/v1/workers/poll",
            {
                "worker": self._config.worker,
                "worker_id": self._config.worker_id,
                "max_activities": max_activities,
            },
        )
        items = data.get("activities", []) if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ValueError(f"a poll answer must be an object with an 'activities' list, got {data!r:.200}")
        return [pending_activity(item) for item in items]

    async def heartbeat(self, activity_id: str) -> None:
        """One heartbeat; :class:`LeaseLostError` on 404/409."""
        await self._call(
            "POST",
            f"/api/v1/activities/{activity_id}/heartbeat",
            {"worker_id": self._config.worker_id},
            lease=True,
        )

    async def complete(self, activity_id: str, body: dict[str, Any], retry_policy: RetryPolicy | None) -> Any:
        """Complete (idempotent for this worker, so retrying is safe)."""
        return await self._report("complete", activity_id, body, retry_policy)

    async def fail(self, activity_id: str, body: dict[str, Any], retry_policy: RetryPolicy | None) -> Any:
        return await self._report("fail", activity_id, body, retry_policy)

    async def upload(
        self,
        workflow_id: str,
        activity_key: str,
        filename: str,
        body: Callable[[], AsyncIterable[bytes]],
        *,
        size: int,
        content_type: str | None,
        retry_policy: RetryPolicy | None = REPORT_RETRY,
    ) -> Any:
        """Stream a file up; ``body()`` is called once per attempt for a fresh iterator."""
        headers = {
            "Content-Type": content_type or "application/octet-stream",
            # An explicit length keeps httpx from using chunked encoding.
            "Content-Length": str(size),
        }
        path = f"/api/v1/workflows/{workflow_id}/activities/{activity_key}/files/{filename}"

        async def once() -> Any:
            response = await self._send_once("POST", path, body=body, headers=headers)
            return response.json() if response.content else {}

        if retry_policy is None:
            return await once()
        return await self._retried("POST", path, once, retry_policy)

    @contextlib.asynccontextmanager
    async def download(
        self, workflow_id: str, activity_key: str, filename: str
    ) -> AsyncIterator[httpx.Response]:
        """Open a streamed ``GET`` of a stored file; the caller reads ``aiter_bytes()``."""
        path = f"/api/v1/workflows/{workflow_id}/activities/{activity_key}/files/{filename}"
        for attempt in (1, 2):
            auth = await self._auth_headers()
            async with self._open(self._request("GET", path, headers=auth)) as response:
                if response.status_code == 401 and attempt == 1 and auth:
                    self._forget(auth["Authorization"])
                    continue
                if response.status_code >= 400:
                    await response.aread()
                    raise _error_of(response, "GET", path)
                yield response
                return
