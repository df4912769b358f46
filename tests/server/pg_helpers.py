"""Helpers of the Postgres tests: fan-out workflows, threads released together, draining the queue.

Imported by name (``from pg_helpers import ...``), like ``server_helpers``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from server_helpers import activity

from trioworks.server import PostgresStorage, parse_definition

NOW = 10.0


def fan_out(
    store: PostgresStorage,
    workflows: int,
    width: int,
    *,
    name: str = "fan",
    settings: dict[str, Any] | None = None,
    **extra: Any,
) -> list[str]:
    """``workflows`` workflows of ``width`` independent ``std`` activities (plus ``extra``); ids."""
    activities = [activity(f"a{i}", settings=settings) for i in range(width)]
    for key, spec in extra.items():
        activities.append(activity(key, **spec))
    store.put_definition(parse_definition({"name": name, "activities": activities}), 0.0)
    return [store.create_workflow(name, None, {}, None, 1.0).id for _ in range(workflows)]


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(i)`` in ``count`` threads released together; re-raise the first error."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a poller thread hung"
    if errors:
        raise errors[0]


def drain(store: PostgresStorage, worker: str, worker_id: str, batch: int) -> list[str]:
    """Claim until two polls in a row come back empty; the claimed activity ids."""
    got: list[str] = []
    empty = 0
    while empty < 2:
        claimed = store.claim(worker, worker_id, batch, NOW)
        empty = 0 if claimed else empty + 1
        got.extend(a.activity_id for a in claimed)
    return got


def claims_in_db(store: PostgresStorage, workflow_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """activity id -> (status, claimed_by), as stored."""
    out = {}
    for wf in workflow_ids:
        for row in store.get_workflow(wf)[1]:
            out[row.id] = (row.status.value, row.claimed_by)
    return out
