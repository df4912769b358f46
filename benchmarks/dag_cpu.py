"""CPU per node of benchmarks/dag.py's fan-outs (workloads 3 and 4), for a shared machine.

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/dag_cpu.py {fan_sync,fan_async} {trioworks,compat} [RUNS]

Wall-clock times on a loaded machine measure the host's scheduling; the process's CPU time
(``time.process_time()``, all threads) around one timed execution measures the runtime. Builds
the same graph and runtime as ``benchmarks/dag.py`` (its ``fan`` and ``prepare``), then times
RUNS executions in one process and prints wall and CPU milliseconds of each, the median CPU per
node, and the load average.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import trio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dag as bench  # benchmarks/ is not a package: found through sys.path


def main() -> None:
    workload, system = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    side = bench.Compat() if system == "compat" else bench.Trioworks()
    if workload == "fan_sync":
        n = bench.FULL.fan
        graph = bench.fan(n, middle=lambda i: f"result = {{'v': x + {i}}}", is_async=False)
        limits = bench.DEFAULT_LIMITS
    else:
        n = bench.FULL.async_fan
        sleep = side.sleep_code(bench.ASYNC_FAN_SLEEP)
        graph = bench.fan(n, middle=lambda i: f"{sleep}result = {{'v': x + {i}}}", is_async=True)
        limits = {"max_concurrent_nodes": bench.FULL.async_cap, "thread_pool_size": 4}

    async def measure() -> list[tuple[float, float]]:
        out = []
        for _ in range(runs):
            wf, rt = await bench.prepare(side, graph, limits)
            cpu, wall = time.process_time(), time.perf_counter()
            await side.execute(rt, wf, graph.inputs)
            out.append((time.perf_counter() - wall, time.process_time() - cpu))
        return out

    times = trio.run(measure)
    cpu = statistics.median(c for _, c in times)
    shown = " ".join(f"{w * 1e3:.0f}/{c * 1e3:.0f}" for w, c in times)
    print(
        f"{workload} {system}: wall/cpu ms {shown}; median cpu {cpu * 1e3:.1f} ms = "
        f"{cpu / (n + 2) * 1e6:.0f} us/node; load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
