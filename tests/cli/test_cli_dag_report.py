"""`trioworks dag run` on workflow files, `--report`, `--json` node times, `dag graph --format svg|png`,
and the result table at 80 columns."""

from __future__ import annotations

import html.parser
import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from trioworks.dag import Workflow, WorkflowBuilder

FLOW_YAML = """
name: by hand
nodes:
  numbers:
    type: PythonCodeNode
    config:
      code: |
        result = {"values": list(range(n))}
      n: 5
  total:
    type: PythonCodeNode
    config: {code: "result = sum(values)"}
connections:
  - {from_node: numbers, from_output: result.values, to_node: total, to_input: values}
"""

# Two async nodes that each wait for the other: the run finishes only if they overlap.
OVERLAP = """
    import trio
    from trioworks.dag import WorkflowBuilder

    a_ready, b_ready = trio.Event(), trio.Event()

    async def a():
        a_ready.set()
        await b_ready.wait()
        return "a"

    async def b():
        b_ready.set()
        await a_ready.wait()
        return "b"

    def after(x, y):
        return x + y

    def never(z):
        return z

    workflow = WorkflowBuilder()
    workflow.add_node(a, "a")
    workflow.add_node(b, "b")
    workflow.add_node(after, "after")
    workflow.add_node("SwitchNode", "gate", {"operator": "==", "value": "nope"})
    workflow.add_node(never, "never")
    workflow.add_connection("a", "result", "after", "x")
    workflow.add_connection("b", "result", "after", "y")
    workflow.add_connection("after", "result", "gate", "input_data")
    workflow.add_connection("gate", "true_output", "never", "z")
"""

WIDE_OUTPUT = """
    from trioworks.dag import WorkflowBuilder

    workflow = WorkflowBuilder()
    workflow.add_node("PythonCodeNode", "q", {"code": "rows = [{'id': i, 'name': f'customer number {i}'} for i in range(40)]\\nresult = {'records': rows}"})
    workflow.add_node("PythonCodeNode", "sql", {"code": "data = [{'id': i} for i in range(40)]\\nrow_count = 40\\ncolumns = ['id']"})
    workflow.add_node("PythonCodeNode", "text", {"code": "result = 'word ' * 100"})
"""


def _builder() -> WorkflowBuilder:
    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "numbers", {"code": "result = {'values': list(range(n))}", "n": 5})
    wb.add_node("PythonCodeNode", "total", {"code": "result = sum(values)"})
    wb.add_connection("numbers", "result.values", "total", "values")
    return wb


@pytest.mark.parametrize("name", ["flow.yaml", "flow.yml", "flow.json"])
def test_run_a_workflow_file(tmp_path, cli, name):
    path = tmp_path / name
    _builder().build("saved").save(str(path))
    out = cli("dag", "run", path, "--json", "--set", "numbers.n=4")
    assert out.code == 0, out.err
    doc = out.json()
    assert doc["workflow_id"] == "saved"
    assert doc["results"]["total"] == {"result": 6}


def test_run_a_hand_written_yaml_with_the_table(write, cli):
    out = cli("dag", "run", write(FLOW_YAML, "flow.yaml"))
    assert out.code == 0, out.err
    assert "total" in out.out and "10" in out.out and "2 completed in" in out.out


def test_graph_of_a_workflow_file(write, cli):
    out = cli("dag", "graph", write(FLOW_YAML, "flow.yaml"), "--format", "mermaid")
    assert out.code == 0, out.err
    assert 'n0 -->|"values → values"| n1' in out.out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nodes: [", r".*flow\.yaml: invalid workflow: workflow YAML is invalid: .*line 1"),
        ("nodes: {a: {type: Nope}}", r".*flow\.yaml: invalid workflow: node 'a': unknown node type 'Nope'"),
    ],
)
def test_bad_workflow_files_are_one_line_errors(write, cli, text, message):
    out = cli("dag", "run", write(text, "flow.yaml"))
    assert out.code == 2
    assert re.match(f"error: {message}", out.err), out.err
    assert len(out.err.strip().splitlines()) == 1


def test_workflow_file_errors(tmp_path, write, cli):
    out = cli("dag", "run", tmp_path / "absent.yaml")
    assert out.code == 2 and "no such file" in out.err
    out = cli("dag", "run", write(FLOW_YAML, "flow.yaml"), "--workflow", "x")
    assert out.code == 2 and "is a workflow file" in out.err


def test_json_has_node_times_that_show_the_overlap(write, cli):
    out = cli("dag", "run", write(OVERLAP), "--json")
    assert out.code == 0, out.err
    times = out.json()["node_times"]
    a, b, after = times["a"], times["b"], times["after"]
    assert a["start"] < b["end"] and b["start"] < a["end"]  # they ran at the same time
    assert max(a["end"], b["end"]) <= after["start"] <= after["end"]
    assert times["never"]["start"] is None and times["never"]["end"] >= times["gate"]["end"]


class _Html(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def test_html_report_draws_timeline_and_graph(write, tmp_path, cli):
    report = tmp_path / "run.html"
    out = cli("dag", "run", write(OVERLAP), "--report", report)
    assert out.code == 0, out.err
    assert f"to {report}" in out.err
    text = report.read_text()
    parser = _Html()
    parser.feed(text)
    assert "script" not in parser.tags and "link" not in parser.tags and "img" not in parser.tags
    svgs = [ET.fromstring(s) for s in re.findall(r"<svg.*?</svg>", text, re.S)]
    assert len(svgs) == 2
    ns = "{http://www.w3.org/2000/svg}"
    timeline, graph = svgs
    rows = {g.get("data-node"): g for g in timeline.iter(f"{ns}g") if g.get("data-node")}
    assert list(rows) == ["a", "b", "after", "gate", "never"]
    assert rows["never"].get("data-status") == "skipped"
    labels = " ".join(t.text or "" for t in timeline.iter(f"{ns}text"))
    assert "loop · " in labels and "thread · " in labels and "inline · " in labels
    assert "skipped: branch not taken" in labels
    boxes = {g.get("data-node"): g.get("data-status") for g in graph.iter(f"{ns}g") if g.get("data-node")}
    assert boxes == {
        "a": "completed",
        "b": "completed",
        "after": "completed",
        "gate": "completed",
        "never": "skipped",
    }
    assert len(list(graph.iter(f"{ns}path"))) >= 5  # edges (and the arrow head)


def test_svg_report_and_a_bad_report_name(write, tmp_path, cli):
    report = tmp_path / "run.svg"
    out = cli("dag", "run", write(OVERLAP), "--report", report, "--json")
    assert out.code == 0, out.err
    root = ET.parse(report).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    out = cli("dag", "run", write(OVERLAP), "--report", tmp_path / "run.txt")
    assert out.code == 2 and "expected a .html or .svg file name" in out.err


needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


@needs_dot
def test_graph_renders_svg_and_png(write, tmp_path, cli):
    flow = write(FLOW_YAML, "flow.yaml")
    out = cli("dag", "graph", flow, "--format", "svg")
    assert out.code == 0, out.err
    root = ET.fromstring(out.out.split("\n", 3)[3] if out.out.startswith("<?xml") else out.out)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    png = tmp_path / "flow.png"
    out = cli("dag", "graph", flow, "--format", "png", "-o", png)
    assert out.code == 0, out.err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = cli("dag", "graph", flow, "--format", "png")
    assert out.code == 2 and "give -o FILE.png" in out.err


def test_graph_without_dot_is_a_one_line_error(write, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = cli("dag", "graph", write(FLOW_YAML, "flow.yaml"), "--format", "svg")
    assert out.code == 2
    assert out.err.strip() == (
        "error: --format svg needs Graphviz's 'dot' program, which is not on PATH: install Graphviz "
        "(apt-get install graphviz, brew install graphviz) or use --format dot"
    )


def test_table_shows_outputs_readably_at_80_columns(write, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = cli("dag", "run", write(WIDE_OUTPUT))
    assert out.code == 0, out.err
    lines = out.out.splitlines()
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert "records: [40 items] {'id': 0, …" in text  # a list: its length and first item
    assert re.search(r"│ row_count: 40 +│", text)  # one line per key of a dict output
    assert re.search(r"│ columns: \['id'\] +│", text)
    assert re.search(r"│ word word word.*… │", text)  # a string: its text, cut


def test_saved_file_round_trips_through_the_cli(tmp_path, cli):
    path = tmp_path / "flow.yaml"
    _builder().build("saved").save(str(path))
    assert Workflow.load(str(path)).to_dict() == _builder().build("saved").to_dict()
