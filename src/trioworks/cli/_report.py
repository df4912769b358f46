"""A finished (or failed) run as a rich summary table, a totals line, or one JSON document."""

from __future__ import annotations

import json
import pprint
from collections.abc import Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

from ..dag import NodeStatus, Workflow, WorkflowResult
from ._errors import describe, location

__all__ = ["error_detail", "result_document", "summary_table", "to_json", "totals_line"]

_STATUS_STYLES = {
    NodeStatus.COMPLETED: "green",
    NodeStatus.FAILED: "bold red",
    NodeStatus.SKIPPED: "yellow",
    NodeStatus.CANCELLED: "magenta",
    NodeStatus.PENDING: "dim",
    NodeStatus.RUNNING: "cyan",
}

_PREVIEW_LINES = 4


def error_detail(exc: BaseException) -> str:
    """``"ValueError: boom (etl.py:12)"``: the error, and where the user's code raised it."""
    where = location(exc)
    return describe(exc) + (f" ({where})" if where else "")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def _short(value: Any, width: int) -> str:
    """One line for ``value``: its repr, or for a long list its length and first item."""
    text = repr(value)
    if len(text) > width and isinstance(value, list | tuple) and value:
        text = f"[{len(value)} items] {value[0]!r}, …"
    return _cut(" ".join(text.split()), width)


def _preview(output: Any, width: int = 60) -> str:
    """A few lines for a node's output, each cut to ``width``: its ``result``, a switch's taken
    branch, or one ``key: value`` line per key of a dict (Kailash nodes return several keys)."""
    if isinstance(output, Mapping) and set(output) == {"result"}:
        output = output["result"]
    elif isinstance(output, Mapping) and len(output) == 1:
        return f"→ {next(iter(output))}"  # a switch: the branch it took
    if isinstance(output, Mapping) and output and all(isinstance(k, str) for k in output):
        items = list(output.items())
        lines = [f"{k}: {_short(v, max(width - len(k) - 2, 8))}" for k, v in items[:_PREVIEW_LINES]]
        if len(items) > _PREVIEW_LINES:
            lines[-1] = f"… {len(items) - _PREVIEW_LINES + 1} more keys"
        return "\n".join(_cut(line, width) for line in lines)
    if isinstance(output, str):
        lines = output.splitlines() or [""]
    else:
        lines = pprint.pformat(output, width=max(width, 20), compact=True, sort_dicts=False).splitlines()
    if len(lines) > _PREVIEW_LINES:
        lines = [*lines[: _PREVIEW_LINES - 1], f"… {len(lines) - _PREVIEW_LINES + 1} more lines"]
    return "\n".join(_cut(line, width) for line in lines)


def _detail(result: WorkflowResult, node_id: str, width: int = 60) -> str:
    status = result.statuses[node_id]
    if status is NodeStatus.FAILED and node_id in result.errors:
        return error_detail(result.errors[node_id])
    if status is NodeStatus.SKIPPED:
        return result.skip_reasons.get(node_id, "")
    if status is NodeStatus.CANCELLED:
        outcome = result.cancel_outcomes.get(node_id)
        return "cancelled" + (f" ({outcome.value})" if outcome is not None else "")
    if status is NodeStatus.PENDING:
        return "not started"
    if node_id in result.results:
        return _preview(result.results[node_id], width)
    return ""


def summary_table(
    workflow: Workflow,
    result: WorkflowResult,
    attempts: Mapping[str, int],
    *,
    failed_node: str | None = None,
    width: int = 80,
) -> Table:
    """One row per node in topological order; ``failed_node`` (the one that stopped the run) in bold red.

    Outputs are shown a few lines each, every line cut to what is left of ``width`` columns.
    """
    table = Table(title=f"workflow {result.workflow_id} · {result.run_id}", title_justify="left")
    # Every column but the last keeps its full width; the output column takes what is left.
    widest = max((len(n) for n in workflow.nodes), default=4) + (2 if failed_node else 0)
    table.add_column("node", no_wrap=True, min_width=widest)
    table.add_column("kind", style="dim", no_wrap=True, min_width=7)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("ms", justify="right", no_wrap=True, min_width=5)
    table.add_column("tries", justify="right", no_wrap=True, min_width=5)
    # Only this column may shrink (rich shrinks every column alike when none is wrappable);
    # its cells are a few lines, each already cut to fit (and cut with an ellipsis if not).
    table.add_column("output / reason", min_width=12)
    # node, kind, status, ms, tries: their widths, three columns of padding and a border each.
    room = max(width - (widest + 7 + 9 + 5 + 5) - 6 * 3 - 1, 12)
    for node_id in workflow.order:
        status = result.statuses.get(node_id, NodeStatus.PENDING)
        duration = result.node_durations.get(node_id)
        is_culprit = node_id == failed_node
        table.add_row(
            Text(("▶ " if is_culprit else "") + node_id),
            workflow.nodes[node_id].kind.value,
            Text(status.value, style=_STATUS_STYLES[status]),
            f"{duration * 1000:.0f}" if duration is not None else "",
            str(attempts[node_id]) if node_id in attempts else "",
            Text(
                _detail(result, node_id, room),
                style="red" if status is NodeStatus.FAILED else "",
                no_wrap=True,
                overflow="ellipsis",
            ),
            style="bold red" if is_culprit else None,
        )
    return table


def totals_line(result: WorkflowResult) -> Text:
    """``"5 completed · 1 failed · 2 skipped in 0.532 s · max concurrency 4 · ..."``."""
    counts = result.summary()
    parts = [f"{counts.get('completed', 0)} completed"]
    parts += [
        f"{counts[s.value]} {s.value}"
        for s in NodeStatus
        if s is not NodeStatus.COMPLETED and counts.get(s.value)
    ]
    metrics = result.metrics
    line = Text(" · ".join(parts), style="bold green" if result.ok else "bold red")
    line.append(f" in {result.total_duration:.3f} s")
    line.append(f" · max concurrency {metrics.get('max_concurrency', 0)}")
    line.append(f" · max threads {metrics.get('max_threads', 0)}")
    if metrics.get("retries"):
        line.append(f" · retries {metrics['retries']}")
    if metrics.get("timeouts"):
        line.append(f" · node timeouts {metrics['timeouts']}")
    return line


def _jsonable(value: Any) -> Any:
    """Containers made JSON-shaped (string keys, lists); leaves are left to ``default=repr``."""
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


def result_document(
    result: WorkflowResult,
    attempts: Mapping[str, int],
    times: Mapping[str, tuple[float | None, float | None]] | None = None,
) -> dict[str, Any]:
    """The ``--json`` document: everything the run produced, JSON-safe.

    ``node_times``: each node's ``start`` and ``end`` in seconds since the run began (``start``
    is null for a skipped node, which has only the moment it was skipped).
    """
    return {
        "workflow_id": result.workflow_id,
        "run_id": result.run_id,
        "ok": result.ok,
        "total_duration": result.total_duration,
        "results": _jsonable(result.results),
        "errors": {n: {"type": type(e).__name__, "message": str(e)} for n, e in result.errors.items()},
        "statuses": {n: s.value for n, s in result.statuses.items()},
        "skip_reasons": dict(result.skip_reasons),
        "node_durations": dict(result.node_durations),
        "attempts": dict(attempts),
        "node_times": {n: {"start": start, "end": end} for n, (start, end) in (times or {}).items()},
        "metrics": _jsonable(result.metrics),
    }


def to_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, default=repr, ensure_ascii=False)
