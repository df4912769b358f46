"""DistributedRuntime: a built workflow run by a worker fleet through a Kruxia-Flow-compatible server.

The workflow is compiled into a workflow definition: one activity per node on the ``dag``
worker queue (activity ``dag_node``, see ``trioworks.worker.dag_activities``), a dependency
per upstream node, switch branches and skips as ``depends_on`` conditions. Each activity's
parameters carry the node's spec (code, or the function's module path, or the pickled
callable), its static inputs (``{{INPUT.nodes[key]}}``) and one entry per input edge whose
``value`` is the upstream node's whole output (``{{upstream.out}}``); the worker follows the
edge's path itself, so the errors are the local runtime's.

Semantics equal to :class:`AsyncLocalRuntime`'s default mode: a node with a dead input (a
branch not taken, an upstream skip or, with ``continue_on_error``, failure) is skipped; a merge
node runs on its first live input; fail-fast by default. Node retries and per-attempt timeouts
run in the worker that holds the node, under the node's own :class:`RetryPolicy` (as locally);
the activity's ``settings.retry`` covers a lost lease (a killed worker), so the node runs again
elsewhere.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import trio

from ..core import run_in_thread
from ._builder import Plan, Workflow
from ._compile import DAG_QUEUE, activity_keys, compile_workflow, static_inputs
from ._errors import NodeExecutionError, WorkflowExecutionError
from ._result import NodeStatus, WorkflowResult
from ._values import decode_file

__all__ = ["DistributedRuntime", "RemoteNodeError", "build_result"]

_NOT_TAKEN, _SKIPPED, _FAILED = "branch not taken", "input skipped", "input failed"
_REFERENCE = re.compile(r"^(\w+)://([^/]+)/([^/]+)/(.+)$")  # provider://workflow/activity/filename


class RemoteNodeError(NodeExecutionError):
    """A node failed on a worker. ``error_type`` is the name of the exception the node raised
    there, ``message`` its text (``str(exc)``); ``code`` the worker's error code."""

    def __init__(self, node_id: str, error_type: str, message: str, code: str = "EXECUTION_ERROR") -> None:
        self.node_id = node_id
        self.error_type = error_type
        self.message = message
        self.code = code
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


# -- results -----------------------------------------------------------------------


def _activity_row(activity: Mapping[str, Any]) -> dict[str, Any]:
    """One activity of ``GET /workflows/{id}`` with ``outputs`` as ``{name: value}`` and ``error``
    as a mapping: the original (and trioworks) send outputs as ``[{name, type, value}]`` and the
    error as a string; trioworks adds the structured error as ``error_details``."""
    row = dict(activity)
    outputs = row.get("outputs")
    if isinstance(outputs, list):
        row["outputs"] = {o.get("name"): o.get("value") for o in outputs if isinstance(o, Mapping)}
    error = row.get("error_details", row.get("error"))
    if error is not None and not isinstance(error, Mapping):
        error = {"code": row.get("error_code") or "EXECUTION_ERROR", "message": str(error)}
    row["error"] = error
    return row


def _seconds(row: Mapping[str, Any]) -> float:
    out = row.get("outputs") or {}
    value = out.get("seconds") if isinstance(out, Mapping) else None
    return float(value) if isinstance(value, int | float) else 0.0


def build_result(
    plan: Plan,
    body: Mapping[str, Any],
    run_id: str,
    duration: float,
    large: Mapping[str, Any] | None = None,
) -> tuple[WorkflowResult, str | None]:
    """The :class:`WorkflowResult` of a finished server workflow; and the failed node, if it failed.

    ``large``: activity key -> the output that travelled as a file, downloaded (see
    :func:`large_outputs`); it replaces the row's stub.
    """
    keys = activity_keys(plan)
    rows = {a["activity_key"]: _activity_row(a) for a in body.get("activities", [])}
    for key, value in (large or {}).items():
        if key in rows:
            rows[key]["outputs"] = {**rows[key]["outputs"], "out": value}
    result = WorkflowResult(workflow_id=plan.workflow_id, run_id=run_id, total_duration=duration)
    failed_node: str | None = None
    propagated: dict[str, str] = {}
    for node_id in plan.order:
        row = rows.get(keys[node_id], {})
        status, out = row.get("status"), row.get("outputs") or {}
        if status == "completed" and out.get("skipped"):
            result.statuses[node_id] = NodeStatus.SKIPPED
            result.skip_reasons[node_id] = str(out.get("skip_reasons", ""))
            propagated[node_id] = str(out["skipped"])
        elif status == "completed" and out.get("error") is None:
            result.results[node_id] = out.get("out")
            result.statuses[node_id] = NodeStatus.COMPLETED
            result.node_durations[node_id] = _seconds(row)
        elif status == "completed" or (
            status == "failed" and (row.get("error") or {}).get("code") != "WORKFLOW_FAILED"
        ):
            error: Mapping[str, Any] = (
                (out.get("error") or {}) if status == "completed" else _error_of(row.get("error") or {})
            )
            result.errors[node_id] = RemoteNodeError(
                node_id,
                str(error.get("type", "Exception")),
                str(error.get("message", "")),
                str(error.get("code", "EXECUTION_ERROR")),
            )
            result.statuses[node_id] = NodeStatus.FAILED
            result.node_durations[node_id] = _seconds(row)
            if status == "failed" and failed_node is None:
                failed_node = node_id
        elif status == "skipped":
            result.statuses[node_id] = NodeStatus.SKIPPED
            reasons = set()
            for edge in plan.inbound[node_id]:
                source = result.statuses.get(edge.source)
                if source is NodeStatus.FAILED:
                    reasons.add(_FAILED)
                elif source is NodeStatus.SKIPPED:
                    reasons.add(propagated.get(edge.source, _SKIPPED))
                elif edge.root not in (result.results.get(edge.source) or {}):
                    reasons.add(_NOT_TAKEN)
            result.skip_reasons[node_id] = ", ".join(sorted(reasons))
            propagated[node_id] = _FAILED if _FAILED in reasons else _SKIPPED
        elif status == "running":
            result.statuses[node_id] = NodeStatus.CANCELLED
        else:
            result.statuses[node_id] = NodeStatus.PENDING
    attempts = {
        n: int(rows[keys[n]]["outputs"]["attempts"])
        for n in plan.order
        if isinstance((rows.get(keys[n]) or {}).get("outputs"), Mapping)
        and isinstance(rows[keys[n]]["outputs"].get("attempts"), int)
        and rows[keys[n]]["outputs"]["attempts"] > 0
    }
    result.metrics = {
        "node_count": len(plan.nodes),
        **{s.value: n for s, n in _counts(result).items()},
        "attempts": attempts,
        "retries": sum(a - 1 for a in attempts.values()),
    }
    return result, failed_node


def _counts(result: WorkflowResult) -> dict[NodeStatus, int]:
    counts = dict.fromkeys(NodeStatus, 0)
    for status in result.statuses.values():
        counts[status] += 1
    return counts


def _error_of(error: Mapping[str, Any]) -> dict[str, Any]:
    """The node's exception type and text from a fail report's ``message`` ("Type: text")."""
    message = str(error.get("message", ""))
    code = str(error.get("code", "EXECUTION_ERROR"))
    if code == "NODE_ERROR":
        kind, _, text = message.partition(": ")
        return {"type": kind, "message": text, "code": code}
    return {"type": code, "message": message, "code": code}


def _file_outputs(body: Mapping[str, Any]) -> dict[str, str]:
    """Activity key -> the reference of its output file, for the completed nodes that have one."""
    found = {}
    for activity in body.get("activities", []):
        row = _activity_row(activity)
        out = row.get("outputs")
        if row.get("status") == "completed" and isinstance(out, Mapping) and out.get("out_file"):
            found[str(row["activity_key"])] = str(out["out_file"])
    return found


async def _download(client: Any, reference: str, limiter: trio.CapacityLimiter) -> Any:
    """Stream the file ``reference`` names into a temporary file; decode it in a thread."""
    match = _REFERENCE.match(reference)
    if match is None:
        raise ValueError(f"not a file reference: {reference!r}")
    _provider, workflow_id, key, filename = match.groups()
    folder = await run_in_thread(tempfile.mkdtemp, "", "trioworks_value_", limiter=limiter)
    try:
        path = os.path.join(folder, "out.json")
        handle: IO[bytes] = await run_in_thread(open, path, "wb", limiter=limiter)
        try:
            async with client.open_file(workflow_id, key, filename) as response:
                async for chunk in response.aiter_bytes(64 * 1024):
                    await run_in_thread(handle.write, chunk, limiter=limiter)
        finally:
            with trio.CancelScope(shield=True):
                await run_in_thread(handle.close, limiter=limiter)
        return await decode_file(path, limiter)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await run_in_thread(shutil.rmtree, Path(folder), True, limiter=limiter)


async def large_outputs(
    plan: Plan, client: Any, body: Mapping[str, Any], limiter: trio.CapacityLimiter
) -> dict[str, Any]:
    """Activity key -> the node output that travelled as a file, downloaded and decoded.

    :class:`WorkflowExecutionError` naming the node when its file cannot be read.
    """
    nodes = {key: node for node, key in activity_keys(plan).items()}
    values: dict[str, Any] = {}
    for key, reference in _file_outputs(body).items():
        try:
            values[key] = await _download(client, reference, limiter)
        except Exception as exc:  # the client's KruxiaFlowError (404: gone), bad JSON, a disk error
            node = nodes.get(key, key)
            raise WorkflowExecutionError(
                f"node {node!r}: its output travels as file {reference}, and reading it failed: {exc}",
                node_id=node,
            ) from exc
    return values


# -- the runtime ---------------------------------------------------------------------


class DistributedRuntime:
    """Runs built workflows on ``trioworks worker --dag`` workers through a Kruxia Flow server.

    The same ``execute`` / ``execute_workflow_async`` surface and :class:`WorkflowResult` as
    :class:`AsyncLocalRuntime` (default mode). Each call deploys the compiled definition (the
    server answers "unchanged" after the first time), starts a workflow with the run's inputs,
    polls it until it ends and maps the activities back to nodes.

    Error handling: fail-fast by default: the first node failure fails the server workflow and
    :class:`WorkflowExecutionError` names it, with the partial result and a
    :class:`RemoteNodeError` as ``__cause__``. ``continue_on_error=True`` records failures and
    skips their dependents. Cancellation: cancelling the caller cancels the server workflow
    (shielded, at most 10 s) and propagates.

    Values travel as JSON; one larger than ``max_inline_bytes`` (None: the workers'
    ``--max-inline-bytes``, 64 KiB by default) as a file of its activity, streamed up by the
    worker and down by the next worker and by this runtime for the result (decoded in a thread
    under its own limiter of 2). An output that is not JSON fails its node
    (:class:`NodeOutputError`).
    """

    def __init__(
        self,
        server_url: str,
        api_token: str | None = None,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        queue: str = DAG_QUEUE,
        continue_on_error: bool = False,
        timeout_seconds: float | None = None,
        lease_retries: int = 3,
        poll_interval: float = 0.05,
        max_poll_interval: float = 0.5,
        execution_timeout: float | None = None,
        client_factory: Callable[[], Any] | None = None,
        max_inline_bytes: int | None = None,
    ) -> None:
        if max_inline_bytes is not None and max_inline_bytes < 0:
            raise ValueError(f"max_inline_bytes must be >= 0, got {max_inline_bytes}")
        self.max_inline_bytes = max_inline_bytes
        # Downloading and decoding outputs that travelled as files (the result's).
        self._codec = trio.CapacityLimiter(2)
        self.server_url = server_url
        self.queue = queue
        self.continue_on_error = continue_on_error
        self.timeout_seconds = timeout_seconds
        self.lease_retries = lease_retries
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.execution_timeout = execution_timeout
        self._credentials = {"api_token": api_token, "client_id": client_id, "client_secret": client_secret}
        self._client_factory = client_factory

    def _client(self) -> Any:
        if self._client_factory is not None:
            return self._client_factory()
        from ..client import AsyncClient

        return AsyncClient(
            self.server_url,
            self._credentials["api_token"],
            client_id=self._credentials["client_id"],
            client_secret=self._credentials["client_secret"],
        )

    def compile(self, workflow: Workflow, *, continue_on_error: bool | None = None) -> dict[str, Any]:
        """The definition :meth:`execute_workflow_async` deploys."""
        return compile_workflow(
            workflow,
            queue=self.queue,
            continue_on_error=self.continue_on_error if continue_on_error is None else continue_on_error,
            timeout_seconds=self.timeout_seconds,
            lease_retries=self.lease_retries,
            max_inline_bytes=self.max_inline_bytes,
        )

    async def submit(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any] | None = None,
        *,
        continue_on_error: bool | None = None,
    ) -> str:
        """Deploy and start; return the server's workflow id without waiting."""
        coe = self.continue_on_error if continue_on_error is None else continue_on_error
        definition = self.compile(workflow, continue_on_error=coe)
        run_input = static_inputs(workflow, inputs, coe)
        async with self._client() as client:
            deployed = await client.deploy(definition)
            started = await client.start_workflow(
                definition["name"], inputs=run_input, version=deployed.get("version")
            )
        return str(started["workflow_id"])

    async def execute_workflow_async(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any] | None = None,
        context: Any = None,
        *,
        continue_on_error: bool | None = None,
        execution_timeout: float | None = None,
    ) -> WorkflowResult:
        """Run ``workflow`` on the workers and return its :class:`WorkflowResult`."""
        coe = self.continue_on_error if continue_on_error is None else continue_on_error
        definition = self.compile(workflow, continue_on_error=coe)
        run_input = static_inputs(workflow, inputs, coe)
        plan = workflow.plan()
        timeout = execution_timeout or self.execution_timeout
        start = trio.current_time()
        async with self._client() as client:
            deployed = await client.deploy(definition)
            started = await client.start_workflow(
                definition["name"], inputs=run_input, version=deployed.get("version")
            )
            workflow_id = str(started["workflow_id"])
            try:
                with trio.fail_after(timeout if timeout is not None else math.inf):
                    body = await self._wait(client, workflow_id, definition["name"])
                    large = await large_outputs(plan, client, body, self._codec)
            except BaseException:
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    try:
                        await client.cancel_workflow(workflow_id)
                    except Exception:
                        pass  # already finished, or the server is gone: nothing more to stop
                raise
        result, failed = build_result(plan, body, workflow_id, trio.current_time() - start, large)
        if failed is not None:
            exc = result.errors[failed]
            raise WorkflowExecutionError(
                f"node {failed!r} failed: {getattr(exc, 'error_type', type(exc).__name__)}: {exc}",
                node_id=failed,
                result=result,
            ) from exc
        if body.get("status") != "completed" and not result.errors:
            raise WorkflowExecutionError(
                f"workflow {workflow_id} ended {body.get('status')}: {body.get('error_message')}",
                result=result,
            )
        return result

    async def _wait(self, client: Any, workflow_id: str, name: str) -> Mapping[str, Any]:
        """Poll until the workflow ends; then its activities (one GET of every row).

        Polls the workflow list (summaries, no activity rows: cheap for a large graph), falling
        back to the workflow itself when it is not on the list's first page. A failed poll (a
        busy server's timeout) is retried: five in a row end the wait with the last error.
        """
        delay, failures = self.poll_interval, 0
        terminal = ("completed", "failed", "cancelled")
        while True:
            try:
                page = await client.list_workflows(definition_name=name, limit=100)
                status = next(
                    (w["status"] for w in page.get("workflows", []) if w.get("id") == workflow_id), None
                )
                if status is None:
                    status = (await client.get_workflow(workflow_id)).get("status")
                if status in terminal:
                    return await client.get_workflow(workflow_id)
                failures = 0
            except Exception:
                failures += 1
                if failures >= 5:
                    raise
            await trio.sleep(delay)
            delay = min(delay * 1.5, self.max_poll_interval)

    async def execute_async(
        self, workflow: Workflow, parameters: Mapping[str, Any] | None = None, **options: Any
    ) -> WorkflowResult:
        return await self.execute_workflow_async(workflow, parameters, **options)

    def execute(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any] | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> WorkflowResult:
        """Sync entry point: ``trio.run`` of one execution."""
        return trio.run(lambda: self.execute_workflow_async(workflow, inputs or parameters, **options))
