"""``trioworks dag submit``: run a workflow on ``trioworks worker --dag`` workers through a server."""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from typing import Any

import trio

from ..client import KruxiaFlowError
from ..dag import DistributedRuntime, WorkflowExecutionError, WorkflowResult
from ._errors import CliError
from ._loader import load_workflow
from ._report import result_document, summary_table, to_json, totals_line
from ._streams import Streams

__all__ = ["register_submit"]


def register_submit(
    sub: argparse._SubParsersAction,
    common: argparse.ArgumentParser,
    path_help: str,
    add_inputs: Callable[[argparse.ArgumentParser], None],
    inputs_of: Callable[..., dict[str, Any]],
    report_failure: Callable[..., int],
) -> None:
    """Add ``dag submit``; ``dag run``'s input flags, input parsing and failure report are passed
    in (``cli._dag`` imports this module, so this module does not import it)."""
    submit = sub.add_parser(
        "submit",
        parents=[common],
        help="run a workflow on dag workers through a Kruxia Flow server (trioworks worker --dag)",
        description="Compile the workflow to a workflow definition (one activity per node on the "
        "`dag` worker queue), deploy and start it. With --wait, wait and print what `dag run` prints. "
        "Exit codes: 0 ok (or submitted), 1 the workflow failed, 2 bad input.",
    )
    submit.add_argument("path", metavar="PATH", help=path_help)
    submit.add_argument("--workflow", metavar="NAME", help="the module attribute holding the workflow")
    submit.add_argument(
        "--server",
        metavar="URL",
        default=os.environ.get("KRUXIAFLOW_API_URL"),
        help="server URL (default $KRUXIAFLOW_API_URL)",
    )
    submit.add_argument("--client-id", metavar="ID", help="OAuth client id (default $KRUXIAFLOW_CLIENT_ID)")
    submit.add_argument(
        "--client-secret", metavar="SECRET", help="OAuth client secret (default $KRUXIAFLOW_CLIENT_SECRET)"
    )
    submit.add_argument("--wait", action="store_true", help="wait for the run and print its results")
    submit.add_argument(
        "--continue-on-error",
        action="store_true",
        help="record a failing node, skip its dependents, run the rest",
    )
    submit.add_argument(
        "--timeout", type=float, metavar="S", help="with --wait: cancel the server workflow after S seconds"
    )
    submit.add_argument(
        "--max-inline-bytes",
        type=int,
        metavar="N",
        help="a node output whose JSON is larger than N bytes travels as a file (default: the "
        "workers' --max-inline-bytes, 65536)",
    )
    submit.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    add_inputs(submit)
    submit.set_defaults(
        handler=functools.partial(_submit_command, inputs_of=inputs_of, report_failure=report_failure)
    )


def _submit_command(
    args: argparse.Namespace,
    io: Streams,
    *,
    inputs_of: Callable[..., dict[str, Any]],
    report_failure: Callable[..., int],
) -> int:
    if not args.server:
        raise CliError("--server URL is required (or set KRUXIAFLOW_API_URL)")
    if args.max_inline_bytes is not None and args.max_inline_bytes < 0:
        raise CliError(f"--max-inline-bytes must be >= 0, got {args.max_inline_bytes}")
    loaded = load_workflow(args.path, args.workflow)
    inputs = inputs_of(loaded, args, io)
    runtime = DistributedRuntime(
        args.server,
        client_id=args.client_id,
        client_secret=args.client_secret,
        continue_on_error=args.continue_on_error,
        execution_timeout=args.timeout,
        max_inline_bytes=args.max_inline_bytes,
    )
    if not args.wait:
        try:
            workflow_id = trio.run(runtime.submit, loaded.workflow, inputs)
        except KruxiaFlowError as exc:
            raise CliError(f"--server {args.server}: {exc}") from exc
        io.write(workflow_id)
        io.note(
            f"submitted {loaded.workflow.workflow_id} as workflow {workflow_id}; follow it with "
            f"`trioworks workflow status {workflow_id}`"
        )
        return 0
    failure: WorkflowExecutionError | None = None
    try:
        result: WorkflowResult = trio.run(runtime.execute_workflow_async, loaded.workflow, inputs)
    except WorkflowExecutionError as exc:
        if exc.result is None:
            raise
        result, failure = exc.result, exc
    except KruxiaFlowError as exc:
        raise CliError(f"--server {args.server}: {exc}") from exc
    attempts = result.metrics.get("attempts", {})
    if args.json:
        io.write(to_json(result_document(result, attempts)))
    else:
        failed_node = failure.node_id if failure is not None else None
        io.out.print(
            summary_table(loaded.workflow, result, attempts, failed_node=failed_node, width=io.out.width)
        )
        io.out.print(totals_line(result))
    return report_failure(result, failure, io, show_traceback=False)
