"""Workflows as files: Kailash's dict form, as JSON or YAML.

The shape is Kailash's ``Workflow.to_dict()``::

    workflow_id: etl
    name: ETL
    description: ''
    version: 1.0.0
    author: ''
    metadata: {}
    nodes:
      read:
        node_id: read
        node_type: CSVReaderNode
        config: {file_path: data.csv}
        position: [0.0, 100.0]
    connections:
    - {source_node: read, source_output: data, target_node: count, target_input: rows}

Reading also takes the forms people write by hand and Kailash also reads: ``type`` for
``node_type``, ``parameters`` for ``config``, nodes as a list with ``id``, and connections as
``from_node``/``from_output``/``to_node``/``to_input``. trioworks' own node options are kept as
extra keys of a node (``timeout``, ``retry``, ``process``), which Kailash ignores.

A node made from a Python callable, or a node class that is not registered by name, cannot be
written to a file (a file names node types; it holds no code but a code node's ``code``):
:func:`to_json` / :func:`to_yaml` raise :class:`WorkflowValidationError` naming the node.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import RetryPolicy
from ._connection import Connection
from ._errors import WorkflowValidationError

if TYPE_CHECKING:
    from ._builder import Workflow

__all__ = [
    "load_workflow_file",
    "save_workflow",
    "workflow_from_dict",
    "workflow_from_json",
    "workflow_from_yaml",
    "workflow_to_dict",
    "workflow_to_json",
    "workflow_to_yaml",
]

# Kailash's PythonCodeNode constructor settings, present in its exports; not inputs of the code.
_KAILASH_CODE_OPTIONS = frozenset(
    {"function", "class_type", "process_method", "max_code_lines", "validate_security", "sandbox_mode"}
)

FILE_SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
_RETRY_FIELDS = ("max_attempts", "base_delay", "factor", "max_delay", "jitter")


def workflow_to_dict(workflow: Workflow) -> dict[str, Any]:
    """Kailash's dict form of ``workflow`` (config values as given: not checked to be plain data)."""
    from ._nodes import NodeKind

    nodes: dict[str, Any] = {}
    for i, (node_id, spec) in enumerate(workflow.nodes.items()):
        node: dict[str, Any] = {
            "node_id": node_id,
            "node_type": spec.node_type,
            "config": {k: v for k, v in spec.config.items() if not callable(v)},
            "position": [float(i * 150), 100.0],
        }
        if spec.timeout is not None:
            node["timeout"] = spec.timeout
        if spec.retry is not None:
            node["retry"] = {f: getattr(spec.retry, f) for f in _RETRY_FIELDS}
        if spec.kind is NodeKind.PROCESS:
            node["process"] = True
        nodes[node_id] = node
    connections = []
    for c in workflow.connections:
        conn: dict[str, Any] = {
            "source_node": c.source_node,
            "source_output": c.source_output,
            "target_node": c.target_node,
            "target_input": c.target_input,
        }
        if c.cycle:
            conn.update(
                cycle=True,
                cycle_id=c.cycle_id,
                max_iterations=c.max_iterations,
                convergence_check=c.convergence_check,
            )
        connections.append(conn)
    return {
        "workflow_id": workflow.workflow_id,
        "name": workflow.name,
        "description": workflow.description,
        "version": workflow.version,
        "author": workflow.author,
        "metadata": dict(workflow.metadata),
        "nodes": nodes,
        "connections": connections,
    }


def _portable(workflow: Workflow) -> dict[str, Any]:
    """The dict form, checked to re-create the same workflow when read back."""
    from ._node_api import NodeRegistry
    from ._nodes import NODE_TYPES

    for node_id, spec in workflow.nodes.items():
        if spec.node_type not in NODE_TYPES and NodeRegistry._nodes.get(spec.node_type) is None:
            what = (
                "a Python callable" if spec.fn is not None else f"a {spec.node_type} (not registered by name)"
            )
            raise WorkflowValidationError(
                f"node {node_id!r} is {what}: a workflow file can only name node types "
                "(PythonCodeNode with code, the built-in nodes, or classes registered with @register_node)"
            )
        if spec.instance is not None and spec.node_type in ("PythonCodeNode", "AsyncPythonCodeNode"):
            if getattr(spec.instance, "code", None) is None:
                raise WorkflowValidationError(
                    f"node {node_id!r}: a {spec.node_type} made from a function or class cannot be "
                    "written to a file; give it code instead"
                )
    data = workflow_to_dict(workflow)
    for node_id, node in data["nodes"].items():
        _check_plain(node["config"], f"node {node_id!r}, config")
    _check_plain(data["metadata"], "workflow metadata")
    return data


def _check_plain(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool | int | float | str):
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise WorkflowValidationError(f"{where}: key {key!r} is not a string")
            _check_plain(item, f"{where}.{key}")
        return
    raise WorkflowValidationError(
        f"{where}: a {type(value).__name__} cannot be written to a workflow file (only JSON-like data)"
    )


def workflow_to_json(workflow: Workflow, indent: int = 2) -> str:
    return json.dumps(_portable(workflow), indent=indent, ensure_ascii=False) + "\n"


def workflow_to_yaml(workflow: Workflow) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        # A code node's code reads as code: a literal block, not one quoted line of \n escapes.
        style = "|" if "\n" in value and value.strip(" \n") and not value.endswith(" ") else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(_portable(workflow), Dumper=Dumper, sort_keys=False, allow_unicode=True)


# --- reading -------------------------------------------------------------------------------------


def _first(entry: Mapping[str, Any], *names: str) -> Any:
    return next((entry[n] for n in names if entry.get(n) is not None), None)


def _node_items(nodes: Any) -> list[tuple[Any, Any]]:
    if isinstance(nodes, Mapping):
        return list(nodes.items())
    if isinstance(nodes, list):
        return [(_first(n, "node_id", "id") if isinstance(n, Mapping) else None, n) for n in nodes]
    raise WorkflowValidationError(
        f"'nodes' must be a mapping of node id to node, or a list; got {type(nodes).__name__}"
    )


def _retry(node_id: str, raw: Any) -> RetryPolicy | None:
    if raw is None:
        return None
    try:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return RetryPolicy(max_attempts=raw + 1) if raw else None
        if isinstance(raw, Mapping):
            return RetryPolicy(**{k: raw[k] for k in _RETRY_FIELDS if k in raw})
    except (TypeError, ValueError) as exc:
        raise WorkflowValidationError(f"node {node_id!r}: invalid retry {raw!r}: {exc}") from exc
    raise WorkflowValidationError(
        f"node {node_id!r}: retry must be a number of retries or a mapping, got {raw!r}"
    )


def workflow_from_dict(data: Mapping[str, Any], cls: type[Workflow]) -> Workflow:
    """A ``cls`` (a :class:`Workflow`) from Kailash's dict form (or the hand-written forms above).

    Raises :class:`WorkflowValidationError` naming the node or connection at fault.
    """
    from ._nodes import make_node

    if not isinstance(data, Mapping):
        raise WorkflowValidationError(f"a workflow must be a mapping, got {type(data).__name__}")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise WorkflowValidationError(f"'metadata' must be a mapping, got {type(metadata).__name__}")
    wf = cls(
        workflow_id=data.get("workflow_id") or data.get("id"),
        name=data.get("name"),
        description=data.get("description") or "",
        version=str(data.get("version") or "1.0.0"),
        author=data.get("author") or "",
        metadata=metadata,
    )
    for node_id, node in _node_items(data.get("nodes") or {}):
        if not isinstance(node, Mapping):
            raise WorkflowValidationError(f"node {node_id!r}: expected a mapping, got {type(node).__name__}")
        node_type = _first(node, "node_type", "type")
        if not isinstance(node_id, str) or not node_id:
            raise WorkflowValidationError(f"a node of type {node_type!r} has no id (give node_id)")
        if node_id in wf.nodes:
            raise WorkflowValidationError(f"duplicate node id {node_id!r}")
        if not isinstance(node_type, str) or not node_type:
            raise WorkflowValidationError(f"node {node_id!r}: node_type is required")
        config = _first(node, "config", "parameters") or {}
        if not isinstance(config, Mapping):
            raise WorkflowValidationError(
                f"node {node_id!r}: config must be a mapping, got {type(config).__name__}"
            )
        # Kailash's exports carry internal keys (``__test_multi_case_no_match`` on a switch) and
        # its code node's constructor settings: neither is configuration of the node here.
        config = {
            k: v
            for k, v in config.items()
            if not str(k).startswith("__")
            and not (node_type in ("PythonCodeNode", "AsyncPythonCodeNode") and k in _KAILASH_CODE_OPTIONS)
        }
        spec = make_node(
            node_type,
            node_id,
            config,
            timeout=node.get("timeout"),
            retry=_retry(node_id, node.get("retry")),
            process=bool(node.get("process", False)),
        )
        wf._add_spec(spec)
    for i, conn in enumerate(data.get("connections") or []):
        if not isinstance(conn, Mapping):
            raise WorkflowValidationError(f"connection #{i + 1}: expected a mapping, got {conn!r}")
        source = _first(conn, "source_node", "from_node")
        target = _first(conn, "target_node", "to_node")
        if not source or not target:
            raise WorkflowValidationError(
                f"connection #{i + 1} {dict(conn)!r}: needs source_node and target_node (or from_node, to_node)"
            )
        wf._add_connection(
            Connection(
                source,
                _first(conn, "source_output", "from_output") or "result",
                target,
                _first(conn, "target_input", "to_input") or "input",
                cycle=bool(conn.get("cycle", False)),
                cycle_id=conn.get("cycle_id"),
                max_iterations=conn.get("max_iterations"),
                convergence_check=conn.get("convergence_check"),
            )
        )
    wf.workflow_parameters = dict(metadata.get("workflow_parameters") or {})  # type: ignore[attr-defined]
    wf.plan()  # checks every connection now, naming the one at fault
    return wf


def workflow_from_json(text: str, cls: type[Workflow]) -> Workflow:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowValidationError(
            f"workflow JSON is invalid: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    return workflow_from_dict(data, cls)


def workflow_from_yaml(text: str, cls: type[Workflow]) -> Workflow:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise WorkflowValidationError(f"workflow YAML is invalid: {problem}{where}") from exc
    return workflow_from_dict(data, cls)


def load_workflow_file(path: str | Path, cls: type[Workflow]) -> Workflow:
    """Read a ``.json``, ``.yaml`` or ``.yml`` workflow file."""
    path = Path(path)
    kind = FILE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise WorkflowValidationError(f"{path}: a workflow file ends in .json, .yaml or .yml")
    text = path.read_text(encoding="utf-8")
    return workflow_from_json(text, cls) if kind == "json" else workflow_from_yaml(text, cls)


def save_workflow(workflow: Workflow, path: str | Path, format: str | None = None) -> None:
    """Write ``workflow`` to ``path`` as ``format`` (``json`` or ``yaml``; default: by suffix)."""
    path = Path(path)
    kind = format or FILE_SUFFIXES.get(path.suffix.lower())
    if kind not in ("json", "yaml"):
        raise ValueError(f"Unsupported format: {format or path.suffix!r} (json or yaml)")
    path.write_text(
        workflow_to_json(workflow) if kind == "json" else workflow_to_yaml(workflow), encoding="utf-8"
    )
