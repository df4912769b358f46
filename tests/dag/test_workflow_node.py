"""``WorkflowNode``: a workflow run as one node of another, on the same engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from trioworks.dag import (
    AsyncLocalRuntime,
    LocalRuntime,
    NodeConfigurationError,
    WorkflowBuilder,
    WorkflowExecutionError,
    WorkflowNode,
)


def _inner() -> WorkflowBuilder:
    inner = WorkflowBuilder()
    inner.add_node("PythonCodeNode", "double", {"code": "result = {'value': x * 2}"})
    inner.add_node("PythonCodeNode", "label", {"code": "result = f'{prefix}:{value}'"})
    inner.add_connection("double", "result.value", "label", "value")
    return inner


def test_outputs_of_the_exit_nodes_and_every_result() -> None:
    outer = WorkflowBuilder()
    outer.add_node(
        "PythonCodeNode", "source", {"code": "result = {'double': {'x': 21}, 'label': {'prefix': 'n'}}"}
    )
    outer.add_node("WorkflowNode", "inner", {"workflow": _inner().build()})
    outer.add_node("PythonCodeNode", "after", {"code": "result = text.upper()"})
    outer.add_connection("source", "result", "inner", "inputs")
    outer.add_connection("inner", "label_result", "after", "text")

    results, _ = LocalRuntime().execute(outer.build())

    assert results["inner"]["results"]["double"] == {"result": {"value": 42}}
    assert results["inner"]["label_result"] == "n:42"
    assert "double_result" not in results["inner"]  # only nodes nothing depends on are exits
    assert results["after"] == {"result": "N:42"}


def test_prefixed_inputs_and_explicit_mappings() -> None:
    prefixed = WorkflowNode(workflow=_inner().build())
    # As Kailash's: only the inner entry nodes' parameters are prefixed inputs; the others
    # come through ``inputs``.
    assert set(prefixed.get_parameters()) == {"double_x", "inputs"}
    out = prefixed.execute(double_x=5, inputs={"label": {"prefix": "p"}})
    assert out["label_result"] == "p:10"

    mapped = WorkflowNode(
        workflow=_inner().build(),
        input_mapping={
            "n": {"node": "double", "parameter": "x"},
            "tag": {"node": "label", "parameter": "prefix"},
        },
        output_mapping={"text": {"node": "label", "output": "result"}},
    )
    assert set(mapped.get_parameters()) == {"n", "tag", "inputs"}
    out = mapped.execute(n=1, tag="t")
    assert out["text"] == "t:2"
    assert set(out) == {"results", "text"}


def test_loaded_from_a_dict_and_from_a_file(tmp_path: Path) -> None:
    data = _inner().build().to_dict()
    assert (
        WorkflowNode(workflow_dict=data).execute(double_x=1, inputs={"label": {"prefix": "d"}})[
            "label_result"
        ]
        == "d:2"
    )
    path = tmp_path / "inner.json"
    path.write_text(json.dumps(data))
    assert (
        WorkflowNode(workflow_path=str(path)).execute(double_x=2, inputs={"label": {"prefix": "f"}})[
            "label_result"
        ]
        == "f:4"
    )


def test_a_missing_source_is_a_configuration_error_naming_the_parameters(tmp_path: Path) -> None:
    with pytest.raises(NodeConfigurationError, match="'workflow', 'workflow_path', or 'workflow_dict'"):
        WorkflowNode()
    with pytest.raises(NodeConfigurationError, match="not found"):
        WorkflowNode(workflow_path=str(tmp_path / "nope.yaml"))


def test_an_inner_failure_fails_the_node_with_the_inner_message() -> None:
    inner = WorkflowBuilder()
    inner.add_node("PythonCodeNode", "boom", {"code": "raise ValueError('inner exploded')"})
    inner.add_node("PythonCodeNode", "after", {"code": "result = value"})
    inner.add_connection("boom", "result", "after", "value")
    outer = WorkflowBuilder()
    outer.add_node("WorkflowNode", "inner", {"workflow": inner.build()})
    # As any node nothing depends on (Kailash's LocalRuntime): the failure is the node's result.
    results, _ = LocalRuntime().execute(outer.build())
    assert results["inner"]["failed"] is True
    assert results["inner"]["error_type"] == "NodeExecutionError"
    assert "Failed to execute wrapped workflow" in results["inner"]["error"]
    assert "inner exploded" in results["inner"]["error"]
    # With a dependent, the run fails and says why.
    outer.add_node("PythonCodeNode", "next", {"code": "result = results"})
    outer.add_connection("inner", "results", "next", "results")
    with pytest.raises(WorkflowExecutionError, match="inner exploded"):
        LocalRuntime().execute(outer.build())


async def test_cancelling_the_outer_run_cancels_the_inner_nodes(autojump_clock: Any) -> None:
    events: list[str] = []

    async def slow() -> dict[str, Any]:
        events.append("started")
        try:
            await trio.sleep(3600)
        finally:
            events.append("cancelled")
        return {}

    inner = WorkflowBuilder()
    inner.add_node(slow, "slow")
    outer = WorkflowBuilder()
    outer.add_node("WorkflowNode", "inner", {"workflow": inner.build()})

    with trio.move_on_after(10) as scope:
        await AsyncLocalRuntime().execute_workflow_async(outer.build())
    assert scope.cancelled_caught
    assert events == ["started", "cancelled"]
    assert trio.current_time() < 3600
