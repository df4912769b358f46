"""``WorkflowNode``: a whole workflow used as one node of another (Kailash's ``WorkflowNode``).

The inner workflow runs on the same Trio engine, inside the outer node's task: its nursery is
a child of the outer run's, so cancelling the outer node (its timeout, a failing sibling, the
caller) cancels the inner nodes, and nothing of the inner run outlives the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._builder import Workflow
from ._errors import NodeConfigurationError, NodeExecutionError
from ._node_api import AsyncNode, NodeParameter, register_node

__all__ = ["WorkflowNode"]


@register_node()
class WorkflowNode(AsyncNode):
    """Run a wrapped workflow as one node.

    The workflow comes from ``workflow=`` (a :class:`Workflow` or a built builder),
    ``workflow_path=`` (a ``.json``/``.yaml``/``.yml`` file, read when the node is created) or
    ``workflow_dict=`` (Kailash's dict form). Inputs, as Kailash's:

    - ``inputs``: ``{inner_node_id: {name: value}}``, node-scoped parameters of the inner run;
    - ``<inner_node_id>_<name>``: one parameter of one inner node (without ``input_mapping``);
    - with ``input_mapping={name: {"node": inner_node_id, "parameter": inner_name}}``, the
      node's input ``name`` goes to that inner node's parameter.

    Outputs: ``results`` (every inner node's result) and, for each inner node nothing depends on,
    its outputs as ``<inner_node_id>_<output>``; with ``output_mapping={name: {"node": id,
    "output": out}}`` only the mapped outputs besides ``results``. A failing inner run fails this
    node with :class:`NodeExecutionError` ("Failed to execute wrapped workflow: ...").
    """

    async_library = "trio"

    def __init__(self, workflow: Workflow | None = None, **kwargs: Any) -> None:
        self._input_mapping: dict[str, Mapping[str, str]] = dict(kwargs.get("input_mapping") or {})
        self._output_mapping: dict[str, Mapping[str, str]] = dict(kwargs.get("output_mapping") or {})
        super().__init__(**kwargs)
        # The wrapped workflow is not a value a node is configured with at run time.
        for key in ("workflow", "workflow_path", "workflow_dict", "input_mapping", "output_mapping"):
            self.config.pop(key, None)
        self._workflow = workflow if workflow is not None else _load(kwargs)

    @property
    def workflow(self) -> Workflow:
        """The wrapped workflow."""
        return self._workflow

    def _exits(self) -> list[str]:
        sources = {c.source_node for c in self._workflow.connections}
        return [n for n in self._workflow.nodes if n not in sources]

    def get_parameters(self) -> dict[str, NodeParameter]:
        params: dict[str, NodeParameter] = {}
        if self._input_mapping:
            for name in self._input_mapping:
                params[name] = NodeParameter(name=name, type=Any, required=False)
        else:
            targets = {c.target_node for c in self._workflow.connections}
            for node_id, spec in self._workflow.nodes.items():
                if node_id in targets:
                    continue
                for param in sorted(spec.params):
                    full = f"{node_id}_{param}"
                    params[full] = NodeParameter(
                        name=full, type=Any, required=False, description=f"{param} of inner node {node_id!r}"
                    )
        params["inputs"] = NodeParameter(
            name="inputs",
            type=dict,
            required=False,
            default={},
            description="{inner node id: {parameter: value}} for the wrapped workflow",
        )
        return params

    def _inner_parameters(self, kwargs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        scoped: dict[str, dict[str, Any]] = {}
        if self._input_mapping:
            for name, where in self._input_mapping.items():
                target = where.get("node")
                if name in kwargs and target:
                    scoped.setdefault(target, {})[where.get("parameter", name)] = kwargs[name]
        else:
            for key, value in kwargs.items():
                node_id, sep, param = key.partition("_")
                if key != "inputs" and sep and node_id in self._workflow.nodes:
                    scoped.setdefault(node_id, {})[param] = value
        extra = kwargs.get("inputs")
        if isinstance(extra, Mapping):
            for node_id, values in extra.items():
                if node_id in self._workflow.nodes and isinstance(values, Mapping):
                    scoped.setdefault(node_id, {}).update(values)
        return scoped

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        from ._kailash import LocalRuntime

        runtime = LocalRuntime()
        try:
            results, _ = await runtime.execute_async(
                self._workflow, parameters=self._inner_parameters(kwargs)
            )
        except Exception as exc:
            raise NodeExecutionError(f"Failed to execute wrapped workflow: {exc}") from exc
        finally:
            runtime.close()
        output: dict[str, Any] = {"results": results}
        if self._output_mapping:
            for name, where in self._output_mapping.items():
                node_results = results.get(where.get("node", ""))
                key = where.get("output", name)
                if isinstance(node_results, dict) and key in node_results:
                    output[name] = node_results[key]
        else:
            for node_id in self._exits():
                node_results = results.get(node_id)
                if isinstance(node_results, dict):
                    for key, value in node_results.items():
                        output[f"{node_id}_{key}"] = value
        return output

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["wrapped_workflow"] = self._workflow.to_dict()
        if self._input_mapping:
            data["input_mapping"] = self._input_mapping
        if self._output_mapping:
            data["output_mapping"] = self._output_mapping
        return data


def _load(kwargs: Mapping[str, Any]) -> Workflow:
    path, data = kwargs.get("workflow_path"), kwargs.get("workflow_dict")
    if path:
        if not Path(path).exists():
            raise NodeConfigurationError(f"Workflow file not found: {path}")
        try:
            return Workflow.load(str(path))
        except Exception as exc:
            raise NodeConfigurationError(f"Failed to load workflow from {path}: {exc}") from exc
    if data:
        try:
            return Workflow.from_dict(data)
        except Exception as exc:
            raise NodeConfigurationError(f"Failed to load workflow from dictionary: {exc}") from exc
    raise NodeConfigurationError(
        "WorkflowNode requires either 'workflow', 'workflow_path', or 'workflow_dict' parameter"
    )
