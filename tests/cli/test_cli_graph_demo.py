"""`trioworks dag graph` and `trioworks demo`."""

from __future__ import annotations

from trioworks.cli import _demo
from trioworks.cli._demo import DemoSection
from trioworks.demo import Highlight

FLOW = """
    from trioworks.dag import WorkflowBuilder

    def load():
        return {"rows": [1, 2]}

    def count(rows):
        return len(rows)

    def build_workflow():
        wb = WorkflowBuilder()
        wb.add_node(load, "load")
        wb.add_node(count, "count")
        wb.add_node("SwitchNode", "big", {"operator": ">", "value": 1})
        wb.add_connection("load", "result.rows", "count", "rows")
        wb.add_connection("count", "result", "big", "input_data")
        return wb.build("flow")
"""


def test_graph_dot(write, cli):
    out = cli("dag", "graph", write(FLOW))
    assert out.code == 0, out.err
    assert out.out.startswith('digraph "flow" {')
    assert '"load" -> "count"' in out.out
    assert '"big" [label="big\\nSwitchNode", shape=diamond];' in out.out


def test_graph_mermaid_to_file(write, tmp_path, cli):
    target = tmp_path / "flow.mmd"
    out = cli("dag", "graph", write(FLOW), "--format", "mermaid", "-o", target)
    assert out.code == 0, out.err
    text = target.read_text()
    assert text.startswith("flowchart LR")
    assert 'n0 -->|"rows → rows"| n1' in text
    assert out.out == "" and f"to {target}" in out.err


def test_graph_bad_input(write, cli):
    out = cli("dag", "graph", write(FLOW), "--workflow", "nope")
    assert out.code == 2 and out.err.startswith("error: ") and "has no attribute 'nope'" in out.err


def test_demo_runs_and_its_highlights_hold(cli, monkeypatch):
    # The DAG section only; the worker-and-server section has its own test (test_demo_flow.py).
    monkeypatch.setattr(_demo, "SECTIONS", _demo.SECTIONS[:1])
    out = cli("demo")
    assert out.code == 0, out.out + out.err
    text = out.out
    assert "flowchart LR" in text  # the graph
    assert "count_primes  process" in text  # the progress log
    assert "completed" in text and "branch not taken" in text  # the table
    highlights = text.split("\nhighlights\n", 1)[1]
    assert highlights.count("  ✓ ") == 5 and "✗" not in highlights
    text = " ".join(text.split())  # rich wraps long lines at the console width
    assert "the branch 'manual_review' was skipped" in text
    assert "4 blocking sync nodes ran in parallel in threads: max threads" in text
    assert "ran in worker process" in text
    assert "succeeded on attempt 2" in text
    assert "wrote 48 rows to the resource 'db'" in text
    assert "demo OK: 5/5 highlights checked" in text


def test_demo_fails_when_a_highlight_does_not_hold(cli, monkeypatch):
    def section(io, bar):
        return [Highlight("this holds", True), Highlight("this does not", False)]

    monkeypatch.setattr(_demo, "SECTIONS", [DemoSection("a section", section)])
    out = cli("demo")
    assert out.code == 1
    assert "✗ this does not" in out.out
    assert "demo FAILED: 1 of 2 highlights did not hold" in out.out
