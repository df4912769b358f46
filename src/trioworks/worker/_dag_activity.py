"""The ``dag_node`` activity: runs any node of a workflow compiled by ``trioworks.dag.DistributedRuntime``."""

from __future__ import annotations

from typing import Any

from ..dag import NodeImportError, NodeRunner, RemoteNodeFailure, ResourceRegistry
from ._activity import ActivityDefinition, activity
from ._context import ActivityContext
from ._errors import ActivityError
from ._results import ActivityResult

__all__ = ["DAG_WORKER", "dag_activities"]

DAG_WORKER = "dag"


def dag_activities(
    resources: ResourceRegistry | None = None,
    *,
    threads: int = 16,
    processes: int | None = None,
    max_inline_bytes: int | None = None,
) -> list[ActivityDefinition]:
    """The ``dag_node`` activity (serve it as worker ``dag``: ``trioworks worker --dag``).

    ``resources``: the registry that ``Resource("name")`` parameters and code nodes'
    ``get_resource`` read on this worker. ``threads`` / ``processes`` bound sync and process
    nodes at once (the worker's ``max_activities`` bounds all nodes). ``max_inline_bytes`` (None: 64
    KiB): a node output whose JSON is larger travels as the activity's file ``out.json`` (streamed up
    through the file route; downstream workers download it), unless the workflow sets its own
    (``DistributedRuntime(max_inline_bytes=...)``). A node failure is reported
    as non-retryable ``NODE_ERROR`` ("Type: text"; its own retries ran here already); a function
    that cannot be imported as ``NODE_IMPORT_ERROR``.
    """
    runner = NodeRunner(resources, threads, processes, max_inline_bytes=max_inline_bytes)

    @activity(name="dag_node")
    async def dag_node(params: dict[str, Any], ctx: ActivityContext) -> ActivityResult:
        try:
            output = await runner.run(params, ctx.workflow_id, ctx)
        except NodeImportError as exc:
            raise ActivityError(str(exc), code="NODE_IMPORT_ERROR", retryable=False) from exc
        except RemoteNodeFailure as exc:
            raise ActivityError(str(exc), code="NODE_ERROR", retryable=False) from exc
        return ActivityResult.values(output)

    return [dag_node]
