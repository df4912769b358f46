"""Large node values on the DistributedRuntime: inline up to the threshold, files past it."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from test_distributed import _outcome, dags

from trioworks.client import AsyncClient
from trioworks.dag import (
    AsyncLocalRuntime,
    DistributedRuntime,
    NodeStatus,
    RemoteNodeError,
    Workflow,
    WorkflowBuilder,
    WorkflowExecutionError,
    compile_workflow,
)
from trioworks.dag import _values as values
from trioworks.dag._distributed import large_outputs
from trioworks.server import Server, ServerConfig
from trioworks.worker import Worker, WorkerConfig, dag_activities

CREDENTIALS = {"client_id": "client", "client_secret": "s3cret"}
LIMIT = 1024
WRAPPER = len('{"result":""}')  # a code node's string result n long encodes to n + WRAPPER bytes


@asynccontextmanager
async def serving(folder: Path, **server: Any) -> AsyncIterator[str]:
    """A server on SQLite in ``folder`` (``server``: more ServerConfig) and one dag worker."""
    config = ServerConfig(db=str(folder / "dag.db"), port=0, clients={"client": "s3cret"}, **server)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(Server(config).run)
        worker = Worker(
            WorkerConfig(api_url=url, worker="dag", poll_interval=0.01, **CREDENTIALS),
            dag_activities(max_inline_bytes=10 * LIMIT),  # the workflows below set their own
        )
        await nursery.start(worker.run)
        yield url
        await worker.drain(force=True)
        nursery.cancel_scope.cancel()


def runtime(url: str, **options: Any) -> DistributedRuntime:
    return DistributedRuntime(url, **CREDENTIALS, max_inline_bytes=LIMIT, **options)


# -- the encoding: json_chunks and offload ----------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=8)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4) | st.integers() | st.booleans(), inner, max_size=6)
    ),
    max_leaves=40,
)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_pieces_join_to_json_dumps(value: Any) -> None:
    # tiny pieces, so that every way of splitting (slices of lists, of strings) is taken
    with mock.patch.object(values, "_PIECE_ITEMS", 3), mock.patch.object(values, "_PIECE_CHARS", 5):
        assert "".join(values.json_chunks(value)) == compact(value)


def _circular() -> list[Any]:
    loop: list[Any] = [1, {"a": []}]
    loop[1]["a"].append(loop)
    return loop


def _deep() -> list[Any]:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep, 1]
    return deep


@pytest.mark.parametrize("bad", [{1, 2}, float("nan"), {(1, 2): 3}, [1, object()], _circular(), _deep()])
def test_pieces_refuse_what_json_refuses(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError, RecursionError)):
        compact([bad])
    with pytest.raises((TypeError, ValueError, RecursionError)):
        "".join(values.json_chunks({"result": [bad]}))
    reason = values.not_json_reason({"ok": 1, "result": [bad]})
    assert reason is not None and reason.startswith("output 'result' is ")


def test_the_same_list_twice_is_no_cycle() -> None:
    shared = [[1], [2, [3]]]
    assert "".join(values.json_chunks([shared, shared])) == compact([shared, shared])


@settings(max_examples=80, deadline=None)
@given(
    value=json_values,
    limit=st.integers(0, 400),
    loop_pieces=st.integers(1, 6),
    loop_bytes=st.integers(0, 100),
)
async def test_offload_exactly_past_the_limit(
    value: Any, limit: int, loop_pieces: int, loop_bytes: int
) -> None:
    # small pieces and few on the loop: the thread finishes both small and large values
    text = compact(value)
    with (
        tempfile.TemporaryDirectory() as folder,
        mock.patch.object(values, "_PIECE_ITEMS", 3),
        mock.patch.object(values, "_PIECE_CHARS", 5),
        mock.patch.object(values, "_LOOP_PIECES", loop_pieces),
        mock.patch.object(values, "_LOOP_BYTES", loop_bytes),
    ):

        async def temp_dir() -> Path:
            return Path(folder)

        written = await values.offload(value, limit, temp_dir, trio.CapacityLimiter(1))
        if len(text) <= limit:
            assert written is None
            assert not os.listdir(folder)
        else:
            assert written is not None and written.size == len(text)
            assert written.path.read_text() == text
            assert await values.decode_file(str(written.path), trio.CapacityLimiter(1)) == json.loads(text)


# -- on a server and a worker -----------------------------------------------------------


def blob_workflow(sizes: list[int]) -> Any:
    """Per size n: ``make_n`` returns a string n long (n + 13 bytes of JSON), ``len_n`` its length,
    ``route_n`` switches a record holding it, ``pick_n`` reads the blob through the switch, and
    ``merge_n`` merges the record and the string."""
    wb = WorkflowBuilder()
    for n in sizes:
        wb.add_node("PythonCodeNode", f"make_{n}", {"code": "result = 'x' * n", "n": n})
        wb.add_node("PythonCodeNode", f"len_{n}", {"code": "result = len(data)"})
        wb.add_connection(f"make_{n}", "result", f"len_{n}", "data")
        wb.add_node("PythonCodeNode", f"record_{n}", {"code": "result = {'kind': 'big', 'blob': data}"})
        wb.add_connection(f"make_{n}", "result", f"record_{n}", "data")
        wb.add_node("SwitchNode", f"route_{n}", {"condition_field": "kind", "operator": "==", "value": "big"})
        wb.add_connection(f"record_{n}", "result", f"route_{n}", "input_data")
        wb.add_node("PythonCodeNode", f"pick_{n}", {"code": "result = blob[:3] + str(len(blob))"})
        wb.add_connection(f"route_{n}", "true_output.blob", f"pick_{n}", "blob")
        wb.add_node("PythonCodeNode", f"never_{n}", {"code": "result = 1"})
        wb.add_connection(f"route_{n}", "false_output", f"never_{n}", "data")
        wb.add_node("MergeNode", f"merge_{n}")
        wb.add_connection(f"make_{n}", "result", f"merge_{n}", "data1")
        wb.add_connection(f"record_{n}", "result", f"merge_{n}", "data2")
    return wb.build("blobs")


# around the threshold: 1011 + 13 = 1024 bytes stays inline, 1012 + 13 travels as a file
SIZES = [10, LIMIT - WRAPPER, LIMIT - WRAPPER + 1, 3 * LIMIT, 300 * LIMIT]


async def test_values_straddling_the_threshold_equal_the_local_runtime(tmp_path: Path) -> None:
    workflow = blob_workflow(SIZES)
    local = await AsyncLocalRuntime().execute_workflow_async(workflow)
    # a 64 KiB body limit: the 300 KiB values could not travel in a row at all
    async with serving(tmp_path, max_body_bytes=64 * 1024) as url:
        remote = await runtime(url).execute_workflow_async(workflow)
        async with AsyncClient(url, **CREDENTIALS) as client:
            body = await client.get_workflow(remote.run_id)
            stored = await client.get_activity_output(remote.run_id, f"make_{SIZES[-1]}")
            # the file is a file output of the activity, readable at its download_url
            (listed,) = stored["files"]
            assert listed["filename"] == "out.json"
            assert listed["download_url"].endswith(f"/activities/make_{SIZES[-1]}/files/out.json")
            async with client.open_file(remote.run_id, f"make_{SIZES[-1]}", "out.json") as response:
                content = b"".join([chunk async for chunk in response.aiter_bytes()])
            assert json.loads(content) == local.results[f"make_{SIZES[-1]}"]
        # nothing stored in the database holds a value past the threshold (rows, parameters, history)
        # (the database and its -wal/-shm files; dag.db.files/ is the file store)
        paths = await trio.to_thread.run_sync(lambda: [p for p in tmp_path.glob("dag.db*") if p.is_file()])
        stored_bytes = b"".join([await trio.Path(path).read_bytes() for path in paths])
    assert b"x" * (LIMIT - WRAPPER) in stored_bytes  # the largest inline value is in there
    assert b"x" * (LIMIT - WRAPPER + 1) not in stored_bytes
    assert remote.statuses == local.statuses
    assert remote.skip_reasons == local.skip_reasons
    assert remote.results == local.results
    rows = {
        a["activity_key"]: {o["name"]: o["value"] for o in a["outputs"] or []} for a in body["activities"]
    }
    for n in SIZES:
        inline = n + WRAPPER <= LIMIT
        # the row holds the value, or only the reference and a stub: never the large value
        assert ("out_file" in rows[f"make_{n}"]) is not inline
        assert len(json.dumps(rows[f"make_{n}"])) < (n + 400 if inline else 400)
        assert rows[f"route_{n}"].get("out") == (
            {"true_output": {"kind": "big", "blob": "x" * n}} if n + 40 <= LIMIT else {"true_output": None}
        )


@settings(max_examples=6, deadline=None)
@given(case=dags(), limit=st.sampled_from([0, 16, 10**6]))
async def test_random_dags_with_values_as_files_equal_local(
    case: tuple[Workflow, dict[str, Any]], limit: int
) -> None:
    # 0: every output travels as a file; 16: a node's {"result": n} stays inline, a switch's travels
    workflow, inputs = case
    local = await AsyncLocalRuntime(continue_on_error=True).execute_workflow_async(workflow, inputs)
    with tempfile.TemporaryDirectory() as folder:
        async with serving(Path(folder)) as url:
            remote = await DistributedRuntime(
                url, **CREDENTIALS, continue_on_error=True, max_inline_bytes=limit
            ).execute_workflow_async(workflow, inputs)
    assert _outcome(remote) == _outcome(local)


async def test_a_large_value_fails_the_node_on_a_worker_that_cannot_read_it(tmp_path: Path) -> None:
    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "a", {"code": "result = 'x' * 5000"})
    wb.add_node("PythonCodeNode", "b", {"code": "result = len(text)"})
    wb.add_connection("a", "result", "b", "text")
    definition = compile_workflow(wb.build("gone"), max_inline_bytes=LIMIT)
    missing = "postgres://00000000-0000-0000-0000-000000000000/a/out.json"
    definition["activities"][1]["parameters"]["edges"][0]["file"] = missing
    async with serving(tmp_path) as url, AsyncClient(url, **CREDENTIALS) as client:
        await client.deploy(definition)
        started = await client.start_workflow(definition["name"], inputs={"nodes": {"a": {}, "b": {}}})
        body = await client.wait_for_workflow(started["workflow_id"], poll_interval=0.02)
    error = {a["activity_key"]: a.get("error_details") for a in body["activities"]}["b"]
    assert error["code"] == "NODE_ERROR"
    assert error["message"].startswith("NodeInputError: node 'b', input 'text': node 'a''s output")
    assert missing in error["message"] and "downloading it failed" in error["message"]
    assert "404" in error["message"] or "not found" in error["message"]


async def test_the_result_names_the_node_whose_file_is_gone() -> None:
    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "big", {"code": "result = 1"})
    plan = wb.build("gone").plan()
    body = {
        "activities": [
            {
                "activity_key": "big",
                "status": "completed",
                "outputs": [{"name": "out_file", "type": "value", "value": "postgres://abc-1/big/out.json"}],
            }
        ]
    }

    class Gone:
        def open_file(self, *args: str) -> Any:
            raise LookupError(f"file {args} not found")

    with pytest.raises(
        WorkflowExecutionError, match=r"node 'big': its output travels as file .*not found"
    ) as e:
        await large_outputs(plan, Gone(), body, trio.CapacityLimiter(1))
    assert e.value.node_id == "big"


async def test_an_output_that_is_not_json_fails_its_node_naming_the_output(tmp_path: Path) -> None:
    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "a", {"code": "result = {1, 2}"})
    wb.add_node("PythonCodeNode", "b", {"code": "result = 1"})
    wb.add_connection("a", "result", "b", "x")
    # the local runtime hands the set on as it is
    local = await AsyncLocalRuntime().execute_workflow_async(wb.build("sets"))
    assert local.results["a"] == {"result": {1, 2}}
    async with serving(tmp_path) as url:
        with pytest.raises(WorkflowExecutionError) as caught:
            await runtime(url).execute_workflow_async(wb.build("sets"))
        assert caught.value.node_id == "a"
        cause = caught.value.__cause__
        assert isinstance(cause, RemoteNodeError) and cause.error_type == "NodeOutputError"
        assert str(cause).startswith("node 'a': output 'result' is not JSON (Object of type set")
        # continue_on_error: recorded as the node's error, its dependents skipped
        result = await runtime(url, continue_on_error=True).execute_workflow_async(wb.build("sets"))
    assert result.statuses == {"a": NodeStatus.FAILED, "b": NodeStatus.SKIPPED}
    assert result.errors["a"].error_type == "NodeOutputError"  # type: ignore[attr-defined]
