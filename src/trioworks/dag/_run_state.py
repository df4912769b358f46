"""One execution's state and bookkeeping, shared by the scheduler's parts.

:class:`_RunState` holds what a run knows (inputs, results, statuses, which edges are dead,
the failure that stops it, metrics) and the steps that change it (a node completed, failed,
reported failure; its edges resolved; an event emitted). Starting nodes is the scheduler's
(:mod:`._scheduler`); running one is :mod:`._node_exec`'s; chains in one thread are
:mod:`._fusion`'s.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from ..core import Metrics
from ._builder import Edge, Plan
from ._errors import NodeExecutionError, NodeInputError, did_you_mean
from ._eventlog import log_node_event
from ._nodes import RESULT, NodeKind, NodeSpec, run_code
from ._paths import _follow
from ._result import NodeEvent, NodeStatus, WorkflowResult

if TYPE_CHECKING:
    from ._runtime import AsyncLocalRuntime

__all__ = ["NodeCallback"]

log = logging.getLogger("trioworks.dag")

NodeCallback = Callable[[NodeEvent], None]

# Why a node's input edge carries nothing.
_NOT_TAKEN, _SKIPPED, _FAILED = "branch not taken", "input skipped", "input failed"


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


class _RunState:
    """The state of one execution: inputs, results, statuses, dead edges, the nursery."""

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
        # Sibling batching (._batching): plain sync nodes run by the batch drivers.
        self._batchable: frozenset[str] = frozenset()
        self._batch: deque[str] = deque()
        self._drivers = 0
        # Ready nodes waiting for a max_concurrent_nodes slot without a task of their own (see
        # _NodeExecution._pull): the run's node tasks take them as they finish, and one task
        # (the stand-in) waits on the limiter for them, so a slot freed elsewhere is used.
        self._waiting: deque[str] = deque()
        self._stand_in = False
        self._starting = 0  # node tasks spawned that have not taken their slot yet

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

    def _settle(self, ready: Any) -> None:
        """Start or resolve every node in ``ready`` (the scheduler's)."""
        raise NotImplementedError

    # -- outcomes ---------------------------------------------------------------

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

    def _sync_job(self, node_id: str, spec: NodeSpec, kwargs: dict[str, Any]) -> Callable[[], Any]:
        if spec.code is not None:
            extra = {"get_resource": self._resource_from_thread}
            return functools.partial(run_code, node_id, spec.code, kwargs, extra, self.wf.strict)
        if spec.instance is not None:
            return functools.partial(spec.instance.execute, **kwargs)
        assert spec.fn is not None
        return functools.partial(spec.fn, **kwargs)

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
