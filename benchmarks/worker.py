"""trioworks.worker vs the original ``kruxiaflow`` 0.4.0 worker, side by side against the same server.

    python benchmarks/worker.py [--server memory|sqlite|both] [--quick] [--only W[,W...]]
                                [--systems S[,S...]] [--sdk-python PATH] [--json PATH]

For every (server, workload, system) the parent starts a fresh server in a subprocess, queues
activities, starts the worker in another subprocess (this file with ``--child``), waits until
every activity finished, then sends SIGTERM and reads the child's one result line (its worst
event-loop lag and the CPU it used while serving). Every worker gets 16 slots and a 0.2 s
heartbeat period, defaults otherwise. The original SDK runs under the interpreter given by
``--sdk-python`` (or ``$KRUXIAFLOW_SDK_PYTHON``, or this one if it can import ``kruxiaflow``).

Servers: ``memory`` (default) is ``benchmarks/_memserver.py``, a queue in memory behind a raw
Trio + h11 HTTP/1.1 server, which records when each activity was submitted, claimed,
heartbeated and finished; ``sqlite`` is ``trioworks server`` on SQLite (durable, slower: both
workers are server-bound there).

Systems: ``kruxiaflow`` (the original SDK), ``trioworks``, and ``trio-loop``, the floor: a
30-line Trio + httpx poll/complete loop with no heartbeats, timeouts or retries (noop and latency
only).

Workloads:

- ``noop``: 2,000 no-op activities queued before the worker starts; throughput (ready → last
  completion, server clock) and the worker's CPU per activity.
- ``latency``: 200 activities submitted at 20/s to an idle worker; schedule-to-start p50/p99
  (submission to ``time.time()`` at the start of the activity).
- ``cpu``: 200 activities of 50 ms pure-Python CPU plus (in-memory server) one 3 s ``watch`` activity; wall of the
  CPU activities, worst event-loop lag, and the worst heartbeat delay (server-side gap between
  consecutive heartbeats of an activity, or between its claim and its first heartbeat, minus the
  0.2 s period). The original can only run CPU work as ``async def`` on its loop; ours run as
  ``process=True`` activities (the documented way). ``cpu-thread``: ours as plain ``def``
  (threads), to show what the GIL costs.
- ``blocking``: sixteen activities calling ``time.sleep(0.5)``; wall time (ready → last
  completion) with the first and last claim. Ours are plain ``def`` (threads).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _workers import CHILDREN, CLIENT, HEARTBEAT, READY_MARK, RESULT_MARK, SECRET, SLOTS

SYSTEMS = ("kruxiaflow", "trioworks")
WORKLOADS = ("noop", "latency", "cpu", "cpu-thread", "blocking")
WATCH_SECONDS = 3.0
HERE = Path(__file__).resolve().parent

# --- the servers -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(http: Any, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while True:
        try:
            if http.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the server did not come up")
        time.sleep(0.05)


class MemServer:
    """``benchmarks/_memserver.py`` in a subprocess: a queue in memory, never the bottleneck."""

    kind = "memory"
    poll_interval = 0.1
    """It timestamps completions itself: the parent's status polls need not be frequent (they cost CPU)."""

    def __init__(self, directory: Path) -> None:
        import httpx

        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "_memserver.py"), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.http = httpx.Client(base_url=self.url, timeout=30)
        _wait_healthy(self.http, self.process)

    def submit(self, name: str, count: int = 1, params: dict[str, Any] | None = None) -> list[str]:
        body = {"name": name, "count": count, "parameters": params or {}}
        return self.http.post("/bench/submit", json=body).json()["ids"]

    def progress(self) -> tuple[int, int]:
        state = self.http.get("/bench/state").json()
        return state["finished"], state["failed"]

    def records(self) -> list[dict[str, Any]]:
        return self.http.get("/bench/records").json()

    def close(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class SqliteServer:
    """``trioworks server`` (SQLite) in a subprocess: the reference server, durable and slower."""

    kind = "sqlite"
    poll_interval = 0.01
    """Wall times come from these polls (no finish times kept per activity): poll often."""

    def __init__(self, directory: Path) -> None:
        import httpx

        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trioworks.cli", "server", "--db", f"sqlite:///{directory}/bench.db",
             "--port", str(port), "--client", f"{CLIENT}:{SECRET}", "--sweep-interval", "60"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.http = httpx.Client(base_url=self.url, timeout=30)
        _wait_healthy(self.http, self.process)
        token = self.http.post(
            "/api/v1/oauth/token",
            json={"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET},
        ).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        self._defined: set[str] = set()
        self._ids: list[str] = []

    def submit(self, name: str, count: int = 1, params: dict[str, Any] | None = None) -> list[str]:
        if name not in self._defined:
            activity = {"key": "a", "worker": "py-std", "activity_name": name, "parameters": params or {},
                        "settings": {"timeout_seconds": 120}}  # fmt: skip
            reply = self.http.post(
                "/api/v1/workflow_definitions", json={"name": name, "activities": [activity]}
            )
            reply.raise_for_status()
            self._defined.add(name)
        ids = []
        for _ in range(count):
            reply = self.http.post("/api/v1/workflows", json={"definition_name": name, "input": {}})
            reply.raise_for_status()
            ids.append(reply.json()["workflow_id"])
        self._ids.extend(ids)
        return ids

    def _count(self, status: str) -> int:
        return self.http.get("/api/v1/workflows", params={"status": status, "limit": 1}).json()["total"]

    def progress(self) -> tuple[int, int]:
        failed = self._count("failed")
        return self._count("completed") + failed, failed

    def records(self) -> list[dict[str, Any]]:
        """Only the stamp outputs (the SQLite rows have no per-heartbeat history)."""
        out = []
        for workflow_id in self._ids:
            reply = self.http.get(f"/api/v1/workflows/{workflow_id}/activities/a/output").json()
            out.append(
                {"activity_id": workflow_id, "output": reply["output"], "submitted": None, "heartbeats": []}
            )
        return out

    def close(self) -> None:
        self.http.close()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


# --- one row -----------------------------------------------------------------------------------


def _start_worker(
    system: str, workload: str, url: str, sdk_python: str
) -> tuple[subprocess.Popen[str], float]:
    python = sdk_python if system == "kruxiaflow" else sys.executable
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE)])}
    child = subprocess.Popen(
        [python, __file__, "--child", system, "--workload", workload, "--url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith(READY_MARK):
            return child, time.time()
    raise RuntimeError(f"{system} worker exited before it was ready (code {child.wait()})")


def _stop_worker(child: subprocess.Popen[str]) -> dict[str, Any]:
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=60)
    for line in out.splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    return {}


def _wait_done(server: MemServer | SqliteServer, total: int, limit: float = 600) -> float:
    """Wait until ``total`` activities finished; the parent's ``time.time()`` when it saw that."""
    deadline = time.monotonic() + limit
    while True:
        finished, failed = server.progress()
        if finished >= total:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {finished} of {total} activities finished in time")
        time.sleep(server.poll_interval)
    seen = time.time()
    if failed:
        raise RuntimeError(f"{failed} activities failed")
    return seen


def _heartbeat_delay(records: list[dict[str, Any]]) -> float | None:
    """Worst lateness of a heartbeat: gap since the claim or the previous heartbeat, minus the period."""
    gaps = []
    for r in records:
        if r.get("claimed") and r["heartbeats"]:
            times = [r["claimed"], *r["heartbeats"]]
            gaps.extend(b - a for a, b in itertools.pairwise(times))
    return max(gaps) - HEARTBEAT if gaps else None


def run_one(
    server_kind: str, system: str, workload: str, sizes: dict[str, int], sdk_python: str
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        server = (MemServer if server_kind == "memory" else SqliteServer)(Path(directory))
        try:
            result: dict[str, Any] = {}
            if workload == "latency":
                child, _ = _start_worker(system, workload, server.url, sdk_python)
                submitted = {}
                for _ in range(sizes["latency"]):
                    (activity_id,) = server.submit("stamp")
                    submitted[activity_id] = time.time()
                    time.sleep(1 / 20)
                _wait_done(server, len(submitted))
                records = server.records()
                delays = sorted(
                    r["output"]["t"] - (r["submitted"] or submitted.get(r.get("activity_id"), 0))
                    for r in records
                )
                result = {
                    "p50_ms": 1000 * statistics.median(delays),
                    "p99_ms": 1000 * delays[min(len(delays) - 1, int(0.99 * len(delays)))],
                }
            else:
                count = sizes["cpu" if workload == "cpu-thread" else workload]
                if workload.startswith("cpu") and server.kind == "memory":  # SQLite keeps no heartbeat times
                    server.submit("watch", 1, {"seconds": WATCH_SECONDS})  # a long activity: heartbeats
                    count += 1
                server.submit(workload, sizes["cpu" if workload == "cpu-thread" else workload])
                child, ready = _start_worker(system, workload, server.url, sdk_python)
                seen = _wait_done(server, count)
                records = server.records()
                finished = [r["finished"] for r in records if r.get("finished") and r.get("name") != "watch"]
                end = max(finished) if finished else seen
                result = {"wall_s": end - ready, "per_s": count / (end - ready)}
                claims = [r["claimed"] for r in records if r.get("claimed")]
                if claims:
                    result["first_claim_ms"] = 1000 * (min(claims) - ready)
                    result["last_claim_ms"] = 1000 * (max(claims) - ready)
                delay = _heartbeat_delay(records)
                if delay is not None:
                    result["heartbeat_delay"] = delay
            result.update(_stop_worker(child))
            if "cpu_s" in result and workload == "noop":
                result["cpu_ms_each"] = 1000 * result["cpu_s"] / sizes["noop"]
            return result
        finally:
            server.close()


def _sdk_python(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("KRUXIAFLOW_SDK_PYTHON"), sys.executable):
        if (
            candidate
            and subprocess.run([candidate, "-c", "import kruxiaflow"], capture_output=True).returncode == 0
        ):
            return candidate
    return None


def _shown(workload: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"error: {r['error']}"
    if workload == "latency":
        return f"schedule-to-start p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms"
    if workload == "noop":
        return (
            f"{r['per_s']:.0f} activities/s ({r['wall_s']:.2f} s, worker CPU {r['cpu_ms_each']:.2f} ms each)"
        )
    text = f"wall {r['wall_s']:.2f} s"
    if "first_claim_ms" in r and workload == "blocking":
        text += f" (first claim +{r['first_claim_ms']:.0f} ms, last claim +{r['last_claim_ms']:.0f} ms)"
    if "heartbeat_delay" in r:
        text += f", heartbeat delay {1000 * r['heartbeat_delay']:.0f} ms"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", choices=(*SYSTEMS, "trio-loop"))
    parser.add_argument("--workload", default="noop")
    parser.add_argument("--url")
    parser.add_argument("--server", choices=("memory", "sqlite", "both"), default="memory")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--only", help="comma-separated workloads")
    parser.add_argument("--systems", help="comma-separated systems (default: all)")
    parser.add_argument("--sdk-python", help="a Python that can import kruxiaflow 0.4.0")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.child:
        return CHILDREN[args.child](args.workload, args.url)

    sizes = {"noop": 2000, "latency": 200, "cpu": 200, "blocking": 16}
    if args.quick:
        sizes.update(noop=200, latency=40, cpu=40)
    sdk_python = _sdk_python(args.sdk_python)
    if not sdk_python:
        print("kruxiaflow not importable (give --sdk-python): skipping it", file=sys.stderr)
    wanted = args.systems.split(",") if args.systems else [*SYSTEMS, "trio-loop"]
    workloads = args.only.split(",") if args.only else WORKLOADS
    servers = ("memory", "sqlite") if args.server == "both" else (args.server,)
    results: dict[str, dict[str, Any]] = {}
    for server_kind in servers:
        for workload in workloads:
            for system in wanted:
                if (system == "kruxiaflow" and not sdk_python) or (
                    system == "trio-loop" and workload not in ("noop", "latency")
                ):
                    continue
                if workload == "cpu-thread" and system != "trioworks":
                    continue
                print(f"{server_kind}: {workload} / {system} ...", file=sys.stderr, flush=True)
                try:
                    results[f"{server_kind}/{workload}/{system}"] = run_one(
                        server_kind, system, workload, sizes, sdk_python or ""
                    )
                except Exception as exc:
                    results[f"{server_kind}/{workload}/{system}"] = {"error": str(exc)}

    print(
        f"\nWorker benchmark ({platform.python_version()}, {os.cpu_count()} CPUs, {SLOTS} slots); sizes {sizes}\n"
    )
    print("| server | workload | system | result | worst loop lag |")
    print("|---|---|---|---|---|")
    for key, r in results.items():
        server_kind, workload, system = key.split("/")
        lag = f"{1000 * r['lag_max']:.0f} ms" if "lag_max" in r else "-"
        print(f"| {server_kind} | {workload} | {system} | {_shown(workload, r)} | {lag} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"sizes": sizes, "results": results}, indent=2))


if __name__ == "__main__":
    main()
