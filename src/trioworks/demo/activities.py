"""The workflow of ``trioworks demo``'s worker-and-server section: its activities and definition.

:data:`DEFINITION` (``examples/workflows/demo.yaml`` is the same document) with :data:`INPUT`::

    extract ─┬─► score_north ─┐
     (file)  ├─► score_south ─┤
             ├─► score_east ──┼─► aggregate ─┬─► manual_review  (needs_review == true) ─┐
             ├─► score_west ──┘              └─► auto_approve   (needs_review == false) ┴─► report
             └─► count_primes (worker process) ─────────────────────────────────────────────┘

The activities live in the package, not in ``examples/``, because a ``process=True`` activity is found
again in the worker process by importing its module by name (see
:func:`trioworks.worker.activity`), and so that the demo runs from an installed wheel.

Serve them with a worker whose ``worker`` slug is :data:`WORKER`: ``Worker(WorkerConfig(api_url=url,
worker=WORKER, ...), ACTIVITIES)``, or ``trioworks worker --app trioworks.demo.activities
--worker demo``. This module is public for that reason (a worker loads it by name); the rest of
:mod:`trioworks.demo` is private behind the package.

Each kind of activity is here once or more:

- ``extract_orders`` (plain ``def``: a worker thread) writes ``orders.csv`` and returns it as a
  FILE output, which the worker uploads; the output is the file's reference string;
- ``score_region`` (plain ``def``, fanned out four times) downloads that file by reference,
  checks it, totals one region and waits on a (simulated) blocking service call;
- ``count_primes`` (``process=True``) is CPU-bound and runs in a worker process;
- ``aggregate``, ``manual_review``, ``auto_approve`` and ``publish_report`` are ``async def``
  on the worker's event loop; the workflow's condition picks one of the two reviews.

Times reported by the activities are ``time.time()`` (comparable across processes) and are
what the demo's highlights check.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import trio

from ..worker import ActivityContext, ActivityResult, activity
from . import etl

__all__ = [
    "ACTIVITIES",
    "DEFINITION",
    "INPUT",
    "KINDS",
    "REGIONS",
    "WORKER",
    "aggregate",
    "auto_approve",
    "count_primes",
    "extract_orders",
    "manual_review",
    "publish_report",
    "score_region",
]

WORKER = "demo"
"""The worker slug the demo's workflow sends its activities to."""
REGIONS = ("north", "south", "east", "west")
SERVICE_DELAY = 0.3  # seconds one region's (simulated) pricing service call blocks its thread
ORDERS_FILE = "orders.csv"


@attrs.frozen
class ExtractParams:
    count: int
    seed: int


@attrs.frozen
class RegionParams:
    orders: str
    """The reference string of ``orders.csv`` (``{provider}://{workflow}/{activity}/{file}``)."""
    region: str


def _sha256(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(64 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


@activity()
def extract_orders(params: ExtractParams, ctx: ActivityContext) -> ActivityResult:
    """Write the day's orders as CSV into the activity's temp directory; output it as a file.

    Runs in a worker thread, so plain file I/O is fine here; the context's async methods are
    reached with ``trio.from_thread.run``.
    """
    path = trio.from_thread.run(ctx.temp_dir) / ORDERS_FILE
    rng = random.Random(params.seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "region", "amount_eur"])
        for i in range(params.count):
            writer.writerow([i, REGIONS[i % len(REGIONS)], f"{rng.uniform(5, 500):.2f}"])
    size, digest = _sha256(path)
    return (
        ActivityResult.file("orders", str(path))
        .with_output("rows", params.count)
        .with_output("bytes", size)
        .with_output("sha256", digest)
    )


@activity()
def score_region(params: RegionParams, ctx: ActivityContext) -> dict[str, Any]:
    """Download ``orders.csv`` by reference, total one region, then call a (blocking) service."""
    started = time.time()
    local = Path(trio.from_thread.run(ctx.download_file, params.orders))
    size, digest = _sha256(local)
    with local.open(newline="", encoding="utf-8") as handle:
        amounts = [
            float(row["amount_eur"]) for row in csv.DictReader(handle) if row["region"] == params.region
        ]
    time.sleep(SERVICE_DELAY)  # stands for the pricing service's round trip
    return {
        "region": params.region,
        "orders": len(amounts),
        "total_eur": round(sum(amounts), 2),
        "read_bytes": size,
        "read_sha256": digest,
        "thread": threading.get_ident(),
        "started": started,
        "finished": time.time(),
    }


@activity(process=True)
def count_primes(params: dict[str, Any]) -> dict[str, Any]:
    """CPU-bound (say, scoring a model): runs in a worker process, never on the event loop."""
    started = time.time()
    result = etl.count_primes(int(params["limit"]))
    return {**result, "pid": os.getpid(), "started": started, "finished": time.time()}


@activity()
async def aggregate(params: dict[str, Any], ctx: ActivityContext) -> dict[str, Any]:
    """Join the regions' totals and decide whether the day needs a human review."""
    totals = params["totals"]
    total = round(sum(float(t) for t in totals.values()), 2)
    threshold = float(params["review_threshold"])
    return {
        "total_eur": total,
        "orders": sum(int(n) for n in params["orders"].values()),
        "review_threshold": threshold,
        "needs_review": total >= threshold,
    }


@activity()
async def manual_review(params: dict[str, Any], ctx: ActivityContext) -> dict[str, Any]:
    """The branch taken when the total reaches the review threshold."""
    return {"approved_by": "reviewer", "total_eur": params["total_eur"]}


@activity()
async def auto_approve(params: dict[str, Any], ctx: ActivityContext) -> dict[str, Any]:
    """The branch taken below the review threshold."""
    return {"approved_by": "auto", "total_eur": params["total_eur"]}


@activity()
async def publish_report(params: dict[str, Any], ctx: ActivityContext) -> dict[str, Any]:
    """The join after the branch (it runs whichever review ran) and the CPU-bound activity."""
    return {
        "report": f"{params['orders']} orders, {params['total_eur']:,.2f} EUR; "
        f"{params['primes']:,} primes below {params['limit']:,}",
        "workflow_id": params["workflow_id"],
    }


ACTIVITIES = (
    extract_orders,
    score_region,
    count_primes,
    aggregate,
    manual_review,
    auto_approve,
    publish_report,
)
"""Everything the demo's worker serves."""


# -- the workflow ----------------------------------------------------------------------

REGION_KEYS = tuple(f"score_{region}" for region in REGIONS)
EXTRACT, CPU, AGGREGATE, REPORT = "extract", "count_primes", "aggregate", "report"
TAKEN, SKIPPED = "auto_approve", "manual_review"  # with INPUT's review threshold


def _activity(key: str, name: str, parameters: dict[str, Any], *depends: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "key": key,
        "worker": WORKER,
        "activity_name": name,
        "parameters": parameters,
    }
    if depends:
        spec["depends_on"] = list(depends)
    return spec


DEFINITION: dict[str, Any] = {
    "name": "demo-orders",
    "description": "trioworks demo: a file fanned out to four regions and a CPU-bound activity, "
    "then a conditional review",
    "activities": [
        {
            **_activity(EXTRACT, "extract_orders", {"count": "{{INPUT.orders}}", "seed": "{{INPUT.seed}}"}),
            "outputs": [{"name": "orders", "type": "file"}, "rows", "bytes", "sha256"],
        },
        *(
            _activity(key, "score_region", {"orders": "{{extract.orders}}", "region": region}, EXTRACT)
            for key, region in zip(REGION_KEYS, REGIONS, strict=True)
        ),
        _activity(CPU, "count_primes", {"limit": "{{INPUT.prime_limit}}"}, EXTRACT),
        _activity(
            AGGREGATE,
            "aggregate",
            {
                "totals": {r: f"{{{{{k}.total_eur}}}}" for k, r in zip(REGION_KEYS, REGIONS, strict=True)},
                "orders": {r: f"{{{{{k}.orders}}}}" for k, r in zip(REGION_KEYS, REGIONS, strict=True)},
                "review_threshold": "{{INPUT.review_threshold}}",
            },
            *REGION_KEYS,
        ),
        _activity(
            SKIPPED,
            "manual_review",
            {"total_eur": "{{aggregate.total_eur}}"},
            {"activity_key": AGGREGATE, "condition": "{{aggregate.needs_review}} == true"},
        ),
        _activity(
            TAKEN,
            "auto_approve",
            {"total_eur": "{{aggregate.total_eur}}"},
            {"activity_key": AGGREGATE, "condition": "{{aggregate.needs_review}} == false"},
        ),
        _activity(
            REPORT,
            "publish_report",
            {
                "orders": "{{aggregate.orders}}",
                "total_eur": "{{aggregate.total_eur}}",
                "primes": "{{count_primes.primes}}",
                "limit": "{{count_primes.limit}}",
                "workflow_id": "{{WORKFLOW.id}}",
            },
            SKIPPED,
            TAKEN,
            CPU,
        ),
    ],
}
"""The demo's workflow definition, as deployed (``examples/workflows/demo.yaml`` is the same)."""

KINDS: dict[str, str] = {
    a["key"]: next(d.kind.value for d in ACTIVITIES if d.name == a["activity_name"])
    for a in DEFINITION["activities"]
}
"""Activity key -> where the worker runs it: ``thread``, ``process`` or ``async`` (on the loop)."""

INPUT: dict[str, Any] = {"orders": 2000, "seed": 7, "review_threshold": 1_000_000, "prime_limit": 300_000}
"""The workflow's input: 2,000 orders total about 500,000 EUR, below the review threshold."""
