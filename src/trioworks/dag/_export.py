"""DOT (Graphviz) and Mermaid text for a built workflow.

Written against the shape of a graph (:class:`_Graph`), not against ``_builder``'s classes, so
that ``Workflow.to_dot()`` can call it without the two modules importing each other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Protocol

from ._nodes import RESULT, NodeKind, NodeSpec

__all__ = ["to_dot", "to_mermaid"]


class _Edge(Protocol):
    @property
    def source(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def input(self) -> str: ...


class _Graph(Protocol):
    """What the exports read of a :class:`~trioworks.dag.Workflow`."""

    @property
    def workflow_id(self) -> str: ...
    @property
    def nodes(self) -> Mapping[str, NodeSpec]: ...
    @property
    def order(self) -> Sequence[str]: ...
    @property
    def edges(self) -> Sequence[_Edge]: ...


_DOT_SHAPES = {NodeKind.SWITCH: "diamond", NodeKind.MERGE: "invtriangle", NodeKind.PROCESS: "box3d"}


def _label(edge: _Edge) -> str:
    source = "" if edge.path == RESULT else edge.path.removeprefix(f"{RESULT}.")
    return f"{source} → {edge.input}" if source else edge.input


def to_dot(workflow: _Graph) -> str:
    """Graphviz DOT: one node per workflow node (shape by kind), edges labelled ``path → input``."""

    def q(text: str) -> str:
        # A JSON string is a valid DOT quoted string; DOT has no \u escapes, so keep non-ASCII as is.
        return json.dumps(text, ensure_ascii=False)

    lines = [f"digraph {q(workflow.workflow_id)} {{", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    for node_id in workflow.order:
        spec = workflow.nodes[node_id]
        shape = _DOT_SHAPES.get(spec.kind)
        label = q(node_id + "\n" + spec.type_name)
        attrs = f"label={label}" + (f", shape={shape}" if shape else "")
        lines.append(f"  {q(node_id)} [{attrs}];")
    for edge in workflow.edges:
        lines.append(f"  {q(edge.source)} -> {q(edge.target)} [label={q(_label(edge))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(workflow: _Graph) -> str:
    """Mermaid ``flowchart LR``; node ids are renamed ``n0, n1, ...`` so any id is safe."""
    ids = {node_id: f"n{i}" for i, node_id in enumerate(workflow.order)}

    def text(s: str) -> str:
        return s.replace('"', "#quot;")

    lines = ["flowchart LR"]
    for node_id in workflow.order:
        spec = workflow.nodes[node_id]
        label = text(f"{node_id}<br/><small>{spec.type_name}</small>")
        if spec.kind is NodeKind.SWITCH:
            lines.append(f'  {ids[node_id]}{{"{label}"}}')
        else:
            lines.append(f'  {ids[node_id]}["{label}"]')
    for edge in workflow.edges:
        lines.append(f'  {ids[edge.source]} -->|"{text(_label(edge))}"| {ids[edge.target]}')
    return "\n".join(lines) + "\n"
