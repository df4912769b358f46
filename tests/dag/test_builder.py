"""Build-time validation: every error the builder raises names its culprit."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trioworks.dag import (
    ConnectionError,
    CycleError,
    NodeKind,
    Resource,
    RetryPolicy,
    Workflow,
    WorkflowBuilder,
    WorkflowValidationError,
)


def text(text: str) -> str:
    return text


async def atext(text: str) -> str:
    return text


def two(text: str, count: int = 1) -> str:
    return text * count


def builder(*node_ids: str, strict: bool = False) -> WorkflowBuilder:
    wb = WorkflowBuilder(strict=strict)
    for node_id in node_ids:
        wb.add_node(text, node_id)
    return wb


# --- nodes ---------------------------------------------------------------------


def test_unknown_node_type_suggests_the_right_one() -> None:
    with pytest.raises(WorkflowValidationError) as info:
        WorkflowBuilder().add_node("PythonCodNode", "calc", {"code": "result = 1"})
    message = str(info.value)
    assert "'calc'" in message
    assert "'PythonCodNode'" in message
    assert "did you mean 'PythonCodeNode'?" in message


def test_not_a_node_type_nor_a_callable() -> None:
    with pytest.raises(WorkflowValidationError, match=r"node 'x'.*callable.*got int"):
        WorkflowBuilder().add_node(42, "x")  # type: ignore[arg-type]


def test_duplicate_node_id() -> None:
    wb = builder("load")
    with pytest.raises(WorkflowValidationError, match="duplicate node id 'load'"):
        wb.add_node(two, "load")


@pytest.mark.parametrize("node_id", ["", 7])
def test_node_id_must_be_a_non_empty_string(node_id: Any) -> None:
    with pytest.raises(WorkflowValidationError, match="non-empty string"):
        WorkflowBuilder().add_node(text, node_id)


def test_config_must_be_a_mapping() -> None:
    with pytest.raises(WorkflowValidationError, match=r"node 'a': config must be a mapping.*list"):
        WorkflowBuilder().add_node(text, "a", ["text"])  # type: ignore[arg-type]


def test_auto_generated_ids_are_unique_and_usable() -> None:
    wb = WorkflowBuilder()
    first = wb.add_node(text)
    second = wb.add_node(text)
    code = wb.add_node("PythonCodeNode", config={"code": "result = text"})
    explicit = wb.add_node(text, "mine")
    assert (first, second, code, explicit) == ("text", "text_2", "PythonCodeNode", "mine")
    wb.add_connection(first, "result", second, "text")
    wb.add_connection(second, "result", code, "text")
    workflow = wb.build()
    assert set(workflow.nodes) == {"text", "text_2", "PythonCodeNode", "mine"}


def test_config_key_that_is_not_a_parameter() -> None:
    with pytest.raises(WorkflowValidationError) as info:
        WorkflowBuilder().add_node(two, "rep", {"cuont": 3})
    message = str(info.value)
    assert "node 'rep'" in message
    assert "'cuont'" in message
    assert "did you mean 'count'?" in message
    assert "['count', 'text']" in message


def test_config_accepted_by_a_kwargs_callable() -> None:
    def anything(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    wb = WorkflowBuilder()
    wb.add_node(anything, "any", {"whatever": 1})
    assert wb.build().nodes["any"].defaults == {"whatever": 1}


def test_config_satisfies_a_required_parameter() -> None:
    wb = WorkflowBuilder()
    wb.add_node(two, "rep", {"text": "ab"})
    spec = wb.build().nodes["rep"]
    assert spec.required == frozenset()
    assert spec.params == {"text", "count"}


def test_process_on_an_async_callable() -> None:
    with pytest.raises(WorkflowValidationError, match=r"node 'a': process=True is not possible: it is async"):
        WorkflowBuilder().add_node(atext, "a", process=True)


@pytest.mark.parametrize("node_type", ["AsyncPythonCodeNode", "SwitchNode", "MergeNode"])
def test_process_on_a_node_type_that_cannot_run_in_a_process(node_type: str) -> None:
    with pytest.raises(WorkflowValidationError, match=rf"node 'n': process=True .*{node_type}"):
        WorkflowBuilder().add_node(node_type, "n", {"code": "result = 1"}, process=True)


def test_process_with_a_resource_parameter() -> None:
    def query(db: Any = Resource("db")) -> int:
        return 1

    with pytest.raises(WorkflowValidationError, match=r"node 'q': process=True .*resources"):
        WorkflowBuilder().add_node(query, "q", process=True)


def test_process_on_a_sync_callable_and_code_node_is_accepted() -> None:
    wb = WorkflowBuilder()
    wb.add_node(text, "a", {"text": "x"}, process=True)
    wb.add_node("PythonCodeNode", "b", {"code": "result = 1"}, process=True)
    workflow = wb.build()
    assert workflow.nodes["a"].kind is NodeKind.PROCESS
    assert workflow.nodes["b"].kind is NodeKind.PROCESS


def test_positional_only_parameter() -> None:
    def positional(value: int, /) -> int:
        return value

    with pytest.raises(WorkflowValidationError, match=r"node 'p': parameter 'value' is positional-only"):
        WorkflowBuilder().add_node(positional, "p")


@pytest.mark.parametrize("timeout", [0, -1, float("nan")])
def test_bad_timeout(timeout: float) -> None:
    with pytest.raises(WorkflowValidationError, match=r"node 't': timeout must be > 0"):
        WorkflowBuilder().add_node(text, "t", timeout=timeout)


def test_timeout_of_the_wrong_type_names_the_node() -> None:
    with pytest.raises(WorkflowValidationError, match=r"node 't': timeout"):
        WorkflowBuilder().add_node(text, "t", timeout="5")  # type: ignore[arg-type]


@pytest.mark.parametrize("retry", [-1, True, 1.5, "3"])
def test_bad_retry(retry: Any) -> None:
    with pytest.raises(WorkflowValidationError, match=r"node 'r': retry must be .* got"):
        WorkflowBuilder().add_node(text, "r", retry=retry)


def test_retry_forms() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.5)
    wb = WorkflowBuilder()
    wb.add_node(text, "none", retry=0)
    wb.add_node(text, "two", retry=2)
    wb.add_node(text, "policy", retry=policy)
    nodes = wb.build().nodes
    assert nodes["none"].retry is None
    assert nodes["two"].retry is not None and nodes["two"].retry.max_attempts == 3
    assert nodes["policy"].retry is policy


# --- code nodes ----------------------------------------------------------------


def test_code_node_needs_code() -> None:
    with pytest.raises(WorkflowValidationError, match=r"node 'c': a PythonCodeNode needs config 'code'"):
        WorkflowBuilder().add_node("PythonCodeNode", "c", {"value": 1})


def test_code_that_does_not_compile_gives_the_line() -> None:
    code = "a = 1\nb = 2\nc = )\nresult = c\n"
    with pytest.raises(WorkflowValidationError) as info:
        WorkflowBuilder().add_node("PythonCodeNode", "calc", {"code": code})
    message = str(info.value)
    assert "node 'calc'" in message
    assert "does not compile" in message
    assert "(line 3)" in message
    assert isinstance(info.value.__cause__, SyntaxError)


def test_top_level_await_in_a_sync_code_node_points_to_the_async_one() -> None:
    code = "import trio\nawait trio.sleep(1)\nresult = 1\n"
    with pytest.raises(WorkflowValidationError) as info:
        WorkflowBuilder().add_node("PythonCodeNode", "wait", {"code": code})
    message = str(info.value)
    assert "node 'wait'" in message
    assert "(line 2)" in message
    assert "AsyncPythonCodeNode" in message
    # ...and the same code is fine where it belongs.
    wb = WorkflowBuilder()
    wb.add_node("AsyncPythonCodeNode", "wait", {"code": code})
    assert wb.build().nodes["wait"].kind is NodeKind.ASYNC


def test_code_node_inputs_are_the_names_its_code_reads() -> None:
    code = (
        "import math\nscale = 2\nresult = [math.floor(v * scale) for v in values] + [offset, len(values)]\n"
    )
    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "calc", {"code": code, "offset": 1})
    spec = wb.build().nodes["calc"]
    assert spec.params == {"values", "offset"}
    assert spec.required == {"values"}  # offset has a config default; math, scale, v are bound


def test_code_that_rebinds_its_input_still_takes_it() -> None:
    wb = WorkflowBuilder()
    wb.add_node(text, "load", {"text": "b a"})
    wb.add_node("PythonCodeNode", "sort", {"code": "data = sorted(data.split())\nresult = data"})
    wb.add_connection("load", "result", "sort", "data")
    assert "data" in wb.build().nodes["sort"].params


@pytest.mark.parametrize(
    ("code", "inputs"),
    [
        ("x = 1\nresult = x", set()),
        ("count += 1\nresult = count", {"count"}),
        ("total = 0\nfor i in items:\n    total += i\nresult = total", {"items"}),
        ("result = [y * w for y in rows if y]", {"rows", "w"}),
        ("def f(a):\n    return g(a) + k\ndef g(b):\n    return b\nresult = f(z)", {"k", "z"}),
        ("try:\n    v = 1\nexcept Exception as e:\n    v = str(e)\nresult = v", set()),
        ("if (n := len(xs)) > 1:\n    result = n\nelse:\n    result = 0", {"xs"}),
    ],
)
def test_code_inputs_are_names_read_before_they_are_bound(code: str, inputs: set[str]) -> None:
    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "c", {"code": code})
    assert wb.build().nodes["c"].required == inputs


# --- connections ----------------------------------------------------------------


def test_unknown_source_node_suggests_the_right_one() -> None:
    # Kailash raises at add_connection: a connection names nodes added before it.
    wb = builder("load", "count")
    with pytest.raises(WorkflowValidationError) as info:
        wb.add_connection("lod", "result", "count", "text")
    message = str(info.value)
    assert "Source node 'lod' not found in workflow (did you mean 'load'?)" in message
    assert "connection lod.result -> count.text" in message
    assert wb.connections == []


def test_unknown_target_node_suggests_the_right_one() -> None:
    wb = builder("load", "count")
    with pytest.raises(
        WorkflowValidationError, match=r"Target node 'cuont' not found in workflow \(did you mean 'count'\?\)"
    ):
        wb.connect("load", "cuont", mapping={"result": "text"})


def test_duplicate_connection() -> None:
    # Kailash's ConnectionError, at the call that repeats the connection.
    wb = builder("a", "b")
    wb.add_connection("a", "result", "b", "text")
    with pytest.raises(ConnectionError, match=r"duplicate connection a\.result -> b\.text"):
        wb.add_connection("a", "result", "b", "text")


def test_duplicate_connection_into_a_merge_node() -> None:
    wb = builder("a")
    wb.add_node("MergeNode", "m")
    wb.add_connection("a", "result", "m", "data")
    with pytest.raises(ConnectionError, match=r"duplicate connection a\.result -> m\.data"):
        wb.add_connection("a", "result", "m", "data")


def test_an_input_fed_twice() -> None:
    # trioworks-only check (Kailash accepts this): opt in with strict=True
    wb = builder("a", "b", "c", strict=True)
    wb.add_connection("a", "result", "c", "text")
    wb.add_connection("b", "result", "c", "text")
    with pytest.raises(WorkflowValidationError) as info:
        wb.build()
    message = str(info.value)
    assert "node 'c', input 'text': fed twice, by a.result and by b.result" in message
    assert "MergeNode" in message


def test_unknown_target_input_of_a_callable() -> None:
    wb = builder("a")
    wb.add_node(two, "rep")
    wb.add_connection("a", "result", "rep", "txt")
    with pytest.raises(WorkflowValidationError) as info:
        wb.build()
    message = str(info.value)
    assert "node 'rep' has no input 'txt' (did you mean 'text'?)" in message
    assert "its parameters: ['count', 'text']" in message


def test_unknown_target_input_of_a_code_node_that_never_reads_it() -> None:
    # trioworks-only check (Kailash accepts this): opt in with strict=True
    wb = builder("a", strict=True)
    wb.add_node("PythonCodeNode", "calc", {"code": "result = value * 2"})
    wb.add_connection("a", "result", "calc", "valeu")
    with pytest.raises(WorkflowValidationError) as info:
        wb.build()
    message = str(info.value)
    assert "node 'calc' has no input 'valeu' (did you mean 'value'?)" in message
    assert "its code reads: ['value']" in message


def test_any_input_name_goes_to_a_kwargs_callable() -> None:
    def anything(**kwargs: Any) -> int:
        return len(kwargs)

    wb = builder("a")
    wb.add_node(anything, "any")
    wb.add_connection("a", "result", "any", "whatever")
    assert wb.build().inbound["any"][0].input == "whatever"


def test_unknown_output_root_hints_at_a_path_inside_result() -> None:
    # trioworks-only check (Kailash accepts this): opt in with strict=True
    wb = builder("a", "b", strict=True)
    wb.add_connection("a", "rows", "b", "text")
    with pytest.raises(WorkflowValidationError) as info:
        wb.build()
    message = str(info.value)
    assert "node 'a' has no output 'rows'" in message
    assert "its outputs: ['result']" in message
    assert "write 'result.rows'" in message


def test_switch_outputs_are_checked_and_suggested() -> None:
    # trioworks-only check (Kailash accepts this): opt in with strict=True
    wb = builder("a", "b", strict=True)
    wb.add_node("SwitchNode", "sw", {"value": 1})
    wb.add_connection("a", "result", "sw", "input_data")
    wb.add_connection("sw", "true_outptu", "b", "text")
    with pytest.raises(
        WorkflowValidationError, match=r"no output 'true_outptu' \(did you mean 'true_output'\?\)"
    ):
        wb.build()


def test_the_seed_documents_connect_misuse_shows_the_right_call() -> None:
    wb = builder("a", "b")
    with pytest.raises(WorkflowValidationError) as info:
        wb.connect("a", "result.x", mapping={"b": "y"})
    message = str(info.value)
    assert "connect('a', 'result.x', mapping={'b': 'y'})" in message
    assert "add_connection('a', 'result.x', 'b', 'y')" in message
    assert "connect('a', 'b', mapping={'result.x': 'y'})" in message


@pytest.mark.parametrize("path", ["", "result..rows", ".result", "result."])
def test_output_path_must_be_dotted_names(path: str) -> None:
    wb = builder("a", "b")
    wb.add_connection("a", path, "b", "text")
    with pytest.raises(WorkflowValidationError, match="output path must be a dotted name"):
        wb.build()


def test_input_name_must_be_an_identifier() -> None:
    wb = builder("a", "b")
    wb.add_connection("a", "result", "b", "the text")
    with pytest.raises(
        WorkflowValidationError, match=r"input name must be a Python identifier, got 'the text'"
    ):
        wb.build()


def test_a_resource_parameter_cannot_be_connected() -> None:
    def query(sql: str, db: Any = Resource("main_db")) -> str:
        return sql

    wb = builder("a")
    wb.add_node(query, "q")
    wb.add_connection("a", "result", "q", "db")
    with pytest.raises(WorkflowValidationError, match=r"input 'db' of node 'q' is a resource \('main_db'\)"):
        wb.build()


def test_connect_with_an_empty_mapping() -> None:
    with pytest.raises(
        WorkflowValidationError, match=r"connect\('a', 'b'\): mapping must be a non-empty dict"
    ):
        builder("a", "b").connect("a", "b", mapping={})


def test_connect_without_mapping_feeds_data() -> None:
    def take(data: str) -> str:
        return data

    wb = builder("a")
    wb.add_node(take, "b")
    wb.connect("a", "b")
    (edge,) = wb.build().edges
    assert (edge.source, edge.path, edge.target, edge.input) == ("a", "result", "b", "data")


def test_connect_with_several_paths() -> None:
    wb = builder("a")
    wb.add_node(two, "b")
    wb.connect("a", "b", mapping={"result.words": "text", "result.n": "count"})
    workflow = wb.build()
    assert [(e.path, e.input) for e in workflow.inbound["b"]] == [
        ("result.words", "text"),
        ("result.n", "count"),
    ]


def test_switch_node_config_is_checked() -> None:
    with pytest.raises(
        WorkflowValidationError, match=r"unknown operator 'is_nul' \(did you mean 'is_null'\?\)"
    ):
        WorkflowBuilder().add_node("SwitchNode", "sw", {"operator": "is_nul"})
    with pytest.raises(
        WorkflowValidationError, match=r"unknown SwitchNode config key 'vaule' \(did you mean 'value'"
    ):
        WorkflowBuilder().add_node("SwitchNode", "sw", {"vaule": 1})
    with pytest.raises(WorkflowValidationError, match="'cases' must be a non-empty list"):
        WorkflowBuilder().add_node("SwitchNode", "sw", {"cases": []})


# --- cycles ----------------------------------------------------------------------


def test_a_cycle_is_named_in_order() -> None:
    wb = builder("start", "a", "b", "c", "tail")
    wb.add_connection("start", "result", "a", "text")
    wb.add_node(two, "a2")  # a second input for a, from the cycle
    wb.add_connection("a", "result", "b", "text")
    wb.add_connection("b", "result", "c", "text")
    wb.add_connection("c", "result", "a2", "text")
    wb.add_connection("a2", "result", "tail", "text")
    wb.add_connection("c", "result", "start", "text")  # closes start -> a -> b -> c -> start
    with pytest.raises(CycleError) as info:
        wb.build()
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"start", "a", "b", "c"}
    assert len(cycle) == 5
    # Rotated to start anywhere, it is the cycle in edge order.
    i = cycle.index("start")
    assert [*cycle[i:-1], *cycle[:i]] == ["start", "a", "b", "c"]
    assert f"workflow has a cycle: {' -> '.join(cycle)}" == str(info.value)
    assert isinstance(info.value, WorkflowValidationError)


def test_the_three_node_cycle_from_the_brief() -> None:
    wb = builder("a", "b", "c")
    wb.add_connection("a", "result", "b", "text")
    wb.add_connection("b", "result", "c", "text")
    wb.add_connection("c", "result", "a", "text")
    with pytest.raises(CycleError) as info:
        wb.build()
    message = str(info.value)
    assert any(f"{x} -> {y} -> {z} -> {x}" in message for x, y, z in ["abc", "bca", "cab"])


def test_a_self_loop_is_refused_at_once() -> None:
    # Kailash's ConnectionError; a loop is written with create_cycle (tests/dag/test_cycles.py).
    wb = WorkflowBuilder()
    wb.add_node(two, "a", {"text": "x"})
    with pytest.raises(ConnectionError, match="Cannot connect node 'a' to itself"):
        wb.add_connection("a", "result", "a", "count")


@st.composite
def graphs_with_a_cycle(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    """A random DAG (edges low -> high) plus one edge back from a node to one of its ancestors.

    (A self-loop is refused by add_connection itself: test_a_self_loop_is_refused_at_once.)
    """
    n = draw(st.integers(2, 15))
    edges = {(i, j) for j in range(1, n) for i in draw(st.sets(st.integers(0, j - 1), max_size=3))}
    edges.add((0, 1))  # so that some node has an ancestor
    high = draw(st.sampled_from(sorted({j for _, j in edges})))
    ancestors = {high}
    for _ in range(n):
        ancestors |= {i for i, j in edges if j in ancestors}
    low = draw(st.sampled_from(sorted(ancestors - {high})))
    edges.add((high, low))
    return n, draw(st.permutations(sorted(edges)))


@settings(max_examples=100, deadline=None)
@given(graph=graphs_with_a_cycle())
def test_the_named_cycle_is_a_real_cycle_of_the_graph(graph: tuple[int, list[tuple[int, int]]]) -> None:
    n, edges = graph

    def many(**kwargs: Any) -> int:
        return len(kwargs)

    wb = WorkflowBuilder()
    for i in range(n):
        wb.add_node(many, f"n{i}")
    for i, j in edges:
        wb.add_connection(f"n{i}", "result", f"n{j}", f"from_{i}")
    with pytest.raises(CycleError) as info:
        wb.build()
    cycle = info.value.cycle
    named = {(f"n{i}", f"n{j}") for i, j in edges}
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1  # a simple cycle
    for u, v in itertools.pairwise(cycle):
        assert (u, v) in named


# --- the built workflow and its exports ------------------------------------------


def test_build_freezes_a_topological_order() -> None:
    wb = builder("c", "b", "a")
    wb.add_connection("a", "result", "b", "text")
    wb.add_connection("b", "result", "c", "text")
    workflow = wb.build(workflow_id="wf-1")
    assert isinstance(workflow, Workflow)
    assert workflow.workflow_id == "wf-1"
    assert workflow.order == ("a", "b", "c")
    assert [e.source for e in workflow.inbound["c"]] == ["b"]
    assert [e.target for e in workflow.outbound["a"]] == ["b"]
    assert wb.build().workflow_id != wb.build().workflow_id  # generated ids differ


ODD_IDS = ['load "raw" data', "split words", "sw {x}", "a|b", "x-1"]


def odd_workflow() -> Workflow:
    wb = WorkflowBuilder()
    wb.add_node(text, ODD_IDS[0], {"text": "a b"})
    wb.add_node(text, ODD_IDS[1])
    wb.add_node("SwitchNode", ODD_IDS[2], {"operator": "!=", "value": ""})
    wb.add_node(text, ODD_IDS[3])
    wb.add_node("MergeNode", ODD_IDS[4])
    wb.add_connection(ODD_IDS[0], "result", ODD_IDS[1], "text")
    wb.add_connection(ODD_IDS[1], "result", ODD_IDS[2], "input_data")
    wb.add_connection(ODD_IDS[2], "true_output", ODD_IDS[3], "text")
    wb.add_connection(ODD_IDS[3], "result", ODD_IDS[4], "first")
    wb.add_connection(ODD_IDS[2], "false_output", ODD_IDS[4], "second")
    return wb.build(workflow_id='odd "wf"')


DOT_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def test_to_dot_has_every_node_and_edge() -> None:
    workflow = odd_workflow()
    dot = workflow.to_dot()
    strings = [json.loads(s) for s in DOT_STRING.findall(dot)]
    bare = DOT_STRING.sub("S", dot)
    # Outside quoted strings, the text is plain DOT syntax with balanced brackets.
    assert bare.startswith("digraph S {")
    assert bare.count("{") == bare.count("}") == 1
    assert bare.count("[") == bare.count("]")
    assert '"' not in bare
    assert set(workflow.nodes) <= set(strings)
    edge_lines = re.findall(rf"^\s*({DOT_STRING.pattern}) -> ({DOT_STRING.pattern}) \[", dot, re.M)
    assert sorted((json.loads(a), json.loads(b)) for a, b in edge_lines) == sorted(
        (e.source, e.target) for e in workflow.edges
    )
    assert "shape=diamond" in dot  # the switch


def test_to_dot_keeps_non_ascii_text_readable() -> None:
    wb = WorkflowBuilder()
    wb.add_node(text, "café", {"text": "x"})
    wb.add_node(text, "b")
    wb.add_connection("café", "result.rows", "b", "text")
    dot = wb.build().to_dot()
    assert "\\u" not in dot
    assert '"café"' in dot
    assert "rows → text" in dot


def test_to_mermaid_has_every_node_and_edge_with_safe_ids() -> None:
    workflow = odd_workflow()
    mermaid = workflow.to_mermaid()
    lines = mermaid.splitlines()
    assert lines[0] == "flowchart LR"
    node_lines = [line for line in lines[1:] if "-->" not in line]
    edge_lines = [line for line in lines[1:] if "-->" in line]
    labels: dict[str, str] = {}
    for line in node_lines:
        match = re.fullmatch(r'\s+(n\d+)(?:\["(.*)"\]|\{"(.*)"\})', line)
        assert match, line
        label = match.group(2) if match.group(2) is not None else match.group(3)
        assert '"' not in label
        labels[match.group(1)] = label.replace("#quot;", '"').split("<br/>")[0]
    assert sorted(labels.values()) == sorted(workflow.nodes)
    by_label = {v: k for k, v in labels.items()}
    found = []
    for line in edge_lines:
        match = re.fullmatch(r'\s+(n\d+) -->\|"([^"]*)"\| (n\d+)', line)
        assert match, line
        found.append((labels[match.group(1)], labels[match.group(3)]))
    assert sorted(found) == sorted((e.source, e.target) for e in workflow.edges)
    assert by_label[ODD_IDS[2]] + "{" in mermaid  # the switch is a rhombus
