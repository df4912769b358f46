"""Summarise a trioworks conformance run (JUnit XML) into the tables of STATUS.md.

Usage::

    python tests/dag/kailash_conformance/_status.py LENIENT.xml STRICT.xml > /tmp/status-tables.md

For each test of the lenient run (``CONFORMANCE_LENIENT=1``): its *first blocker* (the error it
stops on, sorted into a group by ``BLOCKERS``) and every *feature* its source uses (``FEATURES``),
so that a group's count says how many tests a fix unblocks first and a feature's count how many
tests need it at all.
"""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (group, regex on the first error message); first match wins.
BLOCKERS: list[tuple[str, str]] = [
    ("B1 LocalRuntime missing", r"has no LocalRuntime"),
    ("B2 results not a (results, run_id) tuple", r"^KeyError\([01]\)"),
    (
        "B3 Workflow(id, name) construction / Workflow.add_node(id, node) / Workflow.connect",
        r"Workflow\.__init__",
    ),
    (
        "B4 Node class API: Node / NodeParameter / NodeRegistry / AsyncNode subclasses",
        r"has no (Node|AsyncNode|NodeParameter|NodeRegistry|register_node)\b|has no \w*Node \(\.__wrapped__\)",
    ),
    (
        "B5 node classes as objects: PythonCodeNode / AsyncPythonCodeNode / SwitchNode / MergeNode",
        r"has no (Async)?PythonCodeNode|has no (Switch|Merge)Node",
    ),
    (
        "B6 ResourceRegistry spellings / ResourceFactory / errors",
        r"Factory|enable_metrics|UnknownResourceError|ResourceNotFoundError|has_factory|list_resources|get_metrics",
    ),
    ("B7 time limits", r"time_limit|TimeLimitExceeded"),
    (
        "B8 runtime lifecycle / attributes (close, acquire, ref_count, thread_pool, ...)",
        r"'AsyncLocalRuntime' object has no attribute",
    ),
    (
        "B9 WorkflowBuilder extras (from_dict, update_node, add_workflow_inputs, ...)",
        r"WorkflowBuilder\b.*(has no attribute|unexpected keyword)",
    ),
    ("B10 unknown node types (CSVReaderNode, custom registered types, ...)", r"unknown node type"),
    ("B11 strict connection checks (missing output/input is an error)", r"has no (output|input) '"),
    ("B12 inferred required input (node-scoped parameter rejected)", r"NodeInputError"),
    ("B13 warnings Kailash emits", r"DID NOT WARN"),
]

# (feature, regex on the test's source, decorators included).
FEATURES: list[tuple[str, str]] = [
    ("LocalRuntime", r"\bLocalRuntime\b"),
    ("`with LocalRuntime() as r:` / close()", r"with LocalRuntime\(|\.close\(\)"),
    (
        "`results, run_id = ...execute*(...)`",
        r"\w+\s*,\s*\w+\s*=\s*(await\s+)?[\w.]+\.execute\w*\(|\.execute\w*\([^\n]*\)\[0\]",
    ),
    ("AsyncLocalRuntime.execute_workflow_async", r"execute_workflow_async"),
    ("execute_async", r"\.execute_async\("),
    ("conditional_execution=", r"conditional_execution="),
    ("SwitchNode / MergeNode", r"\b(SwitchNode|MergeNode)\b"),
    ("connection_validation=", r"connection_validation="),
    ("time limits", r"time_limit|TimeLimitExceeded"),
    ("cycles", r"create_cycle|enable_cycles|cycle=True|max_iterations"),
    ("ResourceRegistry", r"ResourceRegistry|ResourceFactory|ResourceNotFoundError"),
    ("PythonCodeNode(...) / .from_function objects", r"PythonCodeNode\(|PythonCodeNode\.from_function"),
    ("AsyncPythonCodeNode", r"AsyncPythonCodeNode"),
    ("Workflow(...) direct construction", r"\bWorkflow\("),
    (
        "builder extras (from_dict/update_node/...)",
        r"from_dict|update_node|set_workflow_parameters|add_workflow_inputs",
    ),
    ("asyncio in test body or node code", r"asyncio\.(run|sleep|gather|wait_for|create_task)"),
    ("data node types (CSV/JSON readers, writers)", r"CSVReaderNode|CSVWriterNode|JSONReaderNode"),
]


def _rows(xml: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for tc in ET.parse(xml).getroot().iter("testcase"):
        parts = tc.get("classname", "").split(".")
        idx = next((i for i, p in enumerate(parts) if p.startswith("test_k_")), None)
        if idx is None:
            continue
        file, qual = parts[idx] + ".py", "::".join([*parts[idx + 1 :], tc.get("name", "")])
        status, msg = "passed", ""
        for child in tc:
            if child.tag in ("failure", "error", "skipped"):
                status, msg = (
                    child.tag,
                    (child.get("message") or "").splitlines()[0] if child.get("message") else "",
                )
                break
        rows.append((file, qual, status, msg))
    return rows


def _sources(file: str) -> dict[str, str]:
    src = (HERE / file).read_text()
    lines = src.splitlines(keepends=True)
    out: dict[str, str] = {}
    tree = ast.parse(src)
    for node in tree.body:
        items = [(node.name, node)] if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else []
        if isinstance(node, ast.ClassDef):
            items = [
                (f"{node.name}::{i.name}", i)
                for i in node.body
                if isinstance(i, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
        for qual, fn in items:
            first = min([fn.lineno, *(d.lineno for d in fn.decorator_list)])
            out[qual] = "".join(lines[first - 1 : fn.end_lineno])
    return out


def main() -> None:
    lenient, strict = _rows(sys.argv[1]), _rows(sys.argv[2])
    sources: dict[str, dict[str, str]] = {}
    blockers: dict[str, list[str]] = defaultdict(list)
    features: Counter[str] = Counter()
    for file, qual, status, msg in lenient:
        src = sources.setdefault(file, _sources(file)).get(qual.split("[")[0], "")
        for name, rx in FEATURES:
            if re.search(rx, src):
                features[name] += 1
        if status == "passed":
            continue
        group = next((g for g, rx in BLOCKERS if re.search(rx, msg)), f"B99 other: {msg[:90]}")
        blockers[group].append(f"{file}::{qual}")
    passed_strict = sum(1 for r in strict if r[2] == "passed")
    passed_lenient = sum(1 for r in lenient if r[2] == "passed")
    print(
        f"- strict run: {passed_strict} passed of {len(lenient)} (files that fail to import count as failed)"
    )
    print(f"- lenient run: {passed_lenient} passed, {len(lenient) - passed_lenient} failed\n")
    print("### First blocker per failing test (lenient run)\n\n| group | tests |\n|---|---|")
    for group in sorted(blockers, key=lambda g: (-len(blockers[g]), g)):
        print(f"| {group} | {len(blockers[group])} |")
    print("\n### Features the suite's tests use (all tests)\n\n| feature | tests |\n|---|---|")
    for name, n in features.most_common():
        print(f"| {name} | {n} |")
    print("\n### Tests per first blocker\n")
    for group in sorted(blockers, key=lambda g: (-len(blockers[g]), g)):
        print(f"<details><summary>{group} ({len(blockers[group])})</summary>\n")
        print("\n".join(f"- `{t}`" for t in blockers[group]))
        print("\n</details>\n")


if __name__ == "__main__":
    main()
