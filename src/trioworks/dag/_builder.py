"""WorkflowBuilder (Kailash's surface) and the immutable Workflow it builds."""

from __future__ import annotations

import difflib
import logging
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

import attrs

from ..core import RetryPolicy
from ._connection import Connection
from ._cycle_spec import ConvergenceExpression, CycleBuilder
from ._errors import (
    ConnectionError,
    CycleConfigurationError,
    CycleError,
    WorkflowValidationError,
    did_you_mean,
)
from ._export import to_dot, to_mermaid
from ._nodes import RESULT, NodeKind, NodeSpec, make_node

__all__ = ["Edge", "Plan", "Workflow", "WorkflowBuilder"]

log = logging.getLogger("trioworks.dag")


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
class Plan:
    """A workflow compiled for the runtime: edges indexed both ways, a topological order.

    Made (and cached) by :meth:`Workflow.plan`; the runtime reads only this.
    """

    workflow_id: str
    nodes: Mapping[str, NodeSpec]
    edges: tuple[Edge, ...]
    order: tuple[str, ...]  # a topological order of the acyclic part
    inbound: Mapping[str, tuple[Edge, ...]]
    outbound: Mapping[str, tuple[Edge, ...]]
    strict: bool = False
    cycles: tuple[CycleSpec, ...] = ()


@attrs.frozen
class CycleSpec:
    """One cycle: its back edges, iteration limit and convergence expression."""

    cycle_id: str
    edges: tuple[Edge, ...]
    max_iterations: int | None
    convergence_check: str | None
    timeout: float | None = None


class Workflow:
    """A workflow graph: nodes and connections (Kailash's ``Workflow``).

    Build one with :class:`WorkflowBuilder`, or directly: ``Workflow("id", "name")``, then
    ``add_node(node_id, node)`` and ``connect(a, b, mapping={"out": "in"})``. The runtime
    compiles it into a :class:`Plan` once (again only after a change) and runs that.
    """

    def __init__(
        self,
        workflow_id: str | None = None,
        name: str | None = None,
        description: str = "",
        version: str = "1.0.0",
        author: str = "",
        metadata: Mapping[str, Any] | None = None,
        *,
        strict: bool = False,
        **_: Any,
    ) -> None:
        self.workflow_id = workflow_id or f"wf-{uuid.uuid4().hex[:12]}"
        self.name = name or self.workflow_id
        self.description = description
        self.version = version
        self.author = author
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.strict = strict
        self.nodes: dict[str, NodeSpec] = {}
        self.connections: list[Connection] = []
        self._plan: Plan | None = None
        self._plan_key: tuple[int, int] | None = None

    # -- Kailash's surface --------------------------------------------------------

    def add_node(self, node_id: str, node_or_type: Any, **config: Any) -> None:
        """Add ``node_or_type`` (a Node object or class, a type name, a callable) as ``node_id``."""
        if not isinstance(node_id, str) or not node_id:
            raise WorkflowValidationError(f"node id must be a non-empty string, got {node_id!r}")
        if node_id in self.nodes:
            raise WorkflowValidationError(f"Node '{node_id}' already exists in workflow {self.workflow_id!r}")
        self.nodes[node_id] = make_node(
            node_or_type, node_id, config, timeout=None, retry=None, process=False
        )

    def _add_spec(self, spec: NodeSpec) -> None:
        self.nodes[spec.node_id] = spec

    def connect(
        self,
        source_node: str,
        target_node: str,
        mapping: Mapping[str, str] | None = None,
        cycle: bool = False,
        max_iterations: int | None = None,
        convergence_check: str | None = None,
        cycle_id: str | None = None,
        timeout: float | None = None,
        **_: Any,
    ) -> None:
        """Connect ``source_node`` to ``target_node``: ``mapping={output_path: input_name}``.

        ``cycle=True`` makes the connection a back edge of a cycle (with ``max_iterations``
        and/or ``convergence_check``), run by LocalRuntime's cycle support.
        """
        for role, node in (("source", source_node), ("target", target_node)):
            if node not in self.nodes:
                raise WorkflowValidationError(
                    f"connect({source_node!r}, {target_node!r}): unknown {role} node {node!r}"
                    f"{did_you_mean(str(node), self.nodes)}; nodes: {sorted(self.nodes)}"
                )
        if source_node == target_node and not cycle:
            raise ConnectionError(
                f"Cannot connect node '{source_node}' to itself (use cycle=True for a loop)"
            )
        if cycle:
            where = f"cycle {cycle_id or f'{source_node} -> {target_node}'!r}"
            if max_iterations is None and convergence_check is None:
                raise CycleConfigurationError(
                    f"{where}: Cycle connections must specify either max_iterations or convergence_check"
                )
            if max_iterations is not None and (
                isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations <= 0
            ):
                raise CycleConfigurationError(
                    f"{where}: max_iterations must be positive, got {max_iterations!r}"
                )
            if timeout is not None and not timeout > 0:
                raise CycleConfigurationError(f"{where}: timeout must be positive, got {timeout!r}")
            if convergence_check is not None:
                ConvergenceExpression.parse(convergence_check, where=where)
        if mapping is None:
            mapping = {"output": "input"}
        if not cycle:
            for out, inp in mapping.items():
                for c in self.connections:
                    if (c.source_node, c.source_output, c.target_node, c.target_input) == (
                        source_node,
                        out,
                        target_node,
                        inp,
                    ) and not c.cycle:
                        raise ConnectionError(
                            f"Duplicate connection already exists: '{source_node}.{out}' -> '{target_node}.{inp}'"
                        )
        for out, inp in mapping.items():
            self.connections.append(
                Connection(
                    source_node,
                    out,
                    target_node,
                    inp,
                    cycle=cycle,
                    cycle_id=cycle_id or (f"cycle_{source_node}_{target_node}" if cycle else None),
                    max_iterations=max_iterations,
                    convergence_check=convergence_check,
                    timeout=timeout,
                )
            )

    def _add_connection(self, c: Connection) -> None:
        self.connections.append(c)

    def create_cycle(self, cycle_id: str) -> Any:
        """Kailash's fluent cycle builder: ``.connect(a, b, mapping).max_iterations(n)
        .converge_when("expr").build()``."""
        return CycleBuilder(self, cycle_id)

    @property
    def graph(self) -> Any:
        """The graph as a ``networkx.DiGraph`` (edge data: ``from_output``, ``to_input``, ``mapping``)."""
        import networkx as nx

        graph = nx.DiGraph()
        for node_id, spec in self.nodes.items():
            graph.add_node(node_id, node=spec, type=getattr(spec, "type_name", None))
        for c in self.connections:
            data = graph.get_edge_data(c.source_node, c.target_node)
            if data is None:
                graph.add_edge(
                    c.source_node,
                    c.target_node,
                    from_output=c.source_output,
                    to_input=c.target_input,
                    mapping={c.source_output: c.target_input},
                    cycle=c.cycle,
                )
            else:
                # Kailash merges the connections between two nodes into one edge: one mapping,
                # and from_output/to_input as lists once there are several.
                data["mapping"][c.source_output] = c.target_input
                data["from_output"], data["to_input"] = list(data["mapping"]), list(data["mapping"].values())
                data["cycle"] = data["cycle"] or c.cycle
        return graph

    def has_cycles(self) -> bool:
        return any(c.cycle for c in self.connections)

    def validate(self, runtime_parameters: Mapping[str, Any] | None = None) -> None:
        """Compile the workflow; raises :class:`WorkflowValidationError` if it cannot run.

        As Kailash's: a node object's required parameter (``required=True``, no default) must
        come from its config, a connection, or ``runtime_parameters`` (node-scoped
        ``{node_id: {name: value}}`` or workflow-level ``{name: value}``); otherwise the error
        names the node and the missing inputs.
        """
        plan = self.plan()
        params = dict(getattr(self, "workflow_parameters", None) or {})
        params.update(runtime_parameters or {})
        inputs = getattr(self, "workflow_inputs", None) or {}
        connected: dict[str, set[str]] = {}
        for c in self.connections:
            connected.setdefault(c.target_node, set()).add(c.target_input)
        for node_id, spec in plan.nodes.items():
            if spec.instance is None:
                continue  # native nodes: the runtime checks their inputs before running
            missing = _missing_required(spec.instance, node_id, params, connected, inputs, plan.nodes)
            if missing:
                raise WorkflowValidationError(
                    f"Node '{node_id}' missing required inputs: {missing}. "
                    "Provide these inputs via connections, node configuration, or runtime parameters"
                )

    def to_dict(self) -> dict[str, Any]:
        """Kailash's dict form (``nodes`` with ``node_type``/``config``, ``connections``)."""
        from ._serialize import workflow_to_dict

        return workflow_to_dict(self)

    def to_json(self) -> str:
        from ._serialize import workflow_to_json

        return workflow_to_json(self)

    def to_yaml(self) -> str:
        from ._serialize import workflow_to_yaml

        return workflow_to_yaml(self)

    def save(self, path: str, format: str | None = None) -> None:
        """Write the workflow to ``path`` as ``json`` or ``yaml`` (default: by the file's suffix)."""
        from ._serialize import save_workflow

        save_workflow(self, path, format)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workflow:
        from ._serialize import workflow_from_dict

        return workflow_from_dict(data, cls)

    @classmethod
    def from_json(cls, text: str) -> Workflow:
        from ._serialize import workflow_from_json

        return workflow_from_json(text, cls)

    @classmethod
    def from_yaml(cls, text: str) -> Workflow:
        from ._serialize import workflow_from_yaml

        return workflow_from_yaml(text, cls)

    @classmethod
    def load(cls, path: str) -> Workflow:
        """Read a ``.json``, ``.yaml`` or ``.yml`` workflow file."""
        from ._serialize import load_workflow_file

        return load_workflow_file(path, cls)

    # -- the runtime's view ---------------------------------------------------------

    def plan(self) -> Plan:
        """The compiled workflow (cached until the next add_node/connect)."""
        key = (len(self.nodes), len(self.connections))
        if self._plan is None or self._plan_key != key:
            self._plan = _compile(self)
            self._plan_key = key
        return self._plan

    @property
    def edges(self) -> tuple[Edge, ...]:
        return self.plan().edges

    @property
    def order(self) -> tuple[str, ...]:
        return self.plan().order

    @property
    def inbound(self) -> Mapping[str, tuple[Edge, ...]]:
        return self.plan().inbound

    @property
    def outbound(self) -> Mapping[str, tuple[Edge, ...]]:
        return self.plan().outbound

    def to_dot(self) -> str:
        return to_dot(self)

    def to_mermaid(self) -> str:
        return to_mermaid(self)

    def __repr__(self) -> str:
        return f"Workflow({self.workflow_id!r}, nodes={list(self.nodes)})"


def _missing_required(
    instance: Any,
    node_id: str,
    params: Mapping[str, Any],
    connected: Mapping[str, set[str]],
    inputs: Mapping[str, Mapping[str, str]],
    nodes: Mapping[str, NodeSpec],
) -> list[str]:
    """The required parameters of a node object that nothing will give."""
    try:
        declared = instance.get_parameters()
    except Exception as exc:
        raise WorkflowValidationError(
            f"Failed to get parameters for node '{node_id}' (node type {type(instance).__name__}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    config = dict(getattr(instance, "config", None) or {})
    nested = config.get("config")
    scoped = params.get(node_id)
    given = set(config) | connected.get(node_id, set()) | set(inputs.get(node_id, {}).values())
    given |= set(nested) if isinstance(nested, Mapping) else set()
    given |= set(scoped) if isinstance(scoped, Mapping) else set()
    given |= {k for k in params if k not in nodes}
    missing = []
    for name, p in declared.items():
        if not getattr(p, "required", False) or getattr(p, "default", None) is not None or name in given:
            continue
        if getattr(p, "auto_map_from", None) or getattr(p, "workflow_alias", None):
            given_alias = {*(p.auto_map_from or []), p.workflow_alias} & set(params)
            if given_alias:
                continue
        missing.append(name)
    return missing


def _compile(wf: Workflow) -> Plan:
    """Check the connections and index them; strict workflows get trioworks' extra checks."""
    nodes = {n: s for n, s in wf.nodes.items() if isinstance(s, NodeSpec)}
    edges: list[Edge] = []
    cycle_edges: dict[str, list[tuple[Edge, Connection]]] = {}
    seen: dict[tuple[str, str], Edge] = {}
    for c in wf.connections:
        edge = _check_connection(nodes, c, wf.strict)
        if c.cycle:
            cycle_edges.setdefault(c.cycle_id or "cycle", []).append((edge, c))
            continue
        if edge in edges:
            if wf.strict:
                raise WorkflowValidationError(
                    f"duplicate connection {edge.source}.{edge.path} -> {edge.target}.{edge.input}"
                )
            continue
        prior = seen.get((edge.target, edge.input))
        if wf.strict and prior is not None and nodes[edge.target].kind is not NodeKind.MERGE:
            raise WorkflowValidationError(
                f"node {edge.target!r}, input {edge.input!r}: fed twice, by {prior.source}.{prior.path} "
                f"and by {edge.source}.{edge.path}; use a MergeNode to take whichever arrives"
            )
        seen[(edge.target, edge.input)] = edge
        edges.append(edge)
    inbound: dict[str, list[Edge]] = {n: [] for n in nodes}
    outbound: dict[str, list[Edge]] = {n: [] for n in nodes}
    for e in edges:
        inbound[e.target].append(e)
        outbound[e.source].append(e)
    order = _toposort(list(nodes), outbound)
    cycles = tuple(
        CycleSpec(
            cycle_id=cid,
            edges=tuple(e for e, _ in pairs),
            max_iterations=next((c.max_iterations for _, c in pairs if c.max_iterations is not None), None),
            convergence_check=next((c.convergence_check for _, c in pairs if c.convergence_check), None),
            timeout=next((c.timeout for _, c in pairs if c.timeout is not None), None),
        )
        for cid, pairs in cycle_edges.items()
    )
    return Plan(
        workflow_id=wf.workflow_id,
        nodes=nodes,
        edges=tuple(edges),
        order=tuple(order),
        inbound={n: tuple(v) for n, v in inbound.items()},
        outbound={n: tuple(v) for n, v in outbound.items()},
        strict=wf.strict,
        cycles=cycles,
    )


def _check_connection(nodes: Mapping[str, NodeSpec], c: Connection, strict: bool) -> Edge:
    where = f"connection {c.source_node}.{c.source_output} -> {c.target_node}.{c.target_input}"
    for role, node_id in (("source", c.source_node), ("target", c.target_node)):
        if node_id not in nodes:
            raise WorkflowValidationError(
                f"{where}: unknown {role} node {node_id!r}{did_you_mean(node_id, nodes)}; nodes: {sorted(nodes)}"
            )
    source, target = nodes[c.source_node], nodes[c.target_node]
    if not isinstance(c.source_output, str) or not c.source_output or "" in c.source_output.split("."):
        raise WorkflowValidationError(f"{where}: output path must be a dotted name like 'result.rows'")
    edge = Edge(c.source_node, c.source_output, c.target_node, c.target_input)
    if not isinstance(c.target_input, str) or not c.target_input:
        raise WorkflowValidationError(
            f"{where}: an input name is required (a non-empty string), got {c.target_input!r}"
        )
    if c.target_input in target.resources:
        raise WorkflowValidationError(
            f"{where}: input {c.target_input!r} of node {c.target_node!r} is a resource "
            f"({target.resources[c.target_input]!r}), given by the runtime's registry"
        )
    # A callable (native node) cannot take an input it has no parameter for, in any mode.
    callable_target = target.fn is not None
    if strict or callable_target:
        if not c.target_input.isidentifier():
            raise WorkflowValidationError(
                f"{where}: input name must be a Python identifier, got {c.target_input!r}"
            )
        if (
            not target.accepts_any
            and not target.takes(c.target_input)
            and (strict or target.instance is None)
        ):
            if target.code is not None:
                takes = f"its code reads: {sorted(target.params)}"
            else:
                takes = f"its parameters: {sorted(target.params)}"
            raise WorkflowValidationError(
                f"{where}: node {c.target_node!r} has no input {c.target_input!r}"
                f"{did_you_mean(c.target_input, target.params)}; {takes}"
            )
    if strict and source.outputs is not None and edge.root not in source.outputs:
        raise WorkflowValidationError(
            f"{where}: node {c.source_node!r} has no output {edge.root!r}"
            f"{did_you_mean(edge.root, source.outputs)}; its outputs: {sorted(source.outputs)}"
            + (
                f" (for a key inside the value write '{RESULT}.{c.source_output}')"
                if RESULT in source.outputs
                else ""
            )
        )
    return edge


def _retry_policy(retry: RetryPolicy | int | None, node_id: str) -> RetryPolicy | None:
    if retry is None or isinstance(retry, RetryPolicy):
        return retry
    if isinstance(retry, int) and not isinstance(retry, bool) and retry >= 0:
        return RetryPolicy(max_attempts=retry + 1) if retry else None
    raise WorkflowValidationError(
        f"node {node_id!r}: retry must be a number of retries (int >= 0) or a RetryPolicy, got {retry!r}"
    )


_NATIVE_OPTIONS = ("timeout", "retry", "process")
_WORKFLOW_INPUT = "__workflow_input__"  # Kailash's source node of add_input_connection()


def _class_warning(node_class: type, node_id: str | None) -> str:
    """Kailash's warning for ``add_node(NodeClass, ...)``: registered (SDK) or custom."""
    from ._node_api import NodeRegistry

    name = node_class.__name__
    if NodeRegistry._nodes.get(name) is node_class:
        return (
            f"SDK node detected. Consider using string reference for better compatibility:\n"
            f"  CURRENT: add_node({name}, {node_id!r}, {{...}})\n"
            f"  PREFERRED: add_node({name!r}, {node_id!r}, {{...}})"
        )
    return (
        f"✅ CUSTOM NODE USAGE CORRECT\n\nPattern: add_node({name}, {node_id!r}, {{...}})\n"
        "Status: This is the CORRECT pattern for custom nodes\n"
        '⚠️  IGNORE "preferred pattern" suggestions for custom nodes\n'
        "String references only work for @register_node() decorated nodes.\n"
        "Custom nodes MUST use class references as shown above."
    )


class WorkflowBuilder:
    """Kailash's ``WorkflowBuilder``: add nodes, connect them, ``build()``.

    Node errors (unknown type, bad code, bad config) and connection errors (unknown nodes,
    self-connections, duplicates) are raised at once. ``strict=True`` adds trioworks' own
    checks at build time (an input nothing reads, an output a node does not have, an input
    fed twice, code that sets no ``result``, a missing key in a mapping path): none of them
    is an error in Kailash, so they are off by default.
    """

    def __init__(self, edge_config: Mapping[str, Any] | None = None, *, strict: bool = False) -> None:
        self.strict = strict
        self.nodes: dict[str, dict[str, Any]] = {}
        self.connections: list[dict[str, Any]] = []
        self.workflow_parameters: dict[str, Any] = {}
        self.parameter_mappings: dict[str, dict[str, str]] = {}
        self._specs: dict[str, NodeSpec] = {}
        self._args: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._workflow_inputs: dict[str, dict[str, str]] = {}
        self._meta: dict[str, Any] = {}
        self._via_connect: set[int] = set()
        self._unknown: dict[str, WorkflowValidationError] = {}

    # -- nodes ------------------------------------------------------------------------

    def add_node(self, *args: Any, **kwargs: Any) -> str:
        """Add a node; return its id.

        Forms: ``add_node("TypeName", "id", {config})`` (Kailash's), ``add_node(NodeClass,
        "id", **config)``, ``add_node(node_object, "id")``, ``add_node(callable, "id",
        {defaults})`` (trioworks': the callable's parameters are the node's inputs), and the
        keyword forms ``node_type=``, ``node_id=``, ``config=``. Native options: ``timeout``
        (seconds per attempt), ``retry`` (retries or a RetryPolicy), ``process=True`` (run a
        sync node in a worker process).
        """
        options = {k: kwargs.pop(k) for k in _NATIVE_OPTIONS if k in kwargs}
        node, node_id, config = self._add_node_args(args, kwargs)
        return self._add(node, node_id, config, options)

    def _add_node_args(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, str | None, dict[str, Any]]:
        from ._node_api import Node

        node = kwargs.pop("node_type", None) if not args else args[0]
        if not args and node is None:
            raise WorkflowValidationError("node_type is required when using keyword arguments")
        node_id = kwargs.pop("node_id", None)
        if len(args) >= 2:
            node_id = args[1]
        config = kwargs.pop("config", None)
        if len(args) >= 3:
            config = args[2]
        if len(args) > 3:
            raise WorkflowValidationError(
                f"Invalid add_node signature: {len(args)} positional arguments; "
                "use add_node('NodeType', 'node_id', {'param': value})"
            )
        if not isinstance(node, str) and node_id is not None and not isinstance(node_id, str):
            raise WorkflowValidationError(
                f"Invalid add_node signature: node id must be a non-empty string, got {node_id!r}"
            )
        if isinstance(node, str) and node_id is not None and not isinstance(node_id, str):
            if isinstance(node_id, type) or callable(node_id) or isinstance(node_id, Node):
                raise WorkflowValidationError(
                    f"Legacy fluent API (add_node('node_id', NodeClass, ...)) was removed in v1.0.0; "
                    f"write add_node({getattr(node_id, '__name__', type(node_id).__name__)!r}, {node!r}, {{...}})"
                )
            if isinstance(node_id, dict) and config is None:
                node_id, config = None, node_id
            else:
                raise WorkflowValidationError(f"Invalid node type: {type(node_id).__name__}")
        if config is not None and not isinstance(config, Mapping):
            raise WorkflowValidationError(
                f"node {node_id!r}: config must be a mapping of input name to value, got {type(config).__name__}"
            )
        merged = {**dict(config or {}), **kwargs}
        if isinstance(node, type) and not issubclass(node, Node):
            raise WorkflowValidationError(
                f"Invalid node type: {node.__name__} (node {node_id!r}) is a class but not a Node "
                "subclass; pass a Node subclass, a node type name, a Node instance or a function"
            )
        if isinstance(node, type) and node.__module__ != __name__.rsplit(".", 1)[0] + "._node_api":
            warnings.warn(_class_warning(node, node_id), UserWarning, stacklevel=3)
        elif isinstance(node, Node) and not kwargs.pop("_internal", False):
            warnings.warn(
                f"Instance-based API usage detected. Consider using preferred pattern:\n"
                f"  CURRENT: add_node(<instance>, {node_id!r})\n"
                f"  PREFERRED: add_node({type(node).__name__!r}, {node_id!r}, {{'param': value}})",
                UserWarning,
                stacklevel=3,
            )
        if not isinstance(node, str | type) and not isinstance(node, Node) and not callable(node):
            raise WorkflowValidationError(
                f"Invalid node type for node {node_id!r}: expected a str (node type name), a Node class, "
                f"a Node instance or a callable, got {type(node).__name__}"
            )
        return node, node_id, merged

    def _add(self, node: Any, node_id: str | None, config: dict[str, Any], options: dict[str, Any]) -> str:
        from ._node_api import Node
        from ._nodes import NODE_TYPES

        if node_id is None and (
            isinstance(node, Node)
            or (isinstance(node, type) and issubclass(node, Node))
            or (isinstance(node, str) and node not in NODE_TYPES)
        ):
            node_id = f"node_{uuid.uuid4().hex[:8]}"  # Kailash's form for node objects and types
        if node_id is None:
            base = node if isinstance(node, str) else getattr(node, "__name__", None) or type(node).__name__
            node_id, n = base, 1
            while node_id in self.nodes:
                n += 1
                node_id = f"{base}_{n}"
        if not isinstance(node_id, str) or not node_id:
            raise WorkflowValidationError(f"node id must be a non-empty string, got {node_id!r}")
        if node_id in self.nodes:
            raise WorkflowValidationError(
                f"Node ID '{node_id}' already exists (duplicate node id {node_id!r})"
            )
        try:
            spec = make_node(
                node,
                node_id,
                config,
                timeout=options.get("timeout"),
                retry=_retry_policy(options.get("retry"), node_id),
                process=options.get("process", False),
            )
        except WorkflowValidationError as exc:
            if not (isinstance(node, str) and "unknown node type" in str(exc)) or difflib.get_close_matches(
                node, list(NODE_TYPES), n=1, cutoff=0.85
            ):
                raise  # a typo of a known type ("PythonCodeNod") fails at once
            # Kailash accepts any type name here (it may be registered later); build() checks.
            self._unknown[node_id] = exc
            self._args[node_id] = (node, options)
            self.nodes[node_id] = {"type": node, "config": dict(config)}
            return node_id
        self._unknown.pop(node_id, None)
        self._specs[node_id] = spec
        self._args[node_id] = (node, options)
        self.nodes[node_id] = {"type": spec.node_type, "config": dict(config)}
        if spec.instance is not None and not isinstance(node, str):
            self.nodes[node_id]["class" if isinstance(node, type) else "instance"] = node
        return node_id

    def add_node_instance(self, node_instance: Any, node_id: str | None = None) -> str:
        return self._add(node_instance, node_id, {}, {})

    def add_node_type(
        self, node_type: str, node_id: str | None = None, config: Mapping[str, Any] | None = None
    ) -> str:
        return self._add(node_type, node_id, dict(config or {}), {})

    def update_node(self, node_id: str, config_updates: Mapping[str, Any]) -> WorkflowBuilder:
        if node_id not in self.nodes:
            raise WorkflowValidationError(f"Node '{node_id}' not found in workflow")
        node, options = self._args.get(node_id) or (self.nodes[node_id]["type"], {})
        config = {**self.nodes[node_id].get("config", {}), **config_updates}
        if node_id in self._unknown:
            self.nodes[node_id]["config"] = config
            return self
        spec = make_node(
            node,
            node_id,
            config,
            timeout=options.get("timeout"),
            retry=_retry_policy(options.get("retry"), node_id),
            process=options.get("process", False),
        )
        self._specs[node_id] = spec
        self.nodes[node_id]["config"] = config
        return self

    # -- connections -------------------------------------------------------------------

    def add_connection(
        self, from_node: str, from_output: str, to_node: str, to_input: str
    ) -> WorkflowBuilder:
        """Connect one output path of ``from_node`` to one input of ``to_node``."""
        # Kailash's order: both nodes must exist already.
        for role, node_id in (("Source", from_node), ("Target", to_node)):
            if node_id not in self.nodes:
                raise WorkflowValidationError(
                    f"{role} node '{node_id}' not found in workflow{did_you_mean(node_id, self.nodes)}: "
                    f"connection {from_node}.{from_output} -> {to_node}.{to_input}; "
                    f"nodes: {sorted(self.nodes)} (add a node before connecting it)"
                )
        if from_node == to_node:
            raise ConnectionError(
                f"Cannot connect node '{from_node}' to itself ({from_node}.{from_output} -> "
                f"{to_node}.{to_input}); a loop is a cycle: workflow.create_cycle(...)"
            )
        conn = {"from_node": from_node, "from_output": from_output, "to_node": to_node, "to_input": to_input}
        if conn in self.connections:
            raise ConnectionError(
                f"Duplicate connection detected: duplicate connection {from_node}.{from_output} -> "
                f"{to_node}.{to_input}; it already exists"
            )
        self.connections.append(conn)
        return self

    def connect(
        self,
        from_node: str,
        to_node: str,
        mapping: Mapping[str, str] | None = None,
        from_output: str | None = None,
        to_input: str | None = None,
    ) -> WorkflowBuilder:
        """Connect ``from_node`` to ``to_node`` with ``mapping={output_path: input_name}``
        (or ``from_output=``/``to_input=``; with neither, ``data`` -> ``data``)."""
        if mapping is not None and not isinstance(mapping, Mapping):
            raise WorkflowValidationError(
                f"connect({from_node!r}, {to_node!r}): mapping must be a dict {{output_path: input_name}}, "
                f"got {mapping!r}"
            )
        if mapping is not None and not mapping:
            raise WorkflowValidationError(
                f"connect({from_node!r}, {to_node!r}): mapping must be a non-empty dict "
                f"{{output_path: input_name}}, got {mapping!r}"
            )
        if mapping:
            for out, inp in mapping.items():
                if to_node not in self.nodes and from_node in self.nodes and out in self.nodes:
                    # The seed document's form: connect("a", "result.x", mapping={"b": "y"}).
                    raise WorkflowValidationError(
                        f"connect({from_node!r}, {to_node!r}, mapping={{{out!r}: {inp!r}}}) looks like "
                        f"connect(from_node, output_path, mapping={{to_node: input}}), which Kailash does not "
                        f"support either; write add_connection({from_node!r}, {to_node!r}, {out!r}, {inp!r}) or "
                        f"connect({from_node!r}, {out!r}, mapping={{{to_node!r}: {inp!r}}})"
                    )
                self._via_connect.add(len(self.connections))
                self.add_connection(from_node, out, to_node, inp)
        elif from_output and to_input:
            self.add_connection(from_node, from_output, to_node, to_input)
        else:
            # Kailash's default is data -> data; a trioworks callable or code node has one
            # output, ``result``, and that is what it gives.
            source = self._specs.get(from_node)
            out = RESULT if source is not None and source.outputs == frozenset({RESULT}) else "data"
            self.add_connection(from_node, out, to_node, "data")
        return self

    # -- workflow-level settings ----------------------------------------------------------

    def set_workflow_parameters(self, **parameters: Any) -> WorkflowBuilder:
        self.workflow_parameters.update(parameters)
        return self

    def add_parameter_mapping(self, node_id: str, mapping: Mapping[str, str]) -> WorkflowBuilder:
        self.parameter_mappings.setdefault(node_id, {}).update(mapping)
        return self

    def add_workflow_inputs(self, input_node_id: str, input_mappings: Mapping[str, str]) -> WorkflowBuilder:
        if input_node_id not in self.nodes:
            raise WorkflowValidationError(f"Node '{input_node_id}' not found")
        self._workflow_inputs[input_node_id] = dict(input_mappings)
        return self

    def add_input_connection(self, to_node: str, to_input: str, from_workflow_param: str) -> WorkflowBuilder:
        """Feed the workflow parameter ``from_workflow_param`` to ``to_node``'s ``to_input``."""
        self._workflow_inputs.setdefault(to_node, {})[from_workflow_param] = to_input
        self.connections.append(
            {
                "from_node": _WORKFLOW_INPUT,
                "from_output": from_workflow_param,
                "to_node": to_node,
                "to_input": to_input,
                "is_workflow_input": True,  # Kailash's flag
            }
        )
        return self

    def set_metadata(self, **kwargs: Any) -> WorkflowBuilder:
        self._meta.update(kwargs)
        return self

    def clear(self) -> WorkflowBuilder:
        self.__init__(strict=self.strict)  # type: ignore[misc]
        return self

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> WorkflowBuilder:
        """A builder from Kailash's dict form: ``nodes`` as a list (``id``, ``type``,
        ``parameters`` or ``config``) or a dict by id; ``connections`` as ``from_node/
        from_output/to_node/to_input`` or ``from``/``to`` (defaults ``result`` -> ``input``);
        any other key is metadata."""
        builder = cls()
        for key, value in config.items():
            if key not in ("nodes", "connections"):
                builder._meta[key] = value
        nodes = config.get("nodes") or {}
        if isinstance(nodes, Mapping):
            items = list(nodes.items())
        else:
            items = [
                (spec.get("id") or spec.get("node_id") if isinstance(spec, Mapping) else None, spec)
                for spec in nodes
            ]
        for node_id, spec in items:
            if not isinstance(spec, Mapping):
                raise WorkflowValidationError(f"node {node_id!r}: expected a dict, got {type(spec).__name__}")
            node_type = spec.get("type") or spec.get("node_type")
            if not node_id:
                raise WorkflowValidationError(f"Node ID is required (node of type {node_type!r})")
            if not node_type:
                raise WorkflowValidationError(f"Node type is required for node '{node_id}'")
            params = spec["parameters"] if "parameters" in spec else spec.get("config", {})
            if not isinstance(params, Mapping):
                log.warning(
                    "node %r: parameters must be a dict, got %s; using an empty dict",
                    node_id,
                    type(params).__name__,
                )
                params = {}
            builder.add_node(node_type, node_id, dict(params))
        for conn in config.get("connections") or []:
            if not isinstance(conn, Mapping):
                raise WorkflowValidationError(f"Invalid connection: expected a dict, got {conn!r}")
            source = conn.get("from_node") or conn.get("source_node") or conn.get("source")
            target = conn.get("to_node") or conn.get("target_node") or conn.get("target")
            out = conn.get("from_output") or conn.get("source_output")
            inp = conn.get("to_input") or conn.get("target_input")
            if not source:
                source = conn.get("from")
            if not target:
                target = conn.get("to")
            if not source or not target:
                raise WorkflowValidationError(
                    f"Invalid connection: missing from_node and to_node. Connection data: {dict(conn)!r}"
                )
            builder.add_connection(source, out or RESULT, target, inp or "input")
        return builder

    # -- build ----------------------------------------------------------------------------

    def build(self, workflow_id: str | None = None, **kwargs: Any) -> Workflow:
        """Freeze the graph into a :class:`Workflow` (validated: connections, cycles)."""
        for exc in self._unknown.values():
            raise exc
        workflow_id = workflow_id or kwargs.pop("id", None) or str(uuid.uuid4())
        metadata = dict(kwargs.pop("metadata", None) or {})
        if self.workflow_parameters:
            metadata["workflow_parameters"] = dict(self.workflow_parameters)
        metadata["parameter_mappings"] = {k: dict(v) for k, v in self.parameter_mappings.items()}
        wf = Workflow(
            workflow_id,
            kwargs.pop("name", None) or self._meta.get("name") or f"Workflow-{workflow_id[:8]}",
            kwargs.pop("description", self._meta.get("description", "")),
            kwargs.pop("version", self._meta.get("version", "1.0.0")),
            kwargs.pop("author", self._meta.get("author", "")),
            {**self._meta, **metadata, **kwargs},
            strict=self.strict,
        )
        for spec in self._specs.values():
            wf._add_spec(spec)
        seen: set[tuple[str, str, str, str]] = set()
        for c in self.connections:
            if c.get("is_workflow_input"):
                continue  # given by the workflow inputs (add_input_connection)
            key = (c["from_node"], c["from_output"], c["to_node"], c["to_input"])
            where = f"connection {key[0]}.{key[1]} -> {key[2]}.{key[3]}"
            if key in seen:
                raise ConnectionError(f"duplicate {where}")
            seen.add(key)
            wf._add_connection(Connection(*key))
        wf.workflow_parameters = dict(self.workflow_parameters)  # type: ignore[attr-defined]
        wf.workflow_inputs = {k: dict(v) for k, v in self._workflow_inputs.items()}  # type: ignore[attr-defined]
        wf.plan()
        return wf


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
