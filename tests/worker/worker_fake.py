"""A scripted in-memory Kruxia Flow server for worker tests (an ``httpx.MockTransport``).

Virtual-time friendly: leases and tokens use ``trio.current_time()``; nothing touches the network.
Faults are injected with :meth:`FakeServer.script` (responses or exceptions returned, in order,
to the next matching requests) and :attr:`FakeServer.down` (every request fails to connect).
"""

from __future__ import annotations

import collections
import json
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import httpx
import trio

from trioworks.worker import WorkerConfig

WORKER = "py-std"


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


@attrs.define
class Row:
    activity_id: str
    workflow_id: str
    activity_key: str
    activity_name: str
    parameters: dict[str, Any]
    timeout_seconds: int | None
    signal_data: dict[str, Any] | None = None
    output_definitions: list[dict[str, Any]] | None = None
    status: str = "pending"
    claimed_by: str | None = None
    claimed_at: float = 0.0
    completions: list[dict[str, Any]] = attrs.Factory(list)
    failures: list[dict[str, Any]] = attrs.Factory(list)
    heartbeats: int = 0

    def wire(self) -> dict[str, Any]:
        settings = {"timeout_seconds": self.timeout_seconds} if self.timeout_seconds else None
        return {
            "activity_id": self.activity_id,
            "workflow_id": self.workflow_id,
            "activity_key": self.activity_key,
            "worker": WORKER,
            "activity_name": self.activity_name,
            "parameters": self.parameters,
            "settings": settings,
            "timeout_seconds": self.timeout_seconds,
            "signal_data": self.signal_data,
            "output_definitions": self.output_definitions,
        }

    @property
    def report(self) -> dict[str, Any] | None:
        """The single accepted complete or fail body (None if none)."""
        return (self.completions or self.failures or [None])[0]


class FakeServer:
    def __init__(self, *, token_ttl: float = 3600.0, auth: bool = True) -> None:
        self.rows: dict[str, Row] = {}
        self.tokens: dict[str, float] = {}
        self.token_ttl = token_ttl
        self.auth = auth
        self.down = False
        self.scripted: collections.deque[tuple[str, Callable[[], httpx.Response]]] = collections.deque()
        self.requests: list[tuple[str, str]] = []
        self.unauthorized = 0
        self.poll_sizes: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.files: dict[tuple[str, str, str], tuple[bytes, str]] = {}
        self.transport = httpx.MockTransport(self.handle)

    # -- test API ----------------------------------------------------------------

    def add(
        self,
        name: str,
        parameters: dict[str, Any] | None = None,
        *,
        timeout_seconds: int | None = None,
        key: str = "step",
        signal_data: dict[str, Any] | None = None,
        outputs: list[dict[str, Any]] | None = None,
    ) -> Row:
        row = Row(
            str(uuid.uuid4()),
            str(uuid.uuid4()),
            key,
            name,
            parameters or {},
            timeout_seconds,
            signal_data,
            outputs,
        )
        self.rows[row.activity_id] = row
        return row

    def script(self, path_part: str, *responses: int | Exception | httpx.Response) -> None:
        """The next requests whose path contains ``path_part`` get these statuses / responses / raise these."""
        for item in responses:

            def make(item: int | Exception | httpx.Response = item) -> httpx.Response:
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, httpx.Response):
                    return item
                return _error(item, "INTERNAL_ERROR" if item >= 500 else "SCRIPTED", "scripted fault")

            self.scripted.append((path_part, make))

    def steal(self, row: Row) -> None:
        """Another worker claims ``row``: our heartbeats and reports now get 409."""
        row.claimed_by = "worker_other"

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def count(self, path_part: str) -> int:
        return sum(path_part in path for _, path in self.requests)

    @property
    def done(self) -> bool:
        return all(r.status in ("completed", "failed") for r in self.rows.values())

    # -- HTTP ----------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        await trio.lowlevel.checkpoint()
        path = request.url.path
        self.requests.append((request.method, path))
        if self.down:
            raise httpx.ConnectError("server down", request=request)
        for i, (part, make) in enumerate(self.scripted):
            if part in path:
                del self.scripted[i]
                return make()
        if path == "/api/v1/oauth/token":
            return self._token(json.loads(request.content))
        if self.auth and not self._authorized(request):
            self.unauthorized += 1
            return _error(401, "UNAUTHORIZED", "missing, invalid or expired token")
        parts = path.strip("/").split("/")
        if path == "/api/v1/workers/poll":
            return self._poll(json.loads(request.content))
        if parts[2] == "activities" and len(parts) == 5:
            row = self.rows.get(parts[3])
            if row is None:
                return _error(404, "NOT_FOUND", "no such activity")
            return getattr(self, f"_{parts[4]}")(row, json.loads(request.content))
        if parts[2] == "workflows" and len(parts) > 7 and parts[6] == "files":
            key = (parts[3], parts[5], "/".join(parts[7:]))
            if request.method == "POST":
                body = await request.aread()
                self.files[key] = (body, request.headers.get("content-type", "application/octet-stream"))
                return httpx.Response(201, json={"size": len(body), "filename": key[2]})
            if key not in self.files:
                return _error(404, "NOT_FOUND", "no such file")
            body, ctype = self.files[key]
            return httpx.Response(200, content=body, headers={"Content-Type": ctype})
        return _error(404, "NOT_FOUND", path)

    def _token(self, body: dict[str, Any]) -> httpx.Response:
        if body.get("client_secret") != "secret":
            return _error(401, "UNAUTHORIZED", "bad credentials")
        token = uuid.uuid4().hex
        self.tokens[token] = trio.current_time() + self.token_ttl
        return httpx.Response(
            200, json={"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl)}
        )

    def _authorized(self, request: httpx.Request) -> bool:
        header = request.headers.get("authorization", "")
        expiry = self.tokens.get(header.removeprefix("Bearer "))
        return expiry is not None and trio.current_time() < expiry

    def _poll(self, body: dict[str, Any]) -> httpx.Response:
        n = body["max_activities"]
        assert 1 <= n <= 100, n
        self.poll_sizes.append(n)
        now = trio.current_time()
        claimed = []
        for row in self.rows.values():
            if len(claimed) == n:
                break
            lease = row.timeout_seconds or 60
            if row.status == "pending" or (row.status == "running" and now > row.claimed_at + lease):
                row.status, row.claimed_by, row.claimed_at = "running", body["worker_id"], now
                claimed.append(row.wire())
        self.in_flight += len(claimed)
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return httpx.Response(200, json={"activities": claimed, "count": len(claimed)})

    def _owned(self, row: Row, body: dict[str, Any]) -> bool:
        return row.claimed_by == body["worker_id"]

    def _heartbeat(self, row: Row, body: dict[str, Any]) -> httpx.Response:
        if not self._owned(row, body) or row.status != "running":
            return _error(409, "CONFLICT", "not yours")
        row.heartbeats += 1
        row.claimed_at = trio.current_time()
        return httpx.Response(200, json={"acknowledged": True, "next_heartbeat_seconds": 30})

    def _complete(self, row: Row, body: dict[str, Any]) -> httpx.Response:
        if row.status == "completed" and self._owned(row, body):
            return httpx.Response(200, json={"acknowledged": True})  # idempotent
        if not self._owned(row, body) or row.status != "running":
            return _error(409, "CONFLICT", "not yours")
        assert isinstance(body["output"], dict)
        row.status = "completed"
        row.completions.append(body)
        self.in_flight -= 1
        return httpx.Response(200, json={"acknowledged": True})

    def _fail(self, row: Row, body: dict[str, Any]) -> httpx.Response:
        if row.status == "failed" and self._owned(row, body):
            return httpx.Response(200, json={"acknowledged": True, "will_retry": False})
        if not self._owned(row, body) or row.status != "running":
            return _error(409, "CONFLICT", "not yours")
        assert body["error"]["code"] and body["error"]["message"]
        row.status = "failed"
        row.failures.append(body)
        self.in_flight -= 1
        return httpx.Response(200, json={"acknowledged": True, "will_retry": body["error"]["retryable"]})


def make_config(**overrides: Any) -> WorkerConfig:
    values: dict[str, Any] = {
        "api_url": "http://kruxia.test",
        "client_id": "worker",
        "client_secret": "secret",
        "worker_id": "worker_test",
        "max_activities": 4,
    }
    values.update(overrides)
    return WorkerConfig(**values)


async def wait_until(predicate: Callable[[], bool], *, step: float = 0.05, limit: float = 600.0) -> None:
    """Sleep (virtual time) until ``predicate()``; fail after ``limit`` seconds."""
    with trio.fail_after(limit):
        # Polling on purpose: the predicates look at the fake server's state, which has no event.
        while True:
            if predicate():
                return
            await trio.sleep(step)
