"""A minimal in-memory Kruxia Flow worker API for ``benchmarks/worker.py``: Trio + h11, one queue.

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

import h11
import trio

_JSON = [("content-type", "application/json")]


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


async def _serve_connection(stream: trio.SocketStream, state: State) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            request: h11.Request | None = None
            chunks: list[bytes] = []
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    chunks.append(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return
            assert request is not None
            raw = b"".join(chunks)
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {}
            status, answer = state.route(request.method.decode(), request.target.decode().split("?")[0], body)
            payload = json.dumps(answer).encode()
            headers = [*_JSON, ("content-length", str(len(payload)))]
            await stream.send_all(
                conn.send(h11.Response(status_code=status, headers=headers))
                + conn.send(h11.Data(data=payload))
                + conn.send(h11.EndOfMessage())
            )
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
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
