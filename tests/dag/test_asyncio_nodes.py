"""Kailash AsyncNodes written for asyncio run from the Trio engine (an asyncio loop in a thread)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import sniffio
import trio

from trioworks.dag import AsyncLocalRuntime, AsyncNode, NodeParameter, WorkflowBuilder
from trioworks.dag._asyncio_bridge import uses_asyncio

pytestmark = pytest.mark.filterwarnings("ignore:.*CUSTOM NODE USAGE CORRECT:UserWarning")


class AsyncioNode(AsyncNode):
    def get_parameters(self) -> dict[str, Any]:
        return {}

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        pair = await asyncio.gather(asyncio.sleep(0, "a"), asyncio.sleep(0, "b"))
        return {"pair": pair, "library": sniffio.current_async_library(), **kwargs}


class TrioNode(AsyncNode):
    def get_parameters(self) -> dict[str, Any]:
        return {"pair": NodeParameter(name="pair", type=list, required=False)}

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        return {"library": sniffio.current_async_library(), **kwargs}


class PlainNode(AsyncNode):
    def get_parameters(self) -> dict[str, Any]:
        return {}

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        return {"library": sniffio.current_async_library()}


class DeclaredNode(PlainNode):
    async_library = "asyncio"


def test_detection_is_per_class() -> None:
    assert uses_asyncio(AsyncioNode)
    assert not uses_asyncio(TrioNode)
    assert not uses_asyncio(PlainNode)  # awaits nothing library-specific: stays on Trio
    assert uses_asyncio(DeclaredNode)


def test_a_bad_async_library_value_is_named() -> None:
    class Bad(PlainNode):
        async_library = "curio"

    with pytest.raises(ValueError, match=r"Bad\.async_library must be 'asyncio' or 'trio'"):
        uses_asyncio(Bad)


async def test_asyncio_and_trio_nodes_run_in_one_workflow() -> None:
    builder = WorkflowBuilder()
    builder.add_node(AsyncioNode, "aio", {})
    builder.add_node(TrioNode, "trio", {})
    builder.add_node(DeclaredNode, "declared", {})
    builder.connect("aio", "trio", mapping={"pair": "pair"})
    results, _ = await AsyncLocalRuntime().execute_workflow_async(builder.build(), {})
    assert results["aio"]["pair"] == ["a", "b"]
    assert results["aio"]["library"] == "asyncio"
    assert results["trio"] == {"library": "trio", "pair": ["a", "b"]}
    assert results["declared"] == {"library": "asyncio"}


def test_an_asyncio_node_runs_alone_from_sync_code() -> None:
    assert AsyncioNode().execute()["pair"] == ["a", "b"]


async def test_cancelling_the_run_cancels_the_asyncio_task() -> None:
    cancelled = threading.Event()
    token = trio.lowlevel.current_trio_token()
    scope = trio.CancelScope()

    class Hangs(AsyncNode):
        def get_parameters(self) -> dict[str, Any]:
            return {}

        async def async_run(self, **kwargs: Any) -> dict[str, Any]:
            token.run_sync_soon(scope.cancel)  # cancel the run once this node is running
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return {}

    builder = WorkflowBuilder()
    builder.add_node(Hangs, "hangs", {})
    with scope:
        await AsyncLocalRuntime().execute_workflow_async(builder.build(), {})
    assert scope.cancelled_caught
    # The run returned only after the asyncio task saw its cancellation and the thread ended.
    assert cancelled.is_set()


async def test_an_asyncio_node_error_names_the_node() -> None:
    class Fails(AsyncNode):
        def get_parameters(self) -> dict[str, Any]:
            return {}

        async def async_run(self, **kwargs: Any) -> dict[str, Any]:
            await asyncio.sleep(0)
            raise ValueError("boom")

    builder = WorkflowBuilder()
    builder.add_node(Fails, "fails", {})
    with pytest.raises(Exception, match=r"fails.*ValueError: boom"):
        await AsyncLocalRuntime().execute_workflow_async(builder.build(), {})


async def test_async_code_using_asyncio_runs_on_asyncio() -> None:
    builder = WorkflowBuilder()
    code = "import asyncio\nimport sniffio\nawait asyncio.sleep(0)\nresult = {'x': x * 2, 'lib': sniffio.current_async_library()}"
    builder.add_node("AsyncPythonCodeNode", "aio", {"code": code})
    builder.add_node(
        "AsyncPythonCodeNode", "native", {"code": "import trio\nawait trio.sleep(0)\nresult = 1"}
    )
    results, _ = await AsyncLocalRuntime().execute_workflow_async(builder.build(), {"aio": {"x": 21}})
    assert results["aio"] == {"result": {"x": 42, "lib": "asyncio"}}
    assert results["native"] == {"result": 1}
