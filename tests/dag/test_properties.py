"""Property tests of the DAG scheduler over random DAGs.

Each example builds a random DAG (edges only from lower to higher index, so it is acyclic),
with async nodes sleeping on an autojumping ``MockClock`` and sync nodes doing a trivial amount of work
in real threads. Every node computes ``(index + sum(inputs)) % MOD``, so the runtime's
results can be compared with a plain sequential evaluation in topological order.

Hypothesis and pytest-trio fixtures do not mix, so each example runs its own ``trio.run``.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioworks.dag import (
    AsyncLocalRuntime,
    NodeEvent,
    NodeStatus,
    Workflow,
    WorkflowBuilder,
    WorkflowExecutionError,
    WorkflowResult,
)

MOD = 1_000_003

PROPERTY_SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- the random DAG ------------------------------------------------------------


@dataclass(frozen=True)
class PlanNode:
    index: int
    kind: str  # "async" or "sync"
    duration: float  # virtual seconds slept by an async node
    parents: tuple[int, ...]

    @property
    def node_id(self) -> str:
        return f"n{self.index}"


@dataclass(frozen=True)
class Plan:
    nodes: tuple[PlanNode, ...]
    insertion: tuple[int, ...]  # order of add_node calls: the runtime must not rely on it

    def children(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {n.index: [] for n in self.nodes}
        for n in self.nodes:
            for p in n.parents:
                out[p].append(n.index)
        return out

    def descendants(self, roots: Iterable[int]) -> set[int]:
        """Strict transitive dependents of ``roots`` (a root is included only if another reaches it)."""
        children = self.children()
        seen: set[int] = set()
        stack = [c for r in roots for c in children[r]]
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(children[n])
        return seen

    def expected(self) -> dict[int, int]:
        """Sequential evaluation in index order (a topological order)."""
        values: dict[int, int] = {}
        for n in self.nodes:
            values[n.index] = value_of(n.index, [values[p] for p in n.parents])
        return values


def value_of(index: int, inputs: Iterable[int]) -> int:
    return (index + sum(inputs)) % MOD


@st.composite
def plans(
    draw: st.DrawFn,
    *,
    max_nodes: int = 25,
    kinds: tuple[str, ...] = ("async", "sync"),
    durations: tuple[float, ...] = (0, 0.5, 1, 2, 5),
) -> Plan:
    n = draw(st.integers(1, max_nodes))
    nodes = []
    for i in range(n):
        parents: list[int] = []
        if i:
            parents = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=min(i, 5)))
        kind = draw(st.sampled_from(kinds))
        duration = draw(st.sampled_from(durations))
        nodes.append(PlanNode(i, kind, duration, tuple(sorted(parents))))
    insertion = draw(st.permutations(range(n)))
    return Plan(tuple(nodes), tuple(insertion))


# --- instrumented node bodies ----------------------------------------------------


class NodeFailure(Exception):
    def __init__(self, index: int) -> None:
        super().__init__(f"node n{index} fails on purpose")
        self.index = index


@dataclass
class Probe:
    """What the node bodies saw: a global start/done log and concurrency counts."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    log: list[tuple[str, int]] = field(default_factory=list)  # ("start" | "done", index)
    running: int = 0
    max_running: int = 0
    threads: int = 0
    max_threads: int = 0
    finish_times: dict[int, float] = field(default_factory=dict)
    failed_at: float | None = None

    def enter(self, index: int, in_thread: bool) -> None:
        with self.lock:
            self.log.append(("start", index))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            if in_thread:
                self.threads += 1
                self.max_threads = max(self.max_threads, self.threads)

    def done(self, index: int) -> None:
        with self.lock:
            self.log.append(("done", index))

    def failed(self, index: int, at: float) -> None:
        with self.lock:
            self.log.append(("fail", index))
            self.failed_at = at

    def leave(self, in_thread: bool) -> None:
        with self.lock:
            self.running -= 1
            if in_thread:
                self.threads -= 1

    def started(self) -> set[int]:
        return {i for what, i in self.log if what == "start"}

    def position(self, what: str, index: int) -> int:
        return self.log.index((what, index))


def make_body(node: PlanNode, probe: Probe, fail: bool) -> Callable[..., Any]:
    i = node.index
    if node.kind == "async":

        async def body(**inputs: int) -> int:
            probe.enter(i, in_thread=False)
            try:
                await trio.sleep(node.duration)
                if fail:
                    probe.failed(i, trio.current_time())
                    raise NodeFailure(i)
                probe.finish_times[i] = trio.current_time()
                probe.done(i)
                return value_of(i, inputs.values())
            finally:
                probe.leave(in_thread=False)

    else:

        def body(**inputs: int) -> int:
            probe.enter(i, in_thread=True)
            try:
                time.sleep(0)  # a real thread hop; sync nodes do no virtual-time work
                if fail:
                    raise NodeFailure(i)
                probe.done(i)
                return value_of(i, inputs.values())
            finally:
                probe.leave(in_thread=True)

    # Give the body the exact parameters its connections feed, so the builder and the
    # preflight check see a normal callable (not a **kwargs one that accepts anything).
    params = [inspect.Parameter(f"x{p}", inspect.Parameter.KEYWORD_ONLY) for p in node.parents]
    body.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return body


def build(plan: Plan, probe: Probe, failing: frozenset[int] = frozenset()) -> Workflow:
    wb = WorkflowBuilder()
    for i in plan.insertion:
        node = plan.nodes[i]
        wb.add_node(make_body(node, probe, fail=i in failing), node.node_id)
    for node in plan.nodes:
        for p in node.parents:
            wb.add_connection(f"n{p}", "result", node.node_id, f"x{p}")
    return wb.build()


def run(
    runtime: AsyncLocalRuntime, workflow: Workflow, probe: Probe | None = None
) -> tuple[WorkflowResult | WorkflowExecutionError, dict[str, Any]]:
    """Run once on a fresh MockClock; return the result (or the error) and what was seen after it."""
    seen: dict[str, Any] = {}

    async def main() -> WorkflowResult | WorkflowExecutionError:
        try:
            outcome: WorkflowResult | WorkflowExecutionError = await runtime.execute_workflow_async(workflow)
        except WorkflowExecutionError as exc:
            outcome = exc
        seen["returned_at"] = trio.current_time()
        if probe is not None:
            with probe.lock:
                seen["running_at_return"] = probe.running
                seen["log_at_return"] = list(probe.log)
            # Let a long virtual time pass: nothing may start or still be running afterwards.
            await trio.sleep(10_000)
            with probe.lock:
                seen["log_later"] = list(probe.log)
        return outcome

    # A tiny positive threshold, not 0: with 0 the clock jumps whenever every task is blocked,
    # including while one waits on a worker thread, and that churn costs ~10 ms per thread hop.
    # Virtual times are exactly the same; only the real-time wait before each jump differs.
    outcome = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=1e-4))
    return outcome, seen


# --- properties ------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(plan=plans())
def test_a_node_starts_only_after_all_its_inputs_finished(plan: Plan) -> None:
    probe = Probe()
    events: list[NodeEvent] = []
    runtime = AsyncLocalRuntime(
        max_concurrent_nodes=25, on_node_start=events.append, on_node_finish=events.append
    )
    result, _ = run(runtime, build(plan, probe))
    assert isinstance(result, WorkflowResult)

    # Inside the bodies: every parent's body was done before the child's body began.
    for node in plan.nodes:
        for p in node.parents:
            assert probe.position("done", p) < probe.position("start", node.index)

    # Through the callbacks: one start and one finish per node, parents' finish first.
    starts = [e.node_id for e in events if e.status is NodeStatus.RUNNING]
    finishes = [e.node_id for e in events if e.status is NodeStatus.COMPLETED]
    assert sorted(starts) == sorted(n.node_id for n in plan.nodes)
    assert sorted(finishes) == sorted(starts)
    position = {(e.node_id, e.status): k for k, e in enumerate(events)}
    for node in plan.nodes:
        assert position[(node.node_id, NodeStatus.RUNNING)] < position[(node.node_id, NodeStatus.COMPLETED)]
        for p in node.parents:
            assert position[(f"n{p}", NodeStatus.COMPLETED)] < position[(node.node_id, NodeStatus.RUNNING)]


@PROPERTY_SETTINGS
@given(plan=plans(), node_limit=st.integers(1, 6), thread_limit=st.integers(1, 4))
def test_concurrency_never_exceeds_the_limits(plan: Plan, node_limit: int, thread_limit: int) -> None:
    probe = Probe()
    runtime = AsyncLocalRuntime(max_concurrent_nodes=node_limit, thread_pool_size=thread_limit)
    result, _ = run(runtime, build(plan, probe))
    assert isinstance(result, WorkflowResult)

    assert 1 <= probe.max_running <= node_limit
    assert probe.max_threads <= min(thread_limit, node_limit)
    # The runtime's gauges wrap the bodies, so they see at least what the bodies saw.
    assert probe.max_running <= result.metrics["max_concurrency"] <= node_limit
    assert probe.max_threads <= result.metrics["max_threads"] <= thread_limit
    if all(n.kind == "async" for n in plan.nodes):
        assert result.metrics["max_threads"] == 0


@PROPERTY_SETTINGS
@given(plan=plans(), node_limit=st.integers(1, 8))
def test_results_equal_a_sequential_topological_evaluation(plan: Plan, node_limit: int) -> None:
    probe = Probe()
    result, _ = run(AsyncLocalRuntime(max_concurrent_nodes=node_limit), build(plan, probe))
    assert isinstance(result, WorkflowResult)

    expected = plan.expected()
    assert result.results == {f"n{i}": {"result": v} for i, v in expected.items()}
    assert set(result.statuses.values()) == {NodeStatus.COMPLETED}
    assert result.errors == {}
    assert result.ok
    assert result.metrics["node_count"] == result.metrics["completed"] == len(plan.nodes)
    # Every body ran exactly once.
    assert sorted(i for what, i in probe.log if what == "start") == list(range(len(plan.nodes)))


@st.composite
def plans_with_failures(draw: st.DrawFn, *, max_failing: int) -> tuple[Plan, frozenset[int]]:
    plan = draw(plans())
    k = draw(st.integers(1, min(max_failing, len(plan.nodes))))
    failing = draw(st.lists(st.integers(0, len(plan.nodes) - 1), min_size=k, max_size=k, unique=True))
    return plan, frozenset(failing)


@PROPERTY_SETTINGS
@given(case=plans_with_failures(max_failing=1), node_limit=st.integers(1, 8))
def test_fail_fast_stops_everything_and_starts_no_dependent(
    case: tuple[Plan, frozenset[int]], node_limit: int
) -> None:
    plan, failing = case
    (bad,) = failing
    probe = Probe()
    outcome, seen = run(
        AsyncLocalRuntime(max_concurrent_nodes=node_limit), build(plan, probe, failing), probe
    )

    assert isinstance(outcome, WorkflowExecutionError)
    assert outcome.node_id == f"n{bad}"
    assert f"n{bad}" in str(outcome)
    assert isinstance(outcome.__cause__, NodeFailure) and outcome.__cause__.index == bad

    # No transitive dependent of the failing node ever started.
    dependents = plan.descendants([bad])
    assert not dependents & probe.started()
    # Nothing was still running at return, and nothing started afterwards.
    assert seen["running_at_return"] == 0
    assert seen["log_later"] == seen["log_at_return"]

    partial = outcome.result
    statuses = partial.statuses
    assert statuses[f"n{bad}"] is NodeStatus.FAILED
    assert set(partial.errors) == {f"n{bad}"}
    assert NodeStatus.RUNNING not in statuses.values()
    assert NodeStatus.SKIPPED not in statuses.values()  # fail-fast skips nothing: it stops
    for i in dependents:
        assert statuses[f"n{i}"] is NodeStatus.PENDING
    started = probe.started()
    for node in plan.nodes:
        if node.index not in started:
            # A node whose body never ran was never reached, or was stopped while queued.
            assert statuses[node.node_id] in (NodeStatus.PENDING, NodeStatus.CANCELLED)
    # The partial results are exactly the completed nodes, with the right values.
    expected = plan.expected()
    completed = {n for n, s in statuses.items() if s is NodeStatus.COMPLETED}
    assert set(partial.results) == completed
    for node_id in completed:
        assert partial.results[node_id] == {"result": expected[int(node_id[1:])]}


@st.composite
def async_plans_with_one_failure(draw: st.DrawFn) -> tuple[Plan, frozenset[int]]:
    plan = draw(plans(kinds=("async",), durations=(0, 1, 2, 3)))
    return plan, frozenset({draw(st.integers(0, len(plan.nodes) - 1))})


@PROPERTY_SETTINGS
@given(case=async_plans_with_one_failure(), node_limit=st.integers(1, 8))
def test_fail_fast_cancels_at_the_moment_of_failure(
    case: tuple[Plan, frozenset[int]], node_limit: int
) -> None:
    """All-async DAGs, so virtual time is exact: the run ends the instant the node fails,
    and every node still running then is CANCELLED."""
    plan, failing = case
    (bad,) = failing
    probe = Probe()
    outcome, seen = run(
        AsyncLocalRuntime(max_concurrent_nodes=node_limit), build(plan, probe, failing), probe
    )

    assert isinstance(outcome, WorkflowExecutionError)
    assert outcome.node_id == f"n{bad}"
    assert seen["returned_at"] == probe.failed_at
    done = {i for what, i in probe.log if what == "done"}
    for i in probe.started() - done - {bad}:
        assert outcome.result.statuses[f"n{i}"] is NodeStatus.CANCELLED
    for i in done:
        assert outcome.result.statuses[f"n{i}"] is NodeStatus.COMPLETED


@PROPERTY_SETTINGS
@given(case=async_plans_with_one_failure(), node_limit=st.integers(1, 8))
def test_fail_fast_starts_no_body_after_the_failure(
    case: tuple[Plan, frozenset[int]], node_limit: int
) -> None:
    plan, failing = case
    (bad,) = failing
    probe = Probe()
    outcome, _ = run(AsyncLocalRuntime(max_concurrent_nodes=node_limit), build(plan, probe, failing), probe)
    assert isinstance(outcome, WorkflowExecutionError)
    after_failure = probe.log[probe.log.index(("fail", bad)) + 1 :]
    assert [i for what, i in after_failure if what == "start"] == []


@PROPERTY_SETTINGS
@given(case=plans_with_failures(max_failing=3), node_limit=st.integers(1, 8))
def test_continue_on_error_skips_exactly_the_dependents_of_failures(
    case: tuple[Plan, frozenset[int]], node_limit: int
) -> None:
    plan, failing = case
    probe = Probe()
    runtime = AsyncLocalRuntime(max_concurrent_nodes=node_limit, continue_on_error=True)
    result, _ = run(runtime, build(plan, probe, failing))
    assert isinstance(result, WorkflowResult)

    skipped = plan.descendants(failing)  # includes a failing node that depends on another one
    failed = failing - skipped
    expected = plan.expected()
    for node in plan.nodes:
        status = result.statuses[node.node_id]
        if node.index in skipped:
            assert status is NodeStatus.SKIPPED, node
            assert result.skip_reasons[node.node_id] == "input failed"
        elif node.index in failed:
            assert status is NodeStatus.FAILED, node
            assert isinstance(result.errors[node.node_id], NodeFailure)
        else:
            assert status is NodeStatus.COMPLETED, node
            assert result.results[node.node_id] == {"result": expected[node.index]}
    assert set(result.errors) == {f"n{i}" for i in failed}
    assert set(result.results) == {n.node_id for n in plan.nodes if n.index not in failing | skipped}
    assert not skipped & probe.started()
    assert not result.ok


@PROPERTY_SETTINGS
@given(plan=plans(kinds=("async",)))
def test_without_a_limit_every_node_finishes_at_its_earliest_possible_time(plan: Plan) -> None:
    """Ready-queue scheduling: a node finishes at max(parents' finish) + its duration, exactly.

    A level-barrier scheduler would make nodes wait for the slowest node of the previous level.
    """
    probe = Probe()
    result, _ = run(AsyncLocalRuntime(max_concurrent_nodes=len(plan.nodes)), build(plan, probe))
    assert isinstance(result, WorkflowResult)

    earliest: dict[int, float] = {}
    for node in plan.nodes:
        earliest[node.index] = max((earliest[p] for p in node.parents), default=0.0) + node.duration
    start = min(probe.finish_times[n.index] - n.duration for n in plan.nodes if not n.parents)
    for node in plan.nodes:
        assert probe.finish_times[node.index] - start == pytest.approx(earliest[node.index])
        assert result.node_durations[node.node_id] == pytest.approx(node.duration)
    assert result.total_duration == pytest.approx(max(earliest.values()))


@PROPERTY_SETTINGS
@given(n=st.integers(1, 25), limit=st.integers(1, 8), duration=st.sampled_from([0.5, 1, 3]))
def test_a_limited_runtime_keeps_every_slot_busy(n: int, limit: int, duration: float) -> None:
    """``n`` independent async nodes under ``limit`` take ceil(n / limit) rounds, and fill the limit."""
    plan = Plan(tuple(PlanNode(i, "async", duration, ()) for i in range(n)), tuple(range(n)))
    result, _ = run(AsyncLocalRuntime(max_concurrent_nodes=limit), build(plan, Probe()))
    assert isinstance(result, WorkflowResult)
    assert result.total_duration == pytest.approx(math.ceil(n / limit) * duration)
    assert result.metrics["max_concurrency"] == min(n, limit)


async def test_a_fast_branch_does_not_wait_for_a_slow_sibling(autojump_clock: trio.testing.MockClock) -> None:
    """a -> slow (10 s) and a -> fast (1 s) -> after (1 s): ``after`` is done at t = 2, not 11."""
    finished: dict[str, float] = {}

    def sleeper(name: str, seconds: float) -> Callable[..., Any]:
        async def node(data: object = None) -> str:
            await trio.sleep(seconds)
            finished[name] = trio.current_time() - t0
            return name

        return node

    wb = WorkflowBuilder()
    wb.add_node(sleeper("a", 0), "a")
    wb.add_node(sleeper("slow", 10), "slow")
    wb.add_node(sleeper("fast", 1), "fast")
    wb.add_node(sleeper("after", 1), "after")
    wb.connect("a", "slow")
    wb.connect("a", "fast")
    wb.connect("fast", "after")
    t0 = trio.current_time()
    result = await AsyncLocalRuntime().execute_workflow_async(wb.build())

    assert finished["after"] == pytest.approx(2)
    assert finished["slow"] == pytest.approx(10)
    assert result.total_duration == pytest.approx(10)
    assert result.node_durations["after"] == pytest.approx(1)
