"""``trioworks demo``: an end-to-end tour on embedded defaults, one section per subsystem.

Each :class:`DemoSection` runs something real, narrates it, and returns the
:class:`Highlight` claims it makes about what happened, each checked against the result.
The command exits 0 only when every highlight holds. A later subsystem adds its section
to :data:`SECTIONS`.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence

import attrs
from rich.text import Text

from ..dag import AsyncLocalRuntime, NodeStatus, WorkflowResult
from . import _demo_workflow as etl
from ._dag import run_workflow
from ._demo_flow import flow_section
from ._demo_voice import voice_section
from ._loader import LoadedWorkflow, load_workflow
from ._progress import NodeProgress
from ._report import summary_table, totals_line
from ._streams import Streams

__all__ = ["SECTIONS", "DemoSection", "Highlight", "register"]


@attrs.frozen
class Highlight:
    """One claim the demo makes about what just ran, and whether the run bears it out."""

    text: str
    ok: bool


@attrs.frozen
class DemoSection:
    """A titled part of the demo. ``run(io, bar)`` narrates on ``io`` and returns its highlights;
    ``bar`` says whether a live progress bar may be drawn on stderr."""

    title: str
    run: Callable[[Streams, bool], Sequence[Highlight]]


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="an end-to-end demo on embedded defaults (a few seconds)",
        description="Run each subsystem on built-in data, narrate it, and check the highlights. "
        "Exit 0 when every highlight holds, 1 otherwise.",
    )
    demo.add_argument(
        "--no-progress", action="store_true", help="no progress bar (it is only drawn on a terminal)"
    )
    demo.set_defaults(handler=_demo_command)


def _demo_command(args: argparse.Namespace, io: Streams) -> int:
    started = time.perf_counter()
    io.out.print(
        Text("trioworks demo: Trio rebuilds of three asyncio systems, on embedded defaults", style="bold")
    )
    bar = io.err.is_terminal and not args.no_progress
    highlights: list[Highlight] = []
    for number, section in enumerate(SECTIONS, 1):
        io.out.print()
        io.out.rule(f"{number}. {section.title}", align="left")
        found = list(section.run(io, bar))
        io.out.print(Text("highlights", style="bold"))
        for highlight in found:
            mark = Text("  ✓ ", style="green") if highlight.ok else Text("  ✗ ", style="bold red")
            io.out.print(mark + Text(highlight.text))
        highlights += found
    failed = [h for h in highlights if not h.ok]
    elapsed = time.perf_counter() - started
    io.out.print()
    if failed:
        io.out.print(
            Text(f"demo FAILED: {len(failed)} of {len(highlights)} highlights did not hold", style="bold red")
        )
        return 1
    io.out.print(
        Text(
            f"demo OK: {len(highlights)}/{len(highlights)} highlights checked in {elapsed:.1f} s",
            style="bold green",
        )
    )
    return 0


# -- 1. the DAG runner ------------------------------------------------------------


def _dag_section(io: Streams, bar: bool) -> list[Highlight]:
    loaded = load_workflow(etl.__name__)
    io.out.print(
        "A small ETL built with the Kailash API (WorkflowBuilder, PythonCodeNode,\n"
        "SwitchNode, MergeNode), run by AsyncLocalRuntime on Trio: each node starts\n"
        "the moment its inputs exist. Source: trioworks/cli/_demo_workflow.py.\n"
    )
    io.out.print(Text("graph (Mermaid; for DOT: trioworks dag graph examples/dag_demo.py)", style="bold"))
    io.out.print(loaded.workflow.to_mermaid())
    io.out.print(Text("progress (seconds since start, node, kind, duration)", style="bold"))
    progress = NodeProgress(loaded.workflow, io.err, bar=bar, log=io.out)
    runtime = AsyncLocalRuntime(
        resource_registry=loaded.resources,
        thread_pool_size=4,
        on_node_start=progress.on_start,
        on_node_finish=progress.on_finish,
    )
    result, failure = run_workflow(runtime, loaded.workflow, loaded.inputs, progress)
    io.out.print()
    io.out.print(
        summary_table(
            loaded.workflow,
            result,
            progress.attempts,
            failed_node=failure.node_id if failure is not None else None,
        )
    )
    io.out.print(totals_line(result))
    if failure is not None:
        io.error(str(failure))
        return [Highlight(f"the ETL run completes (it failed: {failure})", False)]
    return _dag_highlights(loaded, result, progress)


def _dag_highlights(
    loaded: LoadedWorkflow, result: WorkflowResult, progress: NodeProgress
) -> list[Highlight]:
    out = result.results
    status = result.statuses

    batch = out["aggregate"]["result"]
    switched = (
        status[etl.SKIPPED_BRANCH] is NodeStatus.SKIPPED
        and result.skip_reasons.get(etl.SKIPPED_BRANCH) == "branch not taken"
        and status[etl.TAKEN_BRANCH] is NodeStatus.COMPLETED
        and status[etl.MERGE_NODE] is NodeStatus.COMPLETED
    )
    switch_text = (
        f"the switch '{etl.SWITCH_NODE}' sent the batch to '{etl.TAKEN_BRANCH}' (total {batch['total_eur']:,.2f} EUR "
        f"< review threshold {batch['review_threshold']:,.0f} EUR); the branch '{etl.SKIPPED_BRANCH}' was skipped "
        f"and '{etl.MERGE_NODE}' went on with the branch that ran"
    )

    shards = etl.SHARD_NODES
    busy = sum(result.node_durations[n] for n in shards)
    span = max(progress.finished[n] for n in shards) - min(progress.started[n] for n in shards)
    max_threads = result.metrics["max_threads"]
    threads_text = (
        f"{len(shards)} blocking sync nodes ran in parallel in threads: max threads {max_threads}, "
        f"{busy:.2f} s of blocking work done in {span:.2f} s"
    )

    cpu = out[etl.CPU_NODE]["result"]
    cpu_start, cpu_end = progress.started[etl.CPU_NODE], progress.finished[etl.CPU_NODE]
    meanwhile = [n for n, t in progress.finished.items() if n != etl.CPU_NODE and cpu_start < t < cpu_end]
    cpu_text = (
        f"the CPU node '{etl.CPU_NODE}' ran in worker process {cpu['pid']} (this is {os.getpid()}): "
        f"{cpu['primes']:,} primes below {cpu['limit']:,}, while {len(meanwhile)} other nodes finished"
    )

    published = out[etl.FLAKY_NODE]["result"]
    retry_text = (
        f"'{etl.FLAKY_NODE}' (retry=2) failed once with a connection reset and succeeded on attempt "
        f"{progress.attempts.get(etl.FLAKY_NODE)}"
    )

    stored = out[etl.STORE_NODE]["result"]
    db = loaded.resources.metrics()["db"] if loaded.resources is not None else {}
    records = out["generate"]["result"]["count"]
    made = "once" if db.get("created") == 1 else f"{db.get('created')} times"
    store_text = (
        f"'{etl.STORE_NODE}' wrote {stored['rows']} rows to the resource 'db' (an in-memory SQLite "
        f"connection made {made} by a sync factory, handed to the node by Resource('db'))"
    )
    return [
        Highlight(switch_text, switched),
        Highlight(threads_text, max_threads >= 2 and span < 0.75 * busy),
        Highlight(cpu_text, cpu["pid"] != os.getpid() and bool(meanwhile)),
        Highlight(
            retry_text,
            progress.attempts.get(etl.FLAKY_NODE) == 2
            and result.metrics["retries"] == 1
            and published["published"],
        ),
        Highlight(store_text, stored["rows"] == records and db.get("created") == 1),
    ]


SECTIONS: list[DemoSection] = [
    DemoSection("DAG runner: a small ETL on the Kailash API", _dag_section),
    DemoSection("Worker and server: a workflow on the embedded server", flow_section),
    DemoSection("Voice services: one voice turn, a WAV question in and a WAV answer out", voice_section),
]
