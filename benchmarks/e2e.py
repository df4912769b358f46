"""End to end: ``trioworks server`` and one worker, each its own process, on this machine.

    python benchmarks/e2e.py [--backends sqlite,postgres] [--only noop,fanout]
                             [--systems trioworks,kruxiaflow] [--count N] [--width N] [--runs N]
                             [--postgres URL] [--profile DIR] [--json PATH]

For every (backend, workload, system, run): a fresh database, ``trioworks server`` on it in a
subprocess, the work queued through the API, then the worker started (``benchmarks/worker.py
--child``: 16 slots, defaults otherwise, the original SDK under ``--sdk-python``); the parent
waits (one cheap status request every 0.2 s) until everything completed, stops the worker and
the server, and reads the activity rows' own timestamps from the database.

Workloads:

- ``noop``: ``--count`` (2,000) one-activity workflows of a no-op activity, queued before the
  worker starts;
- ``fanout``: one workflow ``root -> --width (1,000) parallel -> join`` of no-op activities.

Reported per row: activities/s from the worker being ready to the last ``completed_at`` (the
server's clock, same machine), and the CPU each process used per activity over that span
(``/proc/PID/stat`` for the server, the worker's own ``os.times()``). On a shared machine the
CPU per activity is the robust figure: throughput moves with the other load, CPU much less.

Postgres: ``--postgres URL`` (its user needs CREATEDB), else a throwaway cluster from the test
suite's helper (``tests/_services.py``: fsync and synchronous_commit off), else skipped.
``--profile DIR`` runs the server under ``py-spy record`` (if installed) and leaves its
collapsed stacks (``-f raw``, one file per row) there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from _workers import CLIENT, SECRET, SLOTS
from server import postgres_databases
from worker import _free_port, _sdk_python, _start_worker, _stop_worker, _wait_healthy

HERE = Path(__file__).resolve().parent
_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class Server:
    """``trioworks server --db URL`` in a subprocess, with a token; optionally under py-spy."""

    def __init__(self, db: str, profile: Path | None) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "trioworks.cli", "server", "--db", db, "--port", str(port),
                   "--client", f"{CLIENT}:{SECRET}", "--sweep-interval", "60"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
        self.spy: subprocess.Popen[bytes] | None = None
        # Its own working directory: with Postgres the files directory and the JWT secret file
        # default to the current directory.
        self._cwd = tempfile.TemporaryDirectory(prefix="trioworks-e2e-")
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=self._cwd.name
        )
        if profile is not None:
            self.spy = subprocess.Popen(
                [shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record",
                 "--threads", "-r", "200", "-f", "raw",
                 "-o", str(profile), "--pid", str(self.process.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        self.http = httpx.Client(base_url=self.url, timeout=60)
        _wait_healthy(self.http, self.process)
        token = self.http.post(
            "/api/v1/oauth/token",
            json={"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET},
        ).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    def cpu(self) -> float:
        return _process_cpu(self.process.pid)

    def deploy(self, definition: dict[str, Any]) -> None:
        self.http.post("/api/v1/workflow_definitions", json=definition).raise_for_status()

    def start(self, name: str) -> str:
        reply = self.http.post("/api/v1/workflows", json={"definition_name": name, "input": {}})
        reply.raise_for_status()
        return str(reply.json()["workflow_id"])

    def count(self, status: str) -> int:
        reply = self.http.get("/api/v1/workflows", params={"status": status, "limit": 1})
        return int(reply.json()["total"])

    def close(self) -> None:
        self.http.close()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.spy is not None:
            try:
                self.spy.wait(30)
            except subprocess.TimeoutExpired:
                self.spy.kill()
        self._cwd.cleanup()


def _activity(key: str, depends_on: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "key": key,
        "worker": "py-std",
        "activity_name": "noop",
        "settings": {"timeout_seconds": 120},
        "depends_on": [{"activity_key": d} for d in depends_on],
    }


def queue_noop(server: Server, count: int, width: int) -> Callable[[], bool]:
    server.deploy({"name": "noop", "activities": [_activity("a")]})
    for _ in range(count):
        server.start("noop")
    return lambda: server.count("completed") + server.count("failed") >= count


def queue_fanout(server: Server, count: int, width: int) -> Callable[[], bool]:
    middle = [f"m{i}" for i in range(width)]
    activities = [_activity("root"), *(_activity(m, ["root"]) for m in middle), _activity("join", middle)]
    server.deploy({"name": "fanout", "activities": activities})
    server.start("fanout")
    # Not GET /workflows/{id}: that renders all 1,002 rows, and at 5 Hz it was most of the server's CPU.
    return lambda: server.count("completed") + server.count("failed") >= 1


WORKLOADS = {"noop": queue_noop, "fanout": queue_fanout}


def _stamps(db: str) -> tuple[int, int, float]:
    """(completed, not completed, last completed_at) over every activity row of ``db``."""
    query = (
        "SELECT SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN status = 'completed' THEN 0 ELSE 1 END), MAX(completed_at) FROM activities"
    )
    if db.startswith("sqlite:///"):
        with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
            row = conn.execute(query).fetchone()
    else:
        import psycopg

        with psycopg.connect(db) as conn:
            row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0] or 0), int(row[1] or 0), float(row[2])


def run_one(
    db: str, workload: str, system: str, args: argparse.Namespace, profile: Path | None
) -> dict[str, Any]:
    server = Server(db, profile)
    try:
        done = WORKLOADS[workload](server, args.count, args.width)
        cpu_before = server.cpu()
        child, ready = _start_worker(system, "noop", server.url, args.sdk_python or "")
        deadline = time.monotonic() + 600
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError("not finished in 600 s")
            time.sleep(0.2)
        server_cpu = server.cpu() - cpu_before
        worker = _stop_worker(child)
    finally:
        server.close()
    completed, other, last = _stamps(db)
    if other:
        raise RuntimeError(f"{other} activities did not complete")
    wall = last - ready
    return {
        "activities": completed,
        "wall_s": round(wall, 3),
        "per_s": round(completed / wall, 1),
        "server_cpu_ms": round(1000 * server_cpu / completed, 3),
        "worker_cpu_ms": round(1000 * worker.get("cpu_s", float("nan")) / completed, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--only", default="noop,fanout", help="workloads: noop, fanout")
    parser.add_argument("--systems", default="trioworks", help="trioworks, kruxiaflow, trio-loop")
    parser.add_argument("--count", type=int, default=2000, help="noop: workflows (default 2000)")
    parser.add_argument("--width", type=int, default=1000, help="fanout: parallel activities (default 1000)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get("TRIOWORKS_BENCH_POSTGRES"))
    parser.add_argument("--sdk-python", help="a Python that can import kruxiaflow 0.4.0")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy flame graphs of the server")
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args()
    backends = args.backends.split(",")
    systems = args.systems.split(",")
    if "kruxiaflow" in systems:
        args.sdk_python = _sdk_python(args.sdk_python)
        if not args.sdk_python:
            sys.exit("no interpreter with kruxiaflow 0.4.0: pass --sdk-python")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"end to end ({platform.python_version()}, {os.cpu_count()} CPUs, {SLOTS} slots, load {' '.join(load)})\n"
    )
    print("| backend | workload | worker | activities/s | server CPU / activity | worker CPU / activity |")
    print("|---|---|---|---:|---:|---:|", flush=True)
    results: list[dict[str, Any]] = []
    databases = postgres_databases(args.postgres) if "postgres" in backends else contextlib.nullcontext()
    with databases as make_pg, tempfile.TemporaryDirectory() as tmp:
        number = 0
        for backend in backends:
            if backend == "postgres" and make_pg is None:
                print("| postgres | - | - | skipped: no Postgres | | |", flush=True)
                continue
            for workload in args.only.split(","):
                for system in systems:
                    for run in range(args.runs):
                        number += 1
                        name = f"e2e_{number}"
                        db = f"sqlite:///{tmp}/{name}.db" if backend == "sqlite" else make_pg(name)  # type: ignore[misc]
                        profile = None
                        if args.profile:
                            profile = args.profile / f"{backend}-{workload}-{system}-{run}.txt"
                        try:
                            r = run_one(db, workload, system, args, profile)
                        except Exception as exc:  # one failed row must not lose the others
                            r = {"error": str(exc)}
                        r.update(backend=backend, workload=workload, system=system, run=run)
                        results.append(r)
                        if "error" in r:
                            print(
                                f"| {backend} | {workload} | {system} | error: {r['error']} | | |", flush=True
                            )
                        else:
                            print(f"| {backend} | {workload} | {system} | {r['per_s']:.0f} | "
                                  f"{r['server_cpu_ms']:.2f} ms | {r['worker_cpu_ms']:.2f} ms |", flush=True)  # fmt: skip
    for backend in backends:
        for workload in args.only.split(","):
            for system in systems:
                rates = [
                    r["per_s"]
                    for r in results
                    if (r["backend"], r["workload"], r["system"]) == (backend, workload, system)
                    and "per_s" in r
                ]
                if len(rates) > 1:
                    print(
                        f"{backend} {workload} {system}: median {statistics.median(rates):.0f}/s, range {min(rates):.0f}-{max(rates):.0f}"
                    )
    if args.json:
        args.json.write_text(json.dumps({"load": load, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
