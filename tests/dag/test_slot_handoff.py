"""Slot hand-off: a ready node that finds no free ``max_concurrent_nodes`` slot waits without a
task of its own; a finishing node task of the same run runs it on its slot, and one stand-in
task waits on the limiter so that a slot freed anywhere (another run, a retried node) reaches
the waiting nodes. Seen from outside, a run must be exactly as before: every node once, the
limit never exceeded, failures and cancellation as without hand-off. Virtual time throughout.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioworks.dag import AsyncLocalRuntime, NodeStatus, RetryPolicy, WorkflowBuilder


class Gauge:
    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.ran: list[str] = []
        self.finished: dict[str, float] = {}

    def node(self, name: str, delay: float, fail: bool = False) -> Any:
        async def body(**_: Any) -> dict[str, Any]:
            self.now += 1
            self.peak = max(self.peak, self.now)
            try:
                await trio.sleep(delay)
            finally:
                self.now -= 1
            self.ran.append(name)
            self.finished[name] = trio.current_time()
            if fail:
                raise ValueError(f"{name} fails")
            return {"v": 1}

        return body


def layered(gauge: Gauge, layers: list[list[float]], failing: set[str] = frozenset()) -> WorkflowBuilder:  # type: ignore[assignment]
    b = WorkflowBuilder()
    previous: list[str] = []
    for i, delays in enumerate(layers):
        current = []
        for j, delay in enumerate(delays):
            name = f"n{i}_{j}"
            b.add_node(gauge.node(name, delay, name in failing), name)
            if previous:
                b.add_connection(previous[j % len(previous)], "v", name, "x")
            current.append(name)
        previous = current
    return b


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layers=st.lists(
        st.lists(st.sampled_from([0.0, 0.01, 0.05, 1.0]), min_size=1, max_size=30), min_size=1, max_size=4
    ),
    cap=st.integers(min_value=1, max_value=8),
)
def test_every_node_runs_once_within_the_limit(layers: list[list[float]], cap: int) -> None:
    gauge = Gauge()
    runtime = AsyncLocalRuntime(max_concurrent_nodes=cap)

    async def main() -> Any:
        return await runtime.execute_workflow_async(layered(gauge, layers).build())

    result = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    names = {f"n{i}_{j}" for i, delays in enumerate(layers) for j in range(len(delays))}
    assert sorted(gauge.ran) == sorted(names)
    assert gauge.peak <= cap
    assert set(result.nodes_with(NodeStatus.COMPLETED)) == names
    limiter = runtime.node_limiter
    assert limiter.available_tokens == limiter.total_tokens


async def test_a_slot_freed_by_another_run_reaches_the_waiting_nodes(autojump_clock: Any) -> None:
    # Run A holds both slots with one long node and one short node, with 20 nodes waiting;
    # run B's node holds... nothing: A's own short node finishes first and B is not waiting,
    # so A's waiting nodes get every slot A frees; a second run sharing the runtime still
    # gets its turn through the limiter (its task waits there with A's stand-in).
    gauge_a, gauge_b = Gauge(), Gauge()
    runtime = AsyncLocalRuntime(max_concurrent_nodes=2)
    a = layered(gauge_a, [[0.0], [100.0] + [1.0] * 20]).build()
    b = layered(gauge_b, [[1.0]]).build()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(runtime.execute_workflow_async, a)
        await trio.sleep(0.5)
        with trio.fail_after(50):  # far below A's 100 s node: B must not wait for it
            await runtime.execute_workflow_async(b)
        assert gauge_b.ran == ["n0_0"]
    assert len(gauge_a.ran) == 22


async def test_a_retried_node_frees_its_slot_for_the_waiting_nodes(autojump_clock: Any) -> None:
    # A node with a retry policy gives its slot back between attempts; the waiting siblings
    # (no task of their own) must get it through the stand-in, not wait for a hand-off.
    gauge = Gauge()
    attempts = []

    async def flaky(**_: Any) -> dict[str, Any]:
        attempts.append(trio.current_time())
        if len(attempts) < 3:
            raise ValueError("not yet")
        return {"v": 1}

    b = WorkflowBuilder()
    b.add_node(gauge.node("root", 0.0), "root")
    b.add_node(flaky, "flaky", retry=RetryPolicy(max_attempts=3, base_delay=10.0, jitter=0.0))
    b.add_connection("root", "v", "flaky", "x")
    for i in range(10):
        b.add_node(gauge.node(f"s{i}", 1.0), f"s{i}")
        b.add_connection("root", "v", f"s{i}", "x")
    start = trio.current_time()
    result = await AsyncLocalRuntime(max_concurrent_nodes=2).execute_workflow_async(b.build())
    assert result.statuses["flaky"] is NodeStatus.COMPLETED
    assert len(gauge.ran) == 11
    # The ten 1 s siblings ran on both slots during the retry's first 10 s backoff.
    assert max(gauge.finished.values()) - start <= 7


@pytest.mark.parametrize("continue_on_error", [True, False])
async def test_a_failing_node_and_its_waiting_siblings(autojump_clock: Any, continue_on_error: bool) -> None:
    gauge = Gauge()
    b = layered(gauge, [[0.0], [1.0] * 12], failing={"n1_3"})
    runtime = AsyncLocalRuntime(max_concurrent_nodes=2, continue_on_error=continue_on_error)
    if continue_on_error:
        result = await runtime.execute_workflow_async(b.build())
        assert result.statuses["n1_3"] is NodeStatus.FAILED
        assert len(result.nodes_with(NodeStatus.COMPLETED)) == 12  # the root and 11 siblings
    else:
        with pytest.raises(Exception, match="n1_3 fails"):
            await runtime.execute_workflow_async(b.build())
        assert len(gauge.ran) <= 5  # nothing started after the failure but what was running
    limiter = runtime.node_limiter
    assert limiter.available_tokens == limiter.total_tokens
