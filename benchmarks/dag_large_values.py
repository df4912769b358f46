"""Large node values on the DistributedRuntime: a chain that hands a value of S MB on, twice.

    PYTHONPATH=src python benchmarks/dag_large_values.py [--sizes 0.1,1,8,32] [--workers 2] [--runs 1]
                                                         [--max-inline-bytes N]

One ``trioworks server`` process (SQLite in a temp folder) and ``--workers`` ``trioworks worker
--dag`` processes (``benchmarks/dag_distributed.py``'s fleet); the runtime's ``max_inline_bytes`` is
``--max-inline-bytes`` (64 KiB). The graph: ``make`` returns a list of records of about S MB of JSON, ``copy`` returns
it again, ``count`` returns its length: past the threshold both values travel as files (uploaded by
one worker, downloaded by the next, and ``copy``'s by the runtime for the result). Printed per
size: the distributed run's wall time (median of ``--runs`` after a warm-up), the local
runtime's, and the bytes of JSON moved.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dag_distributed import TrioworksFleet

MAKE = "result = [{'id': i, 'name': 'n' + str(i), 'value': i * 0.5} for i in range(n)]"
RECORD_BYTES = 45  # about: {"id":123456,"name":"n123456","value":61728.0},


def chain(mb: float) -> Any:
    from trioworks.dag import WorkflowBuilder

    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "make", {"code": MAKE, "n": int(mb * 1e6 / RECORD_BYTES)})
    wb.add_node("PythonCodeNode", "copy", {"code": "result = rows"})
    wb.add_node("PythonCodeNode", "count", {"code": "result = len(rows)"})
    wb.add_connection("make", "result", "copy", "rows")
    wb.add_connection("copy", "result", "count", "rows")
    return wb.build(f"bench-large-{mb:g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0.1,1,8,32", help="MB of JSON per value, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--max-inline-bytes", type=int, default=64 * 1024, help="the runtime's threshold (default 64 KiB)"
    )
    args = parser.parse_args()
    from trioworks.dag import AsyncLocalRuntime

    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        fleet = TrioworksFleet(args.workers, None, Path(folder))
        try:
            for mb in (float(s) for s in args.sizes.split(",")):
                workflow = chain(mb)
                local = AsyncLocalRuntime().execute(workflow)
                size = len(json.dumps(local.results["make"]["result"], separators=(",", ":")))
                limit = {"max_inline_bytes": args.max_inline_bytes}
                fleet.run(workflow, **limit)  # warm-up
                remote = statistics.median(fleet.run(workflow, **limit) for _ in range(args.runs))
                start = time.perf_counter()
                AsyncLocalRuntime().execute(workflow)
                here = time.perf_counter() - start
                rows.append((mb, size, remote, here))
        finally:
            fleet.close()
    print(
        f"max_inline_bytes {args.max_inline_bytes}; {args.workers} dag workers; load average {' '.join(load)} at the start; {os.cpu_count()} CPUs"
    )
    print("| value | JSON bytes | as | distributed s | local s |")
    print("|---:|---:|---|---:|---:|")
    for mb, size, remote, here in rows:
        kind = "inline" if size + 13 <= args.max_inline_bytes else "file"
        print(f"| {mb:g} MB | {size:,} | {kind} | {remote:.2f} | {here:.2f} |")


if __name__ == "__main__":
    main()
