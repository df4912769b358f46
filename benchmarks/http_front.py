"""The server's CPU per request, from one keep-alive client that costs almost nothing.

    python benchmarks/http_front.py [--requests N] [--activities N] [--runs N] [--postgres URL]
                                    [--profile DIR]

``trioworks server`` on a fresh SQLite database (and Postgres with ``--postgres URL``) in a
subprocess; this process sends requests over one raw keep-alive socket (pre-built bytes, no
HTTP library), one at a time, and reads the server's CPU (``/proc/PID/stat``) around each phase:

- ``GET /health``: the HTTP path alone (no authentication, no storage);
- empty poll: ``POST /api/v1/workers/poll`` of a queue with nothing in it (authentication, body
  parsing, one storage call);
- poll + complete: ``--activities`` one-activity workflows queued first, then polled 10 at a
  time and each completed: the server's CPU per no-op activity, as a worker costs it.

CPU per operation is the robust figure on a shared machine (the load moves rates much more).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from e2e import Server
from server import postgres_databases

DEFINITION = {
    "name": "one",
    "activities": [{"key": "a", "worker": "front", "activity_name": "noop", "depends_on": []}],
}


class Raw:
    """One keep-alive connection; requests as bytes, responses read by ``Content-Length``."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.auth = f"Authorization: Bearer {token}\r\n".encode()
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection(self.address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return self._request(method, path, body)
        except ConnectionError:  # hypercorn closes a connection after 1,000 requests
            self.sock.close()
            self._connect()
            return self._request(method, path, body)

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        self.sock.sendall(head.encode() + self.auth + b"Content-Length: %d\r\n\r\n" % len(data) + data)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head_bytes, _, rest = self.buffer.partition(b"\r\n\r\n")
        size = next(
            int(line.split(b":", 1)[1])
            for line in head_bytes.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < size:
            rest += self._recv()
        self.buffer = rest[size:]
        status = int(head_bytes.split(b" ", 2)[1])
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {rest[:size]!r}")
        return json.loads(rest[:size])


def measure(db: str, requests: int, activities: int, profile: Path | None = None) -> dict[str, float]:
    server = Server(db, profile)
    try:
        server.deploy(DEFINITION)
        for _ in range(activities):
            server.start("one")
        raw = Raw(server.url, server.http.headers["Authorization"].split()[1])  # before it idles out
        result = {}
        poll = {"worker": "front", "worker_id": "bench-1", "max_activities": 10}
        empty = {**poll, "worker": "nobody"}
        for name, method, path, body in (
            ("health", "GET", "/health", None),
            ("empty poll", "POST", "/api/v1/workers/poll", empty),
        ):
            raw.request(method, path, body)  # warm
            before = server.cpu()
            for _ in range(requests):
                raw.request(method, path, body)
            result[name] = (server.cpu() - before) / requests * 1000
        before, done = server.cpu(), 0
        while True:
            claimed = raw.request("POST", "/api/v1/workers/poll", poll)["activities"]
            if not claimed:
                break
            for activity in claimed:
                path = f"/api/v1/activities/{activity['activity_id']}/complete"
                raw.request("POST", path, {"worker_id": "bench-1", "output": {}})
            done += len(claimed)
        result["poll + complete, per activity"] = (server.cpu() - before) / max(done, 1) * 1000
        return result
    finally:
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy stacks of the server (raw)")
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"server CPU per request ({sys.version.split()[0]}, load {' '.join(load)})\n")
    print("| backend | operation | server CPU (median of runs) | runs |")
    print("|---|---|---:|---|")
    with (
        tempfile.TemporaryDirectory(prefix="trioworks-front-") as tmp,
        postgres_databases(args.postgres) as pg,
    ):
        backends: dict[str, Callable[[int], str]] = {"sqlite": lambda i: f"sqlite:///{tmp}/front-{i}.db"}
        if pg is not None:
            backends["postgres"] = lambda i: pg(f"trioworks_front_{i}")
        for backend, make_db in backends.items():
            rows: dict[str, list[float]] = {}
            for run in range(args.runs):
                spy = None if args.profile is None else args.profile / f"{backend}-{run}.txt"
                for name, value in measure(make_db(run), args.requests, args.activities, spy).items():
                    rows.setdefault(name, []).append(value)
            for name, values in rows.items():
                runs = ", ".join(f"{v:.3f}" for v in values)
                print(f"| {backend} | {name} | {statistics.median(values):.3f} ms | {runs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
