"""Section 1 of the demo, judged: the ETL's claims (:mod:`trioworks.demo.etl`), checked against a run.

A pure function of what the run showed, so that a test can change one fact and see the one
highlight about it turn false.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..dag import NodeStatus, ResourceRegistry, WorkflowResult
from . import etl
from ._highlight import Highlight

__all__ = ["dag_highlights"]


def dag_highlights(
    result: WorkflowResult,
    *,
    started: Mapping[str, float],
    finished: Mapping[str, float],
    attempts: Mapping[str, int],
    resources: ResourceRegistry | None,
) -> list[Highlight]:
    """The ETL's claims about ``result`` (a completed run of :func:`~trioworks.demo.build_workflow`).

    ``started`` and ``finished`` are when each node started and finished (one clock, any origin),
    ``attempts`` how many attempts each took (the runtime's ``on_node_start`` / ``on_node_finish``
    callbacks see both); ``resources`` is the run's registry (its ``db`` creation count is checked).
    """
    out = result.results
    status = result.statuses

    batch = out["aggregate"]["result"]
    switched = (
        status[etl.SKIPPED_BRANCH] is NodeStatus.SKIPPED
        and result.skip_reasons.get(etl.SKIPPED_BRANCH) == "branch not taken"
        and status[etl.TAKEN_BRANCH] is NodeStatus.COMPLETED
        and status[etl.MERGE_NODE] is NodeStatus.COMPLETED
    )
    switch_text = (
        f"the switch '{etl.SWITCH_NODE}' sent the batch to '{etl.TAKEN_BRANCH}' (total {batch['total_eur']:,.2f} EUR "
        f"< review threshold {batch['review_threshold']:,.0f} EUR); the branch '{etl.SKIPPED_BRANCH}' was skipped "
        f"and '{etl.MERGE_NODE}' went on with the branch that ran"
    )

    shards = etl.SHARD_NODES
    busy = sum(result.node_durations[n] for n in shards)
    span = max(finished[n] for n in shards) - min(started[n] for n in shards)
    max_threads = result.metrics["max_threads"]
    threads_text = (
        f"{len(shards)} blocking sync nodes ran in parallel in threads: max threads {max_threads}, "
        f"{busy:.2f} s of blocking work done in {span:.2f} s"
    )

    cpu = out[etl.CPU_NODE]["result"]
    cpu_start, cpu_end = started[etl.CPU_NODE], finished[etl.CPU_NODE]
    meanwhile = [n for n, t in finished.items() if n != etl.CPU_NODE and cpu_start < t < cpu_end]
    cpu_text = (
        f"the CPU node '{etl.CPU_NODE}' ran in worker process {cpu['pid']} (this is {os.getpid()}): "
        f"{cpu['primes']:,} primes below {cpu['limit']:,}, while {len(meanwhile)} other nodes finished"
    )

    published = out[etl.FLAKY_NODE]["result"]
    retry_text = (
        f"'{etl.FLAKY_NODE}' (retry=2) failed once with a connection reset and succeeded on attempt "
        f"{attempts.get(etl.FLAKY_NODE)}"
    )

    stored = out[etl.STORE_NODE]["result"]
    db = resources.metrics()["db"] if resources is not None else {}
    records = out["generate"]["result"]["count"]
    made = "once" if db.get("created") == 1 else f"{db.get('created')} times"
    store_text = (
        f"'{etl.STORE_NODE}' wrote {stored['rows']} rows to the resource 'db' (an in-memory SQLite "
        f"connection made {made} by a sync factory, handed to the node by Resource('db'))"
    )
    return [
        Highlight(switch_text, switched),
        Highlight(threads_text, max_threads >= 2 and span < 0.75 * busy),
        Highlight(cpu_text, cpu["pid"] != os.getpid() and bool(meanwhile)),
        Highlight(
            retry_text,
            attempts.get(etl.FLAKY_NODE) == 2 and result.metrics["retries"] == 1 and published["published"],
        ),
        Highlight(store_text, stored["rows"] == records and db.get("created") == 1),
    ]
