"""Linear-chain fusion: a sync node's sole sync successor runs in the same worker thread.

The chain must look exactly as if each node had run alone: results, statuses, failures
naming the node, nothing started after a cancellation. Real threads, bounded by fail_after.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import trio

from trioworks.core import CancelOutcome
from trioworks.dag import (
    AsyncLocalRuntime,
    NodeInputError,
    NodeStatus,
    WorkflowBuilder,
    WorkflowExecutionError,
)
from trioworks.dag._scheduler import _Run


def step(x: int) -> int:
    return x + 1


def chain(n: int, fn: Any = step) -> WorkflowBuilder:
    wb = WorkflowBuilder()
    for i in range(n):
        wb.add_node(fn, f"n{i}", x=-1) if i == 0 else wb.add_node(fn, f"n{i}")
        if i:
            wb.add_connection(f"n{i - 1}", "result", f"n{i}", "x")
    return wb


def fusion_plan(runtime: AsyncLocalRuntime, wb: WorkflowBuilder, time_limit: float | None = None) -> dict:
    run = runtime._new_run(wb.build(), None, None)
    run.time_limit = time_limit
    run._plan_fusion()
    assert type(run) is _Run
    return run._fuse_next


def _ignore(event: Any) -> None:
    pass


# Each behaviour is checked fused and unfused (a node callback turns fusion off): same outcome.
@pytest.fixture(params=["fused", "unfused"])
def runtime(request: pytest.FixtureRequest) -> AsyncLocalRuntime:
    return AsyncLocalRuntime() if request.param == "fused" else AsyncLocalRuntime(on_node_finish=_ignore)


def test_a_chain_is_fused_link_by_link() -> None:
    assert fusion_plan(AsyncLocalRuntime(), chain(4)) == {"n0": "n1", "n1": "n2", "n2": "n3"}


def test_fusion_is_off_where_the_loop_is_needed_between_nodes() -> None:
    def noop(event: Any) -> None:
        pass

    assert fusion_plan(AsyncLocalRuntime(on_node_finish=noop), chain(3)) == {}
    assert fusion_plan(AsyncLocalRuntime(abandon_threads=True), chain(3)) == {}
    assert fusion_plan(AsyncLocalRuntime(), chain(3), time_limit=5.0) == {}
    wb = chain(3)
    wb.add_node(step, "side")
    wb.add_connection("n1", "result", "side", "x")  # n1 has two dependents now
    assert fusion_plan(AsyncLocalRuntime(), wb) == {"n0": "n1"}


async def test_a_fused_chain_records_every_node(runtime: AsyncLocalRuntime) -> None:
    with trio.fail_after(10):
        result = await runtime.execute_workflow_async(chain(50).build())
    assert [result.results[f"n{i}"]["result"] for i in range(50)] == list(range(50))
    assert set(result.statuses.values()) == {NodeStatus.COMPLETED}
    assert set(result.node_durations) == {f"n{i}" for i in range(50)}


async def test_a_failing_fused_node_is_named_and_stops_the_chain(runtime: AsyncLocalRuntime) -> None:
    def boom(x: int) -> int:
        if x == 2:
            raise ValueError("bad x")
        return x + 1

    with trio.fail_after(10), pytest.raises(WorkflowExecutionError) as info:
        await runtime.execute_workflow_async(chain(6, boom).build())
    assert info.value.node_id == "n3"
    result = info.value.result
    assert [result.statuses[f"n{i}"] for i in range(6)] == [NodeStatus.COMPLETED] * 3 + [
        NodeStatus.FAILED
    ] + [NodeStatus.PENDING] * 2
    assert "bad x" in str(result.errors["n3"])


async def test_a_bad_path_into_a_fused_node_names_it(runtime: AsyncLocalRuntime) -> None:
    wb = WorkflowBuilder()
    wb.add_node(step, "a", x=1)
    wb.add_node(step, "b")
    wb.add_connection("a", "result.missing", "b", "x")
    with trio.fail_after(10), pytest.raises(WorkflowExecutionError) as info:
        await runtime.execute_workflow_async(wb.build())
    assert info.value.node_id == "b"
    assert isinstance(info.value.result.errors["b"], NodeInputError)
    assert info.value.result.statuses["a"] is NodeStatus.COMPLETED


async def test_cancelling_a_fused_chain_starts_nothing_new(runtime: AsyncLocalRuntime) -> None:
    entered = trio.Event()
    release = threading.Event()
    started: list[int] = []

    def node(x: int) -> int:
        started.append(x)
        if x == 2:
            trio.from_thread.run_sync(entered.set)
            release.wait(5)
        return x + 1

    with trio.fail_after(10):
        with trio.CancelScope() as scope:
            run = runtime._new_run(chain(6, node).build(), None, None)
            async with trio.open_nursery() as nursery:

                async def cancel_then_release() -> None:
                    await entered.wait()
                    scope.cancel()
                    await trio.sleep(0.05)
                    release.set()

                nursery.start_soon(cancel_then_release)
                await run.run(None)
    assert scope.cancelled_caught
    assert started == [-1, 0, 1, 2]  # n3.. never started after the cancellation
    result = run.result
    assert [result.statuses[f"n{i}"] for i in range(6)] == [NodeStatus.COMPLETED] * 3 + [
        NodeStatus.CANCELLED
    ] + [NodeStatus.PENDING] * 2
    assert result.cancel_outcomes == {"n3": CancelOutcome.WAITED}
    assert "n3" not in result.results
