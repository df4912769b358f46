"""Cycles (Kailash's ``create_cycle`` / ``connect(..., cycle=True)``), run by the runtimes.

A cyclic workflow is compiled once more on top of its :class:`Plan`: every cycle becomes a
*group* (the nodes of the strongly connected components its back edges touch; cycles sharing
nodes are one group), and the workflow outside the groups becomes an acyclic outer plan in
which each group is one node. The outer plan runs on the ordinary scheduler
(:class:`CyclicRun` is a :class:`_Run`); a group node runs its members one iteration at a
time, each iteration a :class:`_IterationRun` over the group's acyclic inner plan, so every
member runs under the same limiters, timeouts, retries and cancel scopes as any node.

Kailash's semantics (``CyclicWorkflowExecutor``): an iteration's back-edge values feed the
next iteration (overriding the node's parameters and forward inputs); ``None`` inputs are
dropped so the node's defaults apply; the loop stops after ``max_iterations``, when the
convergence expression over the iteration's outputs is true, when a switch's untaken output
was the one looping back, or past the cycle's ``timeout``; ``results`` hold each member's
last output. The acyclic path never sees any of this: only workflows with cycles get here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import trio

from ._builder import Edge, Plan, _toposort
from ._cycle_spec import ConvergenceExpression, convergence_namespace
from ._errors import WorkflowExecutionError, WorkflowValidationError
from ._nodes import NodeKind, NodeSpec
from ._paths import _follow
from ._result import NodeStatus
from ._run_state import _NOT_TAKEN
from ._scheduler import _Run

__all__ = ["CyclicRun", "compile_cycles"]

log = logging.getLogger("trioworks.dag")


@attrs.frozen
class CycleGroup:
    """The nodes of one or more cycles that share nodes, run together one iteration at a time."""

    key: str  # its node id in the outer plan
    cycle_ids: tuple[str, ...]
    plan: Plan  # one iteration: the members and the forward edges between them
    back_edges: tuple[Edge, ...]
    max_iterations: int | None
    convergence: ConvergenceExpression | None
    timeout: float | None

    @property
    def members(self) -> tuple[str, ...]:
        return self.plan.order


_SEP = "\x1f"  # member and input name of a group input: "member<US>input"


def _sccs(nodes: Iterable[str], edges: Iterable[Edge]) -> dict[str, int]:
    """Node -> index of its strongly connected component (Tarjan's algorithm, iterative)."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for e in edges:
        succ[e.source].append(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    comp: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for root in succ:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for j in range(i, len(succ[node])):
                nxt = succ[node][j]
                if nxt not in index:
                    work.append((node, j + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                number = len(set(comp.values()))
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp[member] = number
                    if member == node:
                        break
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return comp


def compile_cycles(plan: Plan) -> tuple[Plan, dict[str, CycleGroup]]:
    """The outer plan (each group one node) and the groups, by their outer node id."""
    back = [e for c in plan.cycles for e in c.edges]
    comp = _sccs(plan.nodes, [*plan.edges, *back])
    # Each cycle's members: the components its back edges touch; cycles sharing a member merge.
    cycles = list(plan.cycles)
    members: list[set[str]] = []
    for c in cycles:
        touched = {comp[n] for e in c.edges for n in (e.source, e.target)}
        members.append({n for n in plan.nodes if comp[n] in touched})
    owner = list(range(len(cycles)))

    def find(i: int) -> int:
        while owner[i] != i:
            owner[i] = owner[owner[i]]
            i = owner[i]
        return i

    seen: dict[str, int] = {}
    for i, nodes in enumerate(members):
        for n in nodes:
            if n in seen:
                owner[find(i)] = find(seen[n])
            else:
                seen[n] = i
    merged: dict[int, list[int]] = {}
    for i in range(len(cycles)):
        merged.setdefault(find(i), []).append(i)

    group_of: dict[str, str] = {}
    groups: dict[str, CycleGroup] = {}
    pending: list[tuple[str, list[int], set[str]]] = []
    for indexes in merged.values():
        ids = [cycles[i].cycle_id for i in indexes]
        key = base = f"cycle:{'+'.join(ids)}"
        suffix = 1
        while key in plan.nodes or key in groups:
            suffix += 1
            key = f"{base}#{suffix}"
        nodes = set().union(*(members[i] for i in indexes))
        for node in nodes:
            group_of[node] = key
        pending.append((key, indexes, nodes))
        groups[key] = None  # type: ignore[assignment]  # reserved; filled below

    outer_edges: list[Edge] = []
    inner_edges: dict[str, list[Edge]] = {key: [] for key, _, _ in pending}
    for e in plan.edges:
        s, t = group_of.get(e.source), group_of.get(e.target)
        if s is not None and s == t:
            inner_edges[s].append(e)
            continue
        moved = Edge(
            s or e.source,
            f"{e.source}.{e.path}" if s else e.path,
            t or e.target,
            f"{e.target}{_SEP}{e.input}" if t else e.input,
        )
        if s:  # a member's output inside the group's output: (member, *path)
            object.__setattr__(moved, "keys", (e.source, *e.keys))
        outer_edges.append(moved)

    for key, indexes, nodes in pending:
        first = cycles[indexes[0]]
        convergence = next(
            (cycles[i].convergence_check for i in indexes if cycles[i].convergence_check), None
        )
        order = [n for n in plan.order if n in nodes]
        inbound: dict[str, list[Edge]] = {n: [] for n in order}
        outbound: dict[str, list[Edge]] = {n: [] for n in order}
        for e in inner_edges[key]:
            inbound[e.target].append(e)
            outbound[e.source].append(e)
        groups[key] = CycleGroup(
            key=key,
            cycle_ids=tuple(cycles[i].cycle_id for i in indexes),
            plan=Plan(
                workflow_id=plan.workflow_id,
                nodes={n: plan.nodes[n] for n in order},
                edges=tuple(inner_edges[key]),
                order=tuple(order),
                inbound={n: tuple(v) for n, v in inbound.items()},
                outbound={n: tuple(v) for n, v in outbound.items()},
                strict=plan.strict,
            ),
            back_edges=tuple(e for i in indexes for e in cycles[i].edges),
            # Kailash takes the settings of the group's first cycle.
            max_iterations=first.max_iterations,
            convergence=None
            if convergence is None
            else ConvergenceExpression.parse(convergence, where=f"cycle {first.cycle_id!r}"),
            timeout=first.timeout,
        )

    outer_nodes: dict[str, NodeSpec] = {}
    for node_id in plan.order:
        owner_key = group_of.get(node_id)
        if owner_key is None:
            outer_nodes[node_id] = plan.nodes[node_id]
        elif owner_key not in outer_nodes:
            group_inputs = frozenset(e.input for e in outer_edges if e.target == owner_key)
            outer_nodes[owner_key] = NodeSpec(
                node_id=owner_key,
                type_name="Cycle",
                kind=NodeKind.ASYNC,
                fn=None,
                code=None,
                source=None,
                params=group_inputs,
                required=frozenset(),
                accepts_any=False,
                defaults={},
                resources={},
                outputs=None,
                timeout=None,
                retry=None,
                raw_output=True,
            )
    inbound_o: dict[str, list[Edge]] = {n: [] for n in outer_nodes}
    outbound_o: dict[str, list[Edge]] = {n: [] for n in outer_nodes}
    for e in outer_edges:
        inbound_o[e.target].append(e)
        outbound_o[e.source].append(e)
    try:
        order = _toposort(list(outer_nodes), outbound_o)
    except WorkflowValidationError as exc:
        raise WorkflowValidationError(
            f"workflow {plan.workflow_id!r}: a cycle's nodes are reached from outside the cycle "
            f"by a path that leaves and re-enters it ({exc}); make that path part of the cycle"
        ) from None
    outer = Plan(
        workflow_id=plan.workflow_id,
        nodes=outer_nodes,
        edges=tuple(outer_edges),
        order=tuple(order),
        inbound={n: tuple(v) for n, v in inbound_o.items()},
        outbound={n: tuple(v) for n, v in outbound_o.items()},
        strict=plan.strict,
    )
    return outer, groups


# --- running ------------------------------------------------------------------------------------------


class _MemberFailed(Exception):
    def __init__(self, node_id: str, error: BaseException) -> None:
        super().__init__(node_id, error)
        self.node_id = node_id
        self.error = error


class _IterationRun(_Run):
    """One iteration of a group: its members, on the ordinary scheduler.

    Kailash drops ``None`` inputs inside cycles (so a node's defaults apply), and any failing
    member ends the cycle (a failing leaf is not kept in the results as in the acyclic case).
    """

    keep_leaf_failures = False

    def _inputs(self, node_id: str, spec: NodeSpec) -> dict[str, Any]:
        return {k: v for k, v in super()._inputs(node_id, spec).items() if v is not None}


class CyclicRun(_Run):
    """A run of a workflow with cycles: the outer plan, whose group nodes iterate."""

    def __init__(
        self,
        runtime: Any,
        plan: Plan,
        inputs: Mapping[str, Any],
        continue_on_error: bool,
    ) -> None:
        outer, self.groups = compile_cycles(plan)
        self.full = plan
        self._culprit: dict[str, str] = {}
        self._cycle_stats: dict[str, dict[str, Any]] = {}
        super().__init__(runtime, outer, inputs, continue_on_error)
        # Inputs scoped to a member are the member's, not the group's.
        for group in self.groups.values():
            for member in group.members:
                value = self.shared.get(member)
                if isinstance(value, Mapping):
                    self.scoped[member] = self.shared.pop(member)

    async def run(self, time_limit: float | None) -> Any:
        try:
            return await super().run(time_limit)
        finally:
            self._expand()

    def _expand(self) -> None:
        """Replace each group's entries in the result by its members'."""
        result = self.result
        for key in self.groups:
            output = result.results.pop(key, None)
            if isinstance(output, Mapping) and key not in result.errors:
                result.results.update(output)
            result.statuses.pop(key, None)
            result.node_durations.pop(key, None)
            result.skip_reasons.pop(key, None)
            if key in result.errors:
                result.errors[self._culprit.get(key, key)] = result.errors.pop(key)
        if self._cycle_stats:
            result.metrics["cycles"] = dict(self._cycle_stats)

    def _failed(self, node_id: str, exc: Exception, attempts: int = 1) -> list[str]:
        ready = super()._failed(node_id, exc, attempts)
        member = self._culprit.get(node_id)
        if member is not None and self.failure is not None and self.failure[0] == node_id:
            self.failure = (member, exc)
        return ready

    def _resolve_edges(self, node_id: str, output: Mapping[str, Any] | None, dead_reason: str) -> list[str]:
        group = self.groups.get(node_id)
        if group is None or output is None:
            return super()._resolve_edges(node_id, output, dead_reason)
        # A member switch's untaken output, leaving the group: as for any switch.
        ready = []
        for edge in self.wf.outbound[node_id]:
            member, root = edge.keys[0], edge.keys[1] if len(edge.keys) > 1 else ""
            if group.plan.nodes[member].kind is NodeKind.SWITCH and self.mode != "route_data":
                value = output.get(member)
                if not isinstance(value, Mapping) or (
                    root not in value if self.mode is None else value.get(root) is None
                ):
                    self.dead[edge.target][edge] = dead_reason
            self.unresolved[edge.target] -= 1
            if self.unresolved[edge.target] == 0:
                ready.append(edge.target)
        return ready

    def _handoff(self, spec: NodeSpec) -> bool:
        return False  # every node of a cyclic run gets its own task (see _run_node below)

    async def _run_node(self, node_id: str, spec: NodeSpec) -> None:
        group = self.groups.get(node_id)
        if group is None:
            await super()._run_node(node_id, spec)
            return
        started = trio.current_time()
        self.result.statuses[node_id] = NodeStatus.RUNNING
        try:
            outputs = await self._iterate(group, self._inputs(node_id, spec))
        except _MemberFailed as failed:
            self._culprit[node_id] = failed.node_id
            self.result.node_durations[node_id] = trio.current_time() - started
            error = failed.error if isinstance(failed.error, Exception) else RuntimeError(str(failed.error))
            self._settle(self._failed(node_id, error))
            return
        self.result.results[node_id] = outputs
        self.result.statuses[node_id] = NodeStatus.COMPLETED
        self.result.node_durations[node_id] = trio.current_time() - started
        self._settle(self._resolve_edges(node_id, outputs, _NOT_TAKEN))

    async def _iterate(self, group: CycleGroup, given: Mapping[str, Any]) -> dict[str, Any]:
        external: dict[str, dict[str, Any]] = {}
        for name, value in given.items():
            member, _, inp = name.partition(_SEP)
            if value is not None:
                external.setdefault(member, {})[inp] = value
        outputs: dict[str, Any] = {}
        previous: dict[str, Any] = {}
        started = trio.current_time()
        iteration = 0
        reason = "max_iterations"
        while True:
            iteration += 1
            inputs: dict[str, Any] = dict(self.shared)
            for member in group.members:
                scoped = {**self.scoped.get(member, {}), **external.get(member, {})}
                scoped.update(self._back_values(group, member, previous))
                if scoped:
                    inputs[member] = scoped
            run = _IterationRun(self.rt, group.plan, inputs, self.continue_on_error)
            run.result.run_id = self.result.run_id
            try:
                result = await run.run(self.time_limit)
            except WorkflowExecutionError as exc:
                self._absorb(run)
                raise _MemberFailed(exc.node_id or group.key, exc.__cause__ or exc) from None
            self._absorb(run)
            if result.errors:
                node_id, error = next(iter(result.errors.items()))
                raise _MemberFailed(node_id, error)
            current = {m: result.results[m] for m in group.members if m in result.results}
            outputs.update(current)
            previous = current
            log.debug("cycle %s: iteration %d done", group.key, iteration)
            if group.max_iterations is not None and iteration >= group.max_iterations:
                break
            if group.convergence is not None and self._converged(group, current, iteration, started):
                reason = "converged"
                break
            if self._branch_left(group, current):
                reason = "switch"
                break
            if group.timeout is not None and trio.current_time() - started >= group.timeout:
                reason = "timeout"
                break
        self._cycle_stats[group.key] = {
            "cycles": list(group.cycle_ids),
            "iterations": iteration,
            "reason": reason,
        }
        log.info("cycle %s: stopped after %d iteration(s) (%s)", group.key, iteration, reason)
        return outputs

    def _absorb(self, run: _Run) -> None:
        """Keep each member's status, duration (summed over iterations) and errors."""
        for member, status in run.result.statuses.items():
            if status is not NodeStatus.PENDING:
                self.result.statuses[member] = status
        for member, duration in run.result.node_durations.items():
            self.result.node_durations[member] = self.result.node_durations.get(member, 0.0) + duration
        self.result.errors.update(run.result.errors)
        self.result.skip_reasons.update(run.result.skip_reasons)
        self.result.cancel_outcomes.update(run.result.cancel_outcomes)

    def _back_values(self, group: CycleGroup, member: str, previous: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for edge in group.back_edges:
            if edge.target != member or edge.source not in previous:
                continue
            value = _follow(
                previous[edge.source], edge.path, edge.keys, member, edge.input, edge.source, False
            )
            if value is not None:
                values[edge.input] = value
        return values

    def _converged(
        self, group: CycleGroup, current: Mapping[str, Any], iteration: int, started: float
    ) -> bool:
        assert group.convergence is not None
        ns = convergence_namespace(current, iteration, trio.current_time() - started)
        try:
            return bool(group.convergence.evaluate(ns))
        except Exception as exc:
            # Kailash: an expression that cannot be evaluated ends the cycle, for safety.
            log.warning(
                "cycle %s: convergence condition %r failed (%s: %s); stopping the cycle",
                group.key,
                group.convergence.text,
                type(exc).__name__,
                exc,
            )
            return True

    def _branch_left(self, group: CycleGroup, current: Mapping[str, Any]) -> bool:
        """A back edge from a switch output the switch did not take: the loop has ended."""
        for edge in group.back_edges:
            if group.plan.nodes[edge.source].kind is not NodeKind.SWITCH:
                continue
            output = current.get(edge.source)
            if isinstance(output, Mapping) and "condition_result" in output:
                if edge.root == "true_output" and not output["condition_result"]:
                    return True
                if edge.root == "false_output" and output["condition_result"]:
                    return True
        return False
