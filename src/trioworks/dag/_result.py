"""What a run returns, and the events it emits while running."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from ..core import CancelOutcome

__all__ = ["NodeEvent", "NodeStatus", "WorkflowResult"]


class NodeStatus(enum.Enum):
    PENDING = "pending"  # never reached (the run stopped first)
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"  # a switch did not take its branch, or an input failed (continue-on-error)
    CANCELLED = "cancelled"  # running when the run was cancelled, failed fast or timed out


@attrs.frozen
class NodeEvent:
    """Passed to ``on_node_start`` / ``on_node_finish``. ``duration`` is set on finish."""

    workflow_id: str
    run_id: str
    node_id: str
    status: NodeStatus
    attempt: int = 1
    duration: float | None = None
    error: BaseException | None = None
    skip_reason: str | None = None


@attrs.define
class WorkflowResult:
    """The outcome of one run.

    ``results`` maps node id to its output (``{"result": value}``, or a switch's taken
    branch); ``errors`` maps node id to the exception it raised; ``statuses`` tells every
    node's fate; ``cancel_outcomes`` says, for each sync node stopped while running, whether
    its thread was waited for or abandoned, or its process killed.

    ``result["results"]`` and the other Kailash keys work too, and :meth:`to_kailash_dict`
    / :meth:`to_kailash_tuple` give Kailash's two return shapes.
    """

    workflow_id: str
    run_id: str
    results: dict[str, Any] = attrs.Factory(dict)
    errors: dict[str, BaseException] = attrs.Factory(dict)
    statuses: dict[str, NodeStatus] = attrs.Factory(dict)
    skip_reasons: dict[str, str] = attrs.Factory(dict)
    node_durations: dict[str, float] = attrs.Factory(dict)
    cancel_outcomes: dict[str, CancelOutcome] = attrs.Factory(dict)
    total_duration: float = 0.0
    metrics: dict[str, Any] = attrs.Factory(dict)

    @property
    def ok(self) -> bool:
        return not self.errors and all(
            s in (NodeStatus.COMPLETED, NodeStatus.SKIPPED) for s in self.statuses.values()
        )

    def nodes_with(self, status: NodeStatus) -> list[str]:
        return [n for n, s in self.statuses.items() if s is status]

    @property
    def abandoned(self) -> list[str]:
        """The nodes whose thread was abandoned: it may still be running; its result is dropped."""
        return [n for n, o in self.cancel_outcomes.items() if o is CancelOutcome.ABANDONED]

    def to_kailash_dict(self) -> dict[str, Any]:
        """Kailash's pre-0.10 shape: results, errors (as text), execution_times, ..."""
        return {
            "results": self.results,
            "errors": {n: f"{type(e).__name__}: {e}" for n, e in self.errors.items()},
            "execution_times": self.node_durations,
            "total_duration": self.total_duration,
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "metrics": self.metrics,
        }

    def to_kailash_tuple(self) -> tuple[dict[str, Any], str]:
        """Kailash's shape since 0.10: ``(results, run_id)``."""
        return self.results, self.run_id

    def __iter__(self) -> Any:
        """``results, run_id = runtime.execute(...)``: Kailash's tuple, unpacked."""
        return iter((self.results, self.run_id))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, int):
            return (self.results, self.run_id)[key]
        return self.to_kailash_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_kailash_dict().get(key, default)

    def summary(self) -> Mapping[str, int]:
        counts: dict[str, int] = {}
        for s in self.statuses.values():
            counts[s.value] = counts.get(s.value, 0) + 1
        return counts
