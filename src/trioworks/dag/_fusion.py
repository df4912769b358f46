"""Linear-chain fusion: a sync node's sole sync successor runs in the same worker thread.

The thread side (:meth:`_ChainFusion._fused_chain`) runs the chain and records each node's
outcome; the loop side (:meth:`_ChainFusion._finish_chain`, :meth:`_cancelled_chain`) replays
the record node by node, as if each had run alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import trio

from ..core import CancelOutcome
from ._nodes import RESULT, NodeKind, NodeSpec
from ._paths import _follow
from ._result import NodeStatus
from ._run_state import _RunState

__all__: list[str] = []

# A node run in another node's thread (linear-chain fusion): (node, outcome, value or
# exception, duration; for the chain's head, the perf_counter time it ended).
_OK, _ERROR, _INPUT_ERROR = "ok", "error", "input error"
_Fused = tuple[str, str, Any, float]


class _ChainFusion(_RunState):
    """Plans fused chains and records what ran in a fused thread."""

    def _plan_fusion(self) -> None:
        """Plan linear-chain fusion and sibling batching (:mod:`._batching`).

        Linear-chain fusion: ``_fuse_next[a] = b`` when ``b`` may run in ``a``'s worker thread
        right after ``a``, without a trip back to the loop (as Dask fuses linear chains).

        Only where nothing but ``a`` decides when ``b`` runs and nothing needs the loop between
        them: ``a``'s only edge goes to ``b`` and is ``b``'s only input; both are plain sync
        thread nodes without timeout, retry or resources; no node callbacks (they run on the
        loop, in order); no run timeout and no ``abandon_threads`` (an abandoned thread must
        be one node). Cancellation is checked in the thread before each fused node.
        """
        rt, wf = self.rt, self.wf
        if (
            rt.on_node_start is not None
            or rt.on_node_finish is not None
            or rt.abandon_threads
            or self.time_limit is not None
        ):
            return

        def plain(spec: NodeSpec) -> bool:
            return (
                spec.kind is NodeKind.THREAD
                and spec.timeout is None
                and spec.retry is None
                and not spec.resources
            )

        for node_id in wf.order:
            out = wf.outbound[node_id]
            if len(out) != 1:
                continue
            target = out[0].target
            if (
                len(wf.inbound[target]) == 1
                and target not in self._maybe_none
                and plain(wf.nodes[node_id])
                and plain(wf.nodes[target])
            ):
                self._fuse_next[node_id] = target
        # Sibling batching (._batching): the same conditions, for every plain sync node that
        # does not head a fused chain (a chain's head runs the chain in its own thread).
        self._batchable = frozenset(n for n in wf.order if n not in self._fuse_next and plain(wf.nodes[n]))

    # -- linear-chain fusion (see _plan_fusion) ---------------------------------

    def _fused_chain(
        self, node_id: str, spec: NodeSpec, job: Callable[[], Any], segment: list[_Fused]
    ) -> Any:
        """In the worker thread: run ``node_id``, then its fused successors while the run is not
        cancelled, recording each in ``segment`` for the loop. Returns ``node_id``'s value."""
        value = job()
        segment.append((node_id, _OK, value, time.perf_counter()))
        current, current_spec = node_id, spec
        while (target := self._fuse_next.get(current)) is not None:
            output = value if current_spec.raw_output else {RESULT: value}
            if self.content_aware and type(output) is dict and output.get("success") is False:
                break
            try:
                trio.from_thread.check_cancelled()
            except trio.Cancelled:
                break  # nothing new starts; the loop delivers the cancellation
            target_spec = self.wf.nodes[target]
            edge = self.wf.inbound[target][0]
            try:
                kwargs = self._static_inputs(target, target_spec)
                kwargs[edge.input] = _follow(
                    output, edge.path, edge.keys, target, edge.input, edge.source, self.strict
                )
            except Exception as exc:
                segment.append((target, _INPUT_ERROR, exc, 0.0))
                break
            started = time.perf_counter()
            try:
                value = self._sync_job(target, target_spec, kwargs)()
            except Exception as exc:
                segment.append((target, _ERROR, exc, time.perf_counter() - started))
                break
            segment.append((target, _OK, value, time.perf_counter() - started))
            current, current_spec = target, target_spec
        return segment[0][2]

    def _first_duration(self, started_at: float, segment: list[_Fused]) -> float:
        # The head's time on the run's clock, less the time its thread spent on fused nodes.
        return max(0.0, trio.current_time() - started_at - (time.perf_counter() - segment[0][3]))

    def _finish_chain(self, spec: NodeSpec, started_at: float, segment: list[_Fused]) -> None:
        """On the loop: record a fused chain node by node, in order, as if each had run alone."""
        head, _, value, _ = segment[0]
        ready = self._succeeded(head, spec, value, self._first_duration(started_at, segment), 1)
        for node_id, outcome, payload, duration in segment[1:]:
            if ready is None:
                return
            if outcome == _INPUT_ERROR:
                self._settle(self._failed(node_id, payload, 0))
                return
            self.result.statuses[node_id] = NodeStatus.RUNNING
            self._emit(self.rt.on_node_start, node_id, NodeStatus.RUNNING)
            if outcome == _ERROR:
                self.result.node_durations[node_id] = duration
                self._settle(self._failed(node_id, payload, 1))
                return
            ready = self._succeeded(node_id, self.wf.nodes[node_id], payload, duration, 1)
        if ready is not None:
            self._settle(ready)

    def _cancelled_chain(
        self, head: str, spec: NodeSpec, started_at: float, segment: list[_Fused]
    ) -> tuple[str, float]:
        """Cancelled after a fused chain ran: the nodes before the last are recorded as they
        ended (nothing new starts); the last is the one the cancellation caught, which is
        returned (as the head alone would be) with its duration."""
        durations = [self._first_duration(started_at, segment)] + [d for _, _, _, d in segment[1:]]
        for i, (node_id, outcome, payload, _) in enumerate(segment):
            if i:
                self.result.statuses[node_id] = NodeStatus.RUNNING
                self._emit(self.rt.on_node_start, node_id, NodeStatus.RUNNING)
            if i == len(segment) - 1:
                outcome_of_head = self.result.cancel_outcomes.pop(head, CancelOutcome.WAITED)
                if outcome == _OK:
                    self.result.cancel_outcomes[node_id] = outcome_of_head
                    return node_id, durations[i]
                self.result.node_durations[node_id] = durations[i]
                self._failed(node_id, payload, 0 if outcome == _INPUT_ERROR else 1)
                return node_id, durations[i]
            output = payload if self.wf.nodes[node_id].raw_output else {RESULT: payload}
            self._completed(node_id, output, durations[i])
        raise AssertionError("unreachable: the segment is not empty")
