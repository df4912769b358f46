"""Regenerate the ported Kailash test files from a checkout of terrene-foundation/kailash-py.

Usage (from the worktree root)::

    python tests/dag/kailash_conformance/_port.py --git-dir /path/to/kailash-py/.git [--commit HEAD]

What it does to each upstream file, and nothing else:

- every ``from kailash... import A, B as C`` (top level or inside a function) becomes
  ``from trioworks.dag import A, B as C``: the one change a porting user makes;
- the tests listed in ``EXCLUDED`` (and tests that need a Kailash internal or one of Kailash's own
  test helpers, found by the rules in ``_exclusion_reason``) are removed, decorators included;
- a header naming the upstream path, commit and licence is prepended.

Test bodies are otherwise byte-for-byte upstream. It also writes ``_kailash_names.py`` (the name ->
kailash module table the ``CONFORMANCE_TARGET=kailash`` run uses) and ``EXCLUDED.md``.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent

# upstream path -> local file name (prefixed so that basenames stay unique under tests/, which has
# no __init__.py files).
FILES: dict[str, str] = {
    # builder
    "tests/unit/workflow/test_builder_comprehensive.py": "test_k_builder_comprehensive.py",
    "tests/integration/workflow/test_workflow_builder_functional.py": "test_k_workflow_builder_functional.py",
    "tests/unit/workflow/test_graph_connection_merging.py": "test_k_graph_connection_merging.py",
    # runtimes
    "tests/integration/runtime/test_local.py": "test_k_local_runtime.py",
    "tests/integration/runtime/test_async_local.py": "test_k_async_local_runtime.py",
    "tests/regression/test_issue_950_localruntime_context_manager.py": "test_k_localruntime_context_manager.py",
    "tests/integration/runtime/test_async_parameter_injection.py": "test_k_async_parameter_injection.py",
    "tests/tier2_integration/runtime/test_sync_nodes_in_async_runtime.py": "test_k_sync_nodes_in_async_runtime.py",
    "tests/tier2_integration/runtime/test_runtime_lifecycle.py": "test_k_runtime_lifecycle.py",
    "tests/tier2_integration/runtime/test_runtime_lifecycle_async.py": "test_k_runtime_lifecycle_async.py",
    "tests/tier2_integration/runtime/test_runtime_success_detection.py": "test_k_runtime_success_detection.py",
    "tests/integration/runtime/test_nonetype_edge_cases.py": "test_k_nonetype_edge_cases.py",
    "tests/tier2_integration/runtime/test_local_runtime_edge_cases.py": "test_k_local_runtime_edge_cases.py",
    # connections and mappings
    "tests/tier2_integration/runtime/test_connection_mapping.py": "test_k_connection_mapping.py",
    "tests/tier2_integration/runtime/test_connection_mapping_async.py": "test_k_connection_mapping_async.py",
    # conditional execution
    "tests/tier2_integration/runtime/test_conditional_routing.py": "test_k_conditional_routing.py",
    "tests/tier2_integration/runtime/test_conditional_execution.py": "test_k_conditional_execution.py",
    "tests/integration/runtime/test_conditional_workflows.py": "test_k_conditional_workflows.py",
    "tests/unit/nodes/test_switch_merge.py": "test_k_switch_merge.py",
    # connection validation
    "tests/tier2_integration/runtime/test_connection_validation.py": "test_k_connection_validation.py",
    "tests/integration/test_simple_connection_validation.py": "test_k_simple_connection_validation.py",
    "tests/integration/test_connection_validation_integration.py": "test_k_connection_validation_integration.py",
    # time limits
    "tests/integration/runtime/test_local_runtime_time_limits.py": "test_k_local_runtime_time_limits.py",
    "tests/integration/runtime/test_async_local_runtime_time_limits.py": "test_k_async_local_runtime_time_limits.py",
    "tests/unit/test_time_limits_validation.py": "test_k_time_limits_validation.py",
    # code nodes
    "tests/integration/nodes/test_python_code_node.py": "test_k_python_code_node.py",
    "tests/integration/test_code_node_integration.py": "test_k_code_node_integration.py",
    "tests/unit/nodes/test_async_python_variable_export.py": "test_k_async_python_variable_export.py",
    "tests/tier2_integration/test_pythoncode_default_params.py": "test_k_pythoncode_default_params.py",
    # parameters
    "tests/integration/test_comprehensive_parameter_fixes.py": "test_k_comprehensive_parameter_fixes.py",
    # errors
    "tests/integration/test_error_propagation.py": "test_k_error_propagation.py",
    "tests/integration/workflows/test_exception_handling.py": "test_k_exception_handling.py",
    # cycles
    "tests/integration/workflows/test_convergence_basic.py": "test_k_convergence_basic.py",
    "tests/integration/workflows/test_core_cycle_execution.py": "test_k_core_cycle_execution.py",
    "tests/integration/workflows/test_cyclic_workflows.py": "test_k_cyclic_workflows.py",
    "tests/integration/workflows/test_cyclic_examples.py": "test_k_cyclic_examples.py",
    # resources
    "tests/unit/resources/test_registry.py": "test_k_resource_registry.py",
    "tests/unit/resources/test_basic_registry.py": "test_k_basic_resource_registry.py",
}

# Kailash modules whose names a test may use only as an internal / out-of-scope subsystem: a test
# that references a name imported from one of these is left out (the reason names the module).
INTERNAL_MODULES: dict[str, str] = {
    "kailash.tracking": "Kailash's task-tracking subsystem (TaskManager/TaskStatus), not part of the issue's core API",
    "kailash.workflow.cyclic_runner": "drives Kailash's internal CyclicWorkflowExecutor directly",
    "kailash.workflow.safety": "drives Kailash's internal CycleSafetyManager directly",
    "kailash.analysis": "Kailash's internal branch analyzer",
    "kailash.planning": "Kailash's internal execution planner",
    "kailash.workflow.input_handling": "Kailash's internal input-handling helpers",
    "kailash.runtime.parameter_injector": "Kailash's internal parameter injector",
    "kailash.middleware": "Kailash middleware (gateway), out of scope",
}

# Names that are Kailash internals wherever they are imported from (same treatment as above).
INTERNAL_NAMES: dict[str, str] = {
    **dict.fromkeys(
        [
            "AsyncExecutionTracker",
            "ExecutionContext",
            "ExecutionLevel",
            "ExecutionMetrics",
            "ExecutionPlan",
            "WorkflowAnalyzer",
        ],
        "AsyncLocalRuntime's internal planning/tracking classes",
    ),
    **dict.fromkeys(
        ["ClassWrapper", "CodeExecutor", "FunctionWrapper"], "PythonCodeNode's internal executor/wrappers"
    ),
    **dict.fromkeys(
        [
            "ConfigurableAsyncSQLNode",
            "ConfigurableOAuth2Node",
            "EnterpriseNodeFactory",
            "ParameterInjectionMixin",
            "create_configurable_oauth2",
            "create_configurable_sql",
        ],
        "Kailash's enterprise parameter-injection internals (kailash.runtime.parameter_injection)",
    ),
    "_validate_limits": "a private helper of kailash.runtime._time_limits",
    "detect_success": "LocalRuntime's internal success-detection helper",
    "should_stop_on_content_failure": "LocalRuntime's internal content-failure helper",
}

# Per-test exclusions decided by reading them or by running them on Kailash 2.65.0:
# local file -> {qualified test name: reason}. Filled from the Kailash run (see README).
EXCLUDED: dict[str, dict[str, str]] = {
    "test_k_conditional_workflows.py": {
        "TestConditionalWorkflowIntegration::test_performance_comparison_route_vs_skip": "asserts a wall-clock speed ratio between two runs; flaky on Kailash itself on a loaded machine (failed once here: 0.166 < 0.128)",
    },
    "test_k_code_node_integration.py": {
        "TestPythonCodeNodeIntegration::test_code_string_node": "fails on Kailash 2.65.0: kailash.sdk_exceptions.RuntimeExecutionError: Unified enterprise workflow execution failed: WorkflowExecutionError: Node 'aggregator' failed: Execution failed: Input type not allowed: <class 'type'>",
    },
    "test_k_comprehensive_parameter_fixes.py": {
        "TestComprehensiveParameterFixes::test_pythoncode_kwargs_parameter_injection": "fails on Kailash 2.65.0: kailash.sdk_exceptions.NodeExecutionError: Execution failed: Input type not allowed: <class 'function'>",
        "TestComprehensiveParameterFixes::test_parameter_validation_consistency": "fails on Kailash 2.65.0: kailash.sdk_exceptions.NodeExecutionError: Execution failed: Input type not allowed: <class 'function'>",
    },
    "test_k_connection_validation_integration.py": {
        "TestConnectionValidationIntegration::test_parallel_execution_validation": "fails on Kailash 2.65.0: kailash.sdk_exceptions.RuntimeExecutionError: Unified enterprise workflow execution failed: WorkflowExecutionError: Node 'processor_0' failed: Code execution failed: name 'multiplier' is not defined",
    },
    "test_k_error_propagation.py": {
        "TestErrorPropagation::test_error_in_chain": "fails on Kailash 2.65.0: needs fixture 'temp_data_dir' from Kailash's own tests/conftest.py",
    },
    "test_k_local_runtime.py": {
        "TestLocalRuntimeExecution::test_execute_simple_workflow": "fails on Kailash 2.65.0: AttributeError: 'WorkflowDAG' object attribute 'in_edges' is read-only",
        "TestLocalRuntimeExecution::test_execute_node_failure": "fails on Kailash 2.65.0: AttributeError: 'WorkflowDAG' object attribute 'in_edges' is read-only",
    },
    "test_k_python_code_node.py": {
        "test_python_code_node": "fails on Kailash 2.65.0: kailash.sdk_exceptions.NodeExecutionError: Execution failed: Input type not allowed: <class 'type'>",
    },
    "test_k_workflow_builder_functional.py": {
        "TestWorkflowBuilderNodeAddition::test_add_node_legacy_fluent_api_pattern": "fails on Kailash 2.65.0: kailash.sdk_exceptions.WorkflowValidationError: Legacy fluent API (add_node('node_id', NodeClass, ...)) was removed in v1.0.0.",
        "TestWorkflowBuilderAdvancedFeatures::test_node_type_convenience_methods": "fails on Kailash 2.65.0: TypeError: Can't instantiate abstract class MockInstanceNode with abstract method run",
    },
}

HEADER = """\
# Ported from terrene-foundation/kailash-py, {path}
# (commit {commit}). Copyright 2025 Terrene Foundation, Apache License 2.0
# (http://www.apache.org/licenses/LICENSE-2.0). Changes: `kailash.*` import lines rewritten to
# `trioworks.dag`; tests listed in EXCLUDED.md removed. Generated by _port.py: do not edit by hand.
"""

_PRIVATE_ATTR = re.compile(r"\b(?!self\b|cls\b)[A-Za-z_][A-Za-z0-9_]*\._[a-z][A-Za-z0-9_]*")
_PATCH_KAILASH = re.compile(r"""patch(\.object)?\(\s*["']kailash\.|patch\.object\(""")


def _git_show(git_dir: str, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _is_kailash(module: str | None) -> bool:
    return module is not None and (module == "kailash" or module.startswith("kailash."))


def _internal(module: str) -> str | None:
    for prefix, reason in INTERNAL_MODULES.items():
        if module == prefix or module.startswith(prefix + "."):
            return reason
    return None


def _tests(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """(qualified name, node) of every test function and method."""
    found: list[tuple[str, ast.AST]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test"):
                    found.append((f"{node.name}::{item.name}", item))
    return found


def _exclusion_reason(src: str, node: ast.AST, internal_names: dict[str, str]) -> str | None:
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    body = "".join(src.splitlines(keepends=True)[first - 1 : node.end_lineno])
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    for name, reason in internal_names.items():
        if name in names:
            return f"uses `{name}`: {reason}"
    for sub in ast.walk(node):
        if isinstance(sub, ast.ImportFrom | ast.Import):
            mods = [sub.module] if isinstance(sub, ast.ImportFrom) else [a.name for a in sub.names]
            for mod in mods:
                if mod and (mod == "tests" or mod.startswith("tests.")):
                    return f"imports Kailash's own test helpers (`{mod}`)"
                if mod and _is_kailash(mod) and _internal(mod):
                    return f"imports `{mod}`: {_internal(mod)}"
    if _PATCH_KAILASH.search(body):
        return "patches Kailash internals with unittest.mock"
    m = _PRIVATE_ATTR.search(body)
    if m:
        return f"reads a private attribute (`{m.group(0)}`)"
    return None


def _import_line(indent: str, node: ast.ImportFrom) -> str:
    names = ", ".join(a.name if a.asname is None else f"{a.name} as {a.asname}" for a in node.names)
    return f"{indent}from trioworks.dag import {names}\n"


def port(src: str, local: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """Return (ported source, excluded tests {qualname: reason}, names {name: kailash module})."""
    tree = ast.parse(src)
    lines = src.splitlines(keepends=True)
    names: dict[str, str] = {}
    internal_names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _is_kailash(node.module) and node.level == 0:
            assert node.module is not None
            for alias in node.names:
                reason = _internal(node.module) or INTERNAL_NAMES.get(alias.name)
                if reason:
                    internal_names[alias.asname or alias.name] = f"`{node.module}`: {reason}"
                else:
                    names[alias.name] = node.module
        elif isinstance(node, ast.Import) and any(_is_kailash(a.name) for a in node.names):
            raise SystemExit(f"{local}: line {node.lineno}: `import kailash...` is not handled")

    excluded: dict[str, str] = {}
    edits: list[tuple[int, int, str]] = []  # (first line index, end line index exclusive, replacement)
    manual = EXCLUDED.get(local, {})
    for qualname, node in _tests(tree):
        reason = manual.get(qualname) or _exclusion_reason(src, node, internal_names)
        if reason:
            assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            excluded[qualname] = reason
            edits.append((first, node.end_lineno or node.lineno, ""))
    unknown = set(manual) - {q for q, _ in _tests(tree)}
    if unknown:
        raise SystemExit(f"{local}: EXCLUDED names no test: {sorted(unknown)}")

    removed = [(a, b) for a, b, _ in edits]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _is_kailash(node.module) and node.level == 0:
            start, end = node.lineno - 1, node.end_lineno or node.lineno
            if any(a <= start < b for a, b in removed):
                continue
            indent = re.match(r"\s*", lines[start]).group(0)  # type: ignore[union-attr]
            if node.module and (_internal(node.module) or all(a.name in INTERNAL_NAMES for a in node.names)):
                # only excluded tests use these names; keep the line count, drop the import
                edits.append((start, end, f"{indent}pass  # was: import from {node.module}\n"))
            else:
                kept = [a for a in node.names if a.name not in INTERNAL_NAMES]
                node.names = kept
                edits.append((start, end, _import_line(indent, node)))
    for start, end, text in sorted(edits, reverse=True):
        lines[start:end] = [text] if text else []
    return "".join(lines), excluded, names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--git-dir", required=True)
    parser.add_argument("--commit", default="HEAD")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "--git-dir", args.git_dir, "rev-parse", args.commit],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    all_names: dict[str, set[str]] = {}
    report: list[str] = []
    for path, local in FILES.items():
        src = _git_show(args.git_dir, commit, path)
        ported, excluded, names = port(src, local)
        (HERE / local).write_text(HEADER.format(path=path, commit=commit) + "\n" + ported)
        for name, module in names.items():
            all_names.setdefault(name, set()).add(module)
        if excluded:
            report.append(f"\n## {local} (upstream `{path}`)\n")
            report.extend(f"- `{q}`: {r}" for q, r in excluded.items())
    table = "\n".join(f"    {json.dumps(n)}: {json.dumps(sorted(m))}," for n, m in sorted(all_names.items()))
    (HERE / "_kailash_names.py").write_text(
        '"""Generated by _port.py: each name the ported tests import, and the kailash modules they\n'
        'import it from (the CONFORMANCE_TARGET=kailash run maps `trioworks.dag.NAME` to it)."""\n\n'
        f"NAMES: dict[str, list[str]] = {{\n{table}\n}}\n"
    )
    (HERE / "EXCLUDED.md").write_text(
        "# Upstream tests left out of the conformance suite\n\n"
        f"Generated by `_port.py` from kailash-py commit `{commit}`. Each entry: the test and why.\n"
        + "\n".join(report)
        + "\n"
    )


if __name__ == "__main__":
    main()
