"""Compile a built workflow into a Kruxia workflow definition for ``DistributedRuntime``.

One activity per node on the ``dag`` queue (activity ``dag_node``); a dependency per upstream node;
switch branches and skips as ``depends_on`` conditions; the node's spec, its static inputs
(``{{INPUT.nodes[key]}}``) and its input edges (the upstream node's whole output) as parameters.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import math
import pickle
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ..core import RetryPolicy
from ._builder import Plan, Workflow, WorkflowBuilder
from ._errors import WorkflowValidationError
from ._nodes import NodeKind, NodeSpec

__all__ = ["DAG_ACTIVITY", "DAG_QUEUE", "activity_keys", "compile_workflow", "static_inputs"]

DAG_QUEUE = "dag"
DAG_ACTIVITY = "dag_node"
_KEY_BAD = re.compile(r"[^a-zA-Z0-9_]")
# Template roots and MiniJinja words a key must not be: it is read as a name in templates.
_RESERVED = frozenset(
    {"INPUT", "WORKFLOW", "SECRET", "true", "false", "none", "True", "False", "None", "and", "or", "not"}
    | {"in", "is", "if", "else", "loop", "self", "super", "range", "dict", "namespace"}
)
_TEMPLATE_MARKS = ("{{", "{%", "{#")


def activity_keys(plan: Plan) -> dict[str, str]:
    """Node id -> activity key: unique, at most 128 characters, and a name MiniJinja reads as one
    (``[A-Za-z_][A-Za-z0-9_]*``, no keyword or root): the node id itself when it is one, else the id
    with other characters as ``_`` plus a digest of it."""
    keys: dict[str, str] = {}
    used: set[str] = set()
    for node_id in plan.order:
        key = _KEY_BAD.sub("_", node_id)[:100] or "node"
        if key[0].isdigit():
            key = f"n_{key}"
        if key != node_id or key in used or key in _RESERVED:
            key = f"{key}_{hashlib.sha1(node_id.encode()).hexdigest()[:8]}"
        used.add(key)
        keys[node_id] = key
    return keys


def _encoded(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


def _importable(obj: Any) -> str | None:
    """``module:qualname`` when importing it gives back ``obj``; else None."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        return None
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if target is obj else None


def _callable_spec(node_id: str, obj: Any, what: str) -> dict[str, Any]:
    ref = _importable(obj)
    if ref is not None:
        return {"function": ref}
    try:
        return {"pickled": _encoded(pickle.dumps(obj))}
    except Exception as exc:
        raise WorkflowValidationError(
            f"node {node_id!r}: its {what} {obj!r} cannot travel to a worker: it is neither importable by "
            f"module path (define it at module level in a module the workers can import) nor picklable "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _retry_spec(node_id: str, policy: RetryPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    fields = attrs.asdict(policy, filter=lambda a, _v: a.name != "retry_on")
    if policy.retry_on is not RetryPolicy().retry_on:
        fields["retry_on"] = _callable_spec(node_id, policy.retry_on, "retry_on predicate")
    return fields


def node_payload(plan: Plan, node_id: str) -> dict[str, Any]:
    """What the worker needs to run ``node_id`` (JSON)."""
    spec: NodeSpec = plan.nodes[node_id]
    payload: dict[str, Any] = {
        "id": node_id,
        "kind": spec.kind.value,
        "type": spec.type_name,
        "raw_output": spec.raw_output,
        "strict": plan.strict,
        "timeout": spec.timeout,
        "retry": _retry_spec(node_id, spec.retry),
        "resources": dict(spec.resources),
    }
    if spec.kind in (NodeKind.SWITCH, NodeKind.MERGE):
        payload["routing"] = _json(node_id, "switch config", dict(spec.routing))
    elif spec.source is not None:
        if any(mark in spec.source for mark in _TEMPLATE_MARKS):  # the server would render it
            payload["code_b64"] = _encoded(spec.source.encode())
        else:
            payload["code"] = spec.source
    elif spec.instance is not None:
        payload["instance"] = _callable_spec(node_id, spec.instance, "node object")
    elif spec.fn is not None:
        payload.update(_callable_spec(node_id, spec.fn, "function"))
    else:
        raise WorkflowValidationError(f"node {node_id!r}: a {spec.type_name} cannot run on a worker")
    return payload


def _json(node_id: str, what: str, value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise WorkflowValidationError(
            f"node {node_id!r}: its {what} must be JSON to travel to a worker: {exc}"
        ) from exc
    return value


def _may_die(plan: Plan, continue_on_error: bool) -> set[str]:
    """Nodes whose outgoing edges may be dead when they finish (so consumers need conditions)."""
    if continue_on_error:
        return set(plan.order)
    dying: set[str] = set()
    for node_id in plan.order:  # topological: a node after a switch may be skipped
        spec = plan.nodes[node_id]
        if spec.kind is NodeKind.SWITCH or any(e.source in dying for e in plan.inbound[node_id]):
            dying.add(node_id)
    return dying


def _live(plan: Plan, edge: Any, key: str) -> str:
    """A MiniJinja expression: the edge carries a value."""
    test = f'{key}.status == "completed" and {key}.error is none'
    if plan.nodes[edge.source].kind is NodeKind.SWITCH:
        test += f" and {json.dumps(edge.root)} in {key}.out"
    return test


def _edge(plan: Plan, edge: Any, key: str, continue_on_error: bool) -> dict[str, Any]:
    """An input edge as the worker sees it: the source's whole output, and why it may be dead.

    Fail-fast: the server skips a node with a dead input (conditions), so only a merge gets
    ``live`` (a template per edge less for the server to render: a worker reads an edge without
    it as live). Continue-on-error: every node runs on a worker, which skips it by the local rule
    (a failed input taints its dependents' skips, which the server's statuses cannot carry).
    """
    item: dict[str, Any] = {
        "source": edge.source,
        "path": edge.path,
        "input": edge.input,
        "value": f"{{{{ {key}.out }}}}",
        # A large output travels as the source's file (dag/_values.py): its reference, else empty.
        "file": f"{{{{ {key}.out_file }}}}",
    }
    if continue_on_error:
        item["error"] = f"{{{{ {key}.error }}}}"
        item["skipped"] = f"{{{{ {key}.skipped }}}}"
        item["switch"] = plan.nodes[edge.source].kind is NodeKind.SWITCH
    elif plan.nodes[edge.target].kind is NodeKind.MERGE:
        item["live"] = f"{{{{ {_live(plan, edge, key)} }}}}"
    return item


def compile_workflow(
    workflow: Workflow,
    *,
    name: str | None = None,
    queue: str = DAG_QUEUE,
    continue_on_error: bool = False,
    timeout_seconds: float | None = None,
    lease_retries: int = 3,
    max_inline_bytes: int | None = None,
) -> dict[str, Any]:
    """The Kruxia workflow definition (a JSON-ready dict) that runs ``workflow``.

    ``timeout_seconds``: each activity's lease and deadline when its node has no ``timeout``
    (a worker heartbeats while a node runs; a dead worker's node runs again elsewhere once its
    lease expires). ``lease_retries``: how often a node may be re-run after a lost lease.
    ``max_inline_bytes``: a node output whose JSON is larger travels as a file (None: the
    worker's ``--max-inline-bytes``).
    Raises :class:`WorkflowValidationError` naming a node that cannot run on a worker (a cyclic
    workflow, a function that is neither importable nor picklable, config that is not JSON).
    """
    if isinstance(workflow, WorkflowBuilder):
        raise TypeError("DistributedRuntime takes a built workflow: call builder.build() first")
    plan = workflow.plan()
    if plan.cycles:
        raise WorkflowValidationError("cyclic workflows cannot run on the DistributedRuntime yet")
    keys = activity_keys(plan)
    dying = _may_die(plan, continue_on_error)
    activities = []
    for node_id in plan.order:
        spec, key = plan.nodes[node_id], keys[node_id]
        inbound = plan.inbound[node_id]
        edges = [_edge(plan, e, keys[e.source], continue_on_error) for e in inbound]
        activity: dict[str, Any] = {
            "key": key,
            "worker": queue,
            "activity_name": DAG_ACTIVITY,
            "parameters": {
                "node": node_payload(plan, node_id),
                "inputs": f"{{{{ INPUT.nodes[{json.dumps(key)}] }}}}",
                "edges": edges,
                "continue_on_error": continue_on_error,
            },
        }
        if max_inline_bytes is not None:
            activity["parameters"]["max_inline_bytes"] = max_inline_bytes
        sources = list(dict.fromkeys(keys[e.source] for e in inbound))
        if sources:
            depends: list[Any] = list(sources)
            checked = [] if continue_on_error else [e for e in inbound if e.source in dying]
            if checked:
                joiner = " or " if spec.kind is NodeKind.MERGE else " and "
                if spec.kind is NodeKind.MERGE:
                    checked = list(inbound)
                tests = joiner.join(f"({_live(plan, e, keys[e.source])})" for e in checked)
                depends[0] = {"activity_key": sources[0], "condition": f"{{{{ {tests} }}}}"}
            activity["depends_on"] = depends
        timeout = _activity_timeout(spec, timeout_seconds)
        settings: dict[str, Any] = {
            "retry": {"max_attempts": 1 + lease_retries, "strategy": "fixed", "base_seconds": 0}
        }
        if timeout is not None:
            settings["timeout_seconds"] = timeout
        activity["settings"] = settings
        activities.append(activity)
    return {"name": name or _definition_name(plan.workflow_id), "activities": activities}


def _activity_timeout(spec: NodeSpec, default: float | None) -> float | None:
    """A node with a ``timeout`` gets what all its attempts and backoffs may take, plus slack."""
    if spec.timeout is None:
        return default
    attempts = spec.retry.max_attempts if spec.retry is not None else 1
    backoff = 0.0
    if (
        spec.retry is not None
    ):  # the longest delays (jitter only shortens): deterministic, so redeploys are "unchanged"
        policy = spec.retry
        backoff = sum(
            min(policy.base_delay * policy.factor ** (n - 1), policy.max_delay) for n in range(1, attempts)
        )
    return math.ceil(spec.timeout * attempts + backoff + 5)


def _definition_name(workflow_id: str) -> str:
    return f"dag-{_KEY_BAD.sub('_', workflow_id)[:100]}"


def static_inputs(
    workflow: Workflow, inputs: Mapping[str, Any] | None, continue_on_error: bool
) -> dict[str, Any]:
    """``INPUT`` of the run: ``{"nodes": {key: {param: value}}}``, checked as the local runtime
    checks them (:class:`NodeInputError` before anything runs)."""
    from ._runtime import AsyncLocalRuntime

    run = AsyncLocalRuntime()._new_run(workflow, inputs, continue_on_error)
    plan = workflow.plan()
    keys = activity_keys(plan)
    nodes = {keys[n]: _json(n, "inputs", run._static_inputs(n, plan.nodes[n])) for n in plan.order}
    return {"nodes": nodes}
