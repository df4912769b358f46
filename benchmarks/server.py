"""Reference-server benchmarks.

    python benchmarks/server.py storage [--rows N] [--pollers N] [--postgres URL] [--json PATH]
    python benchmarks/server.py fanout [--width N] [--pollers N] [--postgres URL] [--json PATH]

``storage``: claims per second of the storage backends (SQLite and Postgres) with concurrent
pollers, through the same path the server uses: Trio tasks calling the synchronous storage with
:func:`trioworks.core.run_in_thread` on one ``CapacityLimiter`` sized to the pollers. Each run
starts from a fresh database holding ``--rows`` pending activities (workflows of 10 parallel
activities) and drains it, in two modes:

- ``claim``: poll until the queue is empty (rows stay ``running``);
- ``claim+complete``: poll, then complete every claimed activity (each completion advances its
  workflow in the same transaction): the per-activity cost of a real worker's cycle.

``fanout``: one workflow ``root -> N parallel -> join`` (``--width``, default 1,000), drained by
``--pollers`` pollers that claim 10 at a time and complete each activity: the time a completion
takes as a function of its workflow's width (every completion advances that one workflow).

Postgres: ``--postgres URL`` (databases are created and dropped in it, so the URL's user needs
CREATEDB), else a throwaway cluster is started with the test suite's helper
(``tests/_services.py``; needs the postgresql server package), else Postgres is skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import trio

from trioworks.core import run_in_thread
from trioworks.server import SQLiteStorage, Storage, parse_definition

WIDTH = 10  # parallel activities per workflow
NOW = 10.0


def _definition() -> Any:
    return parse_definition(
        {
            "name": "bench",
            "activities": [{"key": f"a{i}", "worker": "std", "activity_name": "x"} for i in range(WIDTH)],
        }
    )


def _fanout_definition(width: int) -> Any:
    middle = [
        {"key": f"m{i}", "worker": "std", "activity_name": "x", "depends_on": [{"activity_key": "root"}]}
        for i in range(width)
    ]
    join = {
        "key": "join",
        "worker": "std",
        "activity_name": "x",
        "depends_on": [{"activity_key": m["key"]} for m in middle],
    }
    return parse_definition(
        {
            "name": "fanout",
            "activities": [{"key": "root", "worker": "std", "activity_name": "x"}, *middle, join],
        }
    )


def fill(store: Storage, rows: int) -> None:
    store.put_definition(_definition(), 0.0)
    for _ in range(rows // WIDTH):
        store.create_workflow("bench", None, {}, None, 1.0)


async def drain(store: Storage, pollers: int, batch: int, complete: bool) -> int:
    """Poll with ``pollers`` tasks until the queue is empty; the number of claims."""
    limiter = trio.CapacityLimiter(pollers)
    claimed = 0

    async def poller(i: int) -> None:
        nonlocal claimed
        empty = 0
        while empty < 2:  # an empty poll can be contention, two in a row is an empty queue
            got = await run_in_thread(store.claim, "std", f"w{i}", batch, NOW, limiter=limiter)
            empty = 0 if got else empty + 1
            claimed += len(got)
            if complete:
                for activity in got:
                    await run_in_thread(
                        store.complete, activity.activity_id, f"w{i}", {}, 0.0, None, NOW, limiter=limiter
                    )

    async with trio.open_nursery() as nursery:
        for i in range(pollers):
            nursery.start_soon(poller, i)
    return claimed


async def drain_count(store: Storage, pollers: int, batch: int, total: int) -> int:
    """Claim and complete with ``pollers`` tasks until ``total`` activities completed.

    An empty poll is normal here (the next activities become due only when others complete):
    that poller waits 1 ms and polls again.
    """
    limiter = trio.CapacityLimiter(pollers)
    completed = 0

    async def poller(i: int) -> None:
        nonlocal completed
        while completed < total:
            got = await run_in_thread(store.claim, "std", f"w{i}", batch, NOW, limiter=limiter)
            if not got:
                await trio.sleep(0.001)
            for activity in got:
                await run_in_thread(
                    store.complete, activity.activity_id, f"w{i}", {}, 0.0, None, NOW, limiter=limiter
                )
                completed += 1

    async with trio.open_nursery() as nursery:
        for i in range(pollers):
            nursery.start_soon(poller, i)
    return completed


def bench_fanout(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with postgres_databases(args.postgres) as make_pg, tempfile.TemporaryDirectory() as tmp:
        for backend, open_store in _backends(args, make_pg, tmp):
            store = open_store(f"bench_{backend}_fanout")
            try:
                store.put_definition(_fanout_definition(args.width), 0.0)
                workflow = store.create_workflow("fanout", None, {}, None, 1.0)
                start = time.perf_counter()
                done = trio.run(drain_count, store, args.pollers, 10, args.width + 2)
                seconds = time.perf_counter() - start
                status = store.get_workflow(workflow.id)[0].status.value
            finally:
                store.close()
            assert status == "completed" and done == args.width + 2, (backend, status, done)
            results.append(
                {
                    "backend": backend,
                    "width": args.width,
                    "pollers": args.pollers,
                    "activities": done,
                    "seconds": round(seconds, 3),
                    "activities_per_s": round(done / seconds),
                }
            )
            print(
                f"| {backend} | 1 -> {args.width} -> 1 | {args.pollers} | {done} | {seconds:.2f} | "
                f"{results[-1]['activities_per_s']} |",
                flush=True,
            )
    return results


def _backends(
    args: argparse.Namespace, make_pg: Callable[[str], str] | None, tmp: str
) -> list[tuple[str, Callable[[str], Storage]]]:
    backends: list[tuple[str, Callable[[str], Storage]]] = [
        ("sqlite", lambda name: SQLiteStorage(Path(tmp) / f"{name}.db", max_threads=args.pollers)),
    ]
    if make_pg is not None:
        from trioworks.server import PostgresStorage

        backends.append(("postgres", lambda name: PostgresStorage(make_pg(name), max_threads=args.pollers)))
    return backends


@contextlib.contextmanager
def postgres_databases(url: str | None) -> Iterator[Callable[[str], str] | None]:
    """Yield ``make(name) -> url`` of a fresh database, or None when Postgres is not available."""
    if url is not None:
        import psycopg
        from psycopg import conninfo, sql

        made: list[str] = []

        def make(name: str) -> str:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            made.append(name)
            return conninfo.make_conninfo(url, dbname=name)

        try:
            yield make
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                for name in made:
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                    )
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    try:
        from _services import PostgresCluster, ServiceUnavailable
    except ImportError:
        yield None
        return
    try:
        cluster = PostgresCluster()
        cluster.start()
    except ServiceUnavailable as exc:
        print(f"Postgres skipped: {exc}", file=sys.stderr)
        yield None
        return
    try:
        yield cluster.create_database
    finally:
        cluster.close()


def bench_storage(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with postgres_databases(args.postgres) as make_pg, tempfile.TemporaryDirectory() as tmp:
        for backend, open_store in _backends(args, make_pg, tmp):
            for batch in (1, 10):
                for complete in (False, True):
                    mode = "claim+complete" if complete else "claim"
                    name = f"bench_{backend}_{batch}_{'c' if complete else 'n'}"
                    store = open_store(name)
                    try:
                        fill(store, args.rows)
                        start = time.perf_counter()
                        claimed = trio.run(drain, store, args.pollers, batch, complete)
                        seconds = time.perf_counter() - start
                    finally:
                        store.close()
                    assert claimed == args.rows - args.rows % WIDTH, (backend, claimed)
                    results.append(
                        {
                            "backend": backend,
                            "mode": mode,
                            "batch": batch,
                            "pollers": args.pollers,
                            "claims": claimed,
                            "seconds": round(seconds, 3),
                            "claims_per_s": round(claimed / seconds),
                        }
                    )
                    print(_row(results[-1]), flush=True)
    return results


_HEADER = "| backend | mode | max_activities | pollers | claims | seconds | claims/s |\n|---|---|---:|---:|---:|---:|---:|"


_FANOUT_HEADER = (
    "| backend | workflow | pollers | activities | seconds | activities/s |\n|---|---|---:|---:|---:|---:|"
)


def _row(r: dict[str, Any]) -> str:
    return (
        f"| {r['backend']} | {r['mode']} | {r['batch']} | {r['pollers']} | {r['claims']} | "
        f"{r['seconds']:.2f} | {r['claims_per_s']} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("section", choices=["storage", "fanout"], nargs="?", default="storage")
    parser.add_argument("--rows", type=int, default=2000, help="pending activities per run (default 2000)")
    parser.add_argument("--width", type=int, default=1000, help="fanout: parallel activities (default 1000)")
    parser.add_argument("--pollers", type=int, default=4, help="concurrent pollers (default 4)")
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get("TRIOWORKS_BENCH_POSTGRES"))
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.section == "fanout":
        print(f"fanout: one workflow 1 -> {args.width} -> 1, {args.pollers} pollers claiming 10\n")
        print(_FANOUT_HEADER, flush=True)
        results = bench_fanout(args)
    else:
        print(f"storage: {args.rows} pending activities, {args.pollers} pollers (run_in_thread)\n")
        print(_HEADER, flush=True)
        results = bench_storage(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
