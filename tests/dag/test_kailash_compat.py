"""Kailash drop-in behaviour on the Trio engine (issue 12): LocalRuntime, node objects, routing modes."""

from __future__ import annotations

from typing import Any

import pytest

from trioworks.dag import (
    AsyncLocalRuntime,
    LocalRuntime,
    MappingPathError,
    Node,
    NodeParameter,
    PythonCodeNode,
    SwitchNode,
    Workflow,
    WorkflowBuilder,
    WorkflowExecutionError,
    WorkflowValidationError,
)


class Double(Node):
    def get_parameters(self) -> dict[str, NodeParameter]:
        return {"x": NodeParameter(name="x", type=int, required=True)}

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return {"doubled": kwargs["x"] * 2}


def switched() -> Workflow:
    wf = Workflow("sw", "switch")
    wf.add_node("switch", SwitchNode(condition_field="status", operator="==", value="ok"))
    wf.add_node("yes", PythonCodeNode(name="yes", code="result = {'branch': 'yes', 'got': input}"))
    wf.add_node("no", PythonCodeNode(name="no", code="result = {'branch': 'no', 'got': input}"))
    wf.connect("switch", "yes", {"true_output": "input"})
    wf.connect("switch", "no", {"false_output": "input"})
    return wf


def test_local_runtime_returns_results_and_run_id_and_converts_declared_types() -> None:
    wf = Workflow("w", "w")
    wf.add_node("d", Double())
    with LocalRuntime() as runtime:
        results, run_id = runtime.execute(wf, parameters={"d": {"x": "21"}})
    assert results == {"d": {"doubled": 42}}
    assert isinstance(run_id, str)
    assert runtime.ref_count == 0


def test_route_data_runs_both_branches_and_skip_branches_skips_one() -> None:
    results, _ = LocalRuntime().execute(switched(), parameters={"switch": {"input_data": {"status": "ok"}}})
    assert results["switch"]["condition_result"] is True
    assert results["switch"]["false_output"] is None
    assert results["yes"] == {"result": {"branch": "yes", "got": {"status": "ok"}}}
    # Kailash: a node fed only by the untaken output is not run; its result is None.
    assert results["no"] is None
    results, _ = LocalRuntime(conditional_execution="skip_branches").execute(
        switched(), parameters={"switch": {"input_data": {"status": "ok"}}}
    )
    assert "yes" in results and "no" not in results


def test_bad_modes_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match=r"conditional_execution.*'sometimes'"):
        LocalRuntime(conditional_execution="sometimes")
    with pytest.raises(ValueError, match="connection_validation"):
        LocalRuntime(connection_validation="loose")


def test_lenient_by_default_strict_on_request() -> None:
    def lenient(strict: bool) -> WorkflowBuilder:
        wb = WorkflowBuilder(strict=strict)
        wb.add_node("PythonCodeNode", "a", {"code": "result = {'n': 1}"})
        wb.add_node("PythonCodeNode", "b", {"code": "try:\n    m\nexcept NameError:\n    m = 0\nresult = m"})
        wb.add_connection("a", "result.missing", "b", "m")
        return wb

    results, _ = LocalRuntime().execute(lenient(False).build())
    assert results["b"] == {"result": None}  # Kailash: a missing key is None
    with pytest.raises(WorkflowExecutionError) as info:
        AsyncLocalRuntime().execute(lenient(True).build())
    assert isinstance(info.value.__cause__, MappingPathError)


def test_an_input_fed_twice_takes_the_later_connection_unless_strict() -> None:
    def fed_twice(strict: bool) -> WorkflowBuilder:
        wb = WorkflowBuilder(strict=strict)
        wb.add_node("PythonCodeNode", "a", {"code": "result = 'a'"})
        wb.add_node("PythonCodeNode", "b", {"code": "result = 'b'"})
        wb.add_node("PythonCodeNode", "c", {"code": "result = v"})
        wb.add_connection("a", "result", "c", "v")
        wb.add_connection("b", "result", "c", "v")
        return wb

    results, _ = LocalRuntime().execute(fed_twice(False).build())
    assert results["c"] == {"result": "b"}
    with pytest.raises(WorkflowValidationError, match="fed twice"):
        fed_twice(True).build()


def test_a_failing_leaf_is_recorded_and_a_failing_inner_node_raises() -> None:
    wf = Workflow("f", "f")
    wf.add_node("boom", PythonCodeNode(name="boom", code="raise ValueError('no luck')"))
    results, _ = LocalRuntime().execute(wf)
    assert results["boom"]["failed"] is True and "no luck" in results["boom"]["error"]
    wf.add_node("after", PythonCodeNode(name="after", code="result = x"))
    wf.connect("boom", "after", {"result": "x"})
    with pytest.raises(WorkflowExecutionError, match="no luck"):
        LocalRuntime().execute(wf)


def test_time_limits_are_checked_at_entry() -> None:
    wf = WorkflowBuilder()
    wf.add_node("PythonCodeNode", "a", {"code": "result = 1"})
    built = wf.build()
    for soft, hard, match in (
        (-1, None, "soft_time_limit"),
        (None, float("inf"), "finite"),
        (2, 1, "strictly less"),
    ):
        with pytest.raises(ValueError, match=match):
            LocalRuntime().execute(built, soft_time_limit=soft, time_limit=hard)


class Reports(Node):
    def get_parameters(self) -> dict[str, NodeParameter]:
        return {}

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return {"success": False, "error": "quota exceeded", "rows": 3}


def test_a_success_false_output_fails_the_run_in_localruntime_only_by_default() -> None:
    wf = Workflow("r", "r")
    wf.add_node("r", Reports())
    with pytest.raises(WorkflowExecutionError, match="Node 'r' reported failure: quota exceeded") as info:
        LocalRuntime().execute(wf)
    assert info.value.result.results["r"]["rows"] == 3  # the data is kept
    results, _ = LocalRuntime(content_aware_success_detection=False).execute(wf)
    assert results["r"]["success"] is False
    assert AsyncLocalRuntime().execute(wf).results["r"]["success"] is False  # native: opt-in


def test_validate_workflow_and_execute_check_the_workflow_first() -> None:
    class Broken(Workflow):
        def validate(self, runtime_parameters: Any = None) -> None:
            raise WorkflowValidationError("broken on purpose")

    wf = Broken("b", "b")
    wf.add_node("d", Double())
    runtime = LocalRuntime()
    with pytest.raises(WorkflowValidationError, match="broken on purpose"):
        runtime.validate_workflow(wf)
    with pytest.raises(WorkflowValidationError, match="broken on purpose"):
        runtime.execute(wf, parameters={"d": {"x": 1}})
    assert runtime.validate_workflow(switched()) == []


def test_route_data_none_propagates_to_nodes_fed_only_by_a_skipped_node() -> None:
    wf = switched()
    wf.add_node("after_no", PythonCodeNode(name="after_no", code="result = input"))
    wf.add_node("both", PythonCodeNode(name="both", code="result = [a, b]"))
    wf.connect("no", "after_no", {"result": "input"})
    wf.connect("yes", "both", {"result.branch": "a"})
    wf.connect("no", "both", {"result": "b"})
    results, _ = LocalRuntime().execute(wf, parameters={"switch": {"input_data": {"status": "ok"}}})
    assert results["no"] is None and results["after_no"] is None
    assert results["both"] == {"result": ["yes", None]}  # one live input: it runs


def test_execute_workflow_async_can_be_awaited_from_asyncio() -> None:
    """Kailash users await the runtime on asyncio: the Trio engine then runs in a thread of its own."""
    import asyncio

    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "a", {"code": "result = {'x': 1}"})
    workflow = wb.build()

    async def main() -> object:
        return await AsyncLocalRuntime().execute_workflow_async(workflow, {})

    results, run_id = asyncio.run(main())
    assert results == {"a": {"result": {"x": 1}}}
    assert run_id


def test_from_function_does_not_wrap_a_result_dict_twice() -> None:
    def keep(data: list[float], threshold: float = 0.5) -> dict[str, Any]:
        return {"result": [x for x in data if x > threshold]}

    node = PythonCodeNode.from_function(keep)
    assert node.execute(data=[0.1, 0.6]) == {"result": [0.6]}
    assert node.execute(data=[0.6, 0.8], threshold=0.7) == {"result": [0.8]}
    # Any other return value is wrapped, a dict with more keys included.
    assert PythonCodeNode.from_function(lambda: {"a": 1, "result": 2}).execute() == {
        "result": {"a": 1, "result": 2}
    }


def test_an_unknown_merge_type_is_a_value_error_and_a_node_execution_error() -> None:
    from trioworks.dag import MergeNode, NodeExecutionError

    with pytest.raises(ValueError, match="Unknown merge type: sideways") as info:
        MergeNode().execute(data1=[1], data2=[2], merge_type="sideways")
    assert isinstance(info.value, NodeExecutionError)
    assert "concat, zip, merge_dict" in str(info.value)


@pytest.mark.parametrize("mode", [None, "", "skip", 1])
def test_local_runtime_refuses_a_bad_conditional_execution(mode: Any) -> None:
    with pytest.raises(ValueError, match="Invalid conditional_execution mode"):
        LocalRuntime(conditional_execution=mode)


def test_a_node_object_missing_a_required_input_is_refused_before_running() -> None:
    ran: list[int] = []

    class Needs(Node):
        def get_parameters(self) -> dict[str, NodeParameter]:
            return {"x": NodeParameter(name="x", type=int, required=True)}

        def run(self, **kwargs: Any) -> dict[str, Any]:
            ran.append(kwargs["x"])
            return {"x": kwargs["x"]}

    wf = Workflow("w", "w")
    wf.add_node("needs", Needs())
    with pytest.raises(WorkflowValidationError, match=r"Node 'needs' missing required inputs: \['x'\]"):
        LocalRuntime().execute(wf)
    assert ran == []
    # Given node-scoped or workflow-level, it runs.
    assert LocalRuntime().execute(wf, parameters={"needs": {"x": 1}})[0] == {"needs": {"x": 1}}
    assert LocalRuntime().execute(wf, parameters={"x": 2})[0] == {"needs": {"x": 2}}
    assert ran == [1, 2]


def test_a_failed_local_runtime_run_is_also_kailash_runtime_execution_error() -> None:
    from trioworks.dag import RuntimeExecutionError

    wf = Workflow("w", "w")
    wf.add_node("a", PythonCodeNode(name="a", code="raise ValueError('boom')"))
    wf.add_node("b", PythonCodeNode(name="b", code="result = input"))
    wf.connect("a", "b", {"result": "input"})
    with pytest.raises(RuntimeExecutionError, match="node 'a' failed: ValueError: boom") as info:
        LocalRuntime().execute(wf)
    assert isinstance(info.value, WorkflowExecutionError)
    assert info.value.node_id == "a"
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.result is not None


def test_a_code_node_missing_an_input_says_missing() -> None:
    from trioworks.dag import NodeInputError

    wf = Workflow("w", "w")
    wf.add_node("n", PythonCodeNode(name="n", code="result = {'value': input_data}"))
    with pytest.raises(NodeInputError, match="node 'n', input 'input_data': required but missing"):
        LocalRuntime(connection_validation="strict").execute(wf)


async def test_thread_pool_is_an_executor_until_cleanup() -> None:
    from concurrent.futures import ThreadPoolExecutor

    runtime = AsyncLocalRuntime(thread_pool_size=3)
    pool = runtime.thread_pool
    assert isinstance(pool, ThreadPoolExecutor)
    assert runtime.thread_pool is pool  # one executor, not a new one per access
    assert pool.submit(sum, [1, 2]).result() == 3
    await runtime.cleanup()
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(sum, [1])
    await runtime.cleanup()  # idempotent


def test_closing_a_runtime_shuts_its_thread_pool_down() -> None:
    runtime = LocalRuntime()
    pool = runtime.thread_pool
    assert pool is not None
    runtime.close()
    assert runtime.thread_pool is None
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(sum, [1])


def test_async_with_from_asyncio_shuts_the_thread_pool_down() -> None:
    import asyncio

    async def use() -> Any:
        async with AsyncLocalRuntime() as rt:
            pool = rt.thread_pool
            assert pool is not None
        return rt, pool

    rt, pool = asyncio.run(use())
    assert rt.thread_pool is None
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(sum, [1])
