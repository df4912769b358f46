"""``trioworks demo``: an end-to-end tour on embedded defaults, one section per subsystem.

What each section runs, and the :class:`~trioworks.demo.Highlight` claims it checks against the
run, live in :mod:`trioworks.demo`; this module narrates: it prints each section's story, runs it,
shows what it saw, and prints the highlights. The command exits 0 only when every highlight
holds. A later subsystem adds its section to :data:`SECTIONS`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
import trio
from rich.table import Table
from rich.text import Text

from ..core import single_error
from ..dag import AsyncLocalRuntime
from ..demo import (
    FACTS,
    PHRASES,
    QUESTION,
    VOICE,
    FlowRun,
    FlowStep,
    Highlight,
    VoiceRun,
    ask_question,
    build_workflow,
    dag_highlights,
    flow_highlights,
    resources,
    run_flow,
    voice_highlights,
)
from ..services import TurnResult
from ._dag import run_workflow
from ._install_model import install_on_first_run
from ._progress import NodeProgress
from ._report import summary_table, totals_line
from ._streams import Streams

__all__ = ["SECTIONS", "DemoSection", "register"]


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
    workflow, registry = build_workflow(), resources()
    io.out.print(
        "A small ETL built with the Kailash API (WorkflowBuilder, PythonCodeNode,\n"
        "SwitchNode, MergeNode), run by AsyncLocalRuntime on Trio: each node starts\n"
        "the moment its inputs exist. Source: trioworks/demo/etl.py.\n"
    )
    io.out.print(Text("graph (Mermaid; for DOT: trioworks dag graph examples/dag_demo.py)", style="bold"))
    io.out.print(workflow.to_mermaid())
    io.out.print(Text("progress (seconds since start, node, kind, duration)", style="bold"))
    progress = NodeProgress(workflow, io.err, bar=bar, log=io.out)
    runtime = AsyncLocalRuntime(
        resource_registry=registry,
        thread_pool_size=4,
        on_node_start=progress.on_start,
        on_node_finish=progress.on_finish,
    )
    result, failure = run_workflow(runtime, workflow, {}, progress)
    io.out.print()
    io.out.print(
        summary_table(
            workflow, result, progress.attempts, failed_node=failure.node_id if failure is not None else None
        )
    )
    io.out.print(totals_line(result))
    if failure is not None:
        io.error(str(failure))
        return [Highlight(f"the ETL run completes (it failed: {failure})", False)]
    return dag_highlights(
        result,
        started=progress.started,
        finished=progress.finished,
        attempts=progress.attempts,
        resources=registry,
    )


# -- 2. the worker and the server -------------------------------------------------

_STATUS_STYLES = {"completed": "green", "failed": "bold red", "skipped": "yellow", "running": "cyan"}
_NOT_SHOWN = frozenset({"started", "finished", "thread", "read_sha256", "read_bytes", "workflow_id"})


def _flow_section(io: Streams, bar: bool) -> list[Highlight]:
    """Run it all (a few seconds), print each step as it happens, then the result.

    Progress is printed as lines on ``io.out`` whatever ``bar`` says: the status changes are
    what this section shows. Problems (the workflow failed or timed out, the server refused a
    call) come back as one false highlight naming them.
    """
    io.out.print(
        "The reference server (Kruxia Flow's HTTP API, SQLite) and an activity worker run\n"
        "in this process, on one Trio loop. The workflow (examples/workflows/demo.yaml)\n"
        "writes a file, fans it out to four regions in threads and to a CPU-bound\n"
        "activity in a worker process, then takes one of two branches on a condition.\n"
        "Activities: trioworks/demo/activities.py.\n"
    )
    io.out.print(
        Text("progress (seconds since start, activity, kind, status as the server reports it)", style="bold")
    )

    def show(step: FlowStep) -> None:
        line = Text(f"  {step.seconds:5.2f} s  ")
        if step.status is None:
            io.out.print(line + Text(step.text))
        else:
            io.out.print(line + Text(f"{step.activity:<14} {step.kind:<8} ") + _status_text(step.status))

    # Blocking file work (the temp directory) stays out of the Trio loop: it is done here, around it.
    with tempfile.TemporaryDirectory(prefix="trioworks-demo-") as tmp:
        run = trio.run(lambda: run_flow(Path(tmp), on_step=show))
    io.out.print()
    if run.workflow:
        io.out.print(_flow_table(run))
    if run.report:
        io.out.print(Text("result: ", style="bold") + Text(run.report))
    io.out.print(Text("worker: ", style="bold") + Text(run.stats.line()))
    return flow_highlights(run)


def _status_text(status: str) -> Text:
    return Text(status, style=_STATUS_STYLES.get(status, "dim"))


def _timestamp(text: str | None) -> float | None:
    return None if text is None else dt.datetime.fromisoformat(text).timestamp()


def _flow_table(run: FlowRun) -> Table:
    """One row per activity: kind, status, when the server saw it claimed and for how long."""
    activities = run.activities
    starts = [t for a in activities if (t := _timestamp(a.get("started_at"))) is not None]
    origin = min(starts, default=0.0)
    table = Table(
        title=f"workflow {run.workflow.get('id')} · {run.workflow.get('status')}", title_justify="left"
    )
    table.add_column(
        "activity", no_wrap=True, min_width=max((len(a["activity_key"]) for a in activities), default=8)
    )
    table.add_column("kind", style="dim", no_wrap=True, min_width=7)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("at s", justify="right", no_wrap=True, min_width=4)
    table.add_column("ms", justify="right", no_wrap=True, min_width=4)
    # Only this column may shrink; its cells are single-line Texts cut with an ellipsis.
    table.add_column("output", min_width=12)
    for activity in activities:
        began, ended = _timestamp(activity.get("started_at")), _timestamp(activity.get("completed_at"))
        if activity.get("error_details"):
            output = activity["error_details"]
        else:  # the original's [{name, type, value}]
            output = {o["name"]: o["value"] for o in activity.get("outputs") or ()}
        shown = ", ".join(f"{k}={v}" for k, v in output.items() if k not in _NOT_SHOWN)
        table.add_row(
            activity["activity_key"],
            run.kind(activity["activity_key"]),
            _status_text(activity["status"]),
            f"{began - origin:.2f}" if began is not None else "",
            f"{(ended - began) * 1000:.0f}" if began is not None and ended is not None else "",
            Text(shown, no_wrap=True, overflow="ellipsis"),
        )
    return table


# -- 3. the voice services --------------------------------------------------------


def _voice_section(io: Streams, bar: bool) -> list[Highlight]:
    """Seed, speak, run the turn (a few seconds), show it, return the highlights."""
    io.out.print(
        "The voice services (stt, memory, llm, tts, router) on the in-process bus, as\n"
        "`trioworks services ask` runs them. Memory is seeded with three facts;\n"
        f"espeak-ng speaks the question into a WAV file ({VOICE} voice). stt\n"
        f"(pocketsphinx) listens with a grammar of {len(PHRASES)} phrases: its general model\n"
        "transcribes espeak-ng's synthetic voice poorly, a grammar makes it exact.\n"
        "The llm is the built-in offline backend: rules, not a language model; with\n"
        "RAG context it answers from the best memory.\n"
    )
    # A folder of this run's own (two demos at once must not share one); kept for listening.
    audio = Path(tempfile.mkdtemp(prefix="trioworks-demo-voice-"))
    for fact in FACTS:
        io.out.print(Text("  remembered  ", style="dim") + Text(fact))
    with tempfile.TemporaryDirectory(prefix="trioworks-demo-memory-") as data:
        try:
            try:
                turn = trio.run(ask_question, audio, Path(data))
            except Exception as exc:
                if not install_on_first_run(single_error(exc), io):
                    raise
                turn = trio.run(ask_question, audio, Path(data))  # the weights are there now
        except Exception as exc:  # a missing program or model: one false highlight that names it
            error = single_error(exc)
            # A missing model or extra says what to install; anything else is named by its type.
            missing = type(error).__name__ == "ModelNotInstalled" or isinstance(error, ModuleNotFoundError)
            problem = str(error) if missing else f"{type(error).__name__}: {error}"
            return voice_highlights(VoiceRun(turn=TurnResult(), problem=problem))
    run = VoiceRun.of(turn)
    _show_turn(run, audio / "question.wav", io)
    return voice_highlights(run)


def _show_turn(run: VoiceRun, wav: Path, io: Streams) -> None:
    turn = run.turn
    rows = [("question", f"{QUESTION!r} spoken into {wav}")]
    rows.append(("transcript", turn.transcript or "(none)"))
    for i, hit in enumerate(turn.used_hits):
        rows.append(("memory" if i == 0 else "", f"{hit.score:.4f}  {hit.document.get('text', '')}"))
    rows.append(("answer", f"{turn.answer} ({turn.provider})" if turn.answer else "(none)"))
    for path in turn.reply_paths:
        rows.append(("reply", f"{path} ({run.reply_seconds:.1f} s of audio)"))
    for label, value in rows:
        io.out.print(Text(f"  {label:<11} ", style="bold") + Text(value))


SECTIONS: list[DemoSection] = [
    DemoSection("DAG runner: a small ETL on the Kailash API", _dag_section),
    DemoSection("Worker and server: a workflow on the embedded server", _flow_section),
    DemoSection("Voice services: one voice turn, a WAV question in and a WAV answer out", _voice_section),
]
