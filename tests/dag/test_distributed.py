"""DistributedRuntime against the real server (SQLite, in process) and an in-process dag worker."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trioworks.dag import (
    AsyncLocalRuntime,
    DistributedRuntime,
    NodeStatus,
    RemoteNodeError,
    RetryPolicy,
    Workflow,
    WorkflowBuilder,
    WorkflowExecutionError,
    WorkflowResult,
    WorkflowValidationError,
    compile_workflow,
)
from trioworks.demo import build_workflow, resources
from trioworks.server import Server, ServerConfig
from trioworks.worker import Worker, WorkerConfig, dag_activities

CREDENTIALS = {"client_id": "client", "client_secret": "s3cret"}


@asynccontextmanager
async def serving(folder: Path) -> AsyncIterator[str]:
    """A server on SQLite in ``folder`` and one dag worker, both in this process."""
    config = ServerConfig(db=str(folder / "dag.db"), port=0, clients={"client": "s3cret"})
    async with trio.open_nursery() as nursery:
        url = await nursery.start(Server(config).run)
        worker = Worker(
            WorkerConfig(api_url=url, worker="dag", poll_interval=0.01, **CREDENTIALS),
            dag_activities(resources()),
        )
        await nursery.start(worker.run)
        yield url
        await worker.drain(force=True)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def dag_server(tmp_path: Path) -> AsyncIterator[str]:
    async with serving(tmp_path) as url:
        yield url


def runtime(url: str, **options: Any) -> DistributedRuntime:
    return DistributedRuntime(url, **CREDENTIALS, **options)


def plus_one(x: int) -> int:
    return x + 1


def double(x: int) -> int:
    return x * 2


def add_inputs(**inputs: Any) -> int:
    return sum(v for v in inputs.values() if isinstance(v, int)) + 1


def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


async def test_demo_etl_same_results_as_local(dag_server: str) -> None:
    local = await AsyncLocalRuntime(resource_registry=resources()).execute_workflow_async(build_workflow())
    remote = await runtime(dag_server).execute_workflow_async(build_workflow())
    assert remote.statuses == local.statuses
    assert remote.skip_reasons == local.skip_reasons
    for node in ("aggregate", "merge", "store"):
        assert remote.results[node] == local.results[node]
    # the retried publisher: the same instance on the worker sees its retry, as locally
    assert remote.results["publish"]["result"]["attempt"] == 2
    assert {k: v for k, v in remote.results["publish"]["result"].items() if k != "attempt"} == {
        k: v for k, v in local.results["publish"]["result"].items() if k != "attempt"
    }


async def test_failure_fails_fast_naming_the_node(dag_server: str) -> None:
    wb = WorkflowBuilder()
    wb.add_node(plus_one, "a")
    wb.add_node(boom, "b")
    wb.add_node(double, "c")
    wb.add_connection("a", "result", "b", "x")
    wb.add_connection("b", "result", "c", "x")
    with pytest.raises(WorkflowExecutionError) as caught:
        await runtime(dag_server).execute_workflow_async(wb.build("fails"), {"a": {"x": 1}})
    assert caught.value.node_id == "b"
    cause = caught.value.__cause__
    assert isinstance(cause, RemoteNodeError)
    assert (cause.error_type, str(cause)) == ("ValueError", "boom 2")
    assert caught.value.result is not None
    assert caught.value.result.statuses["a"] is NodeStatus.COMPLETED
    assert caught.value.result.statuses["c"] is NodeStatus.PENDING


async def test_missing_package_on_the_worker_is_named(dag_server: str) -> None:
    wb = WorkflowBuilder()
    wb.add_node(plus_one, "a")
    definition = compile_workflow(wb.build("imports"))
    definition["activities"][0]["parameters"]["node"]["function"] = "no_such_pkg.mod:fn"
    from trioworks.client import AsyncClient

    async with AsyncClient(dag_server, **CREDENTIALS) as client:
        await client.deploy(definition)
        started = await client.start_workflow(definition["name"], inputs={"nodes": {"a": {"x": 1}}})
        body = await client.wait_for_workflow(started["workflow_id"], poll_interval=0.02)
    error = body["activities"][0]["error_details"]
    assert error["code"] == "NODE_IMPORT_ERROR"
    assert "no_such_pkg" in error["message"] and "install" in error["message"]


def test_a_lambda_cannot_travel() -> None:
    wb = WorkflowBuilder()
    wb.add_node(lambda x: x, "lam")
    with pytest.raises(WorkflowValidationError, match=r"node 'lam'.*importable"):
        compile_workflow(wb.build("lam"))


# -- the property: random DAGs, distributed == local ------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> tuple[Workflow, dict[str, Any]]:
    """Small random DAGs of code and function nodes, switches and merges; some fail; some retry."""
    wb = WorkflowBuilder()
    n = draw(st.integers(2, 7))
    kinds: dict[str, str] = {}
    for i in range(n):
        node = f"n{i}"
        kind = draw(st.sampled_from(["code", "func", "fail", "switch", "switch", "merge"])) if i else "code"
        preds = sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
        if kind in ("switch", "merge") and not preds:
            kind = "code"
        if kind == "switch":
            wb.add_node("SwitchNode", node, {"operator": ">", "value": draw(st.integers(0, 6))})
            source = f"n{preds[0]}"
            wb.add_connection(source, _out(kinds[source], draw), node, "input_data")
        elif kind == "merge":
            wb.add_node("MergeNode", node)
            for j, p in enumerate(preds):
                wb.add_connection(f"n{p}", _out(kinds[f"n{p}"], draw), node, f"data{j + 1}")
        elif kind == "func":
            retry = RetryPolicy(max_attempts=2, base_delay=0.0, jitter=0.0) if draw(st.booleans()) else None
            wb.add_node(add_inputs, node, retry=retry)
            for j, p in enumerate(preds):
                wb.add_connection(f"n{p}", _out(kinds[f"n{p}"], draw), node, f"in_{j}")
        else:
            names = [f"in_{j}" for j in range(len(preds))]
            code = (
                "result = "
                + (" + ".join(f"({name} if isinstance({name}, int) else 0)" for name in names) or "seed")
                + " + 1"
            )
            if kind == "fail":
                code = "raise ValueError('bad ' + str(" + (names[0] if names else "seed") + "))"
            retry = RetryPolicy(max_attempts=2, base_delay=0.0, jitter=0.0) if draw(st.booleans()) else None
            wb.add_node("PythonCodeNode", node, {"code": code, **({} if names else {"seed": i})}, retry=retry)
            for name, p in zip(names, preds, strict=True):
                wb.add_connection(f"n{p}", _out(kinds[f"n{p}"], draw), node, name)
        kinds[node] = kind
    return wb.build("prop"), {}


def _out(kind: str, draw: st.DrawFn) -> str:
    if kind == "switch":
        return draw(st.sampled_from(["true_output", "false_output"]))
    return "result"


def _outcome(result: WorkflowResult) -> tuple[Any, ...]:
    errors = {n: (getattr(e, "error_type", type(e).__name__), str(e)) for n, e in result.errors.items()}
    return result.statuses, result.skip_reasons, result.results, errors


@settings(max_examples=10, deadline=None)
@given(case=dags(), continue_on_error=st.just(True))
async def test_distributed_equals_local(
    case: tuple[Workflow, dict[str, Any]], continue_on_error: bool
) -> None:
    workflow, inputs = case
    local = await AsyncLocalRuntime(continue_on_error=True).execute_workflow_async(workflow, inputs)
    with tempfile.TemporaryDirectory() as folder:
        async with serving(Path(folder)) as url:
            remote = await runtime(url, continue_on_error=True).execute_workflow_async(workflow, inputs)
    assert _outcome(remote) == _outcome(local)


@settings(max_examples=6, deadline=None)
@given(case=dags())
async def test_distributed_fails_fast_like_local(case: tuple[Workflow, dict[str, Any]]) -> None:
    workflow, inputs = case
    try:
        local: WorkflowResult | WorkflowExecutionError = await AsyncLocalRuntime().execute_workflow_async(
            workflow, inputs
        )
    except WorkflowExecutionError as exc:
        local = exc
    with tempfile.TemporaryDirectory() as folder:
        async with serving(Path(folder)) as url:
            try:
                remote: WorkflowResult | WorkflowExecutionError = await runtime(url).execute_workflow_async(
                    workflow, inputs
                )
            except WorkflowExecutionError as exc:
                remote = exc
    assert type(remote) is type(local)
    if isinstance(local, WorkflowResult):
        assert isinstance(remote, WorkflowResult)
        assert _outcome(remote) == _outcome(local)
    else:
        assert isinstance(remote, WorkflowExecutionError)
        assert remote.result is not None and local.result is not None
        # which failing node stops the run first may differ; each is one that fails locally too
        assert remote.node_id in {n for n, s in _fails(workflow).items() if s}
        for node, status in remote.result.statuses.items():
            if status is NodeStatus.COMPLETED and local.result.statuses[node] is NodeStatus.COMPLETED:
                assert remote.result.results[node] == local.result.results[node]


def _fails(workflow: Workflow) -> dict[str, bool]:
    plan = workflow.plan()
    return {n: bool(s.source and "raise" in s.source) for n, s in plan.nodes.items()}


async def test_node_ids_that_are_no_template_names(dag_server: str) -> None:
    wb = WorkflowBuilder()
    ids = ["load-data", "2nd", "and", "x.y", "INPUT"]
    wb.add_node(plus_one, ids[0])
    for previous, node in itertools.pairwise(ids):
        wb.add_node(plus_one, node)
        wb.add_connection(previous, "result", node, "x")
    result = await runtime(dag_server).execute_workflow_async(wb.build("names"), {"load-data": {"x": 0}})
    assert result.results == {node: {"result": i + 1} for i, node in enumerate(ids)}


def test_the_definition_is_deterministic() -> None:
    wb = WorkflowBuilder()
    wb.add_node(plus_one, "a", timeout=2.0, retry=RetryPolicy(max_attempts=3, base_delay=1.0))
    assert compile_workflow(wb.build("same")) == compile_workflow(wb.build("same"))
    settings = compile_workflow(wb.build("same"))["activities"][0]["settings"]
    assert settings["timeout_seconds"] == 2 * 3 + 1 + 2 + 5


def test_only_a_merge_reads_whether_its_edges_are_live() -> None:
    """Fail-fast: the server's conditions skip any other node with a dead input, so its edges carry
    no ``live`` template for the server to render (one per edge of a 1,000-wide join)."""
    wb = WorkflowBuilder()
    wb.add_node(plus_one, "a")
    wb.add_node("SwitchNode", "route", {"operator": ">", "value": 1})
    wb.add_node(plus_one, "after")
    wb.add_node("MergeNode", "join")
    wb.add_connection("a", "result", "route", "input_data")
    wb.add_connection("route", "true_output", "after", "x")
    wb.add_connection("route", "false_output", "join", "data1")
    wb.add_connection("after", "result", "join", "data2")
    activities = {a["key"]: a for a in compile_workflow(wb.build("live"))["activities"]}
    edges = {key: a["parameters"]["edges"] for key, a in activities.items()}
    assert all("live" not in e for key in ("route", "after") for e in edges[key])
    assert [e["live"] for e in edges["join"]] == [
        '{{ route.status == "completed" and route.error is none and "false_output" in route.out }}',
        '{{ after.status == "completed" and after.error is none }}',
    ]
    # "after" is skipped by its condition instead
    assert "true_output" in activities["after"]["depends_on"][0]["condition"]
    coe = compile_workflow(wb.build("live"), continue_on_error=True)["activities"]
    assert all("live" not in e and "error" in e for a in coe for e in a["parameters"]["edges"])
