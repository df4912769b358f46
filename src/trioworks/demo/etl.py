"""The ETL workflow that ``trioworks demo`` runs (``examples/dag_demo.py`` re-exports it).

It lives in the package, not in ``examples/``, so that ``trioworks demo`` works from an
installed wheel and so that worker processes can import :func:`count_primes` by module name
(a ``process=True`` node's function must be importable; a file loaded by path is not). This
module is public for that reason, and so that ``trioworks dag run trioworks.demo.etl`` finds
:func:`build_workflow` and :func:`resources`; the rest of :mod:`trioworks.demo` is private
behind the package.

::

    generate ─┬─► enrich_north ─┐
              ├─► enrich_south ─┤
              ├─► enrich_east ──┼─► aggregate ─► route ─┬─► manual_review ─┐
              └─► enrich_west ──┤               (switch) └─► auto_approve ──┴─► merge ─► store ─► publish
    fetch_rates ────────────────┘                                                           ▲
    count_primes (worker process) ──────────────────────────────────────────────────────────┘

What each node shows:

- ``generate``: a Kailash ``PythonCodeNode`` (a code string) making the day's orders;
- ``enrich_*``: sync functions doing blocking work (hashing, ``time.sleep`` for a service
  call), run concurrently in threads;
- ``fetch_rates``: an async function awaiting ``trio.sleep`` (an HTTP call) on the loop;
- ``count_primes``: CPU-bound, ``process=True``: runs in a worker process;
- ``route`` / ``merge``: a ``SwitchNode`` sends the batch down one branch, the other is
  skipped, and a ``MergeNode`` takes whichever branch ran;
- ``store``: writes to an in-memory SQLite connection from the ``ResourceRegistry``
  (parameter default ``Resource("db")``), closed when the run's resources are cleaned up;
- ``publish``: ``retry=2``; its endpoint drops the first connection, the retry succeeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from typing import Any

import attrs
import trio

from ..dag import Resource, ResourceRegistry, Workflow, WorkflowBuilder

__all__ = ["build_workflow", "count_primes", "resources"]

# Node ids the demo's highlights check.
SHARD_NODES = ("enrich_north", "enrich_south", "enrich_east", "enrich_west")
SWITCH_NODE, TAKEN_BRANCH, SKIPPED_BRANCH, MERGE_NODE = "route", "auto_approve", "manual_review", "merge"
CPU_NODE, STORE_NODE, FLAKY_NODE = "count_primes", "store", "publish"

SERVICE_DELAY = 0.1  # seconds one enrichment call "waits on the network"

GENERATE_CODE = """
import random

rng = random.Random(seed)
regions = ["north", "south", "east", "west"]
records = [
    {
        "id": i,
        "region": regions[i % len(regions)],
        "amount": round(rng.uniform(5, 500), 2),
        "currency": rng.choice(["EUR", "USD", "GBP"]),
    }
    for i in range(count)
]
result = {"records": records, "count": len(records)}
"""


def enrich_shard(records: list[dict[str, Any]], region: str) -> dict[str, Any]:
    """Blocking work for one region: fingerprint its records, then one call to a (simulated) service."""
    rows = []
    for record in records:
        if record["region"] == region:
            digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
            rows.append({**record, "fingerprint": digest[:16]})
    time.sleep(SERVICE_DELAY)  # stands for the customer service's round trip
    return {"region": region, "rows": rows}


async def fetch_rates(base: str = "EUR") -> dict[str, float]:
    """Exchange rates to ``base``; the ``trio.sleep`` stands for an HTTP call."""
    await trio.sleep(0.15)
    return {"EUR": 1.0, "USD": 0.92, "GBP": 1.17}


def count_primes(limit: int = 200_000) -> dict[str, int]:
    """CPU-bound stand-in (say, scoring a model): count primes below ``limit`` by trial division."""
    count = 0
    for n in range(2, limit):
        if n % 2 == 0:
            count += n == 2
            continue
        d = 3
        while d * d <= n:
            if n % d == 0:
                break
            d += 2
        else:
            count += 1
    return {"limit": limit, "primes": count, "pid": os.getpid()}


def aggregate(
    north: dict[str, Any],
    south: dict[str, Any],
    east: dict[str, Any],
    west: dict[str, Any],
    rates: dict[str, float],
    review_threshold: float = 50_000.0,
) -> dict[str, Any]:
    """Join the shards, convert to euros, and decide whether the batch needs a human review."""
    rows = [
        {**row, "amount_eur": round(row["amount"] * rates[row["currency"]], 2)}
        for shard in (north, south, east, west)
        for row in shard["rows"]
    ]
    total = round(sum(row["amount_eur"] for row in rows), 2)
    return {
        "rows": rows,
        "total_eur": total,
        "review_threshold": review_threshold,
        "needs_review": total >= review_threshold,
    }


def manual_review(batch: dict[str, Any]) -> dict[str, Any]:
    """Queue the batch for a reviewer (the branch the demo's data does not take)."""
    return {**batch, "approved_by": "reviewer"}


def auto_approve(batch: dict[str, Any]) -> dict[str, Any]:
    return {**batch, "approved_by": "auto"}


def store(batch: dict[str, Any], db: sqlite3.Connection = Resource("db")) -> dict[str, Any]:  # type: ignore[assignment]  # a Resource marker; the runtime passes the connection
    """Write the batch to the ``db`` resource; return what the table holds."""
    with db:  # one transaction
        db.execute(
            "CREATE TABLE IF NOT EXISTS orders"
            " (id INTEGER PRIMARY KEY, region TEXT, amount_eur REAL, fingerprint TEXT, approved_by TEXT)"
        )
        db.executemany(
            "INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?, ?)",
            [
                (r["id"], r["region"], r["amount_eur"], r["fingerprint"], batch["approved_by"])
                for r in batch["rows"]
            ],
        )
    rows, total = db.execute("SELECT COUNT(*), ROUND(SUM(amount_eur), 2) FROM orders").fetchone()
    return {"rows": rows, "total_eur": total, "approved_by": batch["approved_by"]}


@attrs.define
class Publisher:
    """Posts the day's report. Its endpoint drops the first connection (simulated, per
    workflow built) so that the node's ``retry=2`` has something to do."""

    attempts: int = 0

    def __call__(self, stored: dict[str, Any], cpu: dict[str, int]) -> dict[str, Any]:
        self.attempts += 1
        if self.attempts == 1:
            raise ConnectionResetError("report endpoint reset the connection (simulated)")
        return {"published": True, "attempt": self.attempts, **stored, "primes": cpu["primes"]}


def open_db() -> sqlite3.Connection:
    # The registry's factory runs in one thread and the node in another: allow that.
    return sqlite3.connect(":memory:", check_same_thread=False)


def close_db(db: sqlite3.Connection) -> None:
    db.close()


def resources() -> ResourceRegistry:
    """A fresh registry with the ``db`` resource (created on first use, closed at cleanup)."""
    registry = ResourceRegistry()
    registry.register_factory("db", open_db, cleanup=close_db)
    return registry


def build_workflow(record_count: int = 48, seed: int = 7) -> Workflow:
    """Build the demo ETL. Each build has its own flaky publisher, so every run retries once."""
    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "generate", {"code": GENERATE_CODE, "count": record_count, "seed": seed})
    for node_id in SHARD_NODES:
        region = node_id.removeprefix("enrich_")
        wb.add_node(enrich_shard, node_id, {"region": region})
        wb.add_connection("generate", "result.records", node_id, "records")
    wb.add_node(fetch_rates, "fetch_rates")
    wb.add_node(count_primes, CPU_NODE, process=True)
    wb.add_node(aggregate, "aggregate")
    for node_id in SHARD_NODES:  # Kailash's order: a connection after both its nodes
        wb.add_connection(node_id, "result", "aggregate", node_id.removeprefix("enrich_"))
    wb.add_connection("fetch_rates", "result", "aggregate", "rates")
    wb.add_node(
        "SwitchNode", SWITCH_NODE, {"condition_field": "needs_review", "operator": "==", "value": True}
    )
    wb.add_connection("aggregate", "result", SWITCH_NODE, "input_data")
    wb.add_node(manual_review, SKIPPED_BRANCH)
    wb.add_node(auto_approve, TAKEN_BRANCH)
    wb.add_connection(SWITCH_NODE, "true_output", SKIPPED_BRANCH, "batch")
    wb.add_connection(SWITCH_NODE, "false_output", TAKEN_BRANCH, "batch")
    wb.add_node("MergeNode", MERGE_NODE)
    wb.add_connection(SKIPPED_BRANCH, "result", MERGE_NODE, "reviewed")
    wb.add_connection(TAKEN_BRANCH, "result", MERGE_NODE, "approved")
    wb.add_node(store, STORE_NODE)
    wb.add_connection(MERGE_NODE, "result", STORE_NODE, "batch")
    wb.add_node(Publisher(), FLAKY_NODE, retry=2)
    wb.add_connection(STORE_NODE, "result", FLAKY_NODE, "stored")
    wb.add_connection(CPU_NODE, "result", FLAKY_NODE, "cpu")
    return wb.build("demo-etl")
