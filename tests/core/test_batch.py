"""Tests for ThreadBatcher: calls gathered into batches, each run in one thread hop.

Real clock on purpose (as test_offload): the batches run in threads, which an autojump clock
would not wait for. Threads are driven by events, never by sleeping on the Trio loop; the
``fail_after`` guards only end a hang.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import outcome
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioworks.core import ThreadBatcher

GUARD = 10  # seconds: only reached if something hangs


class Recorder:
    """A ``run_batch`` that records its batches; optionally blocks each until released."""

    def __init__(self, *, block: bool = False, fail: Callable[[Any], bool] = lambda item: False) -> None:
        self.batches: list[list[Any]] = []
        self.finished: set[Any] = set()  # items whose batch has returned
        self.block = block
        self.fail = fail
        self.release = threading.Event()
        self.started = trio.Event()  # set (through the token) when a batch begins
        self.token = trio.lowlevel.current_trio_token()
        self.lock = threading.Lock()
        self.running = 0
        self.most_running = 0

    def __call__(self, items: list[Any]) -> Sequence[outcome.Outcome[Any]]:
        with self.lock:
            self.batches.append(list(items))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        if self.block:
            trio.from_thread.run_sync(self.started.set, trio_token=self.token)
            self.release.wait(GUARD)
        results: list[outcome.Outcome[Any]] = [
            outcome.Error(ValueError(item)) if self.fail(item) else outcome.Value(("ran", item))
            for item in items
        ]
        with self.lock:
            self.running -= 1
            self.finished.update(items)
        return results


async def test_one_call_runs_alone_and_returns_its_value() -> None:
    recorder = Recorder()
    batcher = ThreadBatcher(recorder, limiter=trio.CapacityLimiter(1))
    with trio.fail_after(GUARD):
        assert await batcher.submit(1) == ("ran", 1)
    assert recorder.batches == [[1]]
    assert (batcher.batches, batcher.items, batcher.queued) == (1, 1, 0)


async def test_each_item_gets_its_own_error() -> None:
    recorder = Recorder(fail=lambda item: item == "bad")
    batcher = ThreadBatcher(recorder, limiter=trio.CapacityLimiter(1))
    with trio.fail_after(GUARD):
        with pytest.raises(ValueError, match="bad"):
            await batcher.submit("bad")
        assert await batcher.submit("good") == ("ran", "good")


async def _submit_into(batcher: ThreadBatcher[Any, Any], item: Any, out: dict[Any, Any]) -> None:
    try:
        out[item] = await batcher.submit(item)
    except Exception as exc:
        out[item] = exc


async def test_calls_arriving_during_a_batch_share_the_next_one() -> None:
    recorder = Recorder(block=True)
    batcher = ThreadBatcher(recorder, limiter=trio.CapacityLimiter(4), max_batch=3)
    out: dict[Any, Any] = {}
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_submit_into, batcher, "a", out)
            await recorder.started.wait()  # "a" runs alone, blocked in its thread
            for item in "bcdef":  # one after the other: tasks start in no fixed order
                nursery.start_soon(_submit_into, batcher, item, out)
                await trio.testing.wait_all_tasks_blocked()
            assert batcher.queued == 5
            recorder.block = False
            recorder.release.set()
    assert recorder.batches == [["a"], ["b", "c", "d"], ["e", "f"]]  # oldest first, max_batch each
    assert out == {item: ("ran", item) for item in "abcdef"}
    assert recorder.most_running == 1  # max_batches=1: one batch at a time
    assert batcher.queued == 0


async def test_a_call_cancelled_while_queued_never_runs() -> None:
    recorder = Recorder(block=True)
    batcher = ThreadBatcher(recorder, limiter=trio.CapacityLimiter(1))
    out: dict[Any, Any] = {}
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_submit_into, batcher, "a", out)
            await recorder.started.wait()
            scope = trio.CancelScope()

            async def queued() -> None:
                with scope:
                    await _submit_into(batcher, "b", out)

            nursery.start_soon(queued)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(_submit_into, batcher, "c", out)
            await trio.testing.wait_all_tasks_blocked()
            assert batcher.queued == 2
            scope.cancel()  # "b" waits in the queue: it is dropped
            await trio.testing.wait_all_tasks_blocked()
            assert batcher.queued == 1
            recorder.block = False
            recorder.release.set()
    assert recorder.batches == [["a"], ["c"]]
    assert "b" not in out and out["c"] == ("ran", "c")


async def test_a_call_whose_batch_started_waits_for_it_then_raises_cancelled() -> None:
    recorder = Recorder(block=True)
    batcher = ThreadBatcher(recorder, limiter=trio.CapacityLimiter(1))
    scope = trio.CancelScope()
    done = trio.Event()

    async def leader() -> None:
        with scope, pytest.raises(trio.Cancelled):
            await batcher.submit("a")
        assert "a" in recorder.finished  # not abandoned: it returned after the batch ended
        done.set()

    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(leader)
            await recorder.started.wait()
            scope.cancel()  # while its batch runs
            await trio.testing.wait_all_tasks_blocked()
            assert not done.is_set()
            recorder.release.set()
    assert done.is_set()
    assert recorder.batches == [["a"]]


async def test_a_started_item_that_failed_raises_its_error_even_when_cancelled() -> None:
    recorder = Recorder(block=True, fail=lambda item: True)
    batcher = ThreadBatcher(recorder, limiter=trio.CapacityLimiter(1))
    scope = trio.CancelScope()
    seen: list[BaseException] = []

    async def call() -> None:
        with scope:
            try:
                await batcher.submit("x")
            except BaseException as exc:  # the test records which one
                seen.append(exc)

    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await recorder.started.wait()
            scope.cancel()
            recorder.release.set()
    assert [type(e) for e in seen] == [ValueError]


async def test_a_leader_cancelled_waiting_for_a_slot_hands_the_queue_on() -> None:
    recorder = Recorder()
    limiter = trio.CapacityLimiter(1)
    batcher = ThreadBatcher(recorder, limiter=limiter)
    out: dict[Any, Any] = {}
    with trio.fail_after(GUARD):
        await limiter.acquire()  # the slot is busy elsewhere
        async with trio.open_nursery() as nursery:
            leader_scope = trio.CancelScope()

            async def lead() -> None:
                with leader_scope:
                    await _submit_into(batcher, "lead", out)

            nursery.start_soon(lead)
            await trio.testing.wait_all_tasks_blocked()
            for item in "xy":
                nursery.start_soon(_submit_into, batcher, item, out)
                await trio.testing.wait_all_tasks_blocked()
            leader_scope.cancel()  # the leader waits for the slot: it gives up before its batch
            await trio.testing.wait_all_tasks_blocked()
            limiter.release()
    assert recorder.batches == [["x", "y"]]
    assert "lead" not in out
    assert limiter.borrowed_tokens == 0


async def test_a_broken_run_batch_fails_each_item() -> None:
    def broken(items: list[int]) -> Sequence[outcome.Outcome[int]]:
        return []  # one outcome short

    batcher = ThreadBatcher(broken, limiter=trio.CapacityLimiter(1))
    with trio.fail_after(GUARD), pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        await batcher.submit(1)


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        ThreadBatcher(Recorder.__call__, limiter=trio.CapacityLimiter(1), max_batch=0)  # type: ignore[arg-type]


# -- interleavings ---------------------------------------------------------------------------
_item = st.tuples(
    st.integers(0, 6),  # checkpoints before submitting
    st.one_of(st.none(), st.integers(0, 8)),  # cancelled this many checkpoints after submitting
    st.booleans(),  # run_batch gives the item an error
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(_item, min_size=1, max_size=12),
    max_batch=st.integers(1, 5),
    max_batches=st.integers(1, 3),
    slots=st.integers(1, 3),
)
def test_any_interleaving_runs_each_item_at_most_once_and_never_abandons_one(
    items: list[tuple[int, int | None, bool]], max_batch: int, max_batches: int, slots: int
) -> None:
    async def main() -> None:
        failing = {i for i, (_, _, bad) in enumerate(items) if bad}
        recorder = Recorder(fail=lambda item: item in failing)
        limiter = trio.CapacityLimiter(slots)
        batcher = ThreadBatcher(recorder, limiter=limiter, max_batch=max_batch, max_batches=max_batches)
        ended: dict[int, tuple[str, Any, bool]] = {}

        async def one(i: int, delay: int, cancel_after: int | None) -> None:
            for _ in range(delay):
                await trio.lowlevel.checkpoint()
            with trio.CancelScope() as scope:
                if cancel_after is not None:
                    nursery.start_soon(canceller, scope, cancel_after)
                try:
                    ended[i] = ("value", await batcher.submit(i), i in recorder.finished)
                except trio.Cancelled:
                    ended[i] = ("cancelled", None, i in recorder.finished)
                    raise
                except ValueError as exc:
                    ended[i] = ("error", exc.args[0], i in recorder.finished)

        async def canceller(scope: trio.CancelScope, after: int) -> None:
            for _ in range(after):
                await trio.lowlevel.checkpoint()
            scope.cancel()

        with trio.fail_after(GUARD):
            async with trio.open_nursery() as nursery:
                for i, (delay, cancel_after, _) in enumerate(items):
                    nursery.start_soon(one, i, delay, cancel_after)

        ran = [item for batch in recorder.batches for item in batch]
        assert len(ran) == len(set(ran)), "an item ran twice"
        assert all(1 <= len(batch) <= max_batch for batch in recorder.batches)
        assert recorder.most_running <= min(max_batches, slots)
        assert (batcher.queued, limiter.borrowed_tokens) == (0, 0)
        for i, (_, cancel_after, bad) in enumerate(items):
            kind, value, finished = ended[i]
            if i in ran:  # it ran: its call ended only after its batch did (never abandoned)
                assert finished, f"item {i} returned while its batch still ran"
            if kind == "value":
                assert value == ("ran", i) and i in ran and not bad
            elif kind == "error":
                assert value == i and i in ran and bad
            else:  # cancelled: either never ran, or waited for its batch (checked above)
                assert cancel_after is not None
        # Every item that was not cancelled ran (nobody was left waiting in the queue).
        assert {i for i, (kind, _, _) in ended.items() if kind != "cancelled"} <= set(ran)

    trio.run(main)
