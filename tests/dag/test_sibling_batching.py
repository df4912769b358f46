"""Sibling batching: ready plain sync nodes share worker threads, replayed on the loop.

A batched run must look exactly as if each node had run as its own task: results, statuses,
events in order, failures naming the node, the limiters never exceeded, nothing started after
a cancellation. Real threads; every wait bounded by fail_after, no wall-clock verdicts.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioworks.core import CancelOutcome
from trioworks.dag import (
    AsyncLocalRuntime,
    NodeStatus,
    NodeTimeoutError,
    WorkflowBuilder,
    WorkflowExecutionError,
)
from trioworks.dag._scheduler import _Run


def source() -> int:
    return 0


def join(**inputs: int) -> int:
    return sum(inputs.values())


def fan(width: int, middle: Any, **middle_options: Any) -> WorkflowBuilder:
    """src -> s0..s{width-1} -> join; sibling i gets name=i."""
    wb = WorkflowBuilder()
    wb.add_node(source, "src")
    for i in range(width):
        wb.add_node(middle, f"s{i}", {"name": i}, **middle_options)
        wb.add_connection("src", "result", f"s{i}", "x")
    wb.add_node(join, "join")
    for i in range(width):
        wb.add_connection(f"s{i}", "result", "join", f"x{i}")
    return wb


def batch_plan(runtime: AsyncLocalRuntime, wb: WorkflowBuilder, time_limit: float | None = None) -> frozenset:
    run = runtime._new_run(wb.build(), None, None)
    run.time_limit = time_limit
    run._plan_fusion()
    assert type(run) is _Run
    return run._batchable


def _ignore(event: Any) -> None:
    pass


# Each behaviour is checked batched and unbatched (a node callback turns batching off).
@pytest.fixture(params=["batched", "unbatched"])
def batched(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "batched")


def runtime_for(batched: bool, **options: Any) -> AsyncLocalRuntime:
    return AsyncLocalRuntime(**options) if batched else AsyncLocalRuntime(on_node_finish=_ignore, **options)


def plus(x: int, name: int) -> int:
    return x + name


def test_plain_sync_nodes_are_batchable_and_the_rest_is_not() -> None:
    async def on_loop(x: int, name: int) -> int:
        return x

    wb = fan(3, plus)
    wb.add_node(plus, "timed", {"name": 0}, timeout=5)
    wb.add_node(plus, "retried", {"name": 0}, retry=2)
    wb.add_node(on_loop, "async", {"name": 0})
    for node in ("timed", "retried", "async"):
        wb.add_connection("src", "result", node, "x")
    assert batch_plan(AsyncLocalRuntime(), wb) == {"src", "s0", "s1", "s2", "join"}
    assert batch_plan(AsyncLocalRuntime(on_node_start=_ignore), wb) == frozenset()
    assert batch_plan(AsyncLocalRuntime(abandon_threads=True), wb) == frozenset()
    assert batch_plan(AsyncLocalRuntime(), wb, time_limit=5.0) == frozenset()


def test_the_head_of_a_fused_chain_is_not_batched() -> None:
    wb = WorkflowBuilder()
    wb.add_node(plus, "a", {"x": 0, "name": 1})
    wb.add_node(plus, "b", {"name": 1})
    wb.add_connection("a", "result", "b", "x")
    assert "a" not in batch_plan(AsyncLocalRuntime(), wb)


async def test_a_wide_fan_out_records_every_node(batched: bool) -> None:
    with trio.fail_after(20):
        result = await runtime_for(batched).execute_workflow_async(fan(200, plus).build())
    assert result.results["join"]["result"] == sum(range(200))
    assert set(result.statuses.values()) == {NodeStatus.COMPLETED}
    assert set(result.node_durations) == set(result.statuses)
    assert result.metrics["max_concurrency"] <= 10
    assert result.metrics["max_threads"] <= 4


async def test_a_failing_sibling_is_named_and_nothing_after_it_starts(batched: bool) -> None:
    ran: list[int] = []

    def boom(x: int, name: int) -> int:
        ran.append(name)
        if name == 3:
            raise ValueError("bad sibling")
        return x + name

    # One thread and one node slot: the siblings run one at a time, in order.
    runtime = runtime_for(batched, thread_pool_size=1, max_concurrent_nodes=1)
    with trio.fail_after(10), pytest.raises(WorkflowExecutionError) as info:
        await runtime.execute_workflow_async(fan(8, boom).build())
    assert info.value.node_id == "s3"
    # Nothing starts after the failure. (Batched siblings run in the order they became ready;
    # unbatched, in the order Trio schedules their tasks.)
    assert ran[-1] == 3 and sorted(set(ran)) == sorted(ran)
    if batched:
        assert ran == [0, 1, 2, 3]
    result = info.value.result
    assert {i: result.statuses[f"s{i}"] for i in range(8)} == {
        i: NodeStatus.FAILED if i == 3 else NodeStatus.COMPLETED if i in ran else NodeStatus.PENDING
        for i in range(8)
    }
    assert "bad sibling" in str(result.errors["s3"])
    assert result.node_durations.keys() >= {f"s{i}" for i in ran}


async def test_a_failing_sibling_under_continue_on_error_skips_only_its_dependents(batched: bool) -> None:
    def boom(x: int, name: int) -> int:
        if name == 3:
            raise ValueError("bad sibling")
        return x + name

    wb = fan(8, boom)
    wb.add_node(plus, "after3", {"name": 0})
    wb.add_connection("s3", "result", "after3", "x")
    runtime = runtime_for(batched, thread_pool_size=2, continue_on_error=True)
    with trio.fail_after(10):
        result = await runtime.execute_workflow_async(wb.build())
    assert result.errors.keys() == {"s3"}
    assert result.statuses["after3"] is result.statuses["join"] is NodeStatus.SKIPPED
    assert all(result.statuses[f"s{i}"] is NodeStatus.COMPLETED for i in range(8) if i != 3)


async def test_a_bad_path_into_a_sibling_names_it(batched: bool) -> None:
    def pair() -> dict[str, int]:
        return {"a": 1}

    wb = WorkflowBuilder()
    wb.add_node(pair, "src")
    wb.add_node(plus, "good", {"name": 1})
    wb.add_node(plus, "bad", {"name": 1})
    wb.add_connection("src", "result.a", "good", "x")
    wb.add_connection("src", "result.missing", "bad", "x")
    with trio.fail_after(10), pytest.raises(WorkflowExecutionError) as info:
        await runtime_for(batched, thread_pool_size=1).execute_workflow_async(wb.build())
    assert info.value.node_id == "bad"
    assert info.value.result.statuses["bad"] is NodeStatus.FAILED


async def test_cancelling_mid_batch_starts_nothing_new(batched: bool) -> None:
    entered = trio.Event()
    release = threading.Event()
    ran: list[int] = []

    def hold(x: int, name: int) -> int:
        ran.append(name)
        if name == 2:
            trio.from_thread.run_sync(entered.set)
            release.wait(5)
        return x + name

    runtime = runtime_for(batched, thread_pool_size=1, max_concurrent_nodes=1)
    with trio.fail_after(10):
        with trio.CancelScope() as scope:
            run = runtime._new_run(fan(6, hold).build(), None, None)
            async with trio.open_nursery() as nursery:

                async def cancel_then_release() -> None:
                    await entered.wait()
                    scope.cancel()
                    await trio.testing.wait_all_tasks_blocked()
                    release.set()

                nursery.start_soon(cancel_then_release)
                await run.run(None)
    assert scope.cancelled_caught
    assert ran[-1] == 2 and sorted(set(ran)) == sorted(ran)  # nothing started after the cancel
    if batched:
        assert ran == [0, 1, 2]
    result = run.result
    assert {i: result.statuses[f"s{i}"] for i in range(6)} == {
        i: NodeStatus.CANCELLED if i == 2 else NodeStatus.COMPLETED if i in ran else NodeStatus.PENDING
        for i in range(6)
    }
    assert result.cancel_outcomes == {"s2": CancelOutcome.WAITED}
    assert "s2" not in result.results
    assert result.statuses["join"] is NodeStatus.PENDING


async def test_a_sibling_with_its_own_timeout_times_out_beside_a_batch(batched: bool) -> None:
    release = threading.Event()

    def hung(x: int) -> int:
        release.wait(5)
        return x

    wb = fan(20, plus)
    wb.add_node(hung, "hung", timeout=0.05)
    wb.add_connection("src", "result", "hung", "x")
    runtime = runtime_for(batched, continue_on_error=True)
    try:
        with trio.fail_after(10):
            result = await runtime.execute_workflow_async(wb.build())
    finally:
        release.set()
    assert isinstance(result.errors["hung"], NodeTimeoutError)
    assert result.cancel_outcomes == {"hung": CancelOutcome.ABANDONED}
    assert result.results["join"]["result"] == sum(range(20))


async def test_events_of_a_batch_are_in_order(batched: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="trioworks.dag")
    wb = fan(30, plus)
    wb.add_node(plus, "tail", {"name": 1})
    wb.add_connection("join", "result", "tail", "x")
    with trio.fail_after(10):
        await runtime_for(batched).execute_workflow_async(wb.build())
    events = [
        (r.node_id, r.status)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "trioworks.dag" and hasattr(r, "node_id")
    ]
    position = {event: i for i, event in enumerate(events)}
    nodes = ["src", *(f"s{i}" for i in range(30)), "join", "tail"]
    assert sorted(events) == sorted((n, s) for n in nodes for s in ("running", "completed"))
    for node in nodes:
        assert position[(node, "running")] < position[(node, "completed")]
    for i in range(30):  # a node starts after its sources completed, and before its dependents
        assert position[("src", "completed")] < position[(f"s{i}", "running")]
        assert position[(f"s{i}", "completed")] < position[("join", "running")]
    assert position[("join", "completed")] < position[("tail", "running")]


# --- the limiters are never exceeded, every node runs once ------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    widths=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    node_slots=st.integers(1, 6),
    thread_slots=st.integers(1, 6),
    blocking=st.sets(st.integers(0, 39), max_size=5),
)
def test_random_fan_outs_respect_the_limiters(
    widths: list[int], node_slots: int, thread_slots: int, blocking: set[int]
) -> None:
    """Layers of fan-outs (each layer's nodes all take the previous layer's join); some nodes
    block briefly (so threads overlap). Counted in the node bodies: at most
    min(node slots, thread slots) at once, every node exactly once, the right sums."""
    lock = threading.Lock()
    running = 0
    high = 0
    calls: dict[str, int] = {}

    def body(me: str, value: int) -> int:
        nonlocal running, high
        with lock:
            running += 1
            high = max(high, running)
            calls[me] = calls.get(me, 0) + 1
        try:
            if int(me.rsplit("_", 1)[1]) in blocking:
                threading.Event().wait(0.001)
            return value
        finally:
            with lock:
                running -= 1

    def middle(x: int, me: str, i: int) -> int:
        return body(me, x + i)

    def gather(me: str, **inputs: int) -> int:
        return body(me, sum(inputs.values()))

    wb = WorkflowBuilder()
    wb.add_node(gather, "join_0", {"me": "join_0"})
    expected = 0
    for layer, width in enumerate(widths, start=1):
        join_id = f"join_{layer}"
        for i in range(width):
            node_id = f"m{layer}_{i}"
            wb.add_node(middle, node_id, {"me": node_id, "i": i})
            wb.add_connection(f"join_{layer - 1}", "result", node_id, "x")
        wb.add_node(gather, join_id, {"me": join_id})
        for i in range(width):
            wb.add_connection(f"m{layer}_{i}", "result", join_id, f"x{i}")
        expected = width * expected + width * (width - 1) // 2
    workflow = wb.build()
    runtime = AsyncLocalRuntime(max_concurrent_nodes=node_slots, thread_pool_size=thread_slots)

    async def main() -> Any:
        with trio.fail_after(30):
            return await runtime.execute_workflow_async(workflow)

    result = trio.run(main)
    assert result.results[f"join_{len(widths)}"]["result"] == expected
    assert calls == dict.fromkeys(workflow.plan().order, 1)
    assert high <= min(node_slots, thread_slots)
    assert result.metrics["max_concurrency"] <= node_slots
    assert set(result.statuses.values()) == {NodeStatus.COMPLETED}
    assert runtime.node_limiter.borrowed_tokens == runtime.thread_limiter.borrowed_tokens == 0
