"""trioworks.worker vs the original ``kruxiaflow`` 0.4.0 worker, against the same reference server.

    python benchmarks/worker.py [--quick] [--sdk-python PATH] [--only NAME[,NAME...]] [--json PATH]

For every (workload, system) the parent starts a fresh ``trioworks server`` (SQLite, in a
subprocess), submits workflows of one activity each, starts the worker in a subprocess (this
file with ``--child``), waits until every workflow finished, then sends SIGTERM and reads the
child's one result line (its worst event-loop lag). Both workers get 16 slots and their
defaults otherwise. The original SDK runs under the interpreter given by ``--sdk-python`` (or
``$KRUXIAFLOW_SDK_PYTHON``, or this one if it can import ``kruxiaflow``).

Workloads:

- ``noop``: 2,000 no-op activities queued before the worker starts; throughput.
- ``latency``: 200 activities submitted at 20/s to an idle worker; schedule-to-start p50/p99
  (submission time in the parent to ``time.time()`` at the start of the activity).
- ``cpu``: 200 activities of 50 ms pure-Python CPU each; worst event-loop lag in the worker.
  The original can only run them as ``async def`` (on its loop); ours are plain ``def`` (threads).
- ``blocking``: sixteen activities calling ``time.sleep(0.5)``; wall time. Same split as ``cpu``.
"""

from __future__ import annotations

import argparse
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

SYSTEMS = ("kruxiaflow", "trioworks")
WORKLOADS = ("noop", "latency", "cpu", "blocking")
RESULT_MARK = "BENCH-RESULT "
READY_MARK = "BENCH-READY"
CLIENT, SECRET = "bench", "bench-secret"
SLOTS = 16
LAG_TICK = 0.01


# --- the activities, same names and work on both sides -------------------------------------


def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _trioworks_child(workload: str, url: str) -> None:
    import trio

    from trioworks.worker import ActivityResult, Worker, WorkerConfig, activity

    @activity(name="noop")
    async def noop(params: dict, ctx: Any) -> ActivityResult:
        return ActivityResult.value("ok", True)

    @activity(name="stamp")
    async def stamp(params: dict, ctx: Any) -> ActivityResult:
        return ActivityResult.value("t", time.time())

    @activity(name="cpu")
    def cpu(params: dict, ctx: Any) -> ActivityResult:
        _burn(0.05)
        return ActivityResult.value("ok", True)

    @activity(name="blocking")
    def blocking(params: dict, ctx: Any) -> ActivityResult:
        time.sleep(0.5)
        return ActivityResult.value("ok", True)

    config = WorkerConfig(
        api_url=url, client_id=CLIENT, client_secret=SECRET, max_activities=SLOTS, lag_interval=LAG_TICK
    )
    worker = Worker(config, [noop, stamp, cpu, blocking], handle_signals=True)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            print(READY_MARK, flush=True)

    trio.run(main)
    print(RESULT_MARK + json.dumps({"lag_max": worker.stats().loop_lag_max}), flush=True)


def _kruxiaflow_child(workload: str, url: str) -> None:
    import asyncio

    from kruxiaflow.worker import ActivityRegistry, ActivityResult, WorkerConfig, WorkerManager, activity

    @activity(name="noop")
    async def noop(params: dict, ctx: Any) -> ActivityResult:
        return ActivityResult.value("ok", True)

    @activity(name="stamp")
    async def stamp(params: dict, ctx: Any) -> ActivityResult:
        return ActivityResult.value("t", time.time())

    @activity(name="cpu")
    async def cpu(params: dict, ctx: Any) -> ActivityResult:
        _burn(0.05)  # the original has no sync activities: CPU work runs on the loop
        return ActivityResult.value("ok", True)

    @activity(name="blocking")
    async def blocking(params: dict, ctx: Any) -> ActivityResult:
        time.sleep(0.5)
        return ActivityResult.value("ok", True)

    lag_max = 0.0

    async def probe() -> None:
        nonlocal lag_max
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_TICK)
            lag_max = max(lag_max, loop.time() - before - LAG_TICK)

    async def main() -> None:
        config = WorkerConfig(
            api_url=url, client_id=CLIENT, client_secret=SECRET, max_concurrent_activities=SLOTS
        )  # type: ignore[call-arg]
        registry = ActivityRegistry()
        for a in (noop, stamp, cpu, blocking):
            registry.register(a, config.worker)
        manager = WorkerManager(config, registry)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        probe_task = asyncio.create_task(probe())
        await manager.start()
        print(READY_MARK, flush=True)
        await stop.wait()
        await manager.stop()
        probe_task.cancel()

    asyncio.run(main())
    print(RESULT_MARK + json.dumps({"lag_max": lag_max}), flush=True)


# --- the parent ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``trioworks server`` in a subprocess, and a synchronous authenticated client for it."""

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
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.http.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not come up")
            time.sleep(0.1)
        token = self.http.post(
            "/api/v1/oauth/token",
            json={"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET},
        ).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        for name in ("noop", "stamp", "cpu", "blocking"):
            activity = {
                "key": "a",
                "worker": "py-std",
                "activity_name": name,
                "settings": {"timeout_seconds": 120},
            }
            reply = self.http.post(
                "/api/v1/workflow_definitions", json={"name": name, "activities": [activity]}
            )
            reply.raise_for_status()

    def submit(self, name: str) -> str:
        reply = self.http.post("/api/v1/workflows", json={"definition_name": name, "input": {}})
        reply.raise_for_status()
        return reply.json()["workflow_id"]

    def count(self, status: str) -> int:
        return self.http.get("/api/v1/workflows", params={"status": status, "limit": 1}).json()["total"]

    def output(self, workflow_id: str) -> dict[str, Any]:
        return self.http.get(f"/api/v1/workflows/{workflow_id}/activities/a/output").json()["output"]

    def close(self) -> None:
        self.http.close()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _start_worker(
    system: str, workload: str, url: str, sdk_python: str
) -> tuple[subprocess.Popen[str], float]:
    python = sdk_python if system == "kruxiaflow" else sys.executable
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src")])}
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
            return child, time.perf_counter()
    raise RuntimeError(f"{system} worker exited before it was ready (code {child.wait()})")


def _stop_worker(child: subprocess.Popen[str]) -> dict[str, Any]:
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=60)
    for line in out.splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    return {}


def _wait_done(server: Server, total: int, limit: float = 600) -> None:
    deadline = time.monotonic() + limit
    while server.count("completed") + server.count("failed") < total:
        if time.monotonic() > deadline:
            raise RuntimeError("workflows did not finish in time")
        time.sleep(0.02)
    failed = server.count("failed")
    if failed:
        raise RuntimeError(f"{failed} workflows failed")


def run_one(system: str, workload: str, sizes: dict[str, int], sdk_python: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        server = Server(Path(directory))
        try:
            if workload == "latency":
                child, _ = _start_worker(system, workload, server.url, sdk_python)
                submitted = []
                for _ in range(sizes["latency"]):
                    submitted.append((server.submit("stamp"), time.time()))
                    time.sleep(1 / 20)
                _wait_done(server, len(submitted))
                delays = sorted(server.output(wf)["t"] - t for wf, t in submitted)
                result = {
                    "p50_ms": 1000 * statistics.median(delays),
                    "p99_ms": 1000 * delays[min(len(delays) - 1, int(0.99 * len(delays)))],
                }
            else:
                name = {"noop": "noop", "cpu": "cpu", "blocking": "blocking"}[workload]
                for _ in range(sizes[workload]):
                    server.submit(name)
                child, started = _start_worker(system, workload, server.url, sdk_python)
                _wait_done(server, sizes[workload])
                wall = time.perf_counter() - started
                result = {"wall_s": wall, "per_s": sizes[workload] / wall}
            result.update(_stop_worker(child))
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", choices=SYSTEMS)
    parser.add_argument("--workload", default="noop")
    parser.add_argument("--url")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--only", help="comma-separated workloads")
    parser.add_argument("--sdk-python", help="a Python that can import kruxiaflow 0.4.0")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.child == "trioworks":
        return _trioworks_child(args.workload, args.url)
    if args.child == "kruxiaflow":
        return _kruxiaflow_child(args.workload, args.url)

    sizes = {"noop": 2000, "latency": 200, "cpu": 200, "blocking": 16}
    if args.quick:
        sizes.update(noop=200, latency=40, cpu=40)
    sdk_python = _sdk_python(args.sdk_python)
    systems = SYSTEMS if sdk_python else ("trioworks",)
    if not sdk_python:
        print("kruxiaflow not importable (give --sdk-python): running trioworks only", file=sys.stderr)
    workloads = args.only.split(",") if args.only else WORKLOADS
    results: dict[str, dict[str, Any]] = {}
    for workload in workloads:
        for system in systems:
            print(f"{workload} / {system} ...", file=sys.stderr, flush=True)
            try:
                results[f"{workload}/{system}"] = run_one(system, workload, sizes, sdk_python or "")
            except Exception as exc:
                results[f"{workload}/{system}"] = {"error": str(exc)}

    print(
        f"\nWorker benchmark ({platform.python_version()}, {os.cpu_count()} CPUs, {SLOTS} slots); sizes {sizes}\n"
    )
    print("| workload | system | result | worst loop lag |")
    print("|---|---|---|---|")
    for key, r in results.items():
        workload, system = key.split("/")
        if "error" in r:
            shown = f"error: {r['error']}"
        elif workload == "latency":
            shown = f"schedule-to-start p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms"
        elif workload == "noop":
            shown = f"{r['per_s']:.0f} activities/s ({r['wall_s']:.2f} s)"
        else:
            shown = f"wall {r['wall_s']:.2f} s"
        lag = f"{1000 * r['lag_max']:.0f} ms" if "lag_max" in r else "-"
        print(f"| {workload} | {system} | {shown} | {lag} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"sizes": sizes, "results": results}, indent=2))


if __name__ == "__main__":
    main()
