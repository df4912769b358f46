"""``trioworks dag run`` and ``trioworks dag graph``."""

from __future__ import annotations

import argparse
import json
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio
import trio_parallel

from ..dag import AsyncLocalRuntime, NodeKind, Workflow, WorkflowExecutionError, WorkflowResult
from ._errors import CliError, did_you_mean, location
from ._html_report import node_runs, render_html, render_svg
from ._loader import DEFAULT_NAMES, LoadedWorkflow, load_workflow
from ._progress import NodeProgress
from ._report import error_detail, result_document, summary_table, to_json, totals_line
from ._streams import Streams

__all__ = ["register", "run_workflow"]

_PATH_HELP = (
    "a workflow file (.yaml, .yml, .json: Kailash's export format), or a Python file, 'module:attr' "
    "or a dotted module name exposing a Workflow, a WorkflowBuilder or a function returning one "
    f"(looked up as: {', '.join(DEFAULT_NAMES)})"
)
REPORT_SUFFIXES = (".html", ".htm", ".svg")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    dag = commands.add_parser("dag", help="run or draw DAG workflows (Kailash-compatible)", parents=[common])
    sub = dag.add_subparsers(title="commands", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run a workflow and print a summary table (or JSON)",
        description="Run a workflow with AsyncLocalRuntime. Exit codes: 0 ok, 1 the workflow failed, "
        "2 bad input, 130 interrupted.",
    )
    run.add_argument("path", metavar="PATH", help=_PATH_HELP)
    run.add_argument("--workflow", metavar="NAME", help="the module attribute holding the workflow")
    _add_inputs(run)
    run.add_argument(
        "--max-concurrent", type=_positive_int, metavar="N", help="nodes running at once (default 10)"
    )
    run.add_argument(
        "--threads", type=_positive_int, metavar="N", help="sync nodes in threads at once (default 4)"
    )
    run.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="S",
        help="cancel the whole run after S seconds (a sync node's thread is abandoned, not waited for)",
    )
    run.add_argument(
        "--continue-on-error",
        action="store_true",
        help="record a failing node, skip its dependents, run the rest",
    )
    run.add_argument(
        "--json", action="store_true", help="print one JSON document on stdout instead of the table"
    )
    run.add_argument(
        "--no-progress", action="store_true", help="no progress bar (it is only drawn on a terminal)"
    )
    run.add_argument(
        "--report",
        metavar="FILE",
        type=_report_path,
        help="draw the run to FILE.html (timeline, graph coloured by status, node table) or FILE.svg",
    )
    run.set_defaults(handler=_run_command)

    from ._dag_submit import register_submit

    register_submit(sub, common, _PATH_HELP, _add_inputs, _inputs, _report_failure)

    graph = sub.add_parser(
        "graph",
        parents=[common],
        help="print a workflow as Graphviz DOT or Mermaid, or render it as SVG or PNG",
        description="svg and png are rendered with Graphviz's dot program (apt-get install graphviz).",
    )
    graph.add_argument("path", metavar="PATH", help=_PATH_HELP)
    graph.add_argument("--workflow", metavar="NAME", help="the module attribute holding the workflow")
    graph.add_argument(
        "--format",
        choices=("dot", "mermaid", "svg", "png"),
        default="dot",
        help="default: dot; png needs -o",
    )
    graph.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    graph.set_defaults(handler=_graph_command)


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    given = parser.add_mutually_exclusive_group()
    given.add_argument(
        "--input",
        metavar="JSON",
        help='workflow inputs: {"param": value} for every node, {"node": {...}} for one',
    )
    given.add_argument("--input-file", metavar="FILE", help="workflow inputs from a JSON file")
    parser.add_argument(
        "--set",
        metavar="NODE.PARAM=VALUE",
        action="append",
        default=[],
        help="one node's input; VALUE is JSON if it parses, else a string (repeatable)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _report_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise argparse.ArgumentTypeError(f"expected a .html or .svg file name, got {text!r}")
    return path


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


# -- running -------------------------------------------------------------------


def run_workflow(
    runtime: AsyncLocalRuntime, workflow: Workflow, inputs: Mapping[str, Any], progress: NodeProgress
) -> tuple[WorkflowResult, WorkflowExecutionError | None]:
    """Run ``workflow`` once in ``trio.run``, resources cleaned up at the end.

    Returns the result and, if the run failed fast or timed out, the error (whose ``result``
    is the partial result). Anything else propagates: :class:`~trioworks.dag.NodeInputError`
    before anything runs, ``KeyboardInterrupt`` on Ctrl-C (running nodes are cancelled and
    resources cleaned up first; with ``abandon_threads`` a thread that cannot be stopped is
    left running, and dies with the process: Trio's worker threads are daemon threads).
    """

    async def execute() -> WorkflowResult:
        async with runtime:
            if not any(node.kind is NodeKind.PROCESS for node in workflow.nodes.values()):
                return await runtime.execute_workflow_async(workflow, inputs)
            # Worker processes of this run's own, spawned after the loader put the flow's folder on
            # sys.path (so process nodes defined in the file unpickle) and shut down when it ends.
            async with trio_parallel.cache_scope():
                return await runtime.execute_workflow_async(workflow, inputs)

    with progress:
        try:
            return trio.run(execute), None
        except WorkflowExecutionError as exc:
            if exc.result is None:  # raised before the run began: nothing partial to show
                raise
            return exc.result, exc


def _run_command(args: argparse.Namespace, io: Streams) -> int:
    loaded = load_workflow(args.path, args.workflow)
    inputs = _inputs(loaded, args, io)
    options = {
        name: value
        for name, value in (
            ("max_concurrent_nodes", args.max_concurrent),
            ("thread_pool_size", args.threads),
            ("execution_timeout", args.timeout),
        )
        if value is not None
    }
    progress = NodeProgress(loaded.workflow, io.err, bar=io.err.is_terminal and not args.no_progress)
    runtime = AsyncLocalRuntime(
        resource_registry=loaded.resources,
        continue_on_error=args.continue_on_error,
        # A command returns when it is stopped (--timeout, a failing node, Ctrl-C): a sync node
        # whose thread cannot be stopped is left behind (named in the error), not waited for.
        abandon_threads=True,
        on_node_start=progress.on_start,
        on_node_finish=progress.on_finish,
        **options,
    )
    result, failure = run_workflow(runtime, loaded.workflow, inputs, progress)
    if args.report is not None:
        _write_report(args.report, loaded.workflow, result, progress, io)
    if args.json:
        io.write(to_json(result_document(result, progress.attempts, progress.times())))
    else:
        failed_node = failure.node_id if failure is not None else None
        io.out.print(
            summary_table(
                loaded.workflow, result, progress.attempts, failed_node=failed_node, width=io.out.width
            )
        )
        io.out.print(totals_line(result))
    return _report_failure(result, failure, io, show_traceback=args.traceback)


def _write_report(
    path: Path, workflow: Workflow, result: WorkflowResult, progress: NodeProgress, io: Streams
) -> None:
    runs = node_runs(workflow, result, progress.times(), progress.attempts)
    summary = totals_line(result).plain
    render = render_svg if path.suffix.lower() == ".svg" else render_html
    try:
        path.write_text(render(workflow, result, runs, summary), encoding="utf-8")
    except OSError as exc:
        raise CliError(f"--report {path}: cannot write: {exc.strerror}") from exc
    io.note(f"wrote the run's report to {path}")


def _report_failure(
    result: WorkflowResult, failure: WorkflowExecutionError | None, io: Streams, *, show_traceback: bool
) -> int:
    """Say on stderr why the run failed (exit 1), or nothing (exit 0)."""
    if failure is not None:
        cause = failure.__cause__
        where = location(cause) if cause is not None else None
        io.error(str(failure) + (f" ({where})" if where else ""))
    elif result.errors:  # --continue-on-error
        listed = "; ".join(f"{node}: {error_detail(exc)}" for node, exc in result.errors.items())
        io.error(f"{len(result.errors)} node(s) failed: {listed}")
    elif not result.ok:
        io.error(f"workflow did not complete: {dict(result.summary())}")
    else:
        return 0
    if show_traceback:
        for exc in [failure.__cause__] if failure is not None else result.errors.values():
            if exc is not None:
                io.err.file.write("".join(traceback.format_exception(exc)))
    return 1


# -- inputs ----------------------------------------------------------------------


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{what}: invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc


def _inputs(loaded: LoadedWorkflow, args: argparse.Namespace, io: Streams) -> dict[str, Any]:
    """The module's ``inputs``, then ``--input`` / ``--input-file``, then each ``--set``."""
    workflow = loaded.workflow
    inputs = {k: dict(v) if isinstance(v, Mapping) else v for k, v in loaded.inputs.items()}
    given, what = None, ""
    if args.input is not None:
        given, what = _parse_json(args.input, "--input"), "--input"
    elif args.input_file is not None:
        what = f"--input-file {args.input_file}"
        try:
            text = Path(args.input_file).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise CliError(f"--input-file: no such file: {args.input_file}") from exc
        except OSError as exc:
            raise CliError(f"--input-file: cannot read {args.input_file}: {exc.strerror}") from exc
        given = _parse_json(text, what)
    if given is not None:
        if not isinstance(given, dict):
            raise CliError(
                f'{what}: expected a JSON object like {{"param": value}} or {{"node": {{"param": value}}}}, '
                f"got {type(given).__name__}"
            )
        for key, value in given.items():
            if key in workflow.nodes and isinstance(value, dict) and isinstance(inputs.get(key), dict):
                inputs[key].update(value)
            else:
                inputs[key] = value
    for item in args.set:
        _apply_set(inputs, item, workflow)
    for key in inputs:
        scoped = key in workflow.nodes and isinstance(inputs[key], Mapping)
        if not scoped and not any(spec.takes(key) for spec in workflow.nodes.values()):
            io.warning(f"input {key!r} is neither a node id nor an input of any node; ignored")
    return inputs


def _apply_set(inputs: dict[str, Any], item: str, workflow: Workflow) -> None:
    key, eq, raw = item.partition("=")
    node_id, dot, param = key.rpartition(".")
    if not eq or not dot or not node_id or not param.isidentifier():
        raise CliError(f"--set {item!r}: expected NODE.PARAM=VALUE, e.g. --set load.path=data.csv")
    spec = workflow.nodes.get(node_id)
    if spec is None:
        raise CliError(
            f"--set {item!r}: no node {node_id!r}{did_you_mean(node_id, workflow.nodes)}; "
            f"nodes: {', '.join(workflow.order)}"
        )
    if not spec.accepts_any and not spec.takes(param):
        raise CliError(
            f"--set {item!r}: node {node_id!r} has no input {param!r}{did_you_mean(param, spec.params)}; "
            f"its inputs: {', '.join(sorted(spec.params)) or 'none'}"
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    if not isinstance(inputs.get(node_id), dict):
        inputs[node_id] = {}
    inputs[node_id][param] = value


# -- graph -------------------------------------------------------------------------


def _render(dot: str, fmt: str) -> bytes:
    """``dot`` rendered by Graphviz as ``fmt``; a one-line CliError when Graphviz is missing."""
    hint = "install Graphviz (apt-get install graphviz, brew install graphviz) or use --format dot"
    try:
        import graphviz
    except ModuleNotFoundError as exc:
        raise CliError(
            f"--format {fmt} needs the graphviz package (pip install graphviz); or use --format dot"
        ) from exc
    try:
        return bytes(graphviz.Source(dot).pipe(format=fmt))
    except graphviz.ExecutableNotFound as exc:
        raise CliError(
            f"--format {fmt} needs Graphviz's 'dot' program, which is not on PATH: {hint}"
        ) from exc
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise CliError(f"dot failed to render {fmt}: {detail[-1] if detail else exc}") from exc


def _graph_command(args: argparse.Namespace, io: Streams) -> int:
    loaded = load_workflow(args.path, args.workflow)
    if args.format in ("svg", "png"):
        if args.format == "png" and args.output is None:
            raise CliError("--format png writes a binary image: give -o FILE.png")
        image = _render(loaded.workflow.to_dot(), args.format)
        if args.output is None:
            io.write(image.decode("utf-8"))
            return 0
        try:
            Path(args.output).write_bytes(image)
        except OSError as exc:
            raise CliError(f"-o {args.output}: cannot write: {exc.strerror}") from exc
        io.note(f"wrote the {args.format} graph of {loaded.label} to {args.output}")
        return 0
    text = loaded.workflow.to_dot() if args.format == "dot" else loaded.workflow.to_mermaid()
    if args.output is None:
        io.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"-o {args.output}: cannot write: {exc.strerror}") from exc
    io.note(f"wrote the {args.format} graph of {loaded.label} to {args.output}")
    return 0
