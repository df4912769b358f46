"""``dag run --report run.html`` (or ``run.svg``): one run drawn as a timeline and a graph.

A self-contained file: inline SVG and CSS, no scripts, nothing fetched from the network. The
timeline has one bar per node from its start to its end (seconds since the run began), labelled
with where it ran (``thread``, ``process``, ``loop`` for async nodes on the Trio loop, ``inline``
for switch and merge routing) and how many attempts it took; a skipped node is a marker at the
moment it was skipped, with the reason. The graph is the workflow laid out left to right in
layers, each node coloured by its status.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import attrs

from ..dag import NodeKind, NodeStatus, Workflow, WorkflowResult

__all__ = ["NodeRun", "node_runs", "render_html", "render_svg"]

WHERE = {
    NodeKind.ASYNC: "loop",
    NodeKind.THREAD: "thread",
    NodeKind.PROCESS: "process",
    NodeKind.SWITCH: "inline",
    NodeKind.MERGE: "inline",
}

COLOURS = {
    NodeStatus.COMPLETED: "#43a047",
    NodeStatus.FAILED: "#e53935",
    NodeStatus.SKIPPED: "#f9a825",
    NodeStatus.CANCELLED: "#8e24aa",
    NodeStatus.PENDING: "#bdbdbd",
    NodeStatus.RUNNING: "#039be5",
}

_LABEL_W, _PLOT_W, _ROW_H, _TOP = 170, 640, 24, 34
_BOX_W, _BOX_H, _COL_GAP, _ROW_GAP = 160, 38, 60, 18


@attrs.frozen
class NodeRun:
    """One node's part in the run, as drawn."""

    node_id: str
    where: str
    status: NodeStatus
    start: float | None  # seconds since the run began; None: it never started
    end: float | None
    attempts: int
    detail: str  # the skip reason, the error, or nothing


def node_runs(
    workflow: Workflow,
    result: WorkflowResult,
    times: Mapping[str, tuple[float | None, float | None]],
    attempts: Mapping[str, int],
) -> list[NodeRun]:
    """Every node in topological order, with its times (``{node: (start, end)}``) and fate."""
    runs = []
    for node_id in workflow.order:
        status = result.statuses.get(node_id, NodeStatus.PENDING)
        start, end = times.get(node_id, (None, None))
        if status is NodeStatus.SKIPPED:
            detail = result.skip_reasons.get(node_id, "")
        elif node_id in result.errors:
            error = result.errors[node_id]
            detail = f"{type(error).__name__}: {error}"
        else:
            detail = ""
        runs.append(
            NodeRun(
                node_id=node_id,
                where=WHERE[workflow.nodes[node_id].kind],
                status=status,
                start=start,
                end=end,
                attempts=attempts.get(node_id, 1 if start is not None else 0),
                detail=detail,
            )
        )
    return runs


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def timeline_svg(runs: list[NodeRun], total: float) -> str:
    """One row per node: a bar from start to end, or a marker for a node that was skipped."""
    ends = [r.end for r in runs if r.end is not None]
    span = max([total, *ends, 1e-6])
    scale = _PLOT_W / span
    height = _TOP + _ROW_H * len(runs) + 10
    width = _LABEL_W + _PLOT_W + 200
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<text x="{_LABEL_W}" y="14" fill="#555">seconds since the run began (total {_seconds(total)})</text>',
    ]
    for i in range(6):
        x = _LABEL_W + _PLOT_W * i / 5
        parts.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 8}" stroke="#e0e0e0"/>')
        parts.append(
            f'<text x="{x:.1f}" y="30" fill="#777" text-anchor="middle">{_seconds(span * i / 5)}</text>'
        )
    for row, run in enumerate(runs):
        y = _TOP + row * _ROW_H
        colour = COLOURS[run.status]
        parts.append(f'<g class="node-row" data-node="{_e(run.node_id)}" data-status="{run.status.value}">')
        parts.append(f'<text x="{_LABEL_W - 8}" y="{y + 16}" text-anchor="end">{_e(run.node_id)}</text>')
        if run.status is NodeStatus.SKIPPED or run.start is None:
            at = run.end if run.end is not None else 0.0
            x = _LABEL_W + at * scale
            note = f"skipped: {run.detail}" if run.status is NodeStatus.SKIPPED else "not started"
            parts.append(
                f'<path d="M{x:.1f} {y + 5} l6 6 l-6 6 l-6 -6 z" fill="{colour}"><title>{_e(note)}</title></path>'
            )
            parts.append(f'<text x="{x + 10:.1f}" y="{y + 16}" fill="#555">{_e(note)}</text>')
        else:
            end = run.end if run.end is not None else span
            x0 = _LABEL_W + run.start * scale
            w = max((end - run.start) * scale, 2.0)
            label = f"{run.where} · {_seconds(end - run.start)}"
            if run.attempts > 1:
                label += f" · {run.attempts} attempts"
            if run.status is not NodeStatus.COMPLETED:
                label += f" · {run.status.value}"
            tip = (
                f"{run.node_id}: {run.status.value} in a {run.where}, {_seconds(run.start)} → {_seconds(end)}"
            )
            if run.detail:
                tip += f"\n{run.detail}"
            parts.append(
                f'<rect x="{x0:.1f}" y="{y + 4}" width="{w:.1f}" height="{_ROW_H - 8}" rx="3" '
                f'fill="{colour}"><title>{_e(tip)}</title></rect>'
            )
            parts.append(f'<text x="{x0 + w + 6:.1f}" y="{y + 16}" fill="#333">{_e(label)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _layers(workflow: Workflow) -> dict[str, int]:
    """Longest-path layering: a node sits one column right of its furthest input."""
    layer: dict[str, int] = {}
    for node_id in workflow.order:
        layer[node_id] = max((layer[e.source] + 1 for e in workflow.inbound[node_id]), default=0)
    return layer


def graph_svg(workflow: Workflow, result: WorkflowResult) -> str:
    """The workflow left to right, nodes coloured by status, edges as arrows."""
    layer = _layers(workflow)
    columns: dict[int, list[str]] = {}
    for node_id in workflow.order:
        columns.setdefault(layer[node_id], []).append(node_id)
    at: dict[str, tuple[float, float]] = {}
    for col, nodes in columns.items():
        for row, node_id in enumerate(nodes):
            at[node_id] = (10 + col * (_BOX_W + _COL_GAP), 10 + row * (_BOX_H + _ROW_GAP))
    width = 20 + max(len(columns), 1) * (_BOX_W + _COL_GAP) - _COL_GAP
    height = 20 + max((len(n) for n in columns.values()), default=1) * (_BOX_H + _ROW_GAP) - _ROW_GAP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#777"/></marker></defs>',
    ]
    drawn: set[tuple[str, str]] = set()
    for edge in workflow.edges:
        if (edge.source, edge.target) in drawn:
            continue
        drawn.add((edge.source, edge.target))
        (sx, sy), (tx, ty) = at[edge.source], at[edge.target]
        x1, y1, x2, y2 = sx + _BOX_W, sy + _BOX_H / 2, tx, ty + _BOX_H / 2
        mid = (x1 + x2) / 2
        mapping = ", ".join(
            f"{e.path} → {e.input}"
            for e in workflow.edges
            if (e.source, e.target) == (edge.source, edge.target)
        )
        parts.append(
            f'<path d="M{x1:.1f} {y1:.1f} C{mid:.1f} {y1:.1f} {mid:.1f} {y2:.1f} {x2:.1f} {y2:.1f}" '
            f'fill="none" stroke="#777" marker-end="url(#arrow)"><title>{_e(mapping)}</title></path>'
        )
    for node_id, (x, y) in at.items():
        status = result.statuses.get(node_id, NodeStatus.PENDING)
        spec = workflow.nodes[node_id]
        parts.append(f'<g class="node" data-node="{_e(node_id)}" data-status="{status.value}">')
        parts.append(
            f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" fill="{COLOURS[status]}" '
            f'fill-opacity="0.85" stroke="#333"><title>{_e(f"{node_id}: {status.value}")}</title></rect>'
        )
        name = node_id if len(node_id) <= 22 else node_id[:21] + "…"
        kind = spec.type_name if len(spec.type_name) <= 26 else spec.type_name[:25] + "…"
        parts.append(f'<text x="{x + 8}" y="{y + 16}" font-weight="bold">{_e(name)}</text>')
        parts.append(f'<text x="{x + 8}" y="{y + 31}" font-size="10">{_e(kind)} · {status.value}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _legend() -> str:
    return " ".join(
        f'<span class="key"><span class="swatch" style="background:{c}"></span>{s.value}</span>'
        for s, c in COLOURS.items()
        if s is not NodeStatus.RUNNING
    )


_CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin-bottom: 4px; }
h2 { font-size: 16px; margin-top: 28px; }
.summary { color: #555; }
.key { margin-right: 14px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: middle; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""


def render_html(workflow: Workflow, result: WorkflowResult, runs: list[NodeRun], summary: str) -> str:
    """The whole report page."""
    rows = []
    for run in runs:
        took = _seconds(run.end - run.start) if run.start is not None and run.end is not None else ""
        rows.append(
            "<tr>"
            f"<td>{_e(run.node_id)}</td><td>{run.where}</td>"
            f'<td><span class="swatch" style="background:{COLOURS[run.status]}"></span>{run.status.value}</td>'
            f'<td class="num">{_seconds(run.start) if run.start is not None else ""}</td>'
            f'<td class="num">{_seconds(run.end) if run.end is not None else ""}</td>'
            f'<td class="num">{took}</td><td class="num">{run.attempts or ""}</td>'
            f"<td>{_e(run.detail)}</td></tr>"
        )
    title = f"workflow {result.workflow_id} · {result.run_id}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{_e(title)}</h1>",
            f'<p class="summary">{_e(summary)}</p>',
            f"<p>{_legend()}</p>",
            "<h2>Timeline</h2>",
            timeline_svg(runs, result.total_duration),
            "<h2>Graph</h2>",
            graph_svg(workflow, result),
            "<h2>Nodes</h2>",
            "<table><thead><tr><th>node</th><th>ran in</th><th>status</th><th>start</th><th>end</th>"
            "<th>took</th><th>attempts</th><th>skip reason / error</th></tr></thead><tbody>",
            *rows,
            "</tbody></table>",
            "</body></html>",
            "",
        ]
    )


def render_svg(workflow: Workflow, result: WorkflowResult, runs: list[NodeRun], summary: str) -> str:
    """The timeline above the graph, as one standalone SVG."""
    timeline = timeline_svg(runs, result.total_duration)
    graph = graph_svg(workflow, result)

    def size(svg: str) -> tuple[int, int]:
        head = svg.split(">", 1)[0]
        width = int(head.split('width="', 1)[1].split('"', 1)[0])
        height = int(head.split('height="', 1)[1].split('"', 1)[0])
        return width, height

    (tw, th), (gw, gh) = size(timeline), size(graph)
    width, height = max(tw, gw) + 20, 40 + th + 30 + gh
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
            '<rect width="100%" height="100%" fill="white"/>',
            f'<text x="10" y="18" font-size="14" font-weight="bold">{_e(summary)}</text>',
            f'<g transform="translate(10, 30)">{timeline}</g>',
            f'<g transform="translate(10, {40 + th})">{graph}</g>',
            "</svg>",
            "",
        ]
    )
