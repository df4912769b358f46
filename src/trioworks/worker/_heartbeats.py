"""When each activity's heartbeat task starts: when its first heartbeat is due, not at claim time.

Most activities finish before their first heartbeat. Spawning a heartbeat task per activity at
claim time, arming its sleep and cancelling it after the report cost about a quarter of the
worker's CPU per no-op activity (170 µs of 620 µs, measured against an in-process transport on
the 2-CPU bench machine); a nursery per activity to hold it was another ~40 µs. Instead,
:class:`HeartbeatStarter` (one control-plane task in the worker's root nursery) keeps a heap of
first-heartbeat times and, when one is due, starts that activity's heartbeat task in its own
nursery, in a cancel scope the activity stops after its report. From then on the activity has
its own heartbeat task, outside the work limiter, exactly as if it had been started at claim
time.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["Heartbeat", "HeartbeatStarter"]


class Heartbeat:
    """One scheduled task: :meth:`stop` withdraws it, or cancels it once started."""

    __slots__ = ("args", "fn", "scope")

    def __init__(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        self.fn: Callable[..., Awaitable[Any]] | None = fn
        self.args = args
        self.scope: trio.CancelScope | None = None

    @property
    def started(self) -> bool:
        return self.scope is not None

    def stop(self) -> None:
        """Never start it; if it runs, cancel it. Not a checkpoint; idempotent."""
        self.fn = None
        if self.scope is not None:
            self.scope.cancel()


async def _run_in(scope: trio.CancelScope, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
    with scope:
        await fn(*args)


class HeartbeatStarter:
    """Starts each scheduled ``fn(*args)`` once at its due time, unless stopped first.

    The tasks run in the starter's own nursery (so they end with it), each in its own cancel
    scope. The starter sleeps until the earliest pending entry; stopped entries cost nothing more
    than their heap slot until they reach the top.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Heartbeat]] = []
        self._order = itertools.count()
        self._wake_at = math.inf
        self._changed = trio.Event()

    def schedule(self, due: float, fn: Callable[..., Awaitable[Any]], *args: Any) -> Heartbeat:
        """Start ``fn(*args)`` at ``due`` (Trio clock). Not a checkpoint.

        After the returned entry's :meth:`~Heartbeat.stop`, ``fn`` is never started (or, if it
        was, it is cancelled).
        """
        entry = Heartbeat(fn, args)
        heapq.heappush(self._heap, (due, next(self._order), entry))
        if due < self._wake_at:
            self._changed.set()
        return entry

    @property
    def pending(self) -> int:
        """Entries neither started nor stopped."""
        return sum(entry.fn is not None and entry.scope is None for _, _, entry in self._heap)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start what is due until cancelled; the started tasks are cancelled with it."""
        heap = self._heap
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                now = trio.current_time()
                while heap and (heap[0][2].fn is None or heap[0][0] <= now):
                    _, _, entry = heapq.heappop(heap)
                    fn, entry.fn = entry.fn, None
                    if fn is not None:
                        entry.scope = trio.CancelScope()
                        nursery.start_soon(_run_in, entry.scope, fn, *entry.args)
                self._wake_at = heap[0][0] if heap else math.inf
                self._changed = trio.Event()
                with trio.move_on_at(self._wake_at):
                    await self._changed.wait()
