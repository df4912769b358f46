"""AsyncLocalRuntime: Kailash's runtime surface on a Trio ready-queue scheduler.

The whole scheduler is :class:`_Run`: a count of unresolved inputs per node, a worklist
of nodes whose inputs are all resolved, and one nursery in which every runnable node is
a task. A node starts the moment its last input exists (no level barriers).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import trio

from ..core import CancelOutcome, Metrics, retry, run_in_process, run_in_thread
from ._builder import Edge, Plan, Workflow, WorkflowBuilder
from ._errors import (
    MappingPathError,
    NodeExecutionError,
    NodeInputError,
    NodeTimeoutError,
    WorkflowExecutionError,
    WorkflowTimeoutError,
    did_you_mean,
)
from ._eventlog import log_node_event
from ._lifecycle import RuntimeLifecycle, await_in_trio, check_time_limits, run_limited
from ._nodes import RESULT, NodeKind, NodeSpec, run_async_code, run_code, run_source, switch_output
from ._resources import ResourceRegistry
from ._result import NodeEvent, NodeStatus, WorkflowResult

__all__ = ["AsyncLocalRuntime"]

log = logging.getLogger("trioworks.dag")

NodeCallback = Callable[[NodeEvent], None]

# Kailash constructor flags that have no effect here (analysis and profiling are always on).
_KAILASH_NOOP_OPTIONS = frozenset(
    {"enable_analysis", "enable_profiling", "enable_monitoring", "debug", "content_aware_success_detection"}
)
_OPTION_NAMES = ("max_concurrent_nodes", "thread_pool_size", "execution_timeout", "resource_registry")

CONDITIONAL_MODES = ("route_data", "skip_branches")
VALIDATION_MODES = ("off", "warn", "strict")


def check_mode(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(
            f"Invalid {name} mode: {value!r}; {name} must be one of {', '.join(map(repr, allowed))}"
        )
    return value


# A node run in another node's thread (linear-chain fusion): (node, outcome, value or
# exception, duration; for the chain's head, the perf_counter time it ended).
_OK, _ERROR, _INPUT_ERROR = "ok", "error", "input error"
_Fused = tuple[str, str, Any, float]

# Why a node's input edge carries nothing.
_NOT_TAKEN, _SKIPPED, _FAILED = "branch not taken", "input skipped", "input failed"


# Cyclic workflows run on a subclass of _Run that ``_cycles`` builds on top of this module; it
# registers itself here when the package loads (an import from here would be a circle).
_cyclic_run: type[_Run] | None = None


def register_cyclic_run(run_class: type[_Run]) -> None:
    global _cyclic_run
    _cyclic_run = run_class


class AsyncLocalRuntime(RuntimeLifecycle):
    """Runs built workflows; sync nodes in threads, async nodes on the loop.

    Limiters (shared by every run of this runtime):

    - ``max_concurrent_nodes``: nodes executing at once, of any kind. A node holds its slot
      only while an attempt runs: not while waiting to retry.
    - ``thread_pool_size``: sync nodes in threads at once.
    - ``process_pool_size``: process nodes at once (default: CPU count).

    Error handling: by default the first failing node cancels its running siblings and
    :meth:`execute_workflow_async` raises :class:`WorkflowExecutionError` naming the node,
    with the partial result. With ``continue_on_error=True`` the error is recorded, the
    node's dependents are skipped, and the rest runs to the end.

    Cancellation: cancelling the caller's scope (or ``execution_timeout``) starts nothing
    new; a process node is killed. A sync node already in a thread cannot be stopped: under a
    **timeout** (its own ``timeout``, or the run's ``execution_timeout``) a cancelled thread is
    **abandoned**, whatever cancelled it, so control returns at the deadline (the thread runs on in the background, holding its ``thread_pool_size`` slot
    until it ends; its result is dropped). Without a timeout it is waited for, or with
    ``abandon_threads=True`` abandoned too. The result's ``cancel_outcomes`` records which
    (``abandoned`` lists the abandoned nodes), and the timeout errors name them.
    """

    def __init__(
        self,
        resource_registry: ResourceRegistry | None = None,
        max_concurrent_nodes: int = 10,
        thread_pool_size: int = 4,
        execution_timeout: float | None = None,
        *,
        process_pool_size: int | None = None,
        continue_on_error: bool = False,
        abandon_threads: bool = False,
        on_node_start: NodeCallback | None = None,
        on_node_finish: NodeCallback | None = None,
        conditional_execution: str | None = None,
        connection_validation: str = "warn",
        **kailash_options: Any,
    ) -> None:
        # Kailash's many enterprise flags are accepted and ignored; a near-miss of one of
        # ours is a typo, and an error.
        for name in sorted(set(kailash_options) - _KAILASH_NOOP_OPTIONS):
            hint = did_you_mean(name, _OPTION_NAMES)
            if hint:
                raise TypeError(f"{type(self).__name__} got an unknown option {name!r}{hint}")
        self.conditional_execution = (
            None
            if conditional_execution is None
            else check_mode("conditional_execution", conditional_execution, CONDITIONAL_MODES)
        )
        self.connection_validation = check_mode(
            "connection_validation", connection_validation, VALIDATION_MODES
        )
        # Kailash's LocalRuntime default; opt-in here: an output {"success": False} fails the run.
        self.content_aware_success_detection = bool(
            kailash_options.get("content_aware_success_detection", False)
        )
        self.max_concurrent_nodes = max_concurrent_nodes
        self.thread_pool_size = thread_pool_size
        self.enable_profiling = kailash_options.get("enable_profiling", True)
        self.enable_analysis = kailash_options.get("enable_analysis", True)
        self.debug = kailash_options.get("debug", False)
        for name, value in (
            ("max_concurrent_nodes", max_concurrent_nodes),
            ("thread_pool_size", thread_pool_size),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"AsyncLocalRuntime: {name} must be an int >= 1, got {value!r}")
        if execution_timeout is not None and not execution_timeout > 0:
            raise ValueError(
                f"AsyncLocalRuntime: execution_timeout must be > 0 seconds, got {execution_timeout!r}"
            )
        self.resource_registry = resource_registry
        self.execution_timeout = execution_timeout
        self.continue_on_error = continue_on_error
        self.abandon_threads = abandon_threads
        self.on_node_start = on_node_start
        self.on_node_finish = on_node_finish
        self.node_limiter = trio.CapacityLimiter(max_concurrent_nodes)
        self.thread_limiter = trio.CapacityLimiter(thread_pool_size)
        self.process_limiter = trio.CapacityLimiter(process_pool_size or os.cpu_count() or 1)

    async def execute_workflow_async(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any] | None = None,
        context: Any = None,
        *,
        continue_on_error: bool | None = None,
        execution_timeout: float | None = None,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
    ) -> WorkflowResult:
        """Run ``workflow`` once and return its :class:`WorkflowResult` (which unpacks as
        Kailash's ``results, run_id``).

        ``inputs``: ``{node_id: {param: value}}`` goes to that node only; any other key goes
        to every node that takes a parameter of that name. Raises :class:`NodeInputError`
        before anything runs when a node's required input has no source. ``soft_time_limit``
        / ``time_limit`` (seconds) cancel the run and raise :class:`SoftTimeLimitExceeded` /
        :class:`HardTimeLimitExceeded`. Awaited from asyncio, the run happens under Trio in a
        worker thread.
        """
        check_time_limits(soft_time_limit, time_limit)
        run = self._new_run(workflow, inputs, continue_on_error)
        timeout = execution_timeout or self.execution_timeout

        async def go() -> WorkflowResult:
            return await run_limited(functools.partial(run.run, timeout), soft_time_limit, time_limit)

        return await await_in_trio(go)

    async def execute_async(
        self,
        workflow: Workflow,
        parameters: Mapping[str, Any] | None = None,
        *,
        soft_time_limit: float | None = None,
        time_limit: float | None = None,
        **options: Any,
    ) -> WorkflowResult:
        """Kailash's name for :meth:`execute_workflow_async` with ``parameters``."""
        options.pop("task_manager", None)
        return await self.execute_workflow_async(
            workflow, parameters, soft_time_limit=soft_time_limit, time_limit=time_limit, **options
        )

    def _new_run(
        self, workflow: Workflow, inputs: Mapping[str, Any] | None, continue_on_error: bool | None
    ) -> _Run:
        if isinstance(workflow, WorkflowBuilder):
            raise TypeError("execute_workflow_async takes a built workflow: call builder.build() first")
        if not isinstance(workflow, Workflow):
            raise TypeError(f"execute_workflow_async takes a Workflow, got {type(workflow).__name__}")
        plan = workflow.plan()
        if inputs is not None and not isinstance(inputs, Mapping):
            raise TypeError(f"workflow inputs must be a mapping, got {type(inputs).__name__}")
        merged = dict(getattr(workflow, "workflow_parameters", None) or {})
        merged.update(inputs or {})
        for node_id, names in (getattr(workflow, "workflow_inputs", None) or {}).items():
            for outer, inner in names.items():
                if outer in merged:
                    scoped = dict(merged.get(node_id) or {})
                    scoped[inner] = merged[outer]
                    merged[node_id] = scoped
        run_class: type[_Run] = _Run
        if plan.cycles and getattr(self, "enable_cycles", True):
            if _cyclic_run is None:  # only when this module was imported without trioworks.dag
                raise RuntimeError("cyclic workflows need trioworks.dag imported (it loads the cycle runner)")
            run_class = _cyclic_run
        return run_class(
            self,
            plan,
            merged,
            self.continue_on_error if continue_on_error is None else continue_on_error,
        )

    def execute(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any] | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> WorkflowResult:
        """Sync entry point: ``trio.run`` of one execution, resources cleaned up at its end.

        ``parameters=`` is accepted as LocalRuntime's name for ``inputs``.
        """

        from ._node_api import _run_trio_sync

        async def main() -> WorkflowResult:
            try:
                return await self.execute_workflow_async(workflow, inputs or parameters, **options)
            finally:
                with trio.CancelScope(shield=True):
                    await self.cleanup_resources()

        return _run_trio_sync(main)

    async def cleanup_resources(self) -> None:
        """Clean up the resource registry's resources (reverse creation order). Idempotent."""
        if self.resource_registry is not None:
            await self.resource_registry.cleanup()

    async def __aenter__(self) -> AsyncLocalRuntime:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cleanup()
        self.close()


def resolve_path(
    output: Any, path: str, *, node_id: str, field: str, source: str, strict: bool = True
) -> Any:
    """Follow a dotted ``path`` through mappings (and sequence indexes) of ``output``."""
    return _follow(output, path, tuple(path.split(".")), node_id, field, source, strict)


def _follow(
    output: Any, path: str, keys: tuple[str, ...], node_id: str, field: str, source: str, strict: bool = True
) -> Any:
    value = output
    for key in keys:
        if type(value) is dict and key in value:  # the common case, without an ABC check
            value = value[key]
        elif not strict and (value is None or (isinstance(value, Mapping) and key not in value)):
            # Kailash: a missing key gives None (logged), not an error.
            log.debug(
                "node %r, input %r: path %r of node %r's output is missing: None",
                node_id,
                field,
                path,
                source,
            )
            return None
        elif isinstance(value, Mapping):
            if key not in value:
                raise MappingPathError(node_id, field, source, path, key, [str(k) for k in value])
            value = value[key]
        elif (
            isinstance(value, list | tuple)
            and key.lstrip("-").isdigit()
            and -len(value) <= int(key) < len(value)
        ):
            value = value[int(key)]
        else:
            raise NodeInputError(
                node_id,
                field,
                f"path {path!r} of node {source!r}'s output reaches a {type(value).__name__} "
                f"before {key!r}; only mappings (and list indexes) can be followed",
            )
    return value


def _downstream_of_switches(plan: Plan) -> frozenset[str]:
    switches = [n for n, spec in plan.nodes.items() if spec.kind is NodeKind.SWITCH]
    if not switches:
        return frozenset()
    seen: set[str] = set()
    stack = [e.target for n in switches for e in plan.outbound[n]]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(e.target for e in plan.outbound[node])
    return frozenset(seen)


class _Run:
    """The state of one execution: the ready queue, the results, the nursery."""

    # Kailash (route_data / skip_branches): a failing node nothing depends on does not stop
    # the run; its result records the error.
    keep_leaf_failures = True

    def __init__(
        self,
        runtime: AsyncLocalRuntime,
        workflow: Plan,
        inputs: Mapping[str, Any],
        continue_on_error: bool,
    ) -> None:
        self.rt = runtime
        self.wf = workflow
        self.mode = runtime.conditional_execution  # None: trioworks' routing (only the taken key)
        self.strict = workflow.strict or runtime.connection_validation == "strict"
        self.content_aware = runtime.content_aware_success_detection
        self._routers: dict[str, Any] = {}
        self.continue_on_error = continue_on_error
        self.result = WorkflowResult(workflow_id=workflow.workflow_id, run_id=f"run-{uuid.uuid4().hex[:12]}")
        self.result.statuses = dict.fromkeys(workflow.order, NodeStatus.PENDING)
        self.scoped, self.shared = self._split_inputs(inputs)
        self.unresolved = {n: len(workflow.inbound[n]) for n in workflow.order}
        self.dead: dict[str, dict[Edge, str]] = {n: {} for n in workflow.order}
        self.failure: tuple[str, Exception] | None = None
        self.metrics = Metrics()
        self.running = self.metrics.gauge("running")
        self.threads = self.metrics.gauge("threads")
        self.nursery: trio.Nursery | None = None
        self.time_limit: float | None = None
        # route_data: nodes downstream of a switch, which may receive nothing but None.
        self._maybe_none = _downstream_of_switches(workflow) if self.mode == "route_data" else frozenset()
        self._preflight()
        self._fuse_next: dict[str, str] = {}

    def _plan_fusion(self) -> None:
        """Linear-chain fusion: ``_fuse_next[a] = b`` when ``b`` may run in ``a``'s worker thread
        right after ``a``, without a trip back to the loop (as Dask fuses linear chains).

        Only where nothing but ``a`` decides when ``b`` runs and nothing needs the loop between
        them: ``a``'s only edge goes to ``b`` and is ``b``'s only input; both are plain sync
        thread nodes without timeout, retry or resources; no node callbacks (they run on the
        loop, in order); no run timeout and no ``abandon_threads`` (an abandoned thread must
        be one node). Cancellation is checked in the thread before each fused node.
        """
        rt, wf = self.rt, self.wf
        if (
            type(self) is not _Run
            or rt.on_node_start is not None
            or rt.on_node_finish is not None
            or rt.abandon_threads
            or self.time_limit is not None
        ):
            return

        def plain(spec: NodeSpec) -> bool:
            return (
                spec.kind is NodeKind.THREAD
                and spec.timeout is None
                and spec.retry is None
                and not spec.resources
            )

        for node_id in wf.order:
            out = wf.outbound[node_id]
            if len(out) != 1:
                continue
            target = out[0].target
            if (
                len(wf.inbound[target]) == 1
                and target not in self._maybe_none
                and plain(wf.nodes[node_id])
                and plain(wf.nodes[target])
            ):
                self._fuse_next[node_id] = target

    # -- inputs ---------------------------------------------------------------

    def _split_inputs(self, inputs: Mapping[str, Any]) -> tuple[dict[str, Mapping[str, Any]], dict[str, Any]]:
        if not isinstance(inputs, Mapping):
            raise TypeError(f"workflow inputs must be a mapping, got {type(inputs).__name__}")
        scoped: dict[str, Mapping[str, Any]] = {}
        shared: dict[str, Any] = {}
        for key, value in inputs.items():
            if key in self.wf.nodes and isinstance(value, Mapping):
                scoped[key] = value
            else:
                shared[key] = value
        return scoped, shared

    def _preflight(self) -> None:
        """Check before anything runs that every required input has a source."""
        for node_id in self.wf.order:
            spec = self.wf.nodes[node_id]
            if spec.fn is None and not self.strict:
                # Code and Node objects: a missing input is the node's own business (Kailash:
                # a NameError the code may catch, or the node's declared-parameter check).
                continue
            for key in self.scoped.get(node_id, {}):
                if not spec.accepts_any and not spec.takes(key):
                    raise NodeInputError(
                        node_id,
                        key,
                        f"given in the workflow inputs, but the node has no such input"
                        f"{did_you_mean(key, spec.params)}; its inputs: {sorted(spec.params)}",
                    )
            have = (
                set(spec.defaults)
                | set(self.scoped.get(node_id, {}))
                | {e.input for e in self.wf.inbound[node_id]}
            )
            have |= {k for k in self.shared if spec.takes(k)}
            for name in sorted(spec.required - have):
                raise NodeInputError(
                    node_id,
                    name,
                    "required but missing: no connection, config value or workflow input gives it"
                    f"{did_you_mean(name, self.shared)}",
                )

    def _static_inputs(self, node_id: str, spec: NodeSpec) -> dict[str, Any]:
        kwargs = dict(spec.defaults)
        if self.shared and (not spec.accepts_any or spec.instance is not None):
            kwargs.update((k, v) for k, v in self.shared.items() if spec.takes(k))
        if node_id in self.scoped:
            kwargs.update(self.scoped[node_id])
        return kwargs

    def _inputs(self, node_id: str, spec: NodeSpec) -> dict[str, Any]:
        kwargs = self._static_inputs(node_id, spec)
        dead = self.dead[node_id]
        for edge in self.wf.inbound[node_id]:
            if edge not in dead:
                kwargs[edge.input] = self._edge_value(node_id, edge)
        return kwargs

    def _edge_value(self, node_id: str, edge: Edge) -> Any:
        return _follow(
            self.result.results[edge.source],
            edge.path,
            edge.keys,
            node_id,
            edge.input,
            edge.source,
            self.strict,
        )

    # -- scheduling -----------------------------------------------------------

    async def run(self, time_limit: float | None) -> WorkflowResult:
        self.time_limit = time_limit
        self._plan_fusion()
        start = trio.current_time()
        try:
            with trio.move_on_after(time_limit if time_limit is not None else math.inf) as timeout_scope:
                async with trio.open_nursery() as nursery:
                    self.nursery = nursery
                    self._settle(n for n in self.wf.order if self.unresolved[n] == 0)
        finally:
            self.result.total_duration = trio.current_time() - start
            self.result.metrics = self._metrics()
        if self.failure is not None:
            node_id, exc = self.failure
            raise WorkflowExecutionError(
                f"node {node_id!r} failed: {type(exc).__name__}: {exc}", node_id=node_id, result=self.result
            ) from exc
        if timeout_scope.cancelled_caught:
            running = self.result.nodes_with(NodeStatus.CANCELLED)
            abandoned = self.result.abandoned
            left = f"; threads abandoned (still running): {abandoned}" if abandoned else ""
            raise WorkflowTimeoutError(
                f"workflow {self.wf.workflow_id!r} timed out after {time_limit:g} s; cancelled: {running}{left}",
                node_id=None,
                result=self.result,
            )
        return self.result

    def _settle(self, ready: Any) -> None:
        """Start or resolve every node in ``ready``; inline nodes may make more ready."""
        queue = deque(ready)
        while queue:
            node_id = queue.popleft()
            spec = self.wf.nodes[node_id]
            reasons = set(self.dead[node_id].values())
            live = len(self.wf.inbound[node_id]) - len(self.dead[node_id])
            if _FAILED in reasons or (reasons and (spec.kind is not NodeKind.MERGE or live == 0)):
                reason = _FAILED if _FAILED in reasons else _SKIPPED
                self.result.statuses[node_id] = NodeStatus.SKIPPED
                self.result.skip_reasons[node_id] = why = ", ".join(sorted(reasons))
                self._emit(self.rt.on_node_finish, node_id, NodeStatus.SKIPPED, skip_reason=why)
                queue.extend(self._resolve_edges(node_id, None, reason))
            elif spec.kind in (NodeKind.SWITCH, NodeKind.MERGE):
                try:
                    output = self._route(node_id, spec)
                except Exception as exc:
                    queue.extend(self._failed(node_id, exc))
                    continue
                self._completed(node_id, output, 0.0)
                queue.extend(self._resolve_edges(node_id, output, _NOT_TAKEN))
            elif node_id in self._maybe_none and self._only_none(node_id):
                # Kailash's route_data: a node whose every connected input is None because a
                # switch did not take its branch is not run; its result is None.
                self.result.results[node_id] = None
                self.result.statuses[node_id] = NodeStatus.SKIPPED
                self.result.skip_reasons[node_id] = why = "conditional inputs are None"
                self._emit(self.rt.on_node_finish, node_id, NodeStatus.SKIPPED, skip_reason=why)
                queue.extend(self._resolve_edges(node_id, {}, _NOT_TAKEN))
            else:
                assert self.nursery is not None
                self.nursery.start_soon(self._run_node, node_id, spec, name=f"node {node_id}")

    def _only_none(self, node_id: str) -> bool:
        """Every input edge of ``node_id`` carries None, one of them from a switch or from a
        node that was not run for the same reason."""
        inbound = self.wf.inbound[node_id]
        conditional = False
        for edge in inbound:
            if (
                self.wf.nodes[edge.source].kind is NodeKind.SWITCH
                or self.result.results.get(edge.source) is None
            ):
                conditional = True
            if self._edge_value(node_id, edge) is not None:
                return False
        return conditional

    def _resolve_edges(self, node_id: str, output: Mapping[str, Any] | None, dead_reason: str) -> list[str]:
        """Mark ``node_id``'s outgoing edges resolved; return the targets now ready."""
        ready = []
        switch = self.wf.nodes[node_id].kind is NodeKind.SWITCH
        for edge in self.wf.outbound[node_id]:
            if output is None:
                self.dead[edge.target][edge] = dead_reason
            elif switch and (
                (self.mode is None and edge.root not in output)
                or (self.mode == "skip_branches" and output.get(edge.root) is None)
            ):
                self.dead[edge.target][edge] = dead_reason
            self.unresolved[edge.target] -= 1
            if self.unresolved[edge.target] == 0:
                ready.append(edge.target)
        return ready

    def _route(self, node_id: str, spec: NodeSpec) -> dict[str, Any]:
        if self.mode is not None:
            # Kailash's SwitchNode / MergeNode, evaluated inline (no thread hop).
            router = self._routers.get(node_id)
            if router is None:
                router = spec.instance
                if router is None:
                    from ._node_api import MergeNode, SwitchNode

                    cls = SwitchNode if spec.kind is NodeKind.SWITCH else MergeNode
                    router = cls(_node_id=node_id, **spec.routing)
                self._routers[node_id] = router
            return router.execute(**self._inputs(node_id, spec))
        if spec.kind is NodeKind.SWITCH:
            kwargs = self._inputs(node_id, spec)
            return switch_output(node_id, spec.routing, kwargs.get("input_data"))
        # A merge passes on its first live input, in connection order.
        edge = next(e for e in self.wf.inbound[node_id] if e not in self.dead[node_id])
        first = self._edge_value(node_id, edge)
        return {RESULT: first, "merged_data": first}

    # -- one node -------------------------------------------------------------

    async def _run_node(self, node_id: str, spec: NodeSpec) -> None:
        attempts = 0
        started_at: float | None = None
        # Filled by _fused_chain when successors ran in this node's thread (see _plan_fusion).
        segment: list[_Fused] = []

        async def attempt() -> Any:
            nonlocal attempts, started_at
            # Woken with a slot after the run was cancelled (fail-fast hands the failing
            # node's slot on before it cancels)? Start nothing.
            await trio.lowlevel.checkpoint_if_cancelled()
            attempts += 1
            if started_at is None:
                started_at = trio.current_time()
                self.result.statuses[node_id] = NodeStatus.RUNNING
                self._emit(self.rt.on_node_start, node_id, NodeStatus.RUNNING)
            self.running.inc()
            try:
                if spec.timeout is None:
                    return await self._invoke(node_id, spec, kwargs, segment)
                with trio.move_on_after(spec.timeout) as scope:
                    return await self._invoke(node_id, spec, kwargs)
                assert scope.cancelled_caught
                self.metrics.counter("timeouts").inc()
                abandoned = self.result.cancel_outcomes.get(node_id) is CancelOutcome.ABANDONED
                raise NodeTimeoutError(node_id, spec.timeout, abandoned=abandoned)
            finally:
                self.running.dec()

        def on_retry(attempt_no: int, exc: BaseException, delay: float) -> None:
            self.metrics.counter("retries").inc()
            log.info("node %r attempt %d failed (%r); retrying in %.3f s", node_id, attempt_no, exc, delay)

        try:
            kwargs = self._inputs(node_id, spec)
            kwargs.update([(param, await self._resource(name)) for param, name in spec.resources.items()])
            if spec.retry is None:
                limiter = self.rt.node_limiter
                try:
                    # A free slot is taken without a checkpoint (attempt() checks for
                    # cancellation itself): a trip through the scheduler per node is a
                    # third of the runtime's own cost on wide graphs.
                    limiter.acquire_nowait()
                except trio.WouldBlock:
                    await limiter.acquire()
                try:
                    value = await attempt()
                finally:
                    limiter.release()
            else:
                value = await retry(attempt, spec.retry, limiter=self.rt.node_limiter, on_retry=on_retry)
        except trio.Cancelled:
            if started_at is not None:
                duration = trio.current_time() - started_at
                if len(segment) > 1:
                    node_id, duration = self._cancelled_chain(node_id, spec, started_at, segment)
                    if node_id in self.result.errors:
                        raise
                self.result.statuses[node_id] = NodeStatus.CANCELLED
                self.result.node_durations[node_id] = duration
                self._emit(
                    self.rt.on_node_finish, node_id, NodeStatus.CANCELLED, attempt=attempts, duration=duration
                )
            raise
        except Exception as exc:
            if started_at is not None:
                self.result.node_durations[node_id] = trio.current_time() - started_at
            self._settle(self._failed(node_id, exc, attempts))
            return
        assert started_at is not None
        if len(segment) > 1:
            self._finish_chain(spec, started_at, segment)
            return
        ready = self._succeeded(node_id, spec, value, trio.current_time() - started_at, attempts)
        if ready is not None:
            self._settle(ready)

    def _succeeded(
        self, node_id: str, spec: NodeSpec, value: Any, duration: float, attempts: int
    ) -> list[str] | None:
        """Record a node's value; the dependents now ready, or None if the output reports failure."""
        output = value if spec.raw_output else {RESULT: value}
        if self.content_aware and type(output) is dict and output.get("success") is False:
            self._reported_failure(node_id, output, attempts)
            return None
        self._completed(node_id, output, duration, attempts)
        return self._resolve_edges(node_id, output, _NOT_TAKEN)

    # -- linear-chain fusion (see _plan_fusion) ---------------------------------

    def _fused_chain(
        self, node_id: str, spec: NodeSpec, job: Callable[[], Any], segment: list[_Fused]
    ) -> Any:
        """In the worker thread: run ``node_id``, then its fused successors while the run is not
        cancelled, recording each in ``segment`` for the loop. Returns ``node_id``'s value."""
        value = job()
        segment.append((node_id, _OK, value, time.perf_counter()))
        current, current_spec = node_id, spec
        while (target := self._fuse_next.get(current)) is not None:
            output = value if current_spec.raw_output else {RESULT: value}
            if self.content_aware and type(output) is dict and output.get("success") is False:
                break
            try:
                trio.from_thread.check_cancelled()
            except trio.Cancelled:
                break  # nothing new starts; the loop delivers the cancellation
            target_spec = self.wf.nodes[target]
            edge = self.wf.inbound[target][0]
            try:
                kwargs = self._static_inputs(target, target_spec)
                kwargs[edge.input] = _follow(
                    output, edge.path, edge.keys, target, edge.input, edge.source, self.strict
                )
            except Exception as exc:
                segment.append((target, _INPUT_ERROR, exc, 0.0))
                break
            started = time.perf_counter()
            try:
                value = self._sync_job(target, target_spec, kwargs)()
            except Exception as exc:
                segment.append((target, _ERROR, exc, time.perf_counter() - started))
                break
            segment.append((target, _OK, value, time.perf_counter() - started))
            current, current_spec = target, target_spec
        return segment[0][2]

    def _first_duration(self, started_at: float, segment: list[_Fused]) -> float:
        # The head's time on the run's clock, less the time its thread spent on fused nodes.
        return max(0.0, trio.current_time() - started_at - (time.perf_counter() - segment[0][3]))

    def _finish_chain(self, spec: NodeSpec, started_at: float, segment: list[_Fused]) -> None:
        """On the loop: record a fused chain node by node, in order, as if each had run alone."""
        head, _, value, _ = segment[0]
        ready = self._succeeded(head, spec, value, self._first_duration(started_at, segment), 1)
        for node_id, outcome, payload, duration in segment[1:]:
            if ready is None:
                return
            if outcome == _INPUT_ERROR:
                self._settle(self._failed(node_id, payload, 0))
                return
            self.result.statuses[node_id] = NodeStatus.RUNNING
            self._emit(self.rt.on_node_start, node_id, NodeStatus.RUNNING)
            if outcome == _ERROR:
                self.result.node_durations[node_id] = duration
                self._settle(self._failed(node_id, payload, 1))
                return
            ready = self._succeeded(node_id, self.wf.nodes[node_id], payload, duration, 1)
        if ready is not None:
            self._settle(ready)

    def _cancelled_chain(
        self, head: str, spec: NodeSpec, started_at: float, segment: list[_Fused]
    ) -> tuple[str, float]:
        """Cancelled after a fused chain ran: the nodes before the last are recorded as they
        ended (nothing new starts); the last is the one the cancellation caught, which is
        returned (as the head alone would be) with its duration."""
        durations = [self._first_duration(started_at, segment)] + [d for _, _, _, d in segment[1:]]
        for i, (node_id, outcome, payload, _) in enumerate(segment):
            if i:
                self.result.statuses[node_id] = NodeStatus.RUNNING
                self._emit(self.rt.on_node_start, node_id, NodeStatus.RUNNING)
            if i == len(segment) - 1:
                outcome_of_head = self.result.cancel_outcomes.pop(head, CancelOutcome.WAITED)
                if outcome == _OK:
                    self.result.cancel_outcomes[node_id] = outcome_of_head
                    return node_id, durations[i]
                self.result.node_durations[node_id] = durations[i]
                self._failed(node_id, payload, 0 if outcome == _INPUT_ERROR else 1)
                return node_id, durations[i]
            output = payload if self.wf.nodes[node_id].raw_output else {RESULT: payload}
            self._completed(node_id, output, durations[i])
        raise AssertionError("unreachable: the segment is not empty")

    async def _invoke(
        self, node_id: str, spec: NodeSpec, kwargs: dict[str, Any], segment: list[_Fused] | None = None
    ) -> Any:
        def on_cancel(outcome: CancelOutcome) -> None:
            self.result.cancel_outcomes[node_id] = outcome
            if outcome is CancelOutcome.ABANDONED:
                log.warning("node %r: its thread could not be stopped and was abandoned", node_id)

        if spec.kind is NodeKind.ASYNC:
            if spec.code is not None:
                return await run_async_code(
                    node_id, spec.code, kwargs, {"get_resource": self._resource}, self.wf.strict
                )
            if spec.instance is not None:
                return await spec.instance.execute_async(**kwargs)
            assert spec.fn is not None
            return await spec.fn(**kwargs)
        if spec.kind is NodeKind.PROCESS:
            if spec.source is not None:
                job = functools.partial(run_source, node_id, spec.source, kwargs, self.wf.strict)
            else:
                assert spec.fn is not None
                job = functools.partial(spec.fn, **kwargs)
            return await run_in_process(job, limiter=self.rt.process_limiter, on_cancel=on_cancel)
        thread_job = self._sync_job(node_id, spec, kwargs)
        if segment is not None and node_id in self._fuse_next:
            thread_job = functools.partial(self._fused_chain, node_id, spec, thread_job, segment)
        return await self._thread(spec, functools.partial(self._in_thread, thread_job), on_cancel)

    def _sync_job(self, node_id: str, spec: NodeSpec, kwargs: dict[str, Any]) -> Callable[[], Any]:
        if spec.code is not None:
            extra = {"get_resource": self._resource_from_thread}
            return functools.partial(run_code, node_id, spec.code, kwargs, extra, self.wf.strict)
        if spec.instance is not None:
            return functools.partial(spec.instance.execute, **kwargs)
        assert spec.fn is not None
        return functools.partial(spec.fn, **kwargs)

    async def _thread(
        self, spec: NodeSpec, job: Callable[[], Any], on_cancel: Callable[[CancelOutcome], None]
    ) -> Any:
        # A thread cannot be interrupted: a timeout that waited for it would return whenever
        # the thread ended (never, for a hung call). So under a timeout (the node's own or the
        # run's) a cancelled thread is abandoned, whatever cancelled it; without one it is
        # waited for unless abandon_threads.
        abandon = self.rt.abandon_threads or spec.timeout is not None or self.time_limit is not None
        return await run_in_thread(
            job, limiter=self.rt.thread_limiter, abandon_on_cancel=abandon, on_cancel=on_cancel
        )

    def _in_thread(self, job: Callable[[], Any]) -> Any:
        self.threads.inc()
        try:
            return job()
        finally:
            self.threads.dec()

    async def _resource(self, name: str) -> Any:
        registry = self.rt.resource_registry
        if registry is None:
            raise LookupError(f"resource {name!r} requested, but the runtime has no resource_registry")
        self.metrics.counter(f"resource_accesses.{name}").inc()
        return await registry.get_resource(name)

    def _resource_from_thread(self, name: str) -> Any:
        return trio.from_thread.run(self._resource, name)

    # -- bookkeeping ----------------------------------------------------------

    def _completed(self, node_id: str, output: dict[str, Any], duration: float, attempts: int = 1) -> None:
        self.result.results[node_id] = output
        self.result.statuses[node_id] = NodeStatus.COMPLETED
        self.result.node_durations[node_id] = duration
        self._emit(self.rt.on_node_finish, node_id, NodeStatus.COMPLETED, attempt=attempts, duration=duration)

    def _reported_failure(self, node_id: str, output: dict[str, Any], attempts: int) -> None:
        """Kailash's content-aware success detection: ``{"success": False}`` fails the run."""
        error = output.get("error") or output.get("message") or "the node returned success=False"
        exc = NodeExecutionError(f"Node '{node_id}' reported failure: {error}")
        self.result.results[node_id] = output  # the data is kept
        self.result.errors[node_id] = exc
        self.result.statuses[node_id] = NodeStatus.FAILED
        self._emit(self.rt.on_node_finish, node_id, NodeStatus.FAILED, attempt=attempts, error=exc)
        if self.failure is None:
            self.failure = (node_id, exc)
            assert self.nursery is not None
            self.nursery.cancel_scope.cancel()

    def _failed(self, node_id: str, exc: Exception, attempts: int = 1) -> list[str]:
        """Record a failure; fail fast, or (continue-on-error) return the dependents now ready."""
        self.result.errors[node_id] = exc
        self.result.statuses[node_id] = NodeStatus.FAILED
        self._emit(
            self.rt.on_node_finish,
            node_id,
            NodeStatus.FAILED,
            attempt=attempts,
            duration=self.result.node_durations.get(node_id),
            error=exc,
        )
        if self.continue_on_error:
            return self._resolve_edges(node_id, None, _FAILED)
        if self.mode is not None and self.keep_leaf_failures and not self.wf.outbound[node_id]:
            self.result.results[node_id] = {
                "error": str(exc),
                "error_type": type(exc).__name__,
                "failed": True,
            }
            return []
        if self.failure is None:
            self.failure = (node_id, exc)
            assert self.nursery is not None
            self.nursery.cancel_scope.cancel()
        return []

    def _emit(self, callback: NodeCallback | None, node_id: str, status: NodeStatus, **fields: Any) -> None:
        log_node_event(self.wf.workflow_id, self.result.run_id, node_id, status, fields)
        if callback is None:
            return
        event = NodeEvent(self.wf.workflow_id, self.result.run_id, node_id, status, **fields)
        try:
            callback(event)
        except Exception:
            # A broken progress display must not change the run's outcome.
            self.metrics.counter("callback_errors").inc()
            log.exception("node callback %r raised on %s", callback, event)

    def _metrics(self) -> dict[str, Any]:
        snap = self.metrics.snapshot()
        counts = self.result.summary()
        return {
            "node_count": len(self.wf.nodes),
            **{status.value: counts.get(status.value, 0) for status in NodeStatus},
            "max_concurrency": snap.get("running.high_water", 0),
            "max_threads": snap.get("threads.high_water", 0),
            "retries": snap.get("retries", 0),
            "timeouts": snap.get("timeouts", 0),
            "callback_errors": snap.get("callback_errors", 0),
            "resource_accesses": {
                k.split(".", 1)[1]: v for k, v in snap.items() if k.startswith("resource_accesses.")
            },
        }
