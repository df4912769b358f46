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

import ast
import logging
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import trio

from ._builder import Edge, Plan, _toposort
from ._errors import CycleConfigurationError, WorkflowExecutionError, WorkflowValidationError
from ._nodes import NodeKind, NodeSpec
from ._result import NodeStatus
from ._runtime import _NOT_TAKEN, _follow, _Run

__all__ = ["ConvergenceExpression", "CycleBuilder", "CyclicRun", "compile_cycles"]

log = logging.getLogger("trioworks.dag")


# --- the fluent builder ---------------------------------------------------------------------


class CycleBuilder:
    """``workflow.create_cycle("id").connect(a, b, mapping).max_iterations(n)
    .converge_when("expr").timeout(s).build()``."""

    def __init__(self, workflow: Any, cycle_id: str | None) -> None:
        self._workflow = workflow
        self._cycle_id = cycle_id
        self._links: list[tuple[str, str, dict[str, str] | None]] = []
        self._max_iterations: int | None = None
        self._convergence: str | None = None
        self._timeout: float | None = None

    def _where(self) -> str:
        return f"cycle {self._cycle_id!r}" if self._cycle_id else "cycle"

    def connect(
        self, source_node: str, target_node: str, mapping: dict[str, str] | None = None
    ) -> CycleBuilder:
        for role, node in (("source", source_node), ("target", target_node)):
            if node not in self._workflow.nodes:
                raise CycleConfigurationError(
                    f"{self._where()}: {role} node {node!r} not found in workflow; "
                    f"nodes: {sorted(self._workflow.nodes)}"
                )
        self._links.append((source_node, target_node, mapping))
        return self

    def max_iterations(self, n: int) -> CycleBuilder:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise CycleConfigurationError(f"{self._where()}: max_iterations must be positive, got {n!r}")
        self._max_iterations = n
        return self

    def converge_when(self, expression: str) -> CycleBuilder:
        ConvergenceExpression.parse(expression, where=self._where())
        self._convergence = expression
        return self

    def timeout(self, seconds: float) -> CycleBuilder:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
            raise CycleConfigurationError(f"{self._where()}: timeout must be positive, got {seconds!r}")
        self._timeout = float(seconds)
        return self

    def memory_limit(self, mb: int) -> CycleBuilder:
        # Accepted for Kailash compatibility; not enforced (a run has no memory accounting).
        if isinstance(mb, bool) or not isinstance(mb, int | float) or not mb > 0:
            raise CycleConfigurationError(f"{self._where()}: memory limit must be positive, got {mb!r}")
        return self

    def when(self, condition: str) -> CycleBuilder:
        if not isinstance(condition, str) or not condition.strip():
            raise CycleConfigurationError(f"{self._where()}: condition must be a non-empty expression")
        return self

    def nested_in(self, parent: str) -> CycleBuilder:
        if not isinstance(parent, str) or not parent:
            raise CycleConfigurationError(f"{self._where()}: parent cycle id must be a non-empty string")
        return self

    def build(self) -> None:
        if not self._links:
            raise CycleConfigurationError(
                f"{self._where()}: Cycle must have source and target nodes configured; "
                "call .connect(source, target, mapping) before build()"
            )
        if self._max_iterations is None and self._convergence is None:
            raise CycleConfigurationError(
                f"{self._where()}: Cycle must have at least one termination condition: "
                "add max_iterations(n) or converge_when(expr) before build()"
            )
        for source, target, mapping in self._links:
            self._workflow.connect(
                source,
                target,
                mapping=mapping,
                cycle=True,
                max_iterations=self._max_iterations,
                convergence_check=self._convergence,
                cycle_id=self._cycle_id,
                timeout=self._timeout,
            )


# --- convergence expressions, evaluated without eval -----------------------------------------

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
# Kailash's convergence namespace: these builtins and nothing else.
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f for f in (abs, min, max, sum, len, all, any, round, float, int, bool, str)
}
_METHODS = frozenset({"get", "keys", "values", "items"})
_MAX_EXPONENT = 10_000


class ConvergenceExpression:
    """A convergence condition such as ``"error < 0.01 and iteration >= 3"``.

    Parsed once with :mod:`ast` and interpreted node by node: comparisons, boolean and
    arithmetic operators, literals, names, subscripts, ``abs/min/max/sum/len/all/any/round``
    and the conversions, and ``.get/.keys/.values/.items`` on mappings. Anything else
    (attribute access, other calls, lambdas, comprehensions, dunders) is rejected when the
    cycle is built, with :class:`CycleConfigurationError`.
    """

    def __init__(self, text: str, tree: ast.expr) -> None:
        self.text = text
        self._tree = tree

    @classmethod
    def parse(cls, text: Any, *, where: str = "cycle") -> ConvergenceExpression:
        if not isinstance(text, str) or not text.strip():
            raise CycleConfigurationError(
                f"{where}: Convergence condition must be a non-empty string expression, "
                f"e.g. 'error < 0.01', got {text!r}"
            )
        try:
            tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as exc:
            raise CycleConfigurationError(
                f"{where}: convergence condition {text!r} is not a valid expression: {exc.msg}"
            ) from None
        for node in ast.walk(tree):
            problem = _unsupported(node)
            if problem:
                raise CycleConfigurationError(
                    f"{where}: convergence condition {text!r}: {problem} is not allowed; "
                    "use comparisons, arithmetic, and/or/not, and abs/min/max/sum/len/all/any"
                )
        return cls(text, tree)

    def evaluate(self, namespace: Mapping[str, Any]) -> Any:
        return _eval(self._tree, namespace)

    def __repr__(self) -> str:
        return f"ConvergenceExpression({self.text!r})"


_ALLOWED = (
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.BinOp,
    ast.Compare,
    ast.IfExp,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Subscript,
    ast.Slice,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Dict,
    ast.Call,
    ast.Attribute,
    ast.keyword,
    *_BINARY,
    *_UNARY,
    *_COMPARE,
)


def _unsupported(node: ast.AST) -> str | None:
    if not isinstance(node, _ALLOWED):
        return f"{type(node).__name__}"
    if isinstance(node, ast.Name) and node.id.startswith("__"):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Attribute) and node.attr not in _METHODS:
        return f"the attribute {node.attr!r}"
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in _FUNCTIONS:
            return None
        if isinstance(func, ast.Attribute) and func.attr in _METHODS:
            return None
        return "calling anything but abs/min/max/sum/len/all/any/round/float/int/bool/str or .get/.keys/.values/.items"
    return None


def _eval(node: ast.expr, ns: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in ns:
            return ns[node.id]
        if node.id in _FUNCTIONS:
            return _FUNCTIONS[node.id]
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        raise NameError(f"name {node.id!r} is not defined")
    if isinstance(node, ast.BoolOp):
        value: Any = None
        for operand in node.values:
            value = _eval(operand, ns)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, ns))
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, ns), _eval(node.right, ns)
        if isinstance(node.op, ast.Pow) and isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right!r} is too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, ns)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, ns)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body, ns) if _eval(node.test, ns) else _eval(node.orelse, ns)
    if isinstance(node, ast.Subscript):
        container = _eval(node.value, ns)
        if isinstance(node.slice, ast.Slice):
            parts = (node.slice.lower, node.slice.upper, node.slice.step)
            return container[slice(*(None if p is None else _eval(p, ns) for p in parts))]
        return container[_eval(node.slice, ns)]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        items = [_eval(e, ns) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        return {
            _eval(k, ns): _eval(v, ns) for k, v in zip(node.keys, node.values, strict=True) if k is not None
        }
    if isinstance(node, ast.Call):
        args = [_eval(a, ns) for a in node.args]
        kwargs = {k.arg: _eval(k.value, ns) for k in node.keywords if k.arg is not None}
        if isinstance(node.func, ast.Attribute):
            target = _eval(node.func.value, ns)
            if not isinstance(target, Mapping):
                raise TypeError(f".{node.func.attr}() only on mappings, not {type(target).__name__}")
            return getattr(target, node.func.attr)(*args, **kwargs)
        assert isinstance(node.func, ast.Name)
        return _FUNCTIONS[node.func.id](*args, **kwargs)
    raise TypeError(f"unsupported expression {type(node).__name__}")  # rejected by parse()


def convergence_namespace(outputs: Mapping[str, Any], iteration: int, elapsed: float) -> dict[str, Any]:
    """Kailash's names: ``results``, ``iteration``, ``elapsed_time``, each node id (its
    output), and every scalar of each output (of its ``result`` dict for code nodes)."""
    ns: dict[str, Any] = {"results": dict(outputs), "iteration": iteration, "elapsed_time": elapsed}
    for node_id, output in outputs.items():
        if not node_id.isidentifier():
            continue
        ns[node_id] = output
        if not isinstance(output, Mapping):
            continue
        inner = output.get("result")
        fields = inner if isinstance(inner, Mapping) else output
        for key, value in fields.items():
            if isinstance(key, str) and key.isidentifier() and isinstance(value, int | float | str | bool):
                ns[key] = value
    return ns


# --- compiling a cyclic plan --------------------------------------------------------------------


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
