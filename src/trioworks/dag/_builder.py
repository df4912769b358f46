"""WorkflowBuilder (Kailash's surface) and the immutable Workflow it builds."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..core import RetryPolicy
from ._errors import CycleError, WorkflowValidationError, did_you_mean
from ._export import to_dot, to_mermaid
from ._nodes import RESULT, NodeKind, NodeSpec, make_node

__all__ = ["Edge", "Workflow", "WorkflowBuilder"]


@attrs.frozen(cache_hash=True)
class Edge:
    """``source``'s output at dotted ``path`` becomes ``target``'s input ``input``."""

    source: str
    path: str
    target: str
    input: str
    # The path split once at build time: the runtime follows it for every run.
    keys: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(self.path.split(".")))

    @property
    def root(self) -> str:
        return self.keys[0]


@attrs.frozen
class Workflow:
    """A validated, immutable graph. Build it with :class:`WorkflowBuilder`; run it many times."""

    workflow_id: str
    nodes: Mapping[str, NodeSpec]
    edges: tuple[Edge, ...]
    order: tuple[str, ...]  # a topological order
    inbound: Mapping[str, tuple[Edge, ...]]
    outbound: Mapping[str, tuple[Edge, ...]]

    def to_dot(self) -> str:
        return to_dot(self)

    def to_mermaid(self) -> str:
        return to_mermaid(self)


@attrs.define
class _Connection:
    source: str
    path: str
    target: str
    input: str
    via_connect: bool  # made by connect(), for the misuse hint


def _retry_policy(retry: RetryPolicy | int | None, node_id: str) -> RetryPolicy | None:
    if retry is None or isinstance(retry, RetryPolicy):
        return retry
    if isinstance(retry, int) and not isinstance(retry, bool) and retry >= 0:
        return RetryPolicy(max_attempts=retry + 1) if retry else None
    raise WorkflowValidationError(
        f"node {node_id!r}: retry must be a number of retries (int >= 0) or a RetryPolicy, got {retry!r}"
    )


class WorkflowBuilder:
    """Kailash's ``WorkflowBuilder``: add nodes, connect them, ``build()``.

    Node errors (unknown type, bad code, bad config) are raised by ``add_node`` at once;
    graph errors (unknown nodes, duplicate edges, cycles, unknown mapping targets) by ``build()``.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, NodeSpec] = {}
        self._connections: list[_Connection] = []

    def add_node(
        self,
        node: str | Callable[..., Any],
        node_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | int | None = None,
        process: bool = False,
    ) -> str:
        """Add a node; return its id.

        ``node`` is a Kailash type name (``"PythonCodeNode"``, ``"AsyncPythonCodeNode"``,
        ``"SwitchNode"``, ``"MergeNode"``) or a sync or async callable whose parameters are
        the node's inputs. ``config`` gives defaults for those inputs (and a code node's
        ``code``). ``timeout`` (seconds) bounds each attempt; ``retry`` is a number of
        retries or a :class:`~trioworks.core.RetryPolicy`; ``process=True`` runs a sync
        node in a worker process (``trio_parallel``): use it for CPU-bound work.
        """
        if node_id is None:
            base = node if isinstance(node, str) else getattr(node, "__name__", "node")
            node_id, n = base, 1
            while node_id in self._nodes:
                n += 1
                node_id = f"{base}_{n}"
        if not isinstance(node_id, str) or not node_id:
            raise WorkflowValidationError(f"node id must be a non-empty string, got {node_id!r}")
        if node_id in self._nodes:
            raise WorkflowValidationError(f"duplicate node id {node_id!r}")
        if config is not None and not isinstance(config, Mapping):
            raise WorkflowValidationError(
                f"node {node_id!r}: config must be a mapping of input name to value, got {type(config).__name__}"
            )
        self._nodes[node_id] = make_node(
            node,
            node_id,
            dict(config or {}),
            timeout=timeout,
            retry=_retry_policy(retry, node_id),
            process=process,
        )
        return node_id

    def add_connection(
        self, from_node: str, from_output: str, to_node: str, to_input: str
    ) -> WorkflowBuilder:
        """Connect one output path of ``from_node`` to one input of ``to_node``."""
        self._connections.append(_Connection(from_node, from_output, to_node, to_input, via_connect=False))
        return self

    def connect(
        self, from_node: str, to_node: str, mapping: Mapping[str, str] | None = None
    ) -> WorkflowBuilder:
        """Connect ``from_node`` to ``to_node`` with ``mapping={output_path: input_name}``.

        With no mapping the whole value (``result``) goes to the input ``data``.
        """
        if mapping is None:
            mapping = {RESULT: "data"}
        if not isinstance(mapping, Mapping) or not mapping:
            raise WorkflowValidationError(
                f"connect({from_node!r}, {to_node!r}): mapping must be a non-empty dict "
                f"{{output_path: input_name}}, got {mapping!r}"
            )
        for path, name in mapping.items():
            self._connections.append(_Connection(from_node, path, to_node, name, via_connect=True))
        return self

    def build(self, workflow_id: str | None = None) -> Workflow:
        """Validate the graph and freeze it into a :class:`Workflow`."""
        edges = tuple(self._validate_connection(c) for c in self._connections)
        seen: dict[tuple[str, str], Edge] = {}
        for e in edges:
            spec = self._nodes[e.target]
            if spec.kind is NodeKind.MERGE:
                continue
            prior = seen.get((e.target, e.input))
            if prior == e:
                raise WorkflowValidationError(
                    f"duplicate connection {e.source}.{e.path} -> {e.target}.{e.input}"
                )
            if prior is not None:
                raise WorkflowValidationError(
                    f"node {e.target!r}, input {e.input!r}: fed twice, by {prior.source}.{prior.path} "
                    f"and by {e.source}.{e.path}; use a MergeNode to take whichever arrives"
                )
            seen[(e.target, e.input)] = e
        if len(set(edges)) != len(edges):
            dup = next(e for i, e in enumerate(edges) if e in edges[:i])
            raise WorkflowValidationError(
                f"duplicate connection {dup.source}.{dup.path} -> {dup.target}.{dup.input}"
            )
        inbound: dict[str, list[Edge]] = {n: [] for n in self._nodes}
        outbound: dict[str, list[Edge]] = {n: [] for n in self._nodes}
        for e in edges:
            inbound[e.target].append(e)
            outbound[e.source].append(e)
        order = _toposort(list(self._nodes), outbound)
        return Workflow(
            workflow_id=workflow_id or f"wf-{uuid.uuid4().hex[:12]}",
            nodes=dict(self._nodes),
            edges=edges,
            order=tuple(order),
            inbound={n: tuple(v) for n, v in inbound.items()},
            outbound={n: tuple(v) for n, v in outbound.items()},
        )

    def _node(self, node_id: str, role: str, c: _Connection) -> NodeSpec:
        spec = self._nodes.get(node_id)
        if spec is not None:
            return spec
        if role == "target" and c.via_connect and c.path in self._nodes:
            # The seed document's form: connect("a", "result.x", mapping={"b": "y"}).
            raise WorkflowValidationError(
                f"connect({c.source!r}, {c.target!r}, mapping={{{c.path!r}: {c.input!r}}}) looks like "
                f"connect(from_node, output_path, mapping={{to_node: input}}), which Kailash does not support "
                f"either; write add_connection({c.source!r}, {c.target!r}, {c.path!r}, {c.input!r}) or "
                f"connect({c.source!r}, {c.path!r}, mapping={{{c.target!r}: {c.input!r}}})"
            )
        raise WorkflowValidationError(
            f"connection {c.source}.{c.path} -> {c.target}.{c.input}: unknown {role} node "
            f"{node_id!r}{did_you_mean(node_id, self._nodes)}; nodes: {sorted(self._nodes)}"
        )

    def _validate_connection(self, c: _Connection) -> Edge:
        source = self._node(c.source, "source", c)
        target = self._node(c.target, "target", c)
        where = f"connection {c.source}.{c.path} -> {c.target}.{c.input}"
        if not isinstance(c.path, str) or not c.path or "" in c.path.split("."):
            raise WorkflowValidationError(f"{where}: output path must be a dotted name like 'result.rows'")
        edge = Edge(c.source, c.path, c.target, c.input)
        if source.outputs is not None and edge.root not in source.outputs:
            raise WorkflowValidationError(
                f"{where}: node {c.source!r} has no output {edge.root!r}"
                f"{did_you_mean(edge.root, source.outputs)}; its outputs: {sorted(source.outputs)}"
                + (
                    f" (for a key inside the value write '{RESULT}.{c.path}')"
                    if RESULT in source.outputs
                    else ""
                )
            )
        if not isinstance(c.input, str) or not c.input.isidentifier():
            raise WorkflowValidationError(f"{where}: input name must be a Python identifier, got {c.input!r}")
        if c.input in target.resources:
            raise WorkflowValidationError(
                f"{where}: input {c.input!r} of node {c.target!r} is a resource ({target.resources[c.input]!r}), given by the runtime's registry"
            )
        if not target.accepts_any and not target.takes(c.input):
            if target.code is not None:
                takes = f"its code reads: {sorted(target.params)}"
            else:
                takes = f"its parameters: {sorted(target.params)}"
            raise WorkflowValidationError(
                f"{where}: node {c.target!r} has no input {c.input!r}{did_you_mean(c.input, target.params)}; {takes}"
            )
        return edge


def _toposort(nodes: list[str], outbound: Mapping[str, list[Edge]]) -> list[str]:
    """Kahn's algorithm in insertion order; on a cycle, find and name it."""
    indegree = dict.fromkeys(nodes, 0)
    for n in nodes:
        for e in outbound[n]:
            indegree[e.target] += 1
    ready = [n for n in nodes if indegree[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for e in outbound[n]:
            indegree[e.target] -= 1
            if indegree[e.target] == 0:
                ready.append(e.target)
    if len(order) == len(nodes):
        return order
    raise CycleError(_find_cycle([n for n in nodes if indegree[n] > 0], outbound))


def _find_cycle(candidates: list[str], outbound: Mapping[str, list[Edge]]) -> list[str]:
    """Name one cycle among the nodes Kahn's algorithm could not order.

    Each of them has a predecessor among them, so walking predecessors must repeat a node.
    """
    remaining = set(candidates)
    preds: dict[str, str] = {}
    for n in candidates:
        for e in outbound[n]:
            if e.target in remaining:
                preds.setdefault(e.target, n)
    path: list[str] = []
    index: dict[str, int] = {}
    node = candidates[0]
    while node not in index:
        index[node] = len(path)
        path.append(node)
        node = preds[node]
    cycle = path[index[node] :][::-1]
    return [*cycle, cycle[0]]
