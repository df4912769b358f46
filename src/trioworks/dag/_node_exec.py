"""Running one node: its limiter slot, attempts, timeout, retry and where it runs
(a worker thread, a process, or the loop)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import trio

from ..core import CancelOutcome, retry, run_in_process, run_in_thread
from ._batching import _SiblingBatching
from ._errors import NodeTimeoutError
from ._fusion import _Fused
from ._nodes import NodeKind, NodeSpec, run_async_code, run_source
from ._result import NodeStatus

__all__: list[str] = []

log = logging.getLogger("trioworks.dag")


class _NodeExecution(_SiblingBatching):
    """One node's task, from its slot to its recorded outcome."""

    def _handoff(self, spec: NodeSpec) -> bool:
        """Whether ``spec`` may wait in ``_waiting`` and run in another node's task: it takes
        its slot once, with no retry and no resources to fetch first (a cyclic run says no:
        its group nodes run through its own ``_run_node``)."""
        return spec.retry is None and not spec.resources

    async def _run_node(self, node_id: str, spec: NodeSpec) -> None:
        """Run ``node_id``; then run this run's waiting nodes on the same slot (see _pull)."""
        await self._pull(await self._run_one(node_id, spec, held=False))

    async def _pull(self, held: bool) -> None:
        """While this task holds a slot, this run has ready nodes waiting for one and no task but
        this run's stand-in waits on the limiter, run the next waiting node here (a task and a
        limiter wait less per node on wide graphs); otherwise give the slot back."""
        limiter = self.rt.node_limiter
        while held:
            if self._waiting and limiter.statistics().tasks_waiting <= self._stand_in:
                node_id = self._waiting.popleft()
                held = await self._run_one(node_id, self.wf.nodes[node_id], held=True)
            else:
                limiter.release()
                held = False

    def _start_node(self, node_id: str) -> None:
        """A task for a hand-off node; it counts as starting until it holds its slot."""
        assert self.nursery is not None
        self._starting += 1
        self.nursery.start_soon(self._run_node, node_id, self.wf.nodes[node_id], name=f"node {node_id}")

    def _start_stand_in(self) -> None:
        assert self.nursery is not None
        self._stand_in = True
        self.nursery.start_soon(self._stand_in_task, name="dag slot stand-in")

    async def _stand_in_task(self) -> None:
        """Waits on the limiter for this run's waiting nodes, in the limiter's order with every
        other task, so that a slot freed anywhere (another run, a retried node, a batch driver)
        reaches them; with the slot, it runs the first waiting node and pulls on."""
        limiter = self.rt.node_limiter
        try:
            limiter.acquire_nowait()
        except trio.WouldBlock:
            await limiter.acquire()
        self._stand_in = False
        if not self._waiting:  # this run's node tasks took them all meanwhile
            limiter.release()
            return
        node_id = self._waiting.popleft()
        if self._waiting:
            self._start_stand_in()
        # Its turn came in the limiter's order: it runs the first waiting node, whoever waits.
        await self._pull(await self._run_one(node_id, self.wf.nodes[node_id], held=True))

    async def _run_one(self, node_id: str, spec: NodeSpec, *, held: bool) -> bool:
        """One node's slot, attempts and outcome. Returns whether this task still holds a
        ``node_limiter`` slot (a hand-off node keeps it for the next waiting node)."""
        if not held and self._handoff(spec):
            self._starting -= 1  # it takes its slot below, without a checkpoint before
        attempts = 0
        started_at: float | None = None
        # Filled by _fused_chain when successors ran in this node's thread (see _plan_fusion).
        segment: list[_Fused] = []

        async def attempt() -> Any:
            nonlocal attempts, started_at
            # Woken with a slot after the run was cancelled (fail-fast hands the failing
            # node's slot on before it cancels)? Start nothing.
            await trio.lowlevel.checkpoint_if_cancelled()
            attempts += 1
            if started_at is None:
                started_at = trio.current_time()
                self.result.statuses[node_id] = NodeStatus.RUNNING
                self._emit(self.rt.on_node_start, node_id, NodeStatus.RUNNING)
            self.running.inc()
            try:
                if spec.timeout is None:
                    return await self._invoke(node_id, spec, kwargs, segment)
                with trio.move_on_after(spec.timeout) as scope:
                    return await self._invoke(node_id, spec, kwargs)
                assert scope.cancelled_caught
                self.metrics.counter("timeouts").inc()
                abandoned = self.result.cancel_outcomes.get(node_id) is CancelOutcome.ABANDONED
                raise NodeTimeoutError(node_id, spec.timeout, abandoned=abandoned)
            finally:
                self.running.dec()

        def on_retry(attempt_no: int, exc: BaseException, delay: float) -> None:
            self.metrics.counter("retries").inc()
            log.info("node %r attempt %d failed (%r); retrying in %.3f s", node_id, attempt_no, exc, delay)

        try:
            kwargs = self._inputs(node_id, spec)
            kwargs.update([(param, await self._resource(name)) for param, name in spec.resources.items()])
            if spec.retry is None:
                limiter = self.rt.node_limiter
                if not held:
                    try:
                        # A free slot is taken without a checkpoint (attempt() checks for
                        # cancellation itself): a trip through the scheduler per node is a
                        # third of the runtime's own cost on wide graphs.
                        limiter.acquire_nowait()
                    except trio.WouldBlock:
                        await limiter.acquire()
                held = True
                try:
                    value = await attempt()
                except BaseException:
                    limiter.release()
                    held = False
                    raise
                if not self._handoff(spec):
                    limiter.release()
                    held = False
            else:
                value = await retry(attempt, spec.retry, limiter=self.rt.node_limiter, on_retry=on_retry)
        except trio.Cancelled:
            if held:
                self.rt.node_limiter.release()
            if started_at is not None:
                duration = trio.current_time() - started_at
                if len(segment) > 1:
                    node_id, duration = self._cancelled_chain(node_id, spec, started_at, segment)
                    if node_id in self.result.errors:
                        raise
                self.result.statuses[node_id] = NodeStatus.CANCELLED
                self.result.node_durations[node_id] = duration
                self._emit(
                    self.rt.on_node_finish, node_id, NodeStatus.CANCELLED, attempt=attempts, duration=duration
                )
            raise
        except Exception as exc:
            if held:
                self.rt.node_limiter.release()
            if started_at is not None:
                self.result.node_durations[node_id] = trio.current_time() - started_at
            self._settle(self._failed(node_id, exc, attempts))
            return False
        assert started_at is not None
        if len(segment) > 1:
            self._finish_chain(spec, started_at, segment)
            return held
        ready = self._succeeded(node_id, spec, value, trio.current_time() - started_at, attempts)
        if ready is not None:
            self._settle(ready)
        return held

    async def _invoke(
        self, node_id: str, spec: NodeSpec, kwargs: dict[str, Any], segment: list[_Fused] | None = None
    ) -> Any:
        def on_cancel(outcome: CancelOutcome) -> None:
            self.result.cancel_outcomes[node_id] = outcome
            if outcome is CancelOutcome.ABANDONED:
                log.warning("node %r: its thread could not be stopped and was abandoned", node_id)

        if spec.kind is NodeKind.ASYNC:
            if spec.code is not None:
                return await run_async_code(
                    node_id, spec.code, kwargs, {"get_resource": self._resource}, self.wf.strict
                )
            if spec.instance is not None:
                return await spec.instance.execute_async(**kwargs)
            assert spec.fn is not None
            return await spec.fn(**kwargs)
        if spec.kind is NodeKind.PROCESS:
            if spec.source is not None:
                job = functools.partial(run_source, node_id, spec.source, kwargs, self.wf.strict)
            else:
                assert spec.fn is not None
                job = functools.partial(spec.fn, **kwargs)
            return await run_in_process(job, limiter=self.rt.process_limiter, on_cancel=on_cancel)
        thread_job = self._sync_job(node_id, spec, kwargs)
        if segment is not None and node_id in self._fuse_next:
            thread_job = functools.partial(self._fused_chain, node_id, spec, thread_job, segment)
        return await self._thread(spec, functools.partial(self._in_thread, thread_job), on_cancel)

    async def _thread(
        self, spec: NodeSpec, job: Callable[[], Any], on_cancel: Callable[[CancelOutcome], None]
    ) -> Any:
        # A thread cannot be interrupted: a timeout that waited for it would return whenever
        # the thread ended (never, for a hung call). So under a timeout (the node's own or the
        # run's) a cancelled thread is abandoned, whatever cancelled it; without one it is
        # waited for unless abandon_threads.
        abandon = self.rt.abandon_threads or spec.timeout is not None or self.time_limit is not None
        return await run_in_thread(
            job, limiter=self.rt.thread_limiter, abandon_on_cancel=abandon, on_cancel=on_cancel
        )

    def _in_thread(self, job: Callable[[], Any]) -> Any:
        self.threads.inc()
        try:
            return job()
        finally:
            self.threads.dec()
