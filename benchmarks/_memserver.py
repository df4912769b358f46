"""A minimal in-memory Kruxia Flow worker API for ``benchmarks/worker.py``: Trio, one queue.

    python benchmarks/_memserver.py PORT

Speaks just enough of the worker protocol for both workers (ours and the original SDK): token,
poll, heartbeat, complete, fail. No persistence, no leases expiring, no auth check beyond
accepting any bearer token: the point is a server that is never the bottleneck, as in the
issue's measurements. ``/bench/*`` endpoints let the benchmark queue activities and read what
happened (each activity's submit, claim, heartbeat and finish times, ``time.time()``).
"""

from __future__ import annotations

import collections
import json
import sys
import time
import uuid
from typing import Any

import trio


class State:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.pending: collections.deque[str] = collections.deque()
        self.finished = 0
        self.failed = 0

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = []
        for _ in range(int(body.get("count", 1))):
            activity_id = str(uuid.uuid4())
            self.records[activity_id] = {
                "activity_id": activity_id,
                "workflow_id": str(uuid.uuid4()),
                "name": body["name"],
                "parameters": body.get("parameters", {}),
                "timeout_seconds": body.get("timeout_seconds", 120),
                "submitted": time.time(),
                "claimed": None,
                "heartbeats": [],
                "finished": None,
                "status": "pending",
                "output": None,
            }
            self.pending.append(activity_id)
            ids.append(activity_id)
        return {"ids": ids}

    def poll(self, body: dict[str, Any]) -> dict[str, Any]:
        out = []
        now = time.time()
        for _ in range(min(int(body.get("max_activities", 1)), 100, len(self.pending))):
            record = self.records[self.pending.popleft()]
            record["claimed"], record["status"] = now, "claimed"
            out.append(
                {
                    "activity_id": record["activity_id"],
                    "workflow_id": record["workflow_id"],
                    "activity_key": "a",
                    "worker": body.get("worker", "py-std"),
                    "activity_name": record["name"],
                    "parameters": record["parameters"],
                    "settings": None,
                    "timeout_seconds": record["timeout_seconds"],
                    "output_definitions": None,
                    "signal_data": None,
                }
            )
        return {"activities": out}

    def activity_call(self, activity_id: str, verb: str, body: dict[str, Any]) -> tuple[int, Any]:
        record = self.records.get(activity_id)
        if record is None or record["status"] != "claimed":
            return 409, {"error": {"code": "CONFLICT", "message": "not claimed"}}
        if verb == "heartbeat":
            record["heartbeats"].append(time.time())
        elif verb in ("complete", "fail"):
            record["finished"] = time.time()
            record["status"] = "completed" if verb == "complete" else "failed"
            record["output"] = body.get("output") if verb == "complete" else body.get("error")
            self.finished += 1
            self.failed += verb == "fail"
        else:
            return 404, {"error": {"code": "NOT_FOUND", "message": verb}}
        return 200, {}

    def route(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path == "/api/v1/oauth/token":
            return 200, {"access_token": "mem-token", "token_type": "Bearer", "expires_in": 3600}
        if path == "/api/v1/workers/poll":
            return 200, self.poll(body)
        if path.startswith("/api/v1/activities/"):
            _, _, rest = path.partition("/api/v1/activities/")
            activity_id, _, verb = rest.partition("/")
            return self.activity_call(activity_id, verb, body)
        if path == "/bench/submit":
            return 200, self.submit(body)
        if path == "/bench/state":
            return 200, {"total": len(self.records), "finished": self.finished, "failed": self.failed}
        if path == "/bench/records":
            return 200, list(self.records.values())
        if path == "/health":
            return 200, {"status": "ok"}
        return 404, {"error": {"code": "NOT_FOUND", "message": f"{method} {path}"}}


_REASONS = {200: b"OK", 404: b"Not Found", 409: b"Conflict"}


async def _serve_connection(stream: trio.SocketStream, state: State) -> None:
    """HTTP/1.1 keep-alive, just what httpx and aiohttp send (Content-Length bodies, no chunking).

    Parsed by hand on purpose: h11 cost this server about as much CPU per request as the workers
    under test spend, and the benchmark is about the workers.
    """
    buffer = b""
    try:
        while True:
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
            head, buffer = buffer[:end].decode("latin-1"), buffer[end + 4 :]
            request_line, *header_lines = head.split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            length = 0
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            while len(buffer) < length:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
            raw, buffer = buffer[:length], buffer[length:]
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {}
            status, answer = state.route(method, target.split("?")[0], body)
            payload = json.dumps(answer).encode()
            await stream.send_all(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (status, _REASONS.get(status, b"Error"), len(payload), payload)
            )
    except (trio.BrokenResourceError, trio.ClosedResourceError, ValueError):
        return
    finally:
        await stream.aclose()


async def serve(port: int) -> None:
    state = State()

    async def handler(stream: trio.SocketStream) -> None:
        await _serve_connection(stream, state)

    await trio.serve_tcp(handler, port, host="127.0.0.1")


if __name__ == "__main__":
    trio.run(serve, int(sys.argv[1]))
