"""Activity kinds, results and error mapping, against the fake server (virtual time)."""

from __future__ import annotations

import threading
from typing import Any

import attrs
import trio
from worker_fake import FakeServer, wait_until

from trioworks.worker import (
    Activity,
    ActivityContext,
    ActivityError,
    ActivityOutput,
    ActivityResult,
    OutputType,
    TerminalActivityError,
    UsageEntry,
    activity,
)


@activity()
async def double(params: dict, ctx: ActivityContext) -> ActivityResult:
    await trio.sleep(1)
    return ActivityResult.value("result", params["x"] * 2).with_cost(0.25)


@activity(name="blocking_double")
def blocking_double(params: dict, ctx: ActivityContext) -> ActivityResult:
    assert threading.current_thread() is not threading.main_thread()
    return ActivityResult.values({"result": params["x"] * 2, "worker": ctx.worker_id})


class Shout(Activity):
    name = "shout"

    async def execute(self, params: dict, ctx: ActivityContext) -> dict:
        ctx.add_cost(0.5, UsageEntry(provider="fake", model="m", input_tokens=3, output_tokens=4))
        return {"text": params["text"].upper(), "signal": ctx.signal}


@attrs.frozen
class Order:
    sku: str
    quantity: int


@activity()
async def place(order: Order, ctx: ActivityContext) -> ActivityResult:
    return ActivityResult.value("total", order.quantity)


@activity(terminal=(KeyError,))
async def broken(params: dict, ctx: ActivityContext) -> ActivityResult:
    kind = params["kind"]
    if kind == "value":
        raise ValueError("boom")
    if kind == "terminal":
        raise TerminalActivityError("bad input", code="BAD_INPUT")
    if kind == "custom":
        raise ActivityError("try later", code="RATE_LIMITED")
    if kind == "result":
        return ActivityResult.error("declined", code="DECLINED", retryable=False)
    if kind == "not_json":
        return ActivityResult.value("x", object())
    return {}[kind]  # KeyError: declared terminal


async def test_async_thread_and_class_activities_complete(
    fake: FakeServer, start_worker, thread_clock
) -> None:
    a = fake.add("double", {"x": 21})
    b = fake.add("blocking_double", {"x": 5})
    c = fake.add("shout", {"text": "hi"}, signal_data={"approved": True})
    await start_worker([double, blocking_double, Shout()], lag_interval=5)  # a thread: thread_clock
    await wait_until(lambda: fake.done, step=0.5)
    assert a.report == {"worker_id": "worker_test", "output": {"result": 42}, "cost_usd": 0.25}
    assert b.report["output"] == {"result": 10, "worker": "worker_test"}
    assert c.report["output"] == {"text": "HI", "signal": {"approved": True}}
    assert c.report["cost_usd"] == 0.5
    assert c.report["usage"] == [
        {
            "provider": "fake",
            "model": "m",
            "input_tokens": 3,
            "output_tokens": 4,
            "cache_read_tokens": 0,
            "cache_creation_tokens": 0,
        }
    ]


async def test_parameters_structured_into_attrs_class(fake: FakeServer, start_worker, autojump_clock) -> None:
    good = fake.add("place", {"sku": "a", "quantity": 3})
    bad = fake.add("place", {"sku": "a", "quantity": "many"})
    missing = fake.add("place", {"quantity": 1})
    await start_worker([place])
    await wait_until(lambda: fake.done)
    assert good.report["output"] == {"total": 3}
    for row, field in ((bad, "parameters.quantity"), (missing, "parameters.sku")):
        error = row.report["error"]
        assert error["code"] == "INVALID_PARAMETERS"
        assert error["retryable"] is False
        assert field in error["message"], error["message"]


async def test_unknown_activity_is_retryable_not_found(
    fake: FakeServer, start_worker, autojump_clock
) -> None:
    row = fake.add("nope")
    await start_worker([double])
    await wait_until(lambda: fake.done)
    error = row.report["error"]
    assert (error["code"], error["retryable"]) == ("ACTIVITY_NOT_FOUND", True)
    assert "'nope'" in error["message"] and "double" in error["message"]


async def test_error_mapping(fake: FakeServer, start_worker, autojump_clock) -> None:
    rows = {
        kind: fake.add("broken", {"kind": kind})
        for kind in ("value", "terminal", "custom", "result", "not_json", "missing")
    }
    await start_worker([broken])
    await wait_until(lambda: fake.done)
    got = {kind: (r.report["error"]["code"], r.report["error"]["retryable"]) for kind, r in rows.items()}
    assert got == {
        "value": ("EXECUTION_ERROR", True),
        "terminal": ("BAD_INPUT", False),
        "custom": ("RATE_LIMITED", True),
        "result": ("DECLINED", False),
        "not_json": ("INVALID_OUTPUT", False),
        "missing": ("EXECUTION_ERROR", False),
    }
    assert rows["value"].report["error"]["message"] == "ValueError: boom"


async def test_worker_survives_and_stats_count(fake: FakeServer, start_worker, autojump_clock) -> None:
    fake.add("broken", {"kind": "value"})
    fake.add("double", {"x": 1})
    worker = await start_worker([broken, double])
    await wait_until(lambda: fake.done and not worker.running)
    await trio.sleep(1)  # the poller's reservation is given back between polls
    stats = worker.stats()
    assert (stats.completed, stats.failed, stats.started) == (1, 1, 2)
    assert stats.slots_total == 4 and stats.running == 0
    assert "completed 1, failed 1" in stats.line()


@activity()
async def manual(params: dict, ctx: ActivityContext) -> ActivityResult:
    outputs = [ActivityOutput("a", OutputType.VALUE, 1), ActivityOutput("b", OutputType.VALUE, 2)]
    while True:
        await ctx.heartbeat({"progress": "still going"})
        if ctx.cancelled:  # not reached: the lost lease cancels at heartbeat's checkpoint
            return ActivityResult.values(outputs)
        await trio.sleep(1)


async def test_manual_heartbeat_409_cancels(fake: FakeServer, start_worker, autojump_clock) -> None:
    row = fake.add("manual", timeout_seconds=600)
    worker = await start_worker([manual])
    await wait_until(lambda: row.heartbeats >= 3)
    assert worker.running[row.activity_id].heartbeat_details == {"progress": "still going"}
    fake.steal(row)
    await wait_until(lambda: not worker.running)
    assert not row.completions and not row.failures


def test_activity_result_shapes_match_the_original() -> None:
    listed = ActivityResult.values(
        [ActivityOutput("a", OutputType.VALUE, 1), ActivityOutput("b", OutputType.VALUE, 2)]
    )
    assert listed.to_output_dict() == {"a": 1, "b": 2}
    assert ActivityResult.values({"a": 1}, b=2).to_output_dict() == {"a": 1, "b": 2}
    priced = ActivityResult.value("x", 1).with_cost(0.5)
    assert (priced.cost_usd, priced.to_output_dict()) == (0.5, {"x": 1})
    error = ActivityResult.error("declined", code="DECLINED", retryable=False)
    assert (error.is_error, error.error_code, error.retryable) == (True, "DECLINED", False)
    assert ActivityResult.file("report", "/tmp/r.txt").to_output_dict() == {}
    assert double.name == "double" and blocking_double.kind.value == "thread"


async def test_an_idle_worker_polls_as_soon_as_one_of_its_activities_finished(
    fake: FakeServer, start_worker, autojump_clock
) -> None:
    """A completion may make its dependents ready: the idle backoff (up to a minute here) ends
    when an activity of this worker finishes, so the next step is claimed at once."""
    first = fake.add("slow_first", key="first")
    added: list[Any] = []
    complete = fake._complete

    def complete_then_release(row: Any, body: dict[str, Any]) -> Any:
        answer = complete(row, body)
        if row is first:  # the server schedules the dependent with the completion
            added.append(fake.add("double", {"x": 1}, key="second"))
        return answer

    fake._complete = complete_then_release  # type: ignore[method-assign]

    @activity(name="slow_first")
    async def slow_first(params: dict, ctx: ActivityContext) -> ActivityResult:
        await trio.sleep(1)  # the next poll comes back empty and the worker backs off
        return ActivityResult.value("done", True)

    await start_worker([slow_first, double], poll_interval=60, poll_interval_max=60)
    await wait_until(lambda: fake.done and bool(added))
    (second,) = added
    assert second.report is not None and second.report["output"] == {"result": 2}
    assert fake.count("/poll") >= 3  # the first step, an empty poll, the second step
    assert second.claimed_at < 2  # not after the 30-60 s backoff
