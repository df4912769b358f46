"""The runtime's ``on_node_start`` / ``on_node_finish`` callbacks, shown as a rich progress bar."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from ..dag import NodeEvent, NodeStatus, Workflow

__all__ = ["NodeProgress"]

_MARKS = {
    NodeStatus.COMPLETED: ("✓", "green"),
    NodeStatus.FAILED: ("✗", "bold red"),
    NodeStatus.SKIPPED: ("↷", "yellow"),
}


class NodeProgress:
    """Follows one run through the runtime's node callbacks.

    Use as a context manager around the run; pass :meth:`on_start` and :meth:`on_finish`
    to :class:`~trioworks.dag.AsyncLocalRuntime`. With ``bar`` a rich progress bar (nodes
    done / total, and the nodes running now) is drawn on ``console`` while the run lasts and
    erased at its end. With ``log`` each finished node is also printed as one line, with its
    time since the start: above the bar when there is one, on ``log`` otherwise.

    The callbacks run on the Trio thread and only update state; rich redraws from its own
    refresh thread. ``attempts`` records how many attempts each finished node took;
    ``started`` and ``finished`` when each node started and finished (``time.perf_counter()``).
    """

    def __init__(
        self, workflow: Workflow, console: Console, *, bar: bool = True, log: Console | None = None
    ) -> None:
        self.workflow = workflow
        self.attempts: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self._log = log
        self._running: list[str] = []
        self._started_at = time.perf_counter()
        self._progress: Progress | None = None
        if bar:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[running]}", style="cyan"),
                console=console,
                transient=True,
            )
            self._task = self._progress.add_task("nodes", total=len(workflow.nodes), running="")

    def __enter__(self) -> NodeProgress:
        self._started_at = time.perf_counter()
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def on_start(self, event: NodeEvent) -> None:
        self.started[event.node_id] = time.perf_counter()
        self._running.append(event.node_id)
        self._update(advance=0)

    def on_finish(self, event: NodeEvent) -> None:
        now = self.finished[event.node_id] = time.perf_counter()
        if event.status is not NodeStatus.SKIPPED and event.node_id not in self.started:
            self.started[event.node_id] = now  # switch and merge route inline: no start event
        if event.node_id in self._running:
            self._running.remove(event.node_id)
        if event.status is not NodeStatus.SKIPPED:
            self.attempts[event.node_id] = event.attempt
        self._update(advance=1)
        if self._log is not None:
            self._print(self._line(event))

    def times(self) -> dict[str, tuple[float | None, float | None]]:
        """``{node: (start, end)}`` in seconds since the run began; None where it did not happen
        (a skipped node has an end, when it was skipped, and no start)."""
        nodes = dict.fromkeys([*self.started, *self.finished])

        def since(stamp: float | None) -> float | None:
            return None if stamp is None else max(stamp - self._started_at, 0.0)

        return {n: (since(self.started.get(n)), since(self.finished.get(n))) for n in nodes}

    def _update(self, advance: int) -> None:
        if self._progress is None:
            return
        running = ", ".join(self._running[:4]) + (
            f" +{len(self._running) - 4}" if len(self._running) > 4 else ""
        )
        self._progress.update(self._task, advance=advance, running=f"running: {running}" if running else "")

    def _line(self, event: NodeEvent) -> Text:
        mark, style = _MARKS.get(event.status, ("·", ""))
        spec = self.workflow.nodes[event.node_id]
        line = Text(f"  {time.perf_counter() - self._started_at:6.3f}s  ")
        line.append(f"{mark} {event.node_id}", style=style)
        line.append(f"  {spec.kind.value}", style="dim")
        if event.duration:
            line.append(f"  {event.duration * 1000:.0f} ms")
        if event.status is NodeStatus.SKIPPED:
            line.append("  skipped", style="yellow")
        if event.attempt > 1:
            line.append(f"  (attempt {event.attempt})", style="yellow")
        if event.error is not None:
            line.append(f"  {type(event.error).__name__}: {event.error}", style="red")
        return line

    def _print(self, line: Text) -> None:
        if self._progress is not None:
            self._progress.console.print(line)  # above the live bar
        elif self._log is not None:
            self._log.print(line)
