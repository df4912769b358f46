"""Cycles: create_cycle / connect(cycle=True), run by LocalRuntime and AsyncLocalRuntime."""

from __future__ import annotations

import operator
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from trioworks.dag import (
    AsyncLocalRuntime,
    CycleConfigurationError,
    LocalRuntime,
    PythonCodeNode,
    SwitchNode,
    Workflow,
    WorkflowExecutionError,
    WorkflowTimeoutError,
)
from trioworks.dag._cycles import ConvergenceExpression, convergence_namespace


def _counter_workflow(limit: int = 5, converge: str | None = None) -> Workflow:
    wf = Workflow("count", "count")

    def count(n: int = 0, step: int = 1) -> dict[str, Any]:
        return {"n": n + step, "step": step}

    wf.add_node("counter", PythonCodeNode.from_function(count, name="counter"))
    cycle = wf.create_cycle("loop").connect("counter", "counter", {"result.n": "n"}).max_iterations(limit)
    if converge:
        cycle = cycle.converge_when(converge)
    cycle.build()
    return wf


def test_a_self_loop_runs_max_iterations_and_feeds_each_output_back() -> None:
    with LocalRuntime() as runtime:
        results, _ = runtime.execute(_counter_workflow(5), parameters={"counter": {"step": 3}})
    assert results["counter"]["result"] == {"n": 15, "step": 3}


def test_the_convergence_expression_stops_the_cycle_early() -> None:
    result = AsyncLocalRuntime().execute(_counter_workflow(50, "n >= 4"))
    assert result.results["counter"]["result"]["n"] == 4
    assert result.metrics["cycles"]["cycle:loop"] == {
        "cycles": ["loop"],
        "iterations": 4,
        "reason": "converged",
    }


def test_a_multi_node_cycle_takes_outside_input_and_feeds_a_node_after_it() -> None:
    wf = Workflow("multi", "multi")
    wf.add_node("config", PythonCodeNode(name="config", code="result = {'add': 10}"))
    wf.add_node("step", PythonCodeNode(name="step", code="result = {'total': total + add}"))
    wf.add_node("check", PythonCodeNode(name="check", code="result = {'total': total, 'big': total > 25}"))
    wf.add_node("report", PythonCodeNode(name="report", code="result = f'final {total}'"))
    wf.connect("config", "step", {"result.add": "add"})
    wf.connect("step", "check", {"result.total": "total"})
    wf.create_cycle("grow").connect("check", "step", {"result.total": "total"}).max_iterations(
        9
    ).converge_when("big").build()
    wf.connect("check", "report", {"result.total": "total"})
    results, _ = LocalRuntime().execute(wf, parameters={"step": {"total": 0}})
    assert results["check"]["result"] == {"total": 30, "big": True}
    assert results["report"]["result"] == "final 30"
    assert results["config"]["result"] == {"add": 10}


def test_a_switch_whose_looping_output_is_not_taken_ends_the_cycle() -> None:
    wf = Workflow("switch", "switch")

    def bump(count: int = 0) -> dict[str, Any]:
        return {"count": count + 1, "done": count + 1 >= 3}

    wf.add_node("counter", PythonCodeNode.from_function(bump, name="counter"))
    wf.add_node("again", SwitchNode(condition_field="done", operator="==", value=False))
    wf.add_node("final", PythonCodeNode(name="final", code="result = count"))
    wf.connect("counter", "again", {"result": "input_data"})
    wf.create_cycle("c").connect("again", "counter", {"true_output.count": "count"}).max_iterations(
        10
    ).build()
    wf.connect("again", "final", {"false_output.count": "count"})
    result = AsyncLocalRuntime(conditional_execution="route_data").execute(wf)
    assert result.results["counter"]["result"] == {"count": 3, "done": True}
    assert result.results["final"]["result"] == 3
    assert result.metrics["cycles"]["cycle:c"]["reason"] == "switch"


def test_independent_cycles_each_keep_their_own_limit() -> None:
    wf = Workflow("two", "two")
    for name, limit in (("a", 3), ("b", 2)):
        wf.add_node(
            name, PythonCodeNode(name=name, code="try:\n    n\nexcept NameError:\n    n = 0\nresult = n + 1")
        )
        wf.create_cycle(f"{name}_loop").connect(name, name, {"result": "n"}).max_iterations(limit).build()
    results, _ = LocalRuntime().execute(wf)
    assert (results["a"]["result"], results["b"]["result"]) == (3, 2)


def test_a_failing_member_fails_the_run_naming_the_member() -> None:
    wf = Workflow("fail", "fail")
    wf.add_node("n", PythonCodeNode(name="n", code="result = 1 / 0"))
    wf.create_cycle("loop").connect("n", "n", {"result": "x"}).max_iterations(3).build()
    with pytest.raises(WorkflowExecutionError, match=r"node 'n' failed: .*division by zero") as info:
        AsyncLocalRuntime().execute(wf)
    assert info.value.node_id == "n"
    assert "n" in info.value.result.errors


def test_a_cycle_does_not_hold_a_node_slot_while_its_members_run() -> None:
    # One slot in all: a group that held one while waiting for its members would never end.
    result = AsyncLocalRuntime(max_concurrent_nodes=1).execute(_counter_workflow(4))
    assert result.results["counter"]["result"]["n"] == 4


def test_enable_cycles_false_runs_the_acyclic_part_once() -> None:
    results, _ = LocalRuntime(enable_cycles=False).execute(_counter_workflow(5))
    assert results["counter"]["result"]["n"] == 1


async def test_a_time_limit_cancels_a_cycle_between_and_within_iterations(autojump_clock: Any) -> None:
    wf = Workflow("slow", "slow")

    async def tick(n: int = 0) -> int:
        await trio.sleep(1)
        return n + 1

    wf.add_node("tick", tick)
    wf.create_cycle("loop").connect("tick", "tick", {"result": "n"}).max_iterations(1000).build()
    with pytest.raises(WorkflowTimeoutError, match=r"timed out after 3\.5 s"):
        await AsyncLocalRuntime(execution_timeout=3.5).execute_workflow_async(wf)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda c: c.connect("n", "n").build(), "termination condition"),
        (lambda c: c.max_iterations(0), "max_iterations must be positive"),
        (lambda c: c.timeout(-1), "timeout must be positive"),
        (lambda c: c.converge_when(""), "non-empty"),
        (lambda c: c.converge_when("x <"), "not a valid expression"),
        (lambda c: c.converge_when("__import__('os').system('true')"), "not allowed"),
        (lambda c: c.converge_when("x.__class__"), "not allowed"),
        (lambda c: c.converge_when("open('/etc/passwd')"), "not allowed"),
        (lambda c: c.converge_when("[y for y in x]"), "not allowed"),
        (lambda c: c.connect("n", "missing"), "target node 'missing' not found"),
        (lambda c: c.build(), "source and target"),
    ],
)
def test_bad_cycle_configurations_are_rejected_by_name(build: Any, match: str) -> None:
    wf = Workflow("bad", "bad")
    wf.add_node("n", PythonCodeNode(name="n", code="result = 1"))
    with pytest.raises(CycleConfigurationError, match=match):
        build(wf.create_cycle("bad"))


def test_connect_with_cycle_true_checks_its_settings_too() -> None:
    wf = Workflow("bad", "bad")
    wf.add_node("n", PythonCodeNode(name="n", code="result = 1"))
    with pytest.raises(CycleConfigurationError, match="max_iterations or convergence_check"):
        wf.connect("n", "n", {"result": "x"}, cycle=True)
    with pytest.raises(CycleConfigurationError, match="not allowed"):
        wf.connect("n", "n", {"result": "x"}, cycle=True, convergence_check="exec('1')")


_OPS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "<": operator.lt,
    ">=": operator.ge,
    "==": operator.eq,
}


@given(
    a=st.integers(-1000, 1000),
    b=st.integers(-1000, 1000),
    op=st.sampled_from(sorted(_OPS)),
    negate=st.booleans(),
)
def test_convergence_expressions_compute_what_python_computes(a: int, b: int, op: str, negate: bool) -> None:
    text = f"{'not ' if negate else ''}(a {op} b) or abs(a) > max(b, 0)"
    expected = (not _OPS[op](a, b) if negate else _OPS[op](a, b)) or abs(a) > max(b, 0)
    assert ConvergenceExpression.parse(text).evaluate({"a": a, "b": b}) == expected


def test_the_convergence_namespace_is_kailashs() -> None:
    ns = convergence_namespace(
        {"node": {"result": {"error": 0.5, "rows": [1]}}, "sw": {"condition_result": True}}, 2, 0.0
    )
    expr = ConvergenceExpression.parse(
        "error < 1 and condition_result and iteration == 2 and len(node['result']['rows']) == 1"
        " and results.get('sw') is not None"
    )
    assert expr.evaluate(ns) is True
    with pytest.raises(NameError):
        ConvergenceExpression.parse("rows").evaluate(ns)  # only scalars are lifted
