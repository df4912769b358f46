"""trioworks.dag vs Kailash 2.65 ``AsyncLocalRuntime``, side by side.

    python benchmarks/dag.py [--runs N] [--quick] [--only NAME[,NAME...]] [--json PATH]

Every (run, workload, system) executes in a fresh child process (this file with ``--child``).
The child imports its system, builds the workflow and the runtime, warms the runtime up on a
two-node workflow (so one-time lazy imports are not billed to the workload), then times one
execution and prints one JSON line. The parent takes medians and prints a Markdown table.

Both systems run the same graph with the same code strings (``PythonCodeNode`` for sync
nodes, ``AsyncPythonCodeNode`` for async ones); the only difference is the sleep statement of
async nodes (``trio.sleep`` vs ``asyncio.sleep``). Both return each node's output as
``{"result": value}``, so both are checked the same way.
"""

from __future__ import annotations

import argparse
import builtins
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

SYSTEMS = ("kailash", "trioworks")
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
DIAMOND_CPU = 0.005  # the busy loop is calibrated (in the parent) to take this long on one core
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
    add("join", "result = {'v': " + " + ".join(f"x{i}" for i in range(n)) + "}")
    # The edges into the join were added before the join node; builders only check at build().
    return g


def busy_loop(iterations: int) -> str:
    """Pure-Python CPU work; holds the GIL throughout."""
    return f"s = 0\nfor i in range({iterations}):\n    s += i\n"


def calibrate_cpu_iterations(seconds: float) -> int:
    """Iterations of :func:`busy_loop` that take ``seconds`` here, run as a code node runs (exec)."""
    probe = 200_000
    code = compile(busy_loop(probe), "<calibrate>", "exec")
    best = math.inf
    for _ in range(7):
        start = time.perf_counter()
        exec(code, {"__builtins__": builtins})
        best = min(best, time.perf_counter() - start)
    return max(1, round(probe * seconds / best))


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


Side = Trioworks | Kailash


def load(system: str) -> Side:
    return Trioworks() if system == "trioworks" else Kailash()


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
    cpu_iterations: int
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
    cpu_node = busy_loop(ctx.cpu_iterations) + "result = {'v': a + b}"
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
    raises after FAIL_AFTER. Orphans: siblings that finish after the run has raised."""
    s = ctx.sizes
    marks = os.path.join(ctx.tmp, "finished")
    g = Graph()
    for i in range(s.siblings):
        g.async_(f"sib{i}", side.sleep_code(s.sibling_sleep) + mark_code(marks) + "result = {'v': 1}")
    g.async_("failer", side.sleep_code(FAIL_AFTER) + "raise ValueError('injected failure')\nresult = {'v': 0}")
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

    The cancel comes at 0.325 s, in the middle of the 7th node (which starts at ~0.30 s in
    trioworks, ~0.32 s in Kailash), not at a node boundary, where a node starting a few
    microseconds after the cancel call would be a race of the measurement, not of the runtime.
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
    return {"started_after": sum(t > cancelled_at for t in started), "cancel_return": returned_at - cancelled_at}


# --- bookkeeping for the table ---------------------------------------------------------------
