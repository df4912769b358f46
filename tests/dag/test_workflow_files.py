"""Workflows as files: Kailash's dict form as JSON and YAML, both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trioworks.dag import LocalRuntime, RetryPolicy, Workflow, WorkflowBuilder, WorkflowValidationError

DATA = Path(__file__).parent / "data"


def _builder() -> WorkflowBuilder:
    wb = WorkflowBuilder()
    wb.add_node(
        "PythonCodeNode", "numbers", {"code": "values = list(range(n))\nresult = {'values': values}", "n": 4}
    )
    wb.add_node("PythonCodeNode", "total", {"code": "result = sum(values)"}, timeout=5.0, retry=2)
    wb.add_node("SwitchNode", "big", {"condition_field": "result", "operator": ">", "value": 3})
    wb.add_node("PythonCodeNode", "say", {"code": "result = f'big: {input}'"})
    wb.add_node("TextReaderNode", "read", {"file_path": "flow-input.txt"})
    wb.add_connection("numbers", "result.values", "total", "values")
    wb.add_connection("total", "result", "big", "input_data")
    wb.add_connection("big", "true_output", "say", "input")
    return wb


def _run(wf: Workflow, **parameters: Any) -> dict[str, Any]:
    with LocalRuntime() as runtime:
        results, _ = runtime.execute(wf, parameters=parameters)
    return results


@pytest.mark.parametrize("form", ["yaml", "json", "dict"])
def test_round_trip_keeps_the_workflow(form: str) -> None:
    wf = _builder().build("flow", name="Flow", description="sums")
    if form == "yaml":
        text = wf.to_yaml()
        assert "node_type: PythonCodeNode" in text
        assert "|-\n" in text or "|\n" in text  # multi-line code as a literal block
        again = Workflow.from_yaml(text)
    elif form == "json":
        again = Workflow.from_json(wf.to_json())
    else:
        again = Workflow.from_dict(wf.to_dict())
    assert again.to_dict() == wf.to_dict()
    assert again.workflow_id == "flow" and again.name == "Flow" and again.description == "sums"
    assert again.nodes["total"].timeout == 5.0
    assert again.nodes["total"].retry == RetryPolicy(max_attempts=3)
    assert again.nodes["read"].config == {"file_path": "flow-input.txt"}
    params = {"read": {"file_path": str(DATA / "kailash_2_65_export.json")}}
    assert _run(again, **params)["say"] == _run(wf, **params)["say"] == {"result": "big: 6"}


def test_kailash_dict_shape() -> None:
    data = _builder().build("flow").to_dict()
    assert list(data) == [
        "workflow_id", "name", "description", "version", "author", "metadata", "nodes", "connections",
    ]  # fmt: skip
    assert data["nodes"]["numbers"]["node_id"] == "numbers"
    assert data["nodes"]["numbers"]["node_type"] == "PythonCodeNode"
    assert data["nodes"]["numbers"]["config"]["n"] == 4
    assert data["connections"][0] == {
        "source_node": "numbers",
        "source_output": "result.values",
        "target_node": "total",
        "target_input": "values",
    }


def test_save_and_load_files(tmp_path: Path) -> None:
    wf = _builder().build("flow")
    for name in ("flow.yaml", "flow.yml", "flow.json"):
        wf.save(str(tmp_path / name))
        assert Workflow.load(str(tmp_path / name)).to_dict() == wf.to_dict()
    wf.save(str(tmp_path / "other.txt"), format="yaml")
    assert (tmp_path / "other.txt").read_text().startswith("workflow_id: flow")
    with pytest.raises(ValueError, match="Unsupported format"):
        wf.save(str(tmp_path / "flow.toml"))
    with pytest.raises(WorkflowValidationError, match=r"\.json, \.yaml or \.yml"):
        Workflow.load(str(tmp_path / "other.txt"))


def test_an_export_of_kailash_itself_loads_and_runs() -> None:
    """``WorkflowBuilder.build().to_json()`` from kailash 2.65.0, as it wrote it."""
    wf = Workflow.load(str(DATA / "kailash_2_65_export.json"))
    results = _run(wf)
    assert results["b"] == {"result": 20}
    assert results["s"]["condition_result"] is True


def test_hand_written_yaml_forms() -> None:
    wf = Workflow.from_yaml(
        """
        name: by hand
        nodes:
          - id: load
            type: PythonCodeNode
            parameters: {code: "result = [1, 2, 3]"}
          - id: total
            type: PythonCodeNode
            config: {code: "result = sum(rows)"}
            retry: {max_attempts: 2, base_delay: 0}
        connections:
          - {from_node: load, from_output: result, to_node: total, to_input: rows}
        """.replace("\n        ", "\n")
    )
    assert wf.name == "by hand"
    assert wf.nodes["total"].retry == RetryPolicy(max_attempts=2, base_delay=0)
    assert _run(wf)["total"] == {"result": 6}


def test_what_cannot_be_a_file_is_named() -> None:
    def native(x: int = 1) -> int:
        return x

    wb = WorkflowBuilder()
    wb.add_node(native, "fn")
    wf = wb.build()
    assert wf.to_dict()["nodes"]["fn"]["node_type"].endswith("native")  # the dict is lenient
    with pytest.raises(WorkflowValidationError, match="node 'fn' is a Python callable"):
        wf.to_yaml()
    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "c", {"code": "result = 1", "when": object()})
    with pytest.raises(WorkflowValidationError, match=r"node 'c', config\.when: a object"):
        wb.build().to_json()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nodes: [", r"workflow YAML is invalid: .*\(line 1, column 9\)"),
        ("- 1", "a workflow must be a mapping"),
        ("nodes: {a: {config: {}}}", "node 'a': node_type is required"),
        ("nodes: {a: {type: CSVReaderNod}}", r"unknown node type 'CSVReaderNod'.*CSVReaderNode"),
        (
            "nodes: {a: {type: PythonCodeNode, config: {code: 'result = 1'}}}\n"
            "connections: [{source_node: a, source_output: result, target_node: b, target_input: x}]",
            "unknown target node 'b'",
        ),
        ("connections: [{source_node: a}]", r"connection #1 .*needs source_node and target_node"),
    ],
)
def test_bad_files_are_named(text: str, message: str) -> None:
    with pytest.raises(WorkflowValidationError, match=message):
        Workflow.from_yaml(text)


def test_invalid_json_names_line() -> None:
    with pytest.raises(WorkflowValidationError, match=r"workflow JSON is invalid: .*line 1"):
        Workflow.from_json("{nodes")
