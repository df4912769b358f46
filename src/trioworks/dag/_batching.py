"""Sibling batching: ready sync nodes share worker threads instead of one thread hop each.

A plain sync node (see :meth:`._fusion._ChainFusion._plan_fusion`) that becomes ready is not
given a task of its own: it is appended to the run's batch queue, and up to
``min(max_concurrent_nodes, thread_pool_size)`` *drivers* (tasks in the run's nursery) serve
that queue. A driver holds one ``max_concurrent_nodes`` slot and one ``thread_pool_size`` slot
for one batch: its worker thread takes the queue's next node (a ``popleft``, atomic under the
GIL, is the claim), runs it, and takes the next, checking for cancellation before each, until
the queue is empty, a node fails, or the batch has run for :data:`_BATCH_SECONDS`. Back on the
loop the driver releases its slots and replays the batch node by node, in the order they ran
(status RUNNING, then the outcome, then the dependents: exactly the bookkeeping a node's own
task does), then starts the next batch while the queue is not empty.

Each slot held runs one node at a time, so the limiters bound running nodes as before. Where a
node needs the loop between its start and its end (callbacks, its own timeout, retry,
resources, a run timeout, ``abandon_threads``), it is not batchable and runs as its own task.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import trio

from ..core import CancelOutcome, run_in_thread
from ._fusion import _ERROR, _INPUT_ERROR, _OK, _ChainFusion, _Fused
from ._nodes import RESULT
from ._result import NodeStatus

__all__: list[str] = []

# A batch returns to the loop after this long, so that its nodes' dependents, events and
# metrics do not wait for the whole queue (trivial nodes: some hundred per batch).
_BATCH_SECONDS = 0.002


class _SiblingBatching(_ChainFusion):
    """The batch queue, its drivers, and the replay of a batch on the loop."""

    def _enqueue_batch(self, node_id: str) -> None:
        """On the loop: queue a ready batchable node; start a driver if one more can run."""
        self._batch.append(node_id)
        cap = min(self.rt.node_limiter.total_tokens, self.rt.thread_limiter.total_tokens)
        if self._drivers < cap and self._drivers < len(self._batch):
            self._drivers += 1
            assert self.nursery is not None
            self.nursery.start_soon(self._drive_batches, name="dag batch driver")

    async def _drive_batches(self) -> None:
        """One driver: a batch per (node slot, thread slot) taken, while nodes are queued."""
        limiter = self.rt.node_limiter
        try:
            while self._batch:
                try:
                    limiter.acquire_nowait()  # as _run_node: no scheduler trip for a free slot
                except trio.WouldBlock:
                    await limiter.acquire()
                segment: list[_Fused] = []
                try:
                    # Woken with a slot after the run was cancelled? Start nothing.
                    await trio.lowlevel.checkpoint_if_cancelled()
                    if not self._batch:
                        break  # the other drivers' threads emptied the queue meanwhile
                    self.running.inc()
                    try:
                        await run_in_thread(
                            self._batch_in_thread,
                            segment,
                            limiter=self.rt.thread_limiter,
                            on_cancel=functools.partial(self._batch_cancelled, segment),
                        )
                    finally:
                        self.running.dec()
                except trio.Cancelled:
                    self._replay_cancelled(segment)
                    raise
                finally:
                    limiter.release()
                self._replay(segment)
        finally:
            self._drivers -= 1

    def _batch_in_thread(self, segment: list[_Fused]) -> None:
        """In the worker thread: run queued nodes one by one into ``segment``, each claimed
        with ``popleft`` once the run is known not to be cancelled."""
        self.threads.inc()
        try:
            until = time.perf_counter() + _BATCH_SECONDS
            queue = self._batch
            while True:
                try:
                    trio.from_thread.check_cancelled()
                except trio.Cancelled:
                    return  # nothing new starts; the loop delivers the cancellation
                try:
                    node_id = queue.popleft()
                except IndexError:
                    return
                spec = self.wf.nodes[node_id]
                # The node's sources are recorded (it was queued once they were), so its
                # inputs are final; reading the run's dicts here is safe under the GIL.
                try:
                    kwargs = self._inputs(node_id, spec)
                except Exception as exc:
                    segment.append((node_id, _INPUT_ERROR, exc, 0.0))
                    return
                started = time.perf_counter()
                try:
                    value = self._sync_job(node_id, spec, kwargs)()
                except Exception as exc:
                    segment.append((node_id, _ERROR, exc, time.perf_counter() - started))
                    return
                ended = time.perf_counter()
                segment.append((node_id, _OK, value, ended - started))
                if self.content_aware and self._reports_failure(spec.raw_output, value):
                    return  # the run stops (on the loop) before anything else starts
                if ended > until:
                    return
        finally:
            self.threads.dec()

    def _reports_failure(self, raw_output: bool, value: Any) -> bool:
        output = value if raw_output else {RESULT: value}
        return type(output) is dict and output.get("success") is False

    def _replay(self, segment: list[_Fused]) -> None:
        """On the loop: record a batch node by node, as if each had run as its own task."""
        for node_id, outcome, payload, duration in segment:
            if outcome == _INPUT_ERROR:
                self._settle(self._failed(node_id, payload, 0))
                continue
            self.result.statuses[node_id] = NodeStatus.RUNNING
            self._emit(self.rt.on_node_start, node_id, NodeStatus.RUNNING)
            if outcome == _ERROR:
                self.result.node_durations[node_id] = duration
                self._settle(self._failed(node_id, payload, 1))
                continue
            ready = self._succeeded(node_id, self.wf.nodes[node_id], payload, duration, 1)
            if ready is not None:
                self._settle(ready)

    def _batch_cancelled(self, segment: list[_Fused], outcome: CancelOutcome) -> None:
        # The thread is always waited for (batching is off where threads are abandoned):
        # the cancellation caught the batch's last node, if it had taken one.
        if segment:
            self.result.cancel_outcomes[segment[-1][0]] = outcome

    def _replay_cancelled(self, segment: list[_Fused]) -> None:
        """Cancelled during a batch: the nodes before the last are recorded as they ended
        (nothing new starts); the last is the one the cancellation caught: CANCELLED, or
        FAILED if it raised."""
        for i, (node_id, outcome, payload, duration) in enumerate(segment):
            if outcome == _INPUT_ERROR:
                self._failed(node_id, payload, 0)
                continue
            self.result.statuses[node_id] = NodeStatus.RUNNING
            self._emit(self.rt.on_node_start, node_id, NodeStatus.RUNNING)
            self.result.node_durations[node_id] = duration
            if outcome == _ERROR:
                self._failed(node_id, payload, 1)
            elif i == len(segment) - 1:
                self.result.statuses[node_id] = NodeStatus.CANCELLED
                self._emit(
                    self.rt.on_node_finish, node_id, NodeStatus.CANCELLED, attempt=1, duration=duration
                )
            else:
                output = payload if self.wf.nodes[node_id].raw_output else {RESULT: payload}
                self._completed(node_id, output, duration)
