"""Group calls that arrive while a thread is busy into one thread hop: :class:`ThreadBatcher`.

Each :meth:`ThreadBatcher.submit` puts one item in a queue. Whoever finds no batch running
becomes the *leader*: it takes a slot of the limiter, takes every item queued by then (up to
``max_batch``), runs them in one worker thread with one call of ``run_batch`` and hands each
item its own outcome. Items submitted meanwhile wait in the queue; when the batch ends, the
first of them is made the next leader. So under load one thread hop (and, for a storage, one
transaction) serves many calls, and with no load a call costs what one hop costs.

Leader/follower, with no task of its own: a batch runs in the task of one of the callers whose
items it serves, so every batch has an owner that waits for it (the caller's nursery), nothing
outlives the callers, and there is nothing to start or stop.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import outcome
import trio

from ._metrics import Counter, Metrics
from ._offload import thread_hop

__all__ = ["ThreadBatcher"]

I = TypeVar("I")  # noqa: E741  (an item)
R = TypeVar("R")

_PENDING, _TAKEN, _DONE = "pending", "taken", "done"


class _Slot(Generic[I, R]):
    """One submitted item: its state, whether its task leads, its outcome, its wake-up."""

    __slots__ = ("event", "item", "lead", "result", "state")

    def __init__(self, item: I) -> None:
        self.item = item
        self.state = _PENDING
        self.lead = False
        self.result: outcome.Outcome[R] | None = None
        self.event = trio.Event()


class ThreadBatcher(Generic[I, R]):
    """Run ``run_batch(items)`` in a worker thread for items submitted concurrently.

    ``run_batch`` is called in a thread with a list of items (oldest first, at most
    ``max_batch``) and returns one :class:`outcome.Outcome` per item, in the same order: what
    :meth:`submit` of that item returns (``outcome.Value``) or raises (``outcome.Error``). It
    must not raise (if it does, every item of the batch gets that exception) and must not call
    ``trio.from_thread`` without a ``trio_token`` (the thread is a bare one, see
    :func:`~._offload.thread_hop`).

    At most ``max_batches`` batches run at once, each holding one slot of ``limiter`` while it
    runs (the slot is taken before the batch is chosen, so the limiter bounds batches exactly as
    it bounds :func:`~._offload.run_in_thread` calls). Not thread-safe: use it from one Trio run.

    With ``metrics``, the counters ``{name}.batches`` and ``{name}.batched`` count the batches
    run and the items they ran (their ratio is the mean batch size).
    """

    def __init__(
        self,
        run_batch: Callable[[list[I]], Sequence[outcome.Outcome[R]]],
        *,
        limiter: trio.CapacityLimiter,
        max_batch: int = 64,
        max_batches: int = 1,
        metrics: Metrics | None = None,
        name: str = "batcher",
    ) -> None:
        if max_batch < 1 or max_batches < 1:
            raise ValueError(f"max_batch and max_batches must be >= 1, got {max_batch}, {max_batches}")
        self._run_batch = run_batch
        self._limiter = limiter
        self.max_batch = max_batch
        self.max_batches = max_batches
        self._queue: collections.deque[_Slot[I, R]] = collections.deque()
        self._leaders = 0  # tasks leading a batch (waiting for a slot, or running one)
        self.batches = 0  # batches run so far
        self.items = 0  # items those batches ran
        self._counters: tuple[Counter, Counter] | None = None
        if metrics is not None:
            self._counters = (metrics.counter(f"{name}.batches"), metrics.counter(f"{name}.batched"))

    @property
    def queued(self) -> int:
        """Items submitted and not yet taken into a batch."""
        return len(self._queue)

    async def submit(self, item: I) -> R:
        """Run ``item`` in the next batch; what ``run_batch`` gave it is returned or raised.

        Cancellation:
            A checkpoint. Cancelled while the item is still queued (or while its task waits for
            a limiter slot to lead), the item is dropped and never runs. Once its batch has
            started the call is not abandoned (as :func:`~._offload.run_in_thread` without
            ``abandon_on_cancel``): it waits for the batch to end, then raises
            :exc:`trio.Cancelled`, or the item's own exception if it got one.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        slot: _Slot[I, R] = _Slot(item)
        self._queue.append(slot)
        if self._leaders < self.max_batches:
            self._leaders += 1
            slot.lead = True
        try:
            while slot.state is not _DONE:
                if slot.lead:
                    await self._lead(slot)
                else:
                    slot.event = trio.Event()
                    await slot.event.wait()
        except trio.Cancelled:
            if slot.state is _PENDING:  # never taken: it never runs
                self._queue.remove(slot)
                if slot.lead:
                    self._resign(slot)
                raise
            # Taken into a batch that runs (or ran) in a thread: wait for its end.
            with trio.CancelScope(shield=True):
                while slot.state is not _DONE:
                    slot.event = trio.Event()
                    await slot.event.wait()
            assert slot.result is not None
            if isinstance(slot.result, outcome.Error):
                return slot.result.unwrap()  # raises the item's own error, as run_in_thread does
            raise
        assert slot.result is not None
        if isinstance(slot.result, outcome.Value):
            # A cancellation that arrived after the batch began is delivered now; the result
            # (already stored by then, for a storage) is discarded, as run_in_thread does.
            await trio.lowlevel.checkpoint_if_cancelled()
        return slot.result.unwrap()

    async def _lead(self, own: _Slot[I, R]) -> None:
        """Take a limiter slot, then the queued items, run them in one hop, deliver, resign."""
        try:
            try:
                self._limiter.acquire_nowait()
            except trio.WouldBlock:
                await self._limiter.acquire()
        except BaseException:  # cancelled waiting for a slot: someone else leads the queue
            self._resign(own)
            raise
        try:
            count = min(len(self._queue), self.max_batch)
            batch = [self._queue.popleft() for _ in range(count)]
            if not batch:  # another leader took them all meanwhile
                return
            for slot in batch:
                slot.state = _TAKEN
            items = [slot.item for slot in batch]
            try:
                results = list(await thread_hop(functools.partial(self._run_batch, items)))
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} outcomes for {len(batch)} items")
            except Exception as exc:  # a broken run_batch: each of its items fails with it
                results = [outcome.Error(exc) for _ in batch]  # one each: unwrapped once
            self.batches += 1
            self.items += len(batch)
            if self._counters is not None:
                self._counters[0].inc()
                self._counters[1].inc(len(batch))
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
                slot.state = _DONE
                if slot is not own:
                    slot.event.set()
        finally:
            self._limiter.release()
            self._resign(own)

    def _resign(self, slot: _Slot[I, R]) -> None:
        """``slot``'s task leads no more: make queued items' tasks leaders, up to ``max_batches``."""
        slot.lead = False
        self._leaders -= 1
        for waiting in self._queue:
            if self._leaders >= self.max_batches:
                return
            if not waiting.lead:
                waiting.lead = True
                self._leaders += 1
                waiting.event.set()
