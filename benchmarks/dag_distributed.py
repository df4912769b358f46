"""trioworks' DistributedRuntime vs dask.distributed, side by side, on the same graphs.

    python benchmarks/dag_distributed.py [--workers 3] [--db postgresql://...] [--runs 1] [--quick]
        [--graph trivial|cpu|diamond ...]

trioworks: one ``trioworks server`` process (SQLite in a temp folder, or ``--db``) and
``--workers`` ``trioworks worker --dag`` processes; the graph is compiled, deployed, started
and waited for by :class:`trioworks.dag.DistributedRuntime`. Dask: a ``LocalCluster`` with the
same number of worker processes (one thread each), the graph given to ``client.get``. Each
system runs each graph once to warm up, then ``--runs`` timed runs (median). Needs the ``bench``
extra (``dask[distributed]``).

Graphs: ``trivial`` 1 -> N-2 -> 1 nodes that return a number (per-node overhead); ``cpu``
200 independent nodes of 50 ms CPU each; ``diamond`` a 10 x 20 lattice (each node reads three
of the previous layer) between a source and a sink.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BUSY = """
import time
end = time.thread_time() + ms / 1000
while time.thread_time() < end:
    pass
result = 1
"""


def busy(ms: float, *_: Any) -> int:
    end = time.thread_time() + ms / 1000
    while time.thread_time() < end:
        pass
    return 1


def one(*_: Any) -> int:
    return 1


def total(*parts: int) -> int:
    return sum(parts)


# -- graphs: (name, trioworks workflow, dask graph, sink key) --------------------------------


def trivial(n: int) -> tuple[Any, dict[str, Any], str]:
    from trioworks.dag import WorkflowBuilder

    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "root", {"code": "result = 1"})
    mids = [f"m{i}" for i in range(n - 2)]
    wb.add_node(
        "PythonCodeNode", "sink", {"code": f"result = sum([{', '.join(f'x{i}' for i in range(len(mids)))}])"}
    )
    for i, m in enumerate(mids):
        wb.add_node("PythonCodeNode", m, {"code": "result = seed + 1"})
        wb.add_connection("root", "result", m, "seed")
        wb.add_connection(m, "result", "sink", f"x{i}")
    dsk: dict[str, Any] = {"root": (one,), **{m: (one, "root") for m in mids}, "sink": (total, *mids)}
    return wb.build(f"bench-trivial-{n}"), dsk, "sink"


def cpu(n: int, ms: float) -> tuple[Any, dict[str, Any], str]:
    from trioworks.dag import WorkflowBuilder

    wb = WorkflowBuilder()
    names = [f"c{i}" for i in range(n)]
    wb.add_node("PythonCodeNode", "sink", {"code": f"result = sum([{', '.join(f'x{i}' for i in range(n))}])"})
    for i, c in enumerate(names):
        wb.add_node("PythonCodeNode", c, {"code": BUSY, "ms": ms})
        wb.add_connection(c, "result", "sink", f"x{i}")
    dsk: dict[str, Any] = {**{c: (busy, ms) for c in names}, "sink": (total, *names)}
    return wb.build(f"bench-cpu-{n}"), dsk, "sink"


def diamond(depth: int, width: int) -> tuple[Any, dict[str, Any], str]:
    from trioworks.dag import WorkflowBuilder

    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "src", {"code": "result = 1"})
    dsk: dict[str, Any] = {"src": (one,)}
    previous = ["src"]
    for layer in range(depth):
        current = []
        for i in range(width):
            name = f"d{layer}_{i}"
            parents = sorted({previous[min(max(j, 0), len(previous) - 1)] for j in (i - 1, i, i + 1)})
            inputs = [f"p{k}" for k in range(len(parents))]
            wb.add_node("PythonCodeNode", name, {"code": f"result = max([{', '.join(inputs)}]) + 1"})
            for parent, name_in in zip(parents, inputs, strict=True):
                wb.add_connection(parent, "result", name, name_in)
            dsk[name] = (one, *parents)
            current.append(name)
        previous = current
    wb.add_node(
        "PythonCodeNode", "sink", {"code": f"result = sum([{', '.join(f'x{i}' for i in range(width))}])"}
    )
    for i, p in enumerate(previous):
        wb.add_connection(p, "result", "sink", f"x{i}")
    dsk["sink"] = (total, *previous)
    return wb.build(f"bench-diamond-{depth}x{width}"), dsk, "sink"


# -- the two systems ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TrioworksFleet:
    def __init__(self, workers: int, db: str | None, folder: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
            ),
        }
        run = [sys.executable, "-m", "trioworks.cli"]
        log = (folder / "server.log").open("ab")
        self.procs = [
            subprocess.Popen(
                [
                    *run,
                    "server",
                    "--db",
                    db or f"sqlite:///{folder / 'bench.db'}",
                    "--port",
                    str(port),
                    "--client",
                    "b:s",
                    "--files-dir",
                    str(folder / "files"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        ]
        deadline = time.monotonic() + 60
        while "listening on" not in (folder / "server.log").read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start: see " + str(folder / "server.log"))
            time.sleep(0.05)
        for i in range(workers):
            wlog = (folder / f"w{i}.log").open("ab")
            self.procs.append(
                subprocess.Popen(
                    [
                        *run,
                        "worker",
                        "--dag",
                        "--url",
                        self.url,
                        "--client-id",
                        "b",
                        "--client-secret",
                        "s",
                        "--max-activities",
                        "8",
                        "--poll-interval",
                        "0.01",
                    ],
                    stdout=wlog,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )

    def run(self, workflow: Any, **options: Any) -> float:
        from trioworks.dag import DistributedRuntime

        runtime = DistributedRuntime(
            self.url, client_id="b", client_secret="s", poll_interval=0.02, max_poll_interval=0.1, **options
        )
        start = time.perf_counter()
        result = runtime.execute(workflow)
        elapsed = time.perf_counter() - start
        assert result.ok, result.summary()
        return elapsed

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def timed(fn: Callable[[], float], runs: int) -> float:
    fn()  # warm-up
    return statistics.median(fn() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--db", help="trioworks server database (default: SQLite in a temp folder)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small graphs (a smoke run)")
    parser.add_argument(
        "--graph",
        choices=["trivial", "cpu", "diamond"],
        action="append",
        help="only these graphs (repeatable)",
    )
    args = parser.parse_args()
    from dask.distributed import Client, LocalCluster

    graphs = (
        [("trivial", trivial(100)), ("cpu", cpu(20, 50)), ("diamond", diamond(3, 5))]
        if args.quick
        else [
            ("trivial 1,000", trivial(1000)),
            ("cpu 200 x 50 ms", cpu(200, 50)),
            ("diamond 10 x 20", diamond(10, 20)),
        ]
    )
    if args.graph:
        graphs = [g for g in graphs if g[0].split()[0] in args.graph]
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        fleet = TrioworksFleet(args.workers, args.db, Path(folder))
        try:
            with (
                LocalCluster(
                    n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
                ) as cluster,
                Client(cluster) as client,
            ):
                for name, (workflow, dsk, sink) in graphs:

                    def dask_run(dsk: dict[str, Any] = dsk, sink: str = sink) -> float:
                        start = time.perf_counter()
                        client.get(dsk, sink)
                        return time.perf_counter() - start

                    d = timed(dask_run, args.runs)
                    t = timed(lambda workflow=workflow: fleet.run(workflow), args.runs)
                    n = len(workflow.nodes)
                    rows.append((name, n, t, d))
        finally:
            fleet.close()
    print(
        f"{args.workers} worker processes each; load average {' '.join(load)} at the start; {os.cpu_count()} CPUs"
    )
    print("| graph | nodes | trioworks s | dask s | ratio | trioworks ms/node | dask ms/node |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, n, t, d in rows:
        print(f"| {name} | {n} | {t:.2f} | {d:.2f} | {t / d:.2f} | {1000 * t / n:.1f} | {1000 * d / n:.1f} |")


if __name__ == "__main__":
    main()
