"""What a claim and a completion cost the storage, one thread, no HTTP: CPU and round trips.

    PYTHONPATH=$PWD/src python benchmarks/storage_trips.py [sqlite|postgres] [--count N] [--postgres URL]

``--count`` (1,000) one-activity workflows of a no-op activity are created, then drained by one
thread that claims 10 at a time and completes each (the server's poll + complete, without the
HTTP layer). Printed as one JSON line: CPU per activity of this process (``cpu_ms``) and, on
Postgres, of the database server's processes (``backend_ms``: every process of the throwaway
cluster; not measured with ``--postgres``), wall time per activity, and round trips per claim and
per completion. A round trip is counted from libpq's protocol trace of the pool's connections:
the client sending (``F`` lines) and then reading the server's answer (``B`` lines). The trace
is switched on through the pool's ``configure`` hook, so older code of the storage can be
measured the same way (run it with that code's ``src`` on ``PYTHONPATH``).

Postgres: ``--postgres URL`` (its user needs CREATEDB), else a throwaway cluster from the test
suite's helper (``tests/_services.py``).
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BATCH = 10


def _cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _family(pid: int) -> list[int]:
    """``pid`` and its children (a Postgres postmaster and its backends)."""
    out = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


class _Trace:
    """libpq's protocol trace of every connection the storage's pool opens, in one file."""

    def __init__(self) -> None:
        import psycopg_pool

        self.path = Path(tempfile.mkstemp(prefix="trips-")[1])
        self._sink = self.path.open("w")
        original = psycopg_pool.ConnectionPool.__init__
        sink = self._sink

        def init(pool: Any, *args: Any, **kwargs: Any) -> None:
            kwargs["configure"] = lambda conn: conn.pgconn.trace(sink.fileno())
            original(pool, *args, **kwargs)

        psycopg_pool.ConnectionPool.__init__ = init  # type: ignore[method-assign]

    def round_trips(self, spans: list[tuple[str, float, float]]) -> dict[str, float]:
        self._sink.flush()
        stamps: list[float] = []
        directions: list[str] = []
        for line in self.path.read_text().splitlines():
            parts = line.split("\t")
            try:
                stamp = datetime.datetime.strptime(parts[0], "%Y-%m-%d %H:%M:%S.%f").timestamp()
            except (ValueError, IndexError):
                continue
            stamps.append(stamp)
            directions.append(parts[1])
        totals: dict[str, list[int]] = {}
        for kind, start, end in spans:
            i, j = bisect.bisect_left(stamps, start), bisect.bisect_right(stamps, end)
            trips = sum(1 for k in range(i + 1, j) if directions[k] == "B" and directions[k - 1] == "F")
            total = totals.setdefault(kind, [0, 0])
            total[0] += trips
            total[1] += 1
        return {kind: trips / count for kind, (trips, count) in totals.items()}

    def close(self) -> None:
        self._sink.close()
        self.path.unlink()


def drain(
    store: Any, count: int, postmaster: int | None
) -> tuple[dict[str, float], list[tuple[str, float, float]]]:
    from trioworks.server import parse_definition

    definition = {"name": "noop", "activities": [{"key": "a", "worker": "w", "activity_name": "x"}]}
    store.put_definition(parse_definition(definition), 0.0)
    for _ in range(count):
        store.create_workflow("noop", None, {}, None, 1.0)
    server_pids = [] if postmaster is None else _family(postmaster)  # the backends serving the pool
    spans: list[tuple[str, float, float]] = []
    cpu0, server0, wall0 = time.process_time(), _cpu_seconds(server_pids), time.perf_counter()
    completed = 0
    while True:
        start = time.time()
        claimed = store.claim("w", "worker-1", BATCH, 2.0)
        spans.append(("claim", start, time.time()))
        if not claimed:
            break
        for pending in claimed:
            start = time.time()
            store.complete(pending.activity_id, "worker-1", {"ok": True}, 0.0, None, 3.0)
            spans.append(("complete", start, time.time()))
            completed += 1
    cpu1, server1, wall1 = time.process_time(), _cpu_seconds(server_pids), time.perf_counter()
    assert completed == count, (completed, count)
    return {
        "cpu_ms": (cpu1 - cpu0) / count * 1e3,
        "backend_ms": (server1 - server0) / count * 1e3,
        "wall_ms": (wall1 - wall0) / count * 1e3,
    }, spans


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backend", choices=("sqlite", "postgres"))
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--postgres", metavar="URL")
    args = parser.parse_args(argv)
    load = Path("/proc/loadavg").read_text().split()[0]
    result: dict[str, Any] = {"backend": args.backend, "load": load}
    if args.backend == "sqlite":
        from trioworks.server import SQLiteStorage

        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteStorage(Path(tmp) / "db.sqlite")
            figures, _ = drain(store, args.count, None)
            store.close()
    else:
        trace = _Trace()
        from trioworks.server import PostgresStorage

        sys.path.insert(0, str(HERE.parent / "tests"))
        from _services import PostgresCluster

        cluster = None
        try:
            if args.postgres:
                url, postmaster = args.postgres, None
            else:
                cluster = PostgresCluster()
                cluster.start()
                url = cluster.create_database("trips")
                assert cluster._proc is not None
                postmaster = cluster._proc.pid
            store = PostgresStorage(url, max_threads=1)
            figures, spans = drain(store, args.count, postmaster)
            store.close()
            trips = trace.round_trips(spans)
            figures["trips_per_claim"] = trips["claim"]
            figures["trips_per_complete"] = trips["complete"]
        finally:
            if cluster is not None:
                cluster.close()
            trace.close()
    result.update({k: round(v, 3) for k, v in figures.items()})
    import trioworks

    result["code"] = str(Path(trioworks.__file__).parent)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
