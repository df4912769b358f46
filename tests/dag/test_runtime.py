"""AsyncLocalRuntime behaviours: inputs, errors, timeouts, retries, cancellation, offload,
routing, resources, callbacks and the Kailash result shapes.

Virtual time (``autojump_clock``) wherever the nodes are async; the tests about real threads
and processes use real time, each bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing

from trioworks.core import CancelOutcome, RetryPolicy
from trioworks.dag import (
    AsyncLocalRuntime,
    CodeNodeError,
    MappingPathError,
    NodeInputError,
    NodeStatus,
    NodeTimeoutError,
    Resource,
    ResourceRegistry,
    Workflow,
    WorkflowBuilder,
    WorkflowExecutionError,
    WorkflowResult,
    WorkflowTimeoutError,
)

if TYPE_CHECKING:
    from conftest import EventLog  # the `events` fixture's type

# --- process node bodies: top level, so the worker process can import them -------------


def cpu_sum(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def sleep_in_process(port: int, seconds: float) -> str:
    # Tell the test it is running by connecting back (an event, not a polled file), then sleep.
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(f"{os.getpid()}\n".encode())
        time.sleep(seconds)
    return "woke up"


def fail_in_process(message: str) -> None:
    raise ValueError(message)


# --- helpers -------------------------------------------------------------------


def sleeper(seconds: float, value: Any = None, log: list[str] | None = None) -> Callable[..., Any]:
    """An async node that sleeps ``seconds`` then returns ``value`` (or its ``data`` input)."""

    async def node(data: Any = None) -> Any:
        await trio.sleep(seconds)
        if log is not None:
            log.append(f"{trio.current_time():g}")
        return value if value is not None else data

    return node


async def boom_after(seconds: float) -> None:
    await trio.sleep(seconds)
    raise ValueError("boom")


def single(
    fn: Callable[..., Any], node_id: str = "n", config: dict[str, Any] | None = None, **kw: Any
) -> Workflow:
    wb = WorkflowBuilder()
    wb.add_node(fn, node_id, config, **kw)
    return wb.build()


# --- code nodes ----------------------------------------------------------------------


async def test_kailash_code_nodes_sync_then_async(autojump_clock: trio.testing.MockClock) -> None:
    wb = WorkflowBuilder()
    wb.add_node(
        "PythonCodeNode",
        "double",
        {"code": "import threading\nresult = {'value': x * 2, 'thread': threading.get_ident()}"},
    )
    wb.add_node(
        "AsyncPythonCodeNode",
        "later",
        {"code": "import trio\nawait trio.sleep(2)\nresult = {'value': value + offset}", "offset": 1},
    )
    wb.add_connection("double", "result.value", "later", "value")
    t0 = trio.current_time()
    result = await AsyncLocalRuntime().execute_workflow_async(wb.build(), {"x": 20})

    assert result.results["double"]["result"]["value"] == 40
    assert result.results["double"]["result"]["thread"] != threading.get_ident()  # ran in a worker thread
    assert result.results["later"] == {"result": {"value": 41}}
    assert trio.current_time() - t0 == pytest.approx(2)
    assert result.node_durations["later"] == pytest.approx(2)


@pytest.mark.parametrize("node_type", ["PythonCodeNode", "AsyncPythonCodeNode"])
async def test_code_node_that_never_sets_result(node_type: str) -> None:
    wb = WorkflowBuilder(strict=True)  # Kailash exports the variables instead: strict opts in
    wb.add_node(node_type, "forgetful", {"code": "answer = 42"})
    with pytest.raises(WorkflowExecutionError) as info:
        await AsyncLocalRuntime().execute_workflow_async(wb.build())
    assert info.value.node_id == "forgetful"
    cause = info.value.__cause__
    assert isinstance(cause, CodeNodeError)
    assert "'forgetful'" in str(cause) and "`result`" in str(cause)
    assert info.value.result.statuses["forgetful"] is NodeStatus.FAILED


async def test_code_node_exception_is_the_cause() -> None:
    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "div", {"code": "result = 1 / zero", "zero": 0})
    with pytest.raises(WorkflowExecutionError, match=r"node 'div' failed: ZeroDivisionError") as info:
        await AsyncLocalRuntime().execute_workflow_async(wb.build())
    assert isinstance(info.value.__cause__, ZeroDivisionError)


# --- inputs --------------------------------------------------------------------------


def echo(p: str) -> str:
    return p


def no_p(z: int = 0) -> int:
    return z


async def test_input_scoping_and_precedence() -> None:
    wb = WorkflowBuilder()
    wb.add_node(echo, "from_config", {"p": "config"})
    wb.add_node(echo, "shared_beats_config", {"p": "config"})
    wb.add_node(echo, "scoped_beats_shared", {"p": "config"})
    wb.add_node(echo, "connection_beats_all", {"p": "config"})
    wb.add_node(no_p, "takes_no_p")
    wb.add_connection("from_config", "result", "connection_beats_all", "p")
    workflow = wb.build()

    result = await AsyncLocalRuntime().execute_workflow_async(
        workflow,
        {
            "from_config": {"p": "config"},  # (scoped, same as its config)
            "scoped_beats_shared": {"p": "scoped"},
            "connection_beats_all": {"p": "scoped"},
            "p": "shared",
        },
    )
    values = {n: r["result"] for n, r in result.results.items()}
    assert values == {
        "from_config": "config",
        "shared_beats_config": "shared",
        "scoped_beats_shared": "scoped",
        "connection_beats_all": "config",  # from_config's output
        "takes_no_p": 0,  # a shared key goes only to nodes that take it
    }

    # Without workflow inputs, config gives the defaults.
    plain = await AsyncLocalRuntime().execute_workflow_async(workflow)
    assert plain.results["shared_beats_config"] == {"result": "config"}


async def test_a_scoped_input_the_node_does_not_take() -> None:
    with pytest.raises(NodeInputError) as info:
        await AsyncLocalRuntime().execute_workflow_async(single(echo, "e"), {"e": {"q": 1, "p": "x"}})
    assert (info.value.node_id, info.value.field) == ("e", "q")
    assert "its inputs: ['p']" in str(info.value)


async def test_missing_required_input_fails_before_any_node_runs() -> None:
    ran: list[str] = []

    async def first() -> int:
        ran.append("first")
        return 1

    def needs_y(x: int, y: int) -> int:
        ran.append("needs_y")
        return x + y

    wb = WorkflowBuilder()
    wb.add_node(first, "first")
    wb.add_node(needs_y, "needs_y")
    wb.add_connection("first", "result", "needs_y", "x")
    with pytest.raises(NodeInputError) as info:
        await AsyncLocalRuntime().execute_workflow_async(wb.build(), {"yy": 2})
    assert ran == []
    assert (info.value.node_id, info.value.field) == ("needs_y", "y")
    message = str(info.value)
    assert "required" in message
    assert "did you mean 'yy'?" in message


async def test_mapping_paths_into_the_output() -> None:
    async def load() -> dict[str, Any]:
        return {"rows": [{"id": 7}, {"id": 8}], "count": 2}

    def pick(first: int, last: int, count: int, everything: dict[str, Any]) -> tuple[int, int, int, int]:
        return first, last, count, len(everything)

    wb = WorkflowBuilder()
    wb.add_node(load, "load")
    wb.add_node(pick, "pick")
    wb.connect(
        "load",
        "pick",
        mapping={"result.rows.0.id": "first", "result.rows.-1.id": "last", "result.count": "count"},
    )
    wb.add_connection("load", "result", "pick", "everything")
    result = await AsyncLocalRuntime().execute_workflow_async(wb.build())
    assert result.results["pick"] == {"result": (7, 8, 2, 2)}


@pytest.mark.parametrize(
    ("path", "error", "fragments"),
    [
        (
            "result.row",
            MappingPathError,
            ["'result.row'", "no key 'row'", "did you mean 'rows'?", "['count', 'rows']"],
        ),
        ("result.rows.5", NodeInputError, ["'result.rows.5'", "reaches a list before '5'"]),
        ("result.count.x", NodeInputError, ["'result.count.x'", "reaches a int before 'x'"]),
    ],
)
async def test_a_bad_mapping_path_at_run_time(
    path: str, error: type[Exception], fragments: list[str]
) -> None:
    async def load() -> dict[str, Any]:
        return {"rows": [1, 2], "count": 2}

    def use(value: Any) -> Any:
        return value

    wb = WorkflowBuilder(strict=True)  # Kailash gives None for a missing key: strict opts in
    wb.add_node(load, "load")
    wb.add_node(use, "use")
    wb.add_connection("load", path, "use", "value")
    with pytest.raises(WorkflowExecutionError) as info:
        await AsyncLocalRuntime().execute_workflow_async(wb.build())
    assert info.value.node_id == "use"
    cause = info.value.__cause__
    assert type(cause) is error
    assert isinstance(cause, NodeInputError)
    assert (cause.node_id, cause.field) == ("use", "value")
    message = str(cause)
    assert "node 'use'" in message and "node 'load'" in message
    for fragment in fragments:
        assert fragment in message
    if isinstance(cause, MappingPathError):
        assert (cause.source, cause.path) == ("load", path)
    assert info.value.result.results == {"load": {"result": {"rows": [1, 2], "count": 2}}}


async def test_execute_takes_a_built_workflow() -> None:
    wb = WorkflowBuilder()
    wb.add_node(echo, "e")
    with pytest.raises(TypeError, match=r"build\(\)"):
        await AsyncLocalRuntime().execute_workflow_async(wb)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="workflow inputs must be a mapping"):
        await AsyncLocalRuntime().execute_workflow_async(wb.build(), ["p"])  # type: ignore[arg-type]


async def test_a_workflow_runs_many_times() -> None:
    workflow = single(echo, "e")
    runtime = AsyncLocalRuntime()
    one = await runtime.execute_workflow_async(workflow, {"p": "1"})
    two = await runtime.execute_workflow_async(workflow, {"p": "2"})
    assert (one.results["e"], two.results["e"]) == ({"result": "1"}, {"result": "2"})
    assert one.run_id != two.run_id
    assert one.workflow_id == two.workflow_id == workflow.workflow_id


# --- timeouts and retries ----------------------------------------------------------


async def test_node_timeout(autojump_clock: trio.testing.MockClock) -> None:
    wb = WorkflowBuilder()
    wb.add_node(sleeper(100, "late"), "slow", timeout=3)
    wb.add_node(sleeper(1, "ok"), "fine", timeout=3)
    t0 = trio.current_time()
    result = await AsyncLocalRuntime(continue_on_error=True).execute_workflow_async(wb.build())

    assert trio.current_time() - t0 == pytest.approx(3)
    error = result.errors["slow"]
    assert isinstance(error, NodeTimeoutError) and isinstance(error, TimeoutError)
    assert (error.node_id, error.timeout) == ("slow", 3)
    assert "'slow' timed out after 3 s" in str(error)
    assert result.statuses == {"slow": NodeStatus.FAILED, "fine": NodeStatus.COMPLETED}
    assert result.metrics["timeouts"] == 1
    assert result.node_durations["slow"] == pytest.approx(3)


async def test_node_timeout_fails_fast(autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(WorkflowExecutionError) as info:
        await AsyncLocalRuntime().execute_workflow_async(single(sleeper(100), "slow", timeout=0.5))
    assert info.value.node_id == "slow"
    assert isinstance(info.value.__cause__, NodeTimeoutError)
    assert info.value.result.metrics["timeouts"] == 1


async def test_retries_with_backoff_free_the_node_slot(
    autojump_clock: trio.testing.MockClock, events: EventLog
) -> None:
    """flaky fails twice then succeeds, 5 s apart; with one node slot, gate -> other run in between."""
    attempts: list[float] = []
    finished: dict[str, float] = {}

    async def flaky() -> str:
        attempts.append(trio.current_time() - t0)
        if len(attempts) < 3:
            raise ConnectionError(f"attempt {len(attempts)}")
        return "third time lucky"

    def timed(name: str) -> Callable[..., Any]:
        async def node(data: Any = None) -> str:
            await trio.sleep(1)
            finished[name] = trio.current_time() - t0
            return name

        return node

    wb = WorkflowBuilder()
    wb.add_node(flaky, "flaky", retry=RetryPolicy(max_attempts=3, base_delay=5, factor=1, jitter=0))
    wb.add_node(timed("gate"), "gate")
    wb.add_node(timed("other"), "other")
    wb.connect("gate", "other")
    runtime = AsyncLocalRuntime(max_concurrent_nodes=1, on_node_start=events, on_node_finish=events)
    t0 = trio.current_time()
    result = await runtime.execute_workflow_async(wb.build())

    assert result.results["flaky"] == {"result": "third time lucky"}
    assert result.metrics["retries"] == 2
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] == pytest.approx(5)
    assert attempts[2] - attempts[1] == pytest.approx(5)
    # Whichever of flaky and gate got the slot first, other ran during flaky's first backoff:
    # it could not have if flaky kept its slot while waiting to retry.
    assert finished["other"] < attempts[1]
    assert result.metrics["max_concurrency"] == 1
    assert events.starts().count("flaky") == 1
    (flaky_finish,) = [e for e in events.finishes() if e.node_id == "flaky"]
    assert flaky_finish.attempt == 3
    assert flaky_finish.status is NodeStatus.COMPLETED


async def test_retries_exhausted_raise_the_last_error(autojump_clock: trio.testing.MockClock) -> None:
    calls = 0

    async def always() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"call {calls}")

    with pytest.raises(WorkflowExecutionError) as info:
        await AsyncLocalRuntime().execute_workflow_async(single(always, "always", retry=2))
    assert calls == 3
    assert str(info.value.__cause__) == "call 3"
    assert info.value.result.metrics["retries"] == 2


async def test_a_timed_out_attempt_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    attempts = 0

    async def slow_then_fast() -> str:
        nonlocal attempts
        attempts += 1
        await trio.sleep(10 if attempts < 3 else 0)
        return "done"

    policy = RetryPolicy(max_attempts=3, base_delay=1, factor=1, jitter=0)
    t0 = trio.current_time()
    result = await AsyncLocalRuntime().execute_workflow_async(
        single(slow_then_fast, "s", timeout=2, retry=policy)
    )
    assert result.results["s"] == {"result": "done"}
    assert (result.metrics["timeouts"], result.metrics["retries"]) == (2, 2)
    assert trio.current_time() - t0 == pytest.approx(2 + 1 + 2 + 1)


async def test_workflow_execution_timeout(autojump_clock: trio.testing.MockClock) -> None:
    wb = WorkflowBuilder()
    wb.add_node(sleeper(1, "fast"), "fast")
    wb.add_node(sleeper(1), "after_fast")
    wb.add_node(sleeper(100, "slow"), "slow")
    wb.add_node(sleeper(1), "after_slow")
    wb.connect("fast", "after_fast")
    wb.connect("slow", "after_slow")
    t0 = trio.current_time()
    with pytest.raises(WorkflowTimeoutError) as info:
        await AsyncLocalRuntime(execution_timeout=5).execute_workflow_async(wb.build())

    assert trio.current_time() - t0 == pytest.approx(5)
    error = info.value
    assert isinstance(error, WorkflowExecutionError) and isinstance(error, TimeoutError)
    assert error.node_id is None
    assert "timed out after 5 s" in str(error) and "'slow'" in str(error)
    assert error.result.results == {"fast": {"result": "fast"}, "after_fast": {"result": "fast"}}
    assert error.partial_results is error.result.results
    assert error.result.statuses == {
        "fast": NodeStatus.COMPLETED,
        "after_fast": NodeStatus.COMPLETED,
        "slow": NodeStatus.CANCELLED,
        "after_slow": NodeStatus.PENDING,
    }
    assert error.result.node_durations["slow"] == pytest.approx(5)
    assert error.result.total_duration == pytest.approx(5)


async def test_execution_timeout_per_call(autojump_clock: trio.testing.MockClock) -> None:
    runtime = AsyncLocalRuntime(execution_timeout=50)
    workflow = single(sleeper(10, "x"), "s")
    assert (await runtime.execute_workflow_async(workflow)).results["s"] == {"result": "x"}
    with pytest.raises(WorkflowTimeoutError):
        await runtime.execute_workflow_async(workflow, execution_timeout=2)


class HungCall:
    """A sync node body that blocks in its thread like a hung call: it returns only when the
    test releases it (in its cleanup, or after a minute as a safety net, so that a runtime that
    waited for it would fail these tests instead of hanging them)."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.release = threading.Event()
        self.returned = threading.Event()
        self._net = threading.Timer(60, self.release.set)
        self._net.daemon = True

    def __call__(self) -> str:
        trio.from_thread.run_sync(self.entered.set)
        self.release.wait()
        self.returned.set()
        return "too late"

    async def expire_after_entry(self, clock: trio.testing.MockClock, seconds: float) -> None:
        # Virtual time, moved by hand: a deadline passes only once the thread is in the call.
        self._net.start()
        await self.entered.wait()
        clock.jump(seconds)

    def done(self) -> None:
        self._net.cancel()
        self.release.set()


@pytest.mark.parametrize("where", ["node timeout", "workflow timeout"])
async def test_a_timeout_abandons_a_hung_thread_and_returns_at_the_deadline(
    mock_clock: trio.testing.MockClock, where: str
) -> None:
    # Issue 10, case 7: the run used to wait for the thread (forever, for a hung call).
    hung = HungCall()
    wb = WorkflowBuilder()
    wb.add_node(hung, "hang", timeout=2 if where == "node timeout" else None)
    runtime = AsyncLocalRuntime(execution_timeout=2 if where == "workflow timeout" else None)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hung.expire_after_entry, mock_clock, 2)
            with pytest.raises(WorkflowExecutionError) as info:
                await runtime.execute_workflow_async(wb.build())
            returned_first = not hung.returned.is_set()
    finally:
        hung.done()
    assert returned_first  # control came back while the call was still hung
    result = info.value.result
    assert result.total_duration == 2  # virtual seconds: at the deadline
    assert result.cancel_outcomes == {"hang": CancelOutcome.ABANDONED}
    assert result.abandoned == ["hang"]
    assert "hang" not in result.results
    if where == "node timeout":
        assert info.value.node_id == "hang"
        assert isinstance(info.value.__cause__, NodeTimeoutError) and info.value.__cause__.abandoned
        assert str(info.value) == (
            "node 'hang' failed: NodeTimeoutError: node 'hang' timed out after 2 s; "
            "its thread could not be stopped and was abandoned (still running)"
        )
    else:
        assert isinstance(info.value, WorkflowTimeoutError)
        assert str(info.value).endswith(
            "timed out after 2 s; cancelled: ['hang']; threads abandoned (still running): ['hang']"
        )


# --- failure and cancellation --------------------------------------------------------


async def test_fail_fast_cancels_siblings_and_carries_partial_results(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled: list[str] = []

    async def forever() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append("forever")
            raise

    wb = WorkflowBuilder()
    wb.add_node(boom_after, "boom", {"seconds": 1})
    wb.add_node(forever, "forever")
    wb.add_node(sleeper(0.5, "ok"), "done")
    wb.add_node(sleeper(0), "after_boom")
    wb.connect("boom", "after_boom")
    t0 = trio.current_time()
    with trio.fail_after(1000), pytest.raises(WorkflowExecutionError) as info:
        await AsyncLocalRuntime().execute_workflow_async(wb.build())

    assert trio.current_time() - t0 == pytest.approx(1)
    error = info.value
    assert error.node_id == "boom"
    assert "node 'boom' failed: ValueError: boom" in str(error)
    assert isinstance(error.__cause__, ValueError)
    assert error.result.errors == {"boom": error.__cause__}
    assert cancelled == ["forever"]
    assert error.result.statuses == {
        "boom": NodeStatus.FAILED,
        "forever": NodeStatus.CANCELLED,
        "done": NodeStatus.COMPLETED,
        "after_boom": NodeStatus.PENDING,
    }
    assert error.partial_results == {"done": {"result": "ok"}}
    assert error.result.node_durations["forever"] == pytest.approx(1)
    assert error.result.metrics["failed"] == 1 and error.result.metrics["cancelled"] == 1


async def test_a_node_queued_for_a_slot_does_not_start_after_fail_fast(
    autojump_clock: trio.testing.MockClock, events: EventLog
) -> None:
    """One slot, two nodes that each fail after 1 s: whichever runs first fails, so the other,
    queued for the slot, must never start (it would fail too, whatever the order)."""
    started: list[str] = []

    async def fails(name: str) -> None:
        started.append(name)
        await trio.sleep(1)
        raise ValueError(name)

    wb = WorkflowBuilder()
    wb.add_node(fails, "a", {"name": "a"})
    wb.add_node(fails, "b", {"name": "b"})
    runtime = AsyncLocalRuntime(max_concurrent_nodes=1, on_node_start=events, on_node_finish=events)
    with trio.fail_after(100), pytest.raises(WorkflowExecutionError) as info:
        await runtime.execute_workflow_async(wb.build())
    (first,) = started
    assert info.value.node_id == first
    assert events.starts() == [first]
    other = "b" if first == "a" else "a"
    assert info.value.result.statuses[other] is NodeStatus.PENDING


async def test_continue_on_error_per_call(autojump_clock: trio.testing.MockClock) -> None:
    wb = WorkflowBuilder()
    wb.add_node(boom_after, "boom", {"seconds": 1})
    wb.add_node(sleeper(0), "after_boom")
    wb.add_node(sleeper(3, "ok"), "slow_ok")
    wb.connect("boom", "after_boom")
    result = await AsyncLocalRuntime().execute_workflow_async(wb.build(), continue_on_error=True)
    assert result.statuses == {
        "boom": NodeStatus.FAILED,
        "after_boom": NodeStatus.SKIPPED,
        "slow_ok": NodeStatus.COMPLETED,
    }
    assert result.skip_reasons == {"after_boom": "input failed"}
    assert isinstance(result.errors["boom"], ValueError)
    assert not result.ok


async def test_outside_cancellation_starts_nothing_new(autojump_clock: trio.testing.MockClock) -> None:
    started: list[str] = []

    def step(name: str, seconds: float) -> Callable[..., Any]:
        async def node(data: Any = None) -> str:
            started.append(name)
            await trio.sleep(seconds)
            return name

        return node

    wb = WorkflowBuilder()
    wb.add_node(step("a", 1), "a")
    wb.add_node(step("b", 10), "b")
    wb.add_node(step("c", 1), "c")
    wb.add_node(step("d", 3), "d")
    wb.connect("a", "b")
    wb.connect("b", "c")
    with trio.move_on_after(2) as scope:
        await AsyncLocalRuntime().execute_workflow_async(wb.build())
    assert scope.cancelled_caught
    assert sorted(started) == ["a", "b", "d"]
    await trio.sleep(100)
    assert sorted(started) == ["a", "b", "d"]


async def test_a_running_thread_is_waited_for_by_default() -> None:
    entered = trio.Event()
    release = threading.Event()
    finished = threading.Event()

    def blocker() -> str:
        trio.from_thread.run_sync(entered.set)
        release.wait(5)
        finished.set()
        return "late"

    async def trigger() -> None:
        await entered.wait()
        raise ValueError("stop")

    wb = WorkflowBuilder()
    wb.add_node(blocker, "blocker")
    wb.add_node(trigger, "trigger")

    async def release_later() -> None:
        await entered.wait()
        await trio.sleep(0.2)
        release.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(release_later)
            with pytest.raises(WorkflowExecutionError) as info:
                await AsyncLocalRuntime().execute_workflow_async(wb.build())
            finished_at_return = finished.is_set()

    assert finished_at_return  # the run waited for the thread to end
    result = info.value.result
    assert info.value.node_id == "trigger"
    assert result.cancel_outcomes == {"blocker": CancelOutcome.WAITED}
    assert result.statuses["blocker"] is NodeStatus.CANCELLED
    assert "blocker" not in result.results  # its late result is discarded


async def test_abandon_threads_returns_before_the_thread_ends() -> None:
    entered = trio.Event()
    release = threading.Event()
    finished = threading.Event()

    def blocker() -> str:
        trio.from_thread.run_sync(entered.set)
        release.wait(5)
        finished.set()
        return "late"

    async def trigger() -> None:
        await entered.wait()
        raise ValueError("stop")

    wb = WorkflowBuilder()
    wb.add_node(blocker, "blocker")
    wb.add_node(trigger, "trigger")
    try:
        with trio.fail_after(2), pytest.raises(WorkflowExecutionError) as info:
            await AsyncLocalRuntime(abandon_threads=True).execute_workflow_async(wb.build())
        finished_at_return = finished.is_set()
    finally:
        release.set()
        await trio.to_thread.run_sync(finished.wait, 5)

    assert not finished_at_return  # the run did not wait for the thread
    result = info.value.result
    assert result.cancel_outcomes == {"blocker": CancelOutcome.ABANDONED}
    assert result.statuses["blocker"] is NodeStatus.CANCELLED


@pytest.mark.parametrize("batched", [True, False])
async def test_a_thread_node_queued_for_a_thread_never_starts_when_cancelled(batched: bool) -> None:
    """thread_pool_size=1: of two blocking sync nodes, the one waiting for the thread never runs.

    Unbatched (a node callback turns sibling batching off) it holds a node slot and waits for
    the thread: CANCELLED, not started. Batched it waits in the batch queue: still PENDING."""
    entered = trio.Event()
    release = threading.Event()
    ran: list[str] = []

    def hold(name: str) -> None:
        ran.append(name)
        trio.from_thread.run_sync(entered.set)
        release.wait(5)

    triggered = trio.Event()

    async def trigger() -> None:
        await entered.wait()
        # Every task blocked: the other node is queued on the thread limiter.
        await trio.testing.wait_all_tasks_blocked()
        triggered.set()
        raise ValueError("stop")

    async def release_later() -> None:
        await triggered.wait()
        # Blocked again: the run is cancelling and waits for the thread it cannot cancel.
        await trio.testing.wait_all_tasks_blocked()
        release.set()

    wb = WorkflowBuilder()
    wb.add_node(hold, "h1", {"name": "h1"})
    wb.add_node(hold, "h2", {"name": "h2"})
    wb.add_node(trigger, "trigger")
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(release_later)
            with pytest.raises(WorkflowExecutionError) as info:
                runtime = AsyncLocalRuntime(
                    thread_pool_size=1, on_node_finish=None if batched else (lambda event: None)
                )
                await runtime.execute_workflow_async(wb.build())

    (first,) = ran
    second = "h2" if first == "h1" else "h1"
    result = info.value.result
    assert result.statuses[first] is NodeStatus.CANCELLED
    if batched:
        assert result.cancel_outcomes == {first: CancelOutcome.WAITED}
        assert result.statuses[second] is NodeStatus.PENDING
    else:
        assert result.cancel_outcomes == {first: CancelOutcome.WAITED, second: CancelOutcome.NOT_STARTED}
        assert result.statuses[second] is NodeStatus.CANCELLED
    assert result.metrics["max_threads"] == 1


async def test_a_process_node_gives_its_result() -> None:
    wb = WorkflowBuilder()
    wb.add_node(cpu_sum, "squares", {"n": 10_000}, process=True)
    wb.add_node(
        "PythonCodeNode", "code", {"code": "import os\nresult = (n % 1000, os.getpid())"}, process=True
    )
    wb.add_connection("squares", "result", "code", "n")
    with trio.fail_after(20):
        result = await AsyncLocalRuntime().execute_workflow_async(wb.build())
    expected = cpu_sum(10_000)
    assert result.results["squares"] == {"result": expected}
    total, pid = result.results["code"]["result"]
    assert total == expected % 1000
    assert pid != os.getpid()


async def test_a_process_node_error_propagates() -> None:
    with trio.fail_after(20), pytest.raises(WorkflowExecutionError) as info:
        await AsyncLocalRuntime().execute_workflow_async(
            single(fail_in_process, "f", {"message": "from the worker"}, process=True)
        )
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "from the worker"


async def test_a_cancelled_process_node_is_killed() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    pids: list[int] = []

    async def trigger() -> None:
        async with await listeners[0].accept() as stream:  # the process node is running
            data = b""
            while not data.endswith(b"\n"):
                data += await stream.receive_some()
        pids.append(int(data))
        raise ValueError("stop")

    wb = WorkflowBuilder()
    # An hour's sleep: only a kill ends it within fail_after.
    wb.add_node(sleep_in_process, "sleeper", {"port": port, "seconds": 3600}, process=True)
    wb.add_node(trigger, "trigger")
    try:
        with trio.fail_after(30), pytest.raises(WorkflowExecutionError) as info:
            await AsyncLocalRuntime().execute_workflow_async(wb.build())
    finally:
        await listeners[0].aclose()

    result = info.value.result
    assert info.value.node_id == "trigger"
    assert result.cancel_outcomes == {"sleeper": CancelOutcome.KILLED}
    assert result.statuses["sleeper"] is NodeStatus.CANCELLED
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pids[0], 0)


async def test_sync_nodes_really_run_in_parallel_threads() -> None:
    barrier = threading.Barrier(8, timeout=5)  # would break (not hang) if the nodes were serialized

    def meet() -> int:
        barrier.wait()
        return threading.get_ident()

    wb = WorkflowBuilder()
    for i in range(8):
        wb.add_node(meet, f"t{i}")
    with trio.fail_after(10):
        result = await AsyncLocalRuntime(thread_pool_size=8).execute_workflow_async(wb.build())
    assert result.ok
    assert len({r["result"] for r in result.results.values()}) == 8
    assert threading.get_ident() not in {r["result"] for r in result.results.values()}
    assert result.metrics["max_threads"] == 8
    assert result.metrics["max_concurrency"] == 8


async def test_the_thread_pool_size_bounds_sync_nodes() -> None:
    barrier = threading.Barrier(2, timeout=5)  # pairs must meet: two threads at once, exactly
    lock = threading.Lock()
    running = high = 0

    def pair() -> None:
        nonlocal running, high
        with lock:
            running += 1
            high = max(high, running)
        try:
            barrier.wait()
        finally:
            with lock:
                running -= 1

    wb = WorkflowBuilder()
    for i in range(8):
        wb.add_node(pair, f"t{i}")
    with trio.fail_after(10):
        result = await AsyncLocalRuntime(thread_pool_size=2).execute_workflow_async(wb.build())
    assert result.ok
    assert high == 2
    assert result.metrics["max_threads"] == 2


async def test_async_nodes_run_on_the_loop_thread() -> None:
    async def where() -> int:
        return threading.get_ident()

    result = await AsyncLocalRuntime().execute_workflow_async(single(where, "w"))
    assert result.results["w"] == {"result": threading.get_ident()}
    assert result.metrics["max_threads"] == 0


# --- switch and merge -----------------------------------------------------------------


def routed(n: int) -> tuple[Workflow, dict[str, Any]]:
    """src -> sw (n > 10) -> hi | lo -> lo2 -> lo3; hi and lo3 -> merge -> final."""

    async def src() -> dict[str, int]:
        return {"n": n}

    def hi(data: dict[str, int]) -> str:
        return f"hi {data['n']}"

    def lo(n: int) -> str:
        return f"lo {n}"

    def then(data: Any) -> Any:
        return data

    wb = WorkflowBuilder()
    wb.add_node(src, "src")
    wb.add_node("SwitchNode", "sw", {"condition_field": "n", "operator": ">", "value": 10})
    wb.add_node(hi, "hi")
    wb.add_node(lo, "lo")
    wb.add_node(then, "lo2")
    wb.add_node(then, "lo3")
    wb.add_node("MergeNode", "merge")
    wb.add_node(then, "final")
    wb.connect("src", "sw", mapping={"result": "input_data"})
    wb.connect("sw", "hi", mapping={"true_output": "data"})
    wb.connect("sw", "lo", mapping={"false_output.n": "n"})
    wb.connect("lo", "lo2")
    wb.connect("lo2", "lo3")
    wb.connect("hi", "merge", mapping={"result": "from_hi"})
    wb.connect("lo3", "merge", mapping={"result": "from_lo"})
    wb.connect("merge", "final", mapping={"result": "data"})
    return wb.build(), {"n": n}


async def test_switch_true_skips_the_false_chain_and_merge_takes_the_live_branch() -> None:
    workflow, _ = routed(15)
    result = await AsyncLocalRuntime().execute_workflow_async(workflow)
    assert result.results["sw"] == {"true_output": {"n": 15}}
    assert result.results["hi"] == {"result": "hi 15"}
    assert result.results["merge"]["result"] == "hi 15"
    assert result.results["final"] == {"result": "hi 15"}
    for node in ("lo", "lo2", "lo3"):
        assert result.statuses[node] is NodeStatus.SKIPPED
        assert node not in result.results
    assert result.skip_reasons == {"lo": "branch not taken", "lo2": "input skipped", "lo3": "input skipped"}
    assert result.ok
    assert result.metrics["skipped"] == 3


async def test_switch_false_takes_the_other_branch() -> None:
    workflow, _ = routed(3)
    result = await AsyncLocalRuntime().execute_workflow_async(workflow)
    assert result.results["sw"] == {"false_output": {"n": 3}}
    assert result.statuses["hi"] is NodeStatus.SKIPPED
    assert result.skip_reasons["hi"] == "branch not taken"
    assert result.results["lo3"] == {"result": "lo 3"}
    assert result.results["final"] == {"result": "lo 3"}


@pytest.mark.parametrize(("kind", "taken"), [("a", "case_a"), ("b", "case_b"), ("zzz", "default")])
async def test_switch_cases(kind: str, taken: str) -> None:
    def handle(data: dict[str, str]) -> str:
        return data["kind"]

    wb = WorkflowBuilder()
    wb.add_node("SwitchNode", "sw", {"condition_field": "kind", "cases": ["a", "b"]})
    for output in ("case_a", "case_b", "default"):
        wb.add_node(handle, output)
        wb.connect("sw", output, mapping={output: "data"})
    result = await AsyncLocalRuntime().execute_workflow_async(
        wb.build(), {"sw": {"input_data": {"kind": kind}}}
    )
    assert result.results["sw"] == {taken: {"kind": kind}}
    assert result.results[taken] == {"result": kind}
    assert {n for n, s in result.statuses.items() if s is NodeStatus.SKIPPED} == {
        "case_a",
        "case_b",
        "default",
    } - {taken}


async def test_switch_on_a_missing_field_fails_naming_it() -> None:
    wb = WorkflowBuilder()
    wb.add_node("SwitchNode", "sw", {"condition_field": "n"})
    with pytest.raises(WorkflowExecutionError) as info:
        await AsyncLocalRuntime().execute_workflow_async(wb.build(), {"sw": {"input_data": {"m": 1}}})
    assert info.value.node_id == "sw"
    assert "condition_field 'n'" in str(info.value.__cause__)


async def test_merge_is_skipped_when_every_input_is_skipped() -> None:
    def then(data: Any) -> Any:
        return data

    wb = WorkflowBuilder()
    wb.add_node("SwitchNode", "sw", {"value": True})
    wb.add_node(then, "x")
    wb.add_node(then, "y")
    wb.add_node("MergeNode", "merge")
    wb.add_node(then, "after")
    wb.connect("sw", "x", mapping={"false_output": "data"})
    wb.connect("sw", "y", mapping={"false_output": "data"})
    wb.connect("x", "merge", mapping={"result": "a"})
    wb.connect("y", "merge", mapping={"result": "b"})
    wb.connect("merge", "after")
    result = await AsyncLocalRuntime().execute_workflow_async(wb.build(), {"sw": {"input_data": True}})
    assert result.results == {"sw": {"true_output": True}}
    assert {n: s for n, s in result.statuses.items() if s is not NodeStatus.SKIPPED} == {
        "sw": NodeStatus.COMPLETED
    }
    assert result.skip_reasons["merge"] == "input skipped"
    assert result.skip_reasons["after"] == "input skipped"


async def test_merge_of_live_inputs_takes_the_first_connected(autojump_clock: trio.testing.MockClock) -> None:
    wb = WorkflowBuilder()
    wb.add_node(sleeper(5, "first connected, finishes last"), "slow")
    wb.add_node(sleeper(1, "second connected, finishes first"), "fast")
    wb.add_node("MergeNode", "merge")
    wb.add_connection("slow", "result", "merge", "a")
    wb.add_connection("fast", "result", "merge", "b")
    result = await AsyncLocalRuntime().execute_workflow_async(wb.build())
    assert result.results["merge"]["result"] == "first connected, finishes last"
    assert result.results["merge"]["merged_data"] == "first connected, finishes last"


async def test_merge_inputs_with_one_name_take_the_first_connected() -> None:
    async def first() -> str:
        return "first"

    async def second() -> str:
        return "second"

    wb = WorkflowBuilder()
    wb.add_node(first, "first")
    wb.add_node(second, "second")
    wb.add_node("MergeNode", "merge")
    wb.add_connection("first", "result", "merge", "data")  # the builder allows this for a merge
    wb.add_connection("second", "result", "merge", "data")
    result = await AsyncLocalRuntime().execute_workflow_async(wb.build())
    assert result.results["merge"]["result"] == "first"


# --- resources ---------------------------------------------------------------------


class DB:
    def __init__(self) -> None:
        self.closed = False


async def test_resources_are_shared_and_created_once() -> None:
    created: list[DB] = []
    cleaned: list[DB] = []

    def factory() -> DB:
        created.append(DB())
        return created[-1]

    async def async_fn(db: DB = Resource("db")) -> DB:
        return db

    def sync_fn(db: DB = Resource("db")) -> DB:
        return db

    registry = ResourceRegistry()
    registry.register_factory("db", factory, cleanup=cleaned.append)
    wb = WorkflowBuilder()
    wb.add_node(async_fn, "async_fn")
    wb.add_node(sync_fn, "sync_fn")
    wb.add_node("AsyncPythonCodeNode", "async_code", {"code": "result = await get_resource('db')"})
    wb.add_node("PythonCodeNode", "sync_code", {"code": "result = get_resource('db')"})  # from a thread
    async with AsyncLocalRuntime(resource_registry=registry) as runtime:
        with trio.fail_after(10):
            result = await runtime.execute_workflow_async(wb.build())
        assert cleaned == []  # still open while the runtime is

    assert len(created) == 1
    (db,) = created
    assert {n: r["result"] is db for n, r in result.results.items()} == dict.fromkeys(
        ("async_fn", "sync_fn", "async_code", "sync_code"), True
    )
    assert result.metrics["resource_accesses"] == {"db": 4}
    assert registry.metrics()["db"]["created"] == 1
    assert cleaned == [db]


async def test_a_resource_without_a_registry_names_the_resource() -> None:
    async def use(cache: Any = Resource("redis_cache")) -> Any:
        return cache

    with pytest.raises(WorkflowExecutionError) as info:
        await AsyncLocalRuntime().execute_workflow_async(single(use, "use"))
    assert info.value.node_id == "use"
    assert isinstance(info.value.__cause__, LookupError)
    message = str(info.value.__cause__)
    assert "'redis_cache'" in message and "resource_registry" in message


def test_sync_execute_runs_and_cleans_up_resources() -> None:
    cleaned: list[str] = []
    registry = ResourceRegistry()
    registry.register_factory("conn", lambda: "connection", cleanup=cleaned.append)

    def use(word: str, conn: str = Resource("conn")) -> str:
        return f"{word} via {conn}"

    runtime = AsyncLocalRuntime(resource_registry=registry)
    result = runtime.execute(single(use, "use"), {"word": "hello"})
    assert result.results["use"] == {"result": "hello via connection"}
    assert cleaned == ["connection"]
    # Kailash LocalRuntime's keyword works too.
    again = runtime.execute(single(use, "use"), parameters={"use": {"word": "bye"}})
    assert again.results["use"] == {"result": "bye via connection"}
    assert cleaned == ["connection", "connection"]


# --- callbacks and results ------------------------------------------------------------


async def test_callbacks_once_per_node_with_statuses(events: EventLog) -> None:
    async def ok() -> int:
        return 1

    def sync_ok() -> int:
        return 2

    async def bad() -> None:
        raise ValueError("bad")

    def after(data: Any) -> Any:
        return data

    wb = WorkflowBuilder()
    wb.add_node(ok, "ok")
    wb.add_node(sync_ok, "sync_ok")
    wb.add_node(bad, "bad")
    wb.add_node(after, "after_bad")
    wb.connect("bad", "after_bad")
    runtime = AsyncLocalRuntime(continue_on_error=True, on_node_start=events, on_node_finish=events)
    result = await runtime.execute_workflow_async(wb.build())

    assert sorted(events.starts()) == ["bad", "ok", "sync_ok"]
    finishes = {e.node_id: e for e in events.finishes()}
    assert len(finishes) == len(events.finishes()) == 4
    assert {n: e.status for n, e in finishes.items()} == {
        "ok": NodeStatus.COMPLETED,
        "sync_ok": NodeStatus.COMPLETED,
        "bad": NodeStatus.FAILED,
        "after_bad": NodeStatus.SKIPPED,
    }
    assert finishes["bad"].error is result.errors["bad"]
    assert finishes["after_bad"].skip_reason == "input failed"
    assert finishes["ok"].duration == result.node_durations["ok"]
    for event in events.events:
        assert (event.workflow_id, event.run_id) == (result.workflow_id, result.run_id)
    # A node's start comes before its finish.
    order = [(e.node_id, e.status is NodeStatus.RUNNING) for e in events.events]
    for node in ("ok", "sync_ok", "bad"):
        assert order.index((node, True)) < order.index((node, False))


async def test_a_cancelled_node_gets_a_finish_event(
    autojump_clock: trio.testing.MockClock, events: EventLog
) -> None:
    wb = WorkflowBuilder()
    wb.add_node(boom_after, "boom", {"seconds": 1})
    wb.add_node(sleeper(100), "slow")
    runtime = AsyncLocalRuntime(on_node_start=events, on_node_finish=events)
    with pytest.raises(WorkflowExecutionError):
        await runtime.execute_workflow_async(wb.build())
    assert sorted(events.starts()) == ["boom", "slow"]
    assert {e.node_id: e.status for e in events.finishes()} == {
        "boom": NodeStatus.FAILED,
        "slow": NodeStatus.CANCELLED,
    }


async def test_a_raising_callback_does_not_change_the_outcome() -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("display crashed")

    wb = WorkflowBuilder()
    wb.add_node(sleeper(0, "a"), "a")
    wb.add_node(echo, "b")
    wb.connect("a", "b", mapping={"result": "p"})
    runtime = AsyncLocalRuntime(on_node_start=broken, on_node_finish=broken)
    result = await runtime.execute_workflow_async(wb.build())
    assert result.ok
    assert result.results == {"a": {"result": "a"}, "b": {"result": "a"}}
    assert result.metrics["callback_errors"] == 4


async def test_kailash_result_shapes(autojump_clock: trio.testing.MockClock) -> None:
    wb = WorkflowBuilder()
    wb.add_node(sleeper(2, "x"), "a")
    wb.add_node(boom_after, "boom", {"seconds": 0})
    workflow = wb.build(workflow_id="shapes")
    result = await AsyncLocalRuntime().execute_workflow_async(workflow, continue_on_error=True)

    assert isinstance(result, WorkflowResult)
    assert result["results"] is result.results
    assert result["results"]["a"] == {"result": "x"}
    as_dict = result.to_kailash_dict()
    assert set(as_dict) == {
        "results",
        "errors",
        "execution_times",
        "total_duration",
        "workflow_id",
        "run_id",
        "metrics",
    }
    assert as_dict["errors"] == {"boom": "ValueError: boom"}
    assert as_dict["execution_times"]["a"] == pytest.approx(2)
    assert as_dict["total_duration"] == pytest.approx(2)
    assert as_dict["workflow_id"] == "shapes"
    assert result["run_id"] == result.run_id and result.run_id.startswith("run-")
    assert result.get("nope", 5) == 5
    assert result.to_kailash_tuple() == (result.results, result.run_id)
    metrics = result.metrics
    assert metrics["node_count"] == 2
    assert (metrics["completed"], metrics["failed"]) == (1, 1)
    assert {"max_concurrency", "max_threads", "retries", "timeouts", "resource_accesses"} <= set(metrics)


# --- runtime options ------------------------------------------------------------------


def test_unknown_runtime_option_suggests_the_right_one() -> None:
    with pytest.raises(
        TypeError, match=r"unknown option 'max_concurent_nodes' \(did you mean 'max_concurrent_nodes'"
    ):
        AsyncLocalRuntime(max_concurent_nodes=3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_concurrent_nodes": 0},
        {"thread_pool_size": 0},
        {"thread_pool_size": 1.5},
        {"execution_timeout": 0},
    ],
)
def test_bad_runtime_limits(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        AsyncLocalRuntime(**kwargs)


async def test_kailash_no_op_options_are_accepted() -> None:
    runtime = AsyncLocalRuntime(enable_analysis=True, enable_profiling=True, debug=True)
    result = await runtime.execute_workflow_async(single(echo, "e"), {"p": "ok"})
    assert result.results["e"] == {"result": "ok"}
