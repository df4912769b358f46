"""The routes called directly (``direct_responder``) answer byte for byte as the Starlette app
does through ASGI (``asgi_responder``): status, headers, body and metrics, errors included."""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from server_helpers import ManualClock, activity

from trioworks.core import Metrics
from trioworks.server import SQLiteStorage
from trioworks.server.http import (
    Authenticator,
    Context,
    asgi_responder,
    build_app,
    direct_responder,
    serve_http,
)
from trioworks.server.http._fast import FastRoutes
from trioworks.server.storage import FileStore

_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DEFINITION = {"name": "d", "activities": [activity("a"), activity("b", "a")]}


@asynccontextmanager
async def served(tmp_path: Path, direct: bool) -> AsyncIterator[httpx.AsyncClient]:
    storage = SQLiteStorage(tmp_path / f"{direct}.db")
    files = trio.CapacityLimiter(2)
    clock = ManualClock()
    ctx = Context(
        storage=storage,
        auth=Authenticator("secret" * 6, {"client": "s3cret"}, clock),
        clock=clock,
        storage_limiter=trio.CapacityLimiter(2),
        control_limiter=trio.CapacityLimiter(1),
        file_limiter=files,
        max_body_bytes=4096,
        max_file_bytes=4096,
        files=FileStore(tmp_path / f"{direct}-files", files),
        metrics=Metrics(),
    )
    app = build_app(ctx)
    respond = direct_responder(app) if direct else asgi_responder(app)
    try:
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(functools.partial(serve_http, respond, "127.0.0.1", 0, grace=1))
            async with httpx.AsyncClient(base_url=urls[0]) as client:
                yield client
            nursery.cancel_scope.cancel()
    finally:
        storage.close()


def _seen(reply: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted(
        (k, v) for k, v in reply.headers.items() if k not in ("date", "server", "content-length")
    )
    return reply.status_code, headers, _UUID.sub(b"<id>", reply.content)


async def _script(client: httpx.AsyncClient) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    """One scripted session; every reply, ids masked."""
    seen = []

    async def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        reply = await client.request(method, path, **kwargs)
        seen.append(_seen(reply))
        return reply

    poll = {"worker": "std", "worker_id": "w1", "max_activities": 5}
    await call("GET", "/health")
    await call("GET", "/api/v1/info")
    await call("POST", "/api/v1/workers/poll", json=poll)  # 401: no token
    await call(
        "POST", "/api/v1/oauth/token", json={"grant_type": "client_credentials", "client_id": "client"}
    )
    token = await call(
        "POST",
        "/api/v1/oauth/token",
        json={"grant_type": "client_credentials", "client_id": "client", "client_secret": "s3cret"},
    )
    client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    await call("GET", "/no/such/route")  # 404, Starlette's router
    await call("GET", "/api/v1/workers/poll")  # 405
    await call("POST", "/api/v1/workers/poll", content=b"{", headers={"content-type": "application/json"})
    await call("POST", "/api/v1/workers/poll", content=b"x", headers={"content-type": "text/plain"})
    await call("POST", "/api/v1/workers/poll", json={"worker": "std"})  # 422
    await call("POST", "/api/v1/workers/poll", content=b"[" * 5000)  # 413 (the 4 KiB cap)
    await call("POST", "/api/v1/workers/poll", json=poll)  # nothing yet
    await call("POST", "/api/v1/workflow_definitions", json=DEFINITION)
    await call("POST", "/api/v1/workflows", json={"definition_name": "d", "input": {"x": "é"}})
    claimed = await call("POST", "/api/v1/workers/poll", json=poll)
    (first,) = claimed.json()["activities"]
    aid = first["activity_id"]
    await call("POST", f"/api/v1/activities/{aid}/heartbeat", json={"worker_id": "w1"})
    await call("POST", f"/api/v1/activities/{aid}/heartbeat", json={"worker_id": "w2"})  # not its claim
    await call("POST", f"/api/v1/activities/{aid}%00/complete", json={"worker_id": "w1"})  # NUL: 422
    await call("POST", f"/api/v1/activities/{aid}/complete", json={"worker_id": "w1", "output": {"n": 1}})
    await call("POST", f"/api/v1/activities/{aid}/complete", json={"worker_id": "w1", "output": {}})  # again
    (second,) = (await call("POST", "/api/v1/workers/poll", json=poll)).json()["activities"]
    error = {"code": "E", "message": "no", "retryable": False}
    await call(
        "POST", f"/api/v1/activities/{second['activity_id']}/fail", json={"worker_id": "w1", "error": error}
    )
    await call("GET", f"/api/v1/workflows/{first['workflow_id']}")
    await call("HEAD", "/health")
    await call("GET", "/api/v1/metrics")
    return seen


async def test_direct_routes_answer_as_the_app_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with served(tmp_path, direct=False) as client:
        through_asgi = await _script(client)
    fast: list[str] = []
    serve = FastRoutes.serve

    async def counted(self: FastRoutes, conn: Any, head: Any, *args: Any) -> None:
        fast.append(head.path.rsplit("/", 1)[-1])
        await serve(self, conn, head, *args)

    monkeypatch.setattr(FastRoutes, "serve", counted)
    async with served(tmp_path, direct=True) as client:
        direct = await _script(client)
    # The worker routes went the fast way (_fast.py), the others through the app's endpoints.
    assert set(fast) == {"poll", "heartbeat", "complete", "fail"}
    assert [s for s, _, _ in through_asgi][:6] == [200, 200, 401, 400, 200, 404]
    assert len(direct) == len(through_asgi)
    for i, (ours, theirs) in enumerate(zip(direct, through_asgi, strict=True)):
        assert ours == theirs, f"request {i}"
