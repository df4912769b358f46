"""trioworks.dag vs Kailash 2.65 ``AsyncLocalRuntime``, side by side.

    python benchmarks/dag.py [--runs N] [--quick] [--only NAME[,NAME...]] [--json PATH]

Three systems: ``kailash`` (Kailash's ``AsyncLocalRuntime``), ``trioworks`` (the native
``AsyncLocalRuntime``) and ``compat`` (trioworks' Kailash-style ``LocalRuntime``: route_data
conditional execution, content-aware success detection, the sync ``with runtime:
results, run_id = runtime.execute(workflow, parameters=...)`` path; the harness calls it from a
worker thread, as a sync caller would, and cancels it through ``execute_async``).

Every (run, workload, system) executes in a fresh child process (this file with ``--child``).
The child imports its system, builds the workflow and the runtime, warms the runtime up on a
two-node workflow (so one-time lazy imports are not billed to the workload), then times one
execution and prints one JSON line. The parent takes medians and prints a Markdown table.
Workload 9 ("startup") differs: its child times the import in a bare interpreter, then runs
workload 1 and reports the peak RSS of the whole process (this harness included, on both sides).

Both systems run the same graph with the same code strings (``PythonCodeNode`` for sync
nodes, ``AsyncPythonCodeNode`` for async ones); the only difference is the sleep statement of
async nodes (``trio.sleep`` vs ``asyncio.sleep``). Both return each node's output as
``{"result": value}``, so both are checked the same way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

SYSTEMS = ("kailash", "trioworks", "compat")
RESULT_MARK = "BENCH-RESULT "
CHILD_TIMEOUT = 180.0  # seconds; a child that takes longer is reported as an error


# --- sizes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    chain: int = 200  # workloads 1, 2 and 9: nodes in the chain
    fan: int = 500  # workload 3: middle nodes of 1 -> N -> 1
    async_fan: int = 200  # workload 4: middle nodes of 1 -> N -> 1, each sleeping ASYNC_FAN_SLEEP
    async_cap: int = 50  # workload 4: max_concurrent_nodes
    layers: int = 10  # workload 5: diamond depth
    width: int = 20  # workload 5: diamond width
    sleepers: int = 8  # workload 6: independent time.sleep nodes
    siblings: int = 20  # workload 7: slow siblings of the failing node
    sibling_sleep: float = 2.0  # workload 7
    after_raise_wait: float = 2.5  # workload 7: how long orphans get to show up
    cancel_chain: int = 20  # workload 8: nodes in the chain
    cancel_after: float = 0.325  # workload 8: see cancel_during_sync_chain
    after_cancel_wait: float = 1.5  # workload 8: how long late starters get to show up


FULL = Sizes()
QUICK = Sizes(chain=50, fan=100, async_fan=100, layers=5, sibling_sleep=1.0, after_raise_wait=1.5)

ASYNC_FAN_SLEEP = 0.05
DIAMOND_SLEEP = 0.010
DIAMOND_CPU = 0.005  # seconds of CPU time per CPU node
SYNC_SLEEP = 0.2
FAIL_AFTER = 0.05
CANCEL_STEP_SLEEP = 0.05
DEFAULT_LIMITS = {"max_concurrent_nodes": 10, "thread_pool_size": 4}  # Kailash's defaults


# --- graphs: one description, built by either system's WorkflowBuilder ---------------------


@dataclass
class Graph:
    nodes: list[tuple[str, str, str]] = field(default_factory=list)  # (node type, id, code)
    edges: list[tuple[str, str, str, str]] = field(default_factory=list)  # add_connection args
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # node-scoped inputs

    def sync(self, node_id: str, code: str) -> None:
        self.nodes.append(("PythonCodeNode", node_id, code))

    def async_(self, node_id: str, code: str) -> None:
        self.nodes.append(("AsyncPythonCodeNode", node_id, code))

    def connect(self, source: str, target: str, input_name: str) -> None:
        self.edges.append((source, "result.v", target, input_name))

    def build(self, builder_cls: type) -> Any:
        wb = builder_cls()
        for node_type, node_id, code in self.nodes:
            wb.add_node(node_type, node_id, {"code": code})
        for edge in self.edges:
            wb.add_connection(*edge)
        return wb.build()


STEP = "result = {'v': x + 1}"


def chain(n: int, *, is_async: bool, code: str = STEP) -> Graph:
    """n0 -> n1 -> ... ; n0 gets x = -1, so node i outputs i."""
    g = Graph(inputs={"n0": {"x": -1}})
    for i in range(n):
        (g.async_ if is_async else g.sync)(f"n{i}", code)
        if i:
            g.connect(f"n{i - 1}", f"n{i}", "x")
    return g


def fan(n: int, *, middle: Callable[[int], str], is_async: bool) -> Graph:
    """src -> mid0..mid{n-1} -> join; mid i outputs i, the join sums them all."""
    g = Graph()
    add = g.async_ if is_async else g.sync
    add("src", "result = {'v': 0}")
    for i in range(n):
        add(f"mid{i}", middle(i))
        g.connect("src", f"mid{i}", "x")
        g.connect(f"mid{i}", "join", f"x{i}")
    # sum([...]), not x0 + x1 + ...: Kailash's code checker recurses into the nested BinOp and
    # fails with "maximum recursion depth exceeded" at 500 terms.
    add("join", "result = {'v': sum([" + ", ".join(f"x{i}" for i in range(n)) + "])}")
    # Graph.build adds every node before any edge (builders check connections as they are added).
    return g


def busy_loop(seconds: float) -> str:
    """Pure-Python CPU work: spin until this thread has used ``seconds`` of CPU time.

    Counting the thread's CPU time, not iterations, makes the work the same on a shared core
    whatever its speed of the moment (on this kind of machine a fixed loop varies 2x between
    processes). The loop holds the GIL, and a thread waiting for the GIL uses no CPU time.
    """
    return f"import time\nstop = time.thread_time() + {seconds}\nwhile time.thread_time() < stop:\n    pass\n"


def expect(ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(message)


def value(results: dict[str, Any], node_id: str) -> Any:
    return results[node_id]["result"]["v"]


# --- the two systems -------------------------------------------------------------------------


class Trioworks:
    name = "trioworks"

    def __init__(self) -> None:
        import trio

        from trioworks.dag import AsyncLocalRuntime, WorkflowBuilder

        self.trio = trio
        self.WorkflowBuilder = WorkflowBuilder
        self.Runtime = AsyncLocalRuntime

    @staticmethod
    def sleep_code(seconds: float) -> str:
        return f"import trio\nawait trio.sleep({seconds})\n"

    def run(self, main: Callable[[], Awaitable[Any]]) -> Any:
        return self.trio.run(main)

    async def sleep(self, seconds: float) -> None:
        await self.trio.sleep(seconds)

    async def execute(self, rt: Any, wf: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        return (await rt.execute_workflow_async(wf, inputs)).results

    async def execute_and_cancel(self, rt: Any, wf: Any, inputs: dict[str, Any], delay: float) -> float:
        """Start the run, cancel it after ``delay``; return the wall-clock time of the cancel."""
        async with self.trio.open_nursery() as nursery:
            nursery.start_soon(self.execute, rt, wf, inputs)
            await self.trio.sleep(delay)
            cancelled_at = time.time()
            nursery.cancel_scope.cancel()
        return cancelled_at


class Kailash:
    name = "kailash"

    def __init__(self) -> None:
        import asyncio

        from kailash.runtime.async_local import AsyncLocalRuntime
        from kailash.workflow.builder import WorkflowBuilder

        self.asyncio = asyncio
        self.WorkflowBuilder = WorkflowBuilder
        self.Runtime = AsyncLocalRuntime

    @staticmethod
    def sleep_code(seconds: float) -> str:
        return f"import asyncio\nawait asyncio.sleep({seconds})\n"

    def run(self, main: Callable[[], Awaitable[Any]]) -> Any:
        return self.asyncio.run(main())

    async def sleep(self, seconds: float) -> None:
        await self.asyncio.sleep(seconds)

    async def execute(self, rt: Any, wf: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        results, _run_id = await rt.execute_workflow_async(wf, inputs)
        return results

    async def execute_and_cancel(self, rt: Any, wf: Any, inputs: dict[str, Any], delay: float) -> float:
        task = self.asyncio.create_task(self.execute(rt, wf, inputs))
        await self.asyncio.sleep(delay)
        cancelled_at = time.time()
        task.cancel()
        try:
            await task
        except self.asyncio.CancelledError:
            pass
        return cancelled_at


class Compat(Trioworks):
    """trioworks' ``LocalRuntime`` used as Kailash code uses it (only the imports changed)."""

    name = "compat"

    def __init__(self) -> None:
        super().__init__()
        from trioworks.dag import LocalRuntime

        self.Runtime = LocalRuntime

    async def execute(self, rt: Any, wf: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        def sync_caller() -> dict[str, Any]:
            with rt.acquire() as runtime:  # Kailash's `with LocalRuntime() as runtime:`
                results, _run_id = runtime.execute(wf, parameters=inputs)
            return results

        return await self.trio.to_thread.run_sync(sync_caller)

    async def execute_and_cancel(self, rt: Any, wf: Any, inputs: dict[str, Any], delay: float) -> float:
        # A sync execute() in a thread cannot be cancelled from here: the async path can.
        async def go() -> None:
            await rt.execute_async(wf, inputs)

        async with self.trio.open_nursery() as nursery:
            nursery.start_soon(go)
            await self.trio.sleep(delay)
            cancelled_at = time.time()
            nursery.cancel_scope.cancel()
        return cancelled_at


Side = Trioworks | Kailash


def load(system: str) -> Side:
    return {"trioworks": Trioworks, "compat": Compat, "kailash": Kailash}[system]()


async def prepare(side: Side, graph: Graph, limits: dict[str, int]) -> tuple[Any, Any]:
    """Build the workflow and the runtime, and run the runtime once on a two-node workflow."""
    wf = graph.build(side.WorkflowBuilder)
    rt = side.Runtime(**limits)
    warm = Graph(inputs={"a": {"x": 0}})
    warm.sync("a", STEP)
    warm.async_("b", STEP)
    warm.connect("a", "b", "x")
    expect(value(await side.execute(rt, warm.build(side.WorkflowBuilder), warm.inputs), "b") == 2, "warm-up")
    return wf, rt


async def timed(side: Side, graph: Graph, limits: dict[str, int] = DEFAULT_LIMITS) -> tuple[float, dict]:
    wf, rt = await prepare(side, graph, limits)
    start = time.perf_counter()
    results = await side.execute(rt, wf, graph.inputs)
    return time.perf_counter() - start, results


def read_marks(path: str) -> list[float]:
    """Wall-clock timestamps that node bodies appended to ``path``, one a line."""
    try:
        with open(path) as f:
            return [float(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def mark_code(path: str) -> str:
    """Code-node statements appending ``time.time()`` to ``path`` (``open`` is not allowed in
    Kailash's async code nodes, ``os`` is)."""
    return (
        "import os\nimport time\n"
        f"fd = os.open({path!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
        "os.write(fd, (repr(time.time()) + '\\n').encode())\n"
        "os.close(fd)\n"
    )


# --- workloads (run in the child; each returns {metric: number}) ------------------------------


@dataclass(frozen=True)
class Context:
    sizes: Sizes
    tmp: str


async def sync_chain(side: Side, ctx: Context) -> dict[str, float]:
    n = ctx.sizes.chain
    seconds, results = await timed(side, chain(n, is_async=False))
    expect(value(results, f"n{n - 1}") == n - 1, f"chain end is {value(results, f'n{n - 1}')}, not {n - 1}")
    return {"time": seconds}


async def async_chain(side: Side, ctx: Context) -> dict[str, float]:
    n = ctx.sizes.chain
    seconds, results = await timed(side, chain(n, is_async=True))
    expect(value(results, f"n{n - 1}") == n - 1, f"chain end is {value(results, f'n{n - 1}')}, not {n - 1}")
    return {"time": seconds}


async def fan_sync(side: Side, ctx: Context) -> dict[str, float]:
    n = ctx.sizes.fan
    graph = fan(n, middle=lambda i: f"result = {{'v': x + {i}}}", is_async=False)
    seconds, results = await timed(side, graph)
    expect(value(results, "join") == n * (n - 1) // 2, f"join sum is {value(results, 'join')}")
    return {"time": seconds}


async def fan_async_sleep(side: Side, ctx: Context) -> dict[str, float]:
    n = ctx.sizes.async_fan
    middle = side.sleep_code(ASYNC_FAN_SLEEP)
    graph = fan(n, middle=lambda i: f"{middle}result = {{'v': x + {i}}}", is_async=True)
    limits = {"max_concurrent_nodes": ctx.sizes.async_cap, "thread_pool_size": 4}
    seconds, results = await timed(side, graph, limits)
    expect(value(results, "join") == n * (n - 1) // 2, f"join sum is {value(results, 'join')}")
    return {"time": seconds}


async def mixed_diamond(side: Side, ctx: Context) -> dict[str, float]:
    """``layers`` x ``width``: node j of layer i takes a from node j and b from node j+1 (mod
    width) of layer i-1. Even j: async sleep of DIAMOND_SLEEP; odd j: DIAMOND_CPU of busy loop
    (a sync node, so a thread). Layer 0 gets a=1, b=0, so every node of layer i outputs 2**i."""
    layers, width = ctx.sizes.layers, ctx.sizes.width
    g = Graph()
    sleep_node = side.sleep_code(DIAMOND_SLEEP) + "result = {'v': a + b}"
    cpu_node = busy_loop(DIAMOND_CPU) + "result = {'v': a + b}"
    for i in range(layers):
        for j in range(width):
            node_id = f"L{i}_{j}"
            if j % 2 == 0:
                g.async_(node_id, sleep_node)
            else:
                g.sync(node_id, cpu_node)
            if i == 0:
                g.inputs[node_id] = {"a": 1, "b": 0}
            else:
                g.connect(f"L{i - 1}_{j}", node_id, "a")
                g.connect(f"L{i - 1}_{(j + 1) % width}", node_id, "b")
    seconds, results = await timed(side, g, {"max_concurrent_nodes": 20, "thread_pool_size": 4})
    ends = {value(results, f"L{layers - 1}_{j}") for j in range(width)}
    expect(ends == {2 ** (layers - 1)}, f"last layer outputs {ends}, not {{{2 ** (layers - 1)}}}")
    return {"time": seconds}


async def sync_sleeps(side: Side, ctx: Context) -> dict[str, float]:
    n = ctx.sizes.sleepers
    g = Graph()
    for i in range(n):
        g.sync(f"s{i}", f"import time\ntime.sleep({SYNC_SLEEP})\nresult = {{'v': {i}}}")
    seconds, results = await timed(side, g, {"max_concurrent_nodes": n, "thread_pool_size": n})
    expect(all(value(results, f"s{i}") == i for i in range(n)), "wrong sleeper outputs")
    return {"time": seconds}


async def failure_among_siblings(side: Side, ctx: Context) -> dict[str, float]:
    """``siblings`` async nodes sleep, then append their finish time to a file; ``failer``
    raises after FAIL_AFTER (``after`` depends on it). Orphans: siblings that finish after the
    run has raised."""
    s = ctx.sizes
    marks = os.path.join(ctx.tmp, "finished")
    g = Graph()
    for i in range(s.siblings):
        g.async_(f"sib{i}", side.sleep_code(s.sibling_sleep) + mark_code(marks) + "result = {'v': 1}")
    g.async_(
        "failer", side.sleep_code(FAIL_AFTER) + "raise ValueError('injected failure')\nresult = {'v': 0}"
    )
    # A dependent, so that the failure stops the run in Kailash's LocalRuntime semantics too
    # (route_data keeps a failing *leaf* in the results and runs on).
    g.sync("after", STEP)
    g.connect("failer", "after", "x")
    wf, rt = await prepare(side, g, {"max_concurrent_nodes": s.siblings + 1, "thread_pool_size": 4})
    start = time.perf_counter()
    try:
        await side.execute(rt, wf, g.inputs)
    except Exception as exc:
        seconds = time.perf_counter() - start
        raised_at = time.time()
        expect("failer" in str(exc), f"the error does not name the failing node: {exc!r}")
    else:
        raise AssertionError("the run did not raise")
    await side.sleep(s.after_raise_wait)
    finished = read_marks(marks)
    return {"raise": seconds, "orphans": sum(t > raised_at for t in finished)}


async def cancel_during_sync_chain(side: Side, ctx: Context) -> dict[str, float]:
    """A chain of sync nodes, each appending its start time to a file then sleeping
    CANCEL_STEP_SLEEP; the caller cancels the run after ``cancel_after``.

    The cancel comes at 0.325 s, in the middle of trioworks' 7th node (6 x 50 ms of sleep plus
    a little overhead: it starts at ~0.30 s), not at a node boundary, where a node starting a
    few microseconds after the cancel call would be a race of the measurement, not of the
    runtime. ``cancel_return`` is how long the caller waits after cancelling.
    """
    s = ctx.sizes
    marks = os.path.join(ctx.tmp, "started")
    step = mark_code(marks) + f"time.sleep({CANCEL_STEP_SLEEP})\n" + STEP
    graph = chain(s.cancel_chain, is_async=False, code=step)
    wf, rt = await prepare(side, graph, DEFAULT_LIMITS)
    cancelled_at = await side.execute_and_cancel(rt, wf, graph.inputs, s.cancel_after)
    returned_at = time.time()
    await side.sleep(s.after_cancel_wait)
    started = read_marks(marks)
    before = sum(t <= cancelled_at for t in started)
    expect(0 < before < s.cancel_chain, f"{before} nodes started before the cancel: it missed the run")
    return {
        "started_after": sum(t > cancelled_at for t in started),
        "cancel_return": returned_at - cancelled_at,
    }


# --- bookkeeping for the table ---------------------------------------------------------------
async def startup(side: Side, ctx: Context) -> dict[str, float]:
    """Workload 1 again; the child adds the import time and the peak RSS (see STARTUP_SNIPPET)."""
    await sync_chain(side, ctx)
    return {}


WORKLOADS: dict[str, Callable[[Side, Context], Awaitable[dict[str, float]]]] = {
    "sync_chain": sync_chain,
    "async_chain": async_chain,
    "fan_sync": fan_sync,
    "fan_async": fan_async_sleep,
    "diamond": mixed_diamond,
    "sync_sleeps": sync_sleeps,
    "failure": failure_among_siblings,
    "cancel": cancel_during_sync_chain,
    "startup": startup,
}

# The startup child measures the import in a bare interpreter (nothing imported but `site`),
# then loads this file to run workload 1 and report the peak RSS of the whole process.
STARTUP_SNIPPET = """\
import sys, time
start = time.perf_counter()
if sys.argv[2] in ("trioworks", "compat"):
    import trioworks.dag
else:
    import kailash.workflow.builder, kailash.runtime.async_local
seconds = time.perf_counter() - start
import runpy
runpy.run_path(sys.argv[1])["child"](sys.argv[2], "startup", sys.argv[3], import_seconds=seconds)
"""


def child(system: str, workload: str, ctx_json: str, import_seconds: float | None = None) -> None:
    """Run one workload once and print its metrics (or its error) as one JSON line."""
    logging.disable(logging.WARNING)  # Kailash warns about a lot; printing it costs time
    spec = json.loads(ctx_json)
    with tempfile.TemporaryDirectory(prefix="dag-bench-") as tmp:
        ctx = Context(Sizes(**spec["sizes"]), tmp)
        try:
            side = load(system)
            metrics = side.run(lambda: WORKLOADS[workload](side, ctx))
            if import_seconds is not None:
                metrics["import"] = import_seconds
                metrics["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
            out: dict[str, Any] = {"metrics": metrics}
        except Exception as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    print(RESULT_MARK + json.dumps(out), flush=True)


def run_child(system: str, workload: str, ctx_json: str) -> dict[str, Any]:
    if workload == "startup":
        argv = [sys.executable, "-c", STARTUP_SNIPPET, __file__, system, ctx_json]
    else:
        argv = [sys.executable, __file__, "--child", system, workload, "--ctx", ctx_json]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT:g} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"child exited with {proc.returncode}: {tail}"[:500]}


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    kind: str  # "speedup": kailash/trioworks >= value; "ideal": trioworks <= ideal * (1 + value);
    value: float = 0.0  # "zero": trioworks is 0 in every run
    ours: bool = False  # not from the issue: a target this benchmark sets itself (marked *)

    def describe(self, ideal: float | None) -> str:
        star = " *" if self.ours else ""
        if self.kind == "speedup":
            return f"≥ {self.value:g}× faster{star}"
        if self.kind == "ideal":
            assert ideal is not None
            return f"≤ {ideal * (1 + self.value):.3f} s (ideal + {self.value:.0%}){star}"
        return f"0 in every run{star}"

    def met(self, ratio: float | None, trioworks: list[float], ideal: float | None) -> bool:
        if self.kind == "speedup":
            return ratio is not None and ratio >= self.value
        if self.kind == "ideal":
            assert ideal is not None
            return statistics.median(trioworks) <= ideal * (1 + self.value)
        return max(trioworks) == 0


@dataclass(frozen=True)
class Row:
    workload: str
    metric: str
    label: Callable[[Sizes], str]
    unit: str  # "s", "MiB" or "n" (a count)
    ideal: Callable[[Sizes], float] | None = None
    target: Target | None = None
    ratio: bool = True  # False where kailash / trioworks means nothing (counts, unlike quantities)


ROWS = [
    Row("sync_chain", "time", lambda s: f"1. {s.chain}-node sync chain", "s", target=Target("speedup", 10)),
    Row("async_chain", "time", lambda s: f"2. {s.chain}-node async chain", "s", target=Target("speedup", 5)),
    Row("fan_sync", "time", lambda s: f"3. 1 → {s.fan} trivial sync → 1", "s", target=Target("speedup", 10)),
    Row(
        "fan_async",
        "time",
        lambda s: f"4. 1 → {s.async_fan} async sleep({ASYNC_FAN_SLEEP}) → 1, cap {s.async_cap}",
        "s",
        # Waves of `cap` sleeps, back to back; the source and the join are free.
        ideal=lambda s: math.ceil(s.async_fan / s.async_cap) * ASYNC_FAN_SLEEP,
        target=Target("ideal", 0.10),
    ),
    Row(
        "diamond",
        "time",
        lambda s: f"5. {s.layers} × {s.width} mixed diamond (async 10 ms / CPU 5 ms)",
        "s",
        # The 0.50 s: the CPU nodes (half of them, 5 ms each) hold the GIL, so they run one
        # at a time whatever the thread count: layers * width/2 * 5 ms. The async sleeps and all
        # scheduling overhead are assumed to overlap with that CPU work entirely.
        ideal=lambda s: s.layers * (s.width // 2) * DIAMOND_CPU,
        target=Target("speedup", 1.5),
    ),
    Row(
        "sync_sleeps",
        "time",
        lambda s: f"6. {s.sleepers} × time.sleep({SYNC_SLEEP}), {s.sleepers} threads",
        "s",
        ideal=lambda s: SYNC_SLEEP,
        target=Target("ideal", 0.10, ours=True),
    ),
    Row(
        "failure",
        "raise",
        lambda s: f"7. 1 failure among {s.siblings} slow siblings: time to raise",
        "s",
        ideal=lambda s: FAIL_AFTER,
    ),
    Row(
        "failure",
        "orphans",
        lambda s: "7. … siblings finishing after the raise (orphans)",
        "n",
        ideal=lambda s: 0,
        target=Target("zero"),
    ),
    Row(
        "cancel",
        "started_after",
        lambda s: f"8. cancel in a {s.cancel_chain}-node sync chain: nodes started after",
        "n",
        ideal=lambda s: 0,
        target=Target("zero"),
    ),
    # Kailash returns at once and leaves its pool thread running the rest of the chain; trioworks
    # waits for the node running in a thread (abandon_threads=False, the default), up to 50 ms.
    Row("cancel", "cancel_return", lambda s: "8. … cancel → caller resumes", "s", ratio=False),
    Row("startup", "import", lambda s: "9. import time", "s"),
    Row("startup", "rss", lambda s: "9. peak RSS (import + workload 1)", "MiB"),
]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:g}"


def table(rows: list[Row], raw: dict[str, dict[str, list[dict]]], sizes: Sizes) -> tuple[str, list[dict]]:
    """The Markdown table, and the same numbers as records for --json."""
    header = [
        "workload",
        "kailash",
        "trioworks",
        "ratio",
        "compat",
        "compat ratio",
        "ideal",
        "trioworks/ideal",
    ]
    header += ["compat/ideal", "target", "met?"]
    lines, records = [header], []
    for row in rows:
        runs = raw.get(row.workload)
        if runs is None:
            continue
        cells: dict[str, list[float] | str] = {}
        for system in SYSTEMS:
            errors = [r["error"] for r in runs[system] if "error" in r]
            cells[system] = "error" if errors else [r["metrics"][row.metric] for r in runs[system]]
        med = {s: statistics.median(v) if isinstance(v, list) else None for s, v in cells.items()}
        k, t, c = med["kailash"], med["trioworks"], med["compat"]
        ratio = k / t if row.ratio and row.unit != "n" and k is not None and t else None
        c_ratio = k / c if row.ratio and row.unit != "n" and k is not None and c else None
        ideal = row.ideal(sizes) if row.ideal else None
        if row.target is None:
            met = "–"
        elif any(
            not isinstance(cells[s], list) or (row.target.kind == "speedup" and r is None)
            for s, r in (("trioworks", ratio), ("compat", c_ratio))
        ):
            met = "error"
        else:
            t_runs, c_runs = cells["trioworks"], cells["compat"]
            assert isinstance(t_runs, list) and isinstance(c_runs, list)
            both = row.target.met(ratio, t_runs, ideal) and row.target.met(c_ratio, c_runs, ideal)
            met = "yes" if both else "**no**"
        lines.append(
            [
                row.label(sizes),
                fmt(k, row.unit) if k is not None else str(cells["kailash"]),
                fmt(t, row.unit) if t is not None else str(cells["trioworks"]),
                f"{ratio:.1f}×" if ratio is not None else "–",
                fmt(c, row.unit) if c is not None else str(cells["compat"]),
                f"{c_ratio:.1f}×" if c_ratio is not None else "–",
                fmt(ideal, row.unit),
                f"×{t / ideal:.2f}" if ideal and t is not None else "–",
                f"×{c / ideal:.2f}" if ideal and c is not None else "–",
                row.target.describe(ideal) if row.target else "–",
                met,
            ]
        )
        records.append(
            {"workload": row.workload, "metric": row.metric, "kailash": k, "trioworks": t, "ratio": ratio}
            | {"compat": c, "compat_ratio": c_ratio}
            | {"ideal": ideal, "met": met, "runs": {s: cells[s] for s in SYSTEMS}}
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in lines]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out), records


# --- the parent ------------------------------------------------------------------------------


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def header_lines() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load1, load5, _ = os.getloadavg()
    return [
        f"date:    {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"load average {load1:.2f} / {load5:.2f}",
        f"python:  {platform.python_implementation()} {platform.python_version()}",
        f"systems: trioworks {version('trioworks')} (trio {version('trio')}), kailash {version('kailash')}",
        f"command: {shlex.join(sys.orig_argv)}",
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--runs", type=int, default=None, help="fresh processes per workload and system (default 5)"
    )
    p.add_argument("--quick", action="store_true", help="2 runs and smaller sizes")
    p.add_argument("--only", default=None, help=f"comma-separated workloads among: {', '.join(WORKLOADS)}")
    p.add_argument("--json", default=None, metavar="PATH", help="also write every measurement to PATH")
    p.add_argument("--child", nargs=2, metavar=("SYSTEM", "WORKLOAD"), help=argparse.SUPPRESS)
    p.add_argument("--ctx", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child and (args.child[0] not in SYSTEMS or args.child[1] not in WORKLOADS):
        p.error(f"--child takes a system among {SYSTEMS} and a workload among {list(WORKLOADS)}")
    if args.only:
        unknown = [w for w in args.only.split(",") if w not in WORKLOADS]
        if unknown:
            p.error(f"unknown workload {unknown[0]!r}; workloads: {', '.join(WORKLOADS)}")
    if args.runs is not None and args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        child(*args.child, args.ctx)
        return
    sizes = QUICK if args.quick else FULL
    runs = args.runs or (2 if args.quick else 5)
    workloads = args.only.split(",") if args.only else list(WORKLOADS)
    missing = [d for d in ("kailash", "trioworks") if version(d) == "not installed"]
    if missing:
        sys.exit(f"{', '.join(missing)} not installed here: run `make .venv/.bench` and use .venv/bin/python")
    print("\n".join(header_lines()), flush=True)
    print(f"sizes:   {'quick' if args.quick else 'full'}, {runs} runs")
    ctx_json = json.dumps({"sizes": sizes.__dict__})

    raw: dict[str, dict[str, list[dict]]] = {w: {s: [] for s in SYSTEMS} for w in workloads}
    started = time.perf_counter()
    for run in range(runs):
        for workload in workloads:
            # Alternate which system goes first, so that neither always follows the other.
            for system in SYSTEMS if run % 2 == 0 else SYSTEMS[::-1]:
                out = run_child(system, workload, ctx_json)
                raw[workload][system].append(out)
                shown = out.get("error") or ", ".join(f"{k}={v:.4g}" for k, v in out["metrics"].items())
                print(
                    f"  run {run + 1}/{runs} {workload:<12} {system:<9} {shown}", file=sys.stderr, flush=True
                )
    text, records = table([r for r in ROWS if r.workload in raw], raw, sizes)
    print(
        f"\nmedians of {runs} fresh processes each; ratio = kailash / trioworks (native API), compat ratio ="
        " kailash / trioworks LocalRuntime; met? = both modes; * = target set by this benchmark"
    )
    print(text)
    errors = [
        f"  {w} / {s} run {i + 1}: {r['error']}"
        for w, per in raw.items()
        for s, outs in per.items()
        for i, r in enumerate(outs)
        if "error" in r
    ]
    if errors:
        print("\nerrors:\n" + "\n".join(errors))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"header": header_lines(), "sizes": sizes.__dict__}
                | {"runs": runs, "rows": records, "raw": raw},
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
