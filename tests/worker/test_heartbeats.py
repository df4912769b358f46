"""HeartbeatStarter: each scheduled task starts once at its due time, unless stopped first; a
started one is cancelled by its stop."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trioworks.worker._heartbeats import HeartbeatStarter


async def test_starts_in_due_order_at_due_time(autojump_clock: trio.testing.MockClock) -> None:
    starter = HeartbeatStarter()
    started: list[tuple[str, float]] = []

    async def record(name: str) -> None:
        started.append((name, trio.current_time()))

    async with trio.open_nursery() as nursery:
        await nursery.start(starter.run)
        t0 = trio.current_time()
        starter.schedule(t0 + 5, record, "late")
        await trio.sleep(1)
        # Earlier than what the starter sleeps towards: it must wake up for it.
        starter.schedule(t0 + 2, record, "early")
        starter.schedule(t0 + 3, record, "withdrawn").stop()
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert [(name, at - t0) for name, at in started] == [("early", 2), ("late", 5)]
    assert starter.pending == 0


async def test_stop_after_start_cancels_the_task(autojump_clock: trio.testing.MockClock) -> None:
    starter = HeartbeatStarter()
    beats: list[float] = []
    ended = trio.Event()

    async def beat() -> None:
        try:
            while True:
                beats.append(trio.current_time())
                await trio.sleep(1)
        finally:
            ended.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(starter.run)
        t0 = trio.current_time()
        entry = starter.schedule(t0 + 1, beat)
        await trio.sleep(3.5)
        assert entry.started
        entry.stop()
        await ended.wait()
        assert trio.current_time() == t0 + 3.5  # cancelled at once
        entry.stop()  # again: harmless
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert [b - t0 for b in beats] == [1, 2, 3]


async def test_started_tasks_end_with_the_starter(autojump_clock: trio.testing.MockClock) -> None:
    starter = HeartbeatStarter()
    ended = trio.Event()

    async def forever() -> None:
        try:
            await trio.sleep_forever()
        finally:
            ended.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(starter.run)
        starter.schedule(trio.current_time() + 1, forever)
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert ended.is_set()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(0, 60), st.booleans()),  # (scheduled at, delay, withdrawn)
        max_size=30,
    )
)
def test_every_start_runs_once_at_its_time_unless_withdrawn(plan: list[tuple[int, int, bool]]) -> None:
    """Entries scheduled at random times with random delays, some withdrawn half-way: exactly the
    others start, each at its due time."""
    started: dict[int, float] = {}

    async def main() -> None:
        starter = HeartbeatStarter()
        async with trio.open_nursery() as nursery:
            await nursery.start(starter.run)

            async def start(index: int) -> None:
                started.setdefault(index, trio.current_time())

            async def one(index: int, at: int, delay: int, withdrawn: bool) -> None:
                await trio.sleep(at)
                entry = starter.schedule(trio.current_time() + delay, start, index)
                if withdrawn and delay >= 2:  # (withdrawn at once, a 0-delay start may race it)
                    await trio.sleep(delay / 2)
                    entry.stop()

            async with trio.open_nursery() as plans:
                for index, (at, delay, withdrawn) in enumerate(plan):
                    plans.start_soon(one, index, at, delay, withdrawn)
            await trio.sleep(200)
            assert starter.pending == 0
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    expected = {
        i: at + delay for i, (at, delay, withdrawn) in enumerate(plan) if not (withdrawn and delay >= 2)
    }
    assert started.keys() == expected.keys()
    for index, due in expected.items():
        assert started[index] == due
