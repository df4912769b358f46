"""HTTP client of the worker API: OAuth token cache, error mapping, retries.

A thin layer over httpx; pass ``transport=`` (e.g. :class:`httpx.MockTransport` or
:class:`httpx.ASGITransport`) to talk to a fake or in-process server.

Every call (poll, heartbeat, complete, fail, upload, the token fetch, downloads) builds its
:class:`httpx.Request` and hands it straight to the transport: one request path. The default
transport is :class:`~trioworks.worker._transport.WorkerTransport`, which goes through the proxy
the environment sets for ``api_url`` if any. :class:`httpx.AsyncClient` would add URL merging,
cookie jars, auth and redirect handling and event hooks that these calls never use; on the bench
machine that was about 0.3 ms of CPU per call, a fifth of the worker's cost per no-op activity.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import httpx
import trio

from .. import __version__
from ..core import RetryPolicy, retry
from ._config import WorkerConfig
from ._direct import BUFFERED
from ._errors import ApiError, AuthenticationError, LeaseLostError
from ._transport import WorkerTransport, environment_proxy
from ._wire import PendingActivity, converter

__all__ = ["WorkerApiClient", "is_transient"]

logger = logging.getLogger("trioworks.worker.client")

TOKEN_PATH = "/api/v1/oauth/token"


def is_transient(exc: BaseException) -> bool:
    """Network errors, timeouts, 5xx and 429: worth another try."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, ApiError) and exc.transient


REPORT_RETRY = RetryPolicy(
    max_attempts=1_000_000, base_delay=0.2, factor=2.0, max_delay=5.0, jitter=0.5, retry_on=is_transient
)
"""Complete/fail/upload: retried on transient errors until the caller's deadline."""


def _error_of(response: httpx.Response, method: str, path: str) -> ApiError:
    code, message = "HTTP_ERROR", response.reason_phrase or ""
    try:
        body = response.json()
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            code = str(err.get("code", code))
            message = str(err.get("message", message))
    except ValueError:
        if response.content:
            message = response.text[:200]
    kind = AuthenticationError if response.status_code == 401 else ApiError
    return kind(method, path, response.status_code, code, message)


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
        self._token: str | None = None
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

    async def _auth_headers(self) -> dict[str, str]:
        if not self._config.client_id:
            return {}
        if self._token is None or trio.current_time() >= self._refresh_at:
            async with self._token_lock:  # one fetch at a time; the others reuse its token
                if self._token is None or trio.current_time() >= self._refresh_at:
                    await self._fetch_token()
        return {"Authorization": f"Bearer {self._token}"}

    async def _fetch_token(self) -> None:
        response = await self._exchange(
            self._request(
                "POST",
                TOKEN_PATH,
                json={
                    "grant_type": "client_credentials",
                    "client_id": self._config.client_id,
                    "client_secret": self._config.client_secret,
                },
            )
        )
        if response.status_code != 200:
            error = _error_of(response, "POST", TOKEN_PATH)
            if 400 <= response.status_code < 500:
                raise AuthenticationError(*error.args)
            raise error
        body = response.json()
        expires_in = float(body.get("expires_in") or 3600)
        self._token = str(body["access_token"])
        self._refresh_at = trio.current_time() + expires_in - min(60.0, expires_in * 0.1)
        self.token_fetches += 1
        logger.debug("fetched a token valid for %.0f s", expires_in)

    def _forget(self, header: dict[str, str]) -> None:
        # Only drop the token this request used: another task may already hold a newer one.
        if header.get("Authorization") == f"Bearer {self._token}":
            self._token = None

    # -- requests ------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: AsyncIterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Request:
        return httpx.Request(
            method,
            self._base + path,
            json=json,
            content=content,
            headers={**self._headers, **(headers or {})},
            extensions=self._buffered if json is not None else self._extensions,
        )

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: Callable[[], AsyncIterable[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        lease: bool = False,
    ) -> httpx.Response:
        for attempt in (1, 2):
            auth = await self._auth_headers()
            response = await self._exchange(
                self._request(
                    method,
                    path,
                    json=json,
                    content=body() if body is not None else None,
                    headers={**(headers or {}), **auth},
                )
            )
            if response.status_code == 401 and attempt == 1 and auth:
                self._forget(auth)
                continue
            break
        if response.status_code < 400:
            return response
        error = _error_of(response, method, path)
        if lease and response.status_code in (404, 409):
            raise LeaseLostError(*error.args)
        raise error

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read the whole response (closing it even when cancelled)."""
        # The hot path (every poll, heartbeat and report): no context manager around it.
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

    async def _send(self, method: str, path: str, retry_policy: RetryPolicy | None = None, **kw: Any) -> Any:
        async def once() -> httpx.Response:
            return await self._send_once(method, path, **kw)

        if retry_policy is None:
            response = await once()
        else:

            def log(attempt: int, exc: BaseException, delay: float) -> None:
                logger.warning("%s %s failed (%s), retry %d in %.2f s", method, path, exc, attempt, delay)

            response = await retry(once, retry_policy, on_retry=log, rng=self._rng)
        return response.json() if response.content else {}

    # -- worker calls -----------------------------------------------------------

    async def poll(self, max_activities: int) -> list[PendingActivity]:
        """``POST /api/v1/workers/poll`` once (no retry: the poller has its own backoff)."""
        data = await self._send(
            "POST",
            "/api/v1/workers/poll",
            json={
                "worker": self._config.worker,
                "worker_id": self._config.worker_id,
                "max_activities": max_activities,
            },
        )
        return [converter.structure(item, PendingActivity) for item in data.get("activities", [])]

    async def heartbeat(self, activity_id: str) -> None:
        """One heartbeat; :class:`LeaseLostError` on 404/409."""
        await self._send(
            "POST",
            f"/api/v1/activities/{activity_id}/heartbeat",
            json={"worker_id": self._config.worker_id},
            lease=True,
        )

    async def complete(self, activity_id: str, body: dict[str, Any], retry_policy: RetryPolicy | None) -> Any:
        """Complete (idempotent for this worker, so retrying is safe)."""
        return await self._send(
            "POST",
            f"/api/v1/activities/{activity_id}/complete",
            retry_policy,
            json={"worker_id": self._config.worker_id, **body},
            lease=True,
        )

    async def fail(self, activity_id: str, body: dict[str, Any], retry_policy: RetryPolicy | None) -> Any:
        return await self._send(
            "POST",
            f"/api/v1/activities/{activity_id}/fail",
            retry_policy,
            json={"worker_id": self._config.worker_id, **body},
            lease=True,
        )

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
        return await self._send(
            "POST",
            f"/api/v1/workflows/{workflow_id}/activities/{activity_key}/files/{filename}",
            retry_policy,
            body=body,
            headers=headers,
        )

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
                    self._forget(auth)
                    continue
                if response.status_code >= 400:
                    await response.aread()
                    raise _error_of(response, "GET", path)
                yield response
                return
