"""The scheduler: a count of unresolved inputs per node, a worklist of nodes whose inputs
are all resolved, and one nursery in which every runnable node is a task. A node starts the
moment its last input exists (no level barriers)."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import trio

from ._errors import WorkflowExecutionError, WorkflowTimeoutError
from ._node_exec import _NodeExecution
from ._nodes import RESULT, NodeKind, NodeSpec, switch_output
from ._result import NodeStatus, WorkflowResult
from ._run_state import _FAILED, _NOT_TAKEN, _SKIPPED

__all__: list[str] = []


class _Run(_NodeExecution):
    """One execution: the ready queue, the results, the nursery."""

    async def run(self, time_limit: float | None) -> WorkflowResult:
        self.time_limit = time_limit
        if type(self) is _Run:  # not the cycle runner's subclasses
            self._plan_fusion()
        start = trio.current_time()
        try:
            with trio.move_on_after(time_limit if time_limit is not None else math.inf) as timeout_scope:
                async with trio.open_nursery() as nursery:
                    self.nursery = nursery
                    self._settle(n for n in self.wf.order if self.unresolved[n] == 0)
            # A node left waiting for a slot when nothing was cancelled would be lost silently.
            assert not self._waiting or timeout_scope.cancel_called or self.failure is not None, self._waiting
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
            elif node_id in self._batchable:
                self._enqueue_batch(node_id)
            elif not self._handoff(spec):
                assert self.nursery is not None
                self.nursery.start_soon(self._run_node, node_id, spec, name=f"node {node_id}")
            elif self.rt.node_limiter.available_tokens > self._starting:
                self._start_node(node_id)
            else:
                # No free slot: a node task of this run takes it when its own node is done, or
                # the run's stand-in when it gets a slot (no task, no limiter wait of its own).
                self._waiting.append(node_id)
                if not self._stand_in:
                    self._start_stand_in()

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
