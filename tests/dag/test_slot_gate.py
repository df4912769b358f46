"""The slot gate: a node that would only wait for a ``max_concurrent_nodes`` slot gets no task
until one is free; the run's gate task waits for slots on the queue's behalf, oldest first.

Virtual time (``autojump_clock``): the nodes are async.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trioworks.dag import AsyncLocalRuntime, NodeStatus, WorkflowBuilder, WorkflowExecutionError


def fan(width: int, middle: object) -> WorkflowBuilder:
    async def source() -> int:
        return 0

    async def join(**inputs: int) -> int:
        return sum(inputs.values())

    wb = WorkflowBuilder()
    wb.add_node(source, "src")
    for i in range(width):
        wb.add_node(middle, f"s{i}", {"name": i})
        wb.add_connection("src", "result", f"s{i}", "x")
    wb.add_node(join, "join")
    for i in range(width):
        wb.add_connection(f"s{i}", "result", "join", f"x{i}")
    return wb


async def test_waiting_nodes_start_oldest_first_within_the_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    started: dict[int, float] = {}
    running = high = 0

    async def middle(x: int, name: int) -> int:
        nonlocal running, high
        started[name] = trio.current_time()
        running += 1
        high = max(high, running)
        await trio.sleep(1 + name % 3)
        running -= 1
        return x + name

    runtime = AsyncLocalRuntime(max_concurrent_nodes=3)
    result = await runtime.execute_workflow_async(fan(20, middle).build())
    assert result.results["join"]["result"] == sum(range(20))
    # In the order they became ready (nodes started together may run in any order).
    times = [started[i] for i in range(20)]
    assert times == sorted(times)
    assert len(set(times)) > 3  # the limit made most of them wait
    assert high == 3
    assert result.metrics["max_concurrency"] == 3
    assert runtime.node_limiter.borrowed_tokens == 0


async def test_a_failure_starts_none_of_the_waiting_nodes(autojump_clock: trio.testing.MockClock) -> None:
    started: list[int] = []

    async def middle(x: int, name: int) -> int:
        started.append(name)
        await trio.sleep(1)
        if name == 1:
            raise ValueError("bad")
        await trio.sleep(1)
        return x

    runtime = AsyncLocalRuntime(max_concurrent_nodes=2)
    with pytest.raises(WorkflowExecutionError) as info:
        await runtime.execute_workflow_async(fan(10, middle).build())
    assert info.value.node_id == "s1"
    assert sorted(started) == [0, 1]
    statuses = info.value.result.statuses
    assert (statuses["s0"], statuses["s1"]) == (NodeStatus.CANCELLED, NodeStatus.FAILED)
    assert {statuses[f"s{i}"] for i in range(2, 10)} == {NodeStatus.PENDING}
    assert runtime.node_limiter.borrowed_tokens == 0


async def test_a_cancelled_run_gives_back_every_slot(autojump_clock: trio.testing.MockClock) -> None:
    started: list[int] = []

    async def middle(x: int, name: int) -> int:
        started.append(name)
        await trio.sleep(10)
        return x

    runtime = AsyncLocalRuntime(max_concurrent_nodes=4)
    run = runtime._new_run(fan(12, middle).build(), None, None)
    with trio.move_on_after(15) as scope:  # the caller's: 4 running, 4 waiting for the gate
        await run.run(None)
    assert scope.cancelled_caught
    assert sorted(started) == list(range(8))  # the second wave; none after the cancel
    statuses = run.result.statuses
    assert {statuses[f"s{i}"] for i in range(4)} == {NodeStatus.COMPLETED}
    assert {statuses[f"s{i}"] for i in range(4, 8)} == {NodeStatus.CANCELLED}
    assert {statuses[f"s{i}"] for i in range(8, 12)} == {NodeStatus.PENDING}
    assert runtime.node_limiter.borrowed_tokens == 0
    assert runtime.node_limiter.statistics().tasks_waiting == 0


async def test_two_runs_share_the_runtime_limit(autojump_clock: trio.testing.MockClock) -> None:
    running = high = 0

    async def middle(x: int, name: int) -> int:
        nonlocal running, high
        running += 1
        high = max(high, running)
        await trio.sleep(1)
        running -= 1
        return x + name

    runtime = AsyncLocalRuntime(max_concurrent_nodes=4)
    workflow = fan(15, middle).build()
    results = []

    async def one() -> None:
        results.append(await runtime.execute_workflow_async(workflow))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one)
        nursery.start_soon(one)
    assert [r.results["join"]["result"] for r in results] == [sum(range(15))] * 2
    assert high <= 4
    assert runtime.node_limiter.borrowed_tokens == 0
