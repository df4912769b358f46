"""DistributedRuntime at scale: Postgres, a server process, three `trioworks worker --dag` processes.

A fan-out/fan-in (one root, N-2 middle nodes, one sink) completes with every node run once; and
when one worker is SIGKILLed mid-run, its nodes run again elsewhere after their lease expires and
the result is the same. N = 1,000 (issue 15's scale); ``TRIOWORKS_DAG_NODES`` sets another N.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

from _services import free_port
from trioworks.dag import DistributedRuntime, NodeStatus, Workflow, WorkflowBuilder

NODES = int(os.environ.get("TRIOWORKS_DAG_NODES", "1000"))
# The lease a killed worker's nodes wait out: long enough that a server loaded by the rest of the
# suite (or `make test-under-load`) never lets a live worker's lease lapse (heartbeats every 0.5 s).
LEASE_SECONDS = 10.0
HANG_GUARD = 300.0  # seconds; only a hung run ever gets near it

MIDDLE = """
import os, uuid
open(os.path.join(marks, f"{node}.{uuid.uuid4().hex}"), "w").close()
import time
time.sleep(pause)
result = seed + 1
"""


def fan(n: int, marks: Path, pause: float) -> Workflow:
    wb = WorkflowBuilder()
    wb.add_node("PythonCodeNode", "root", {"code": "result = 1"})
    names = [f"m{i}" for i in range(n - 2)]
    sink = "result = sum([" + ", ".join(f"x{i}" for i in range(len(names))) + "])"
    wb.add_node("PythonCodeNode", "sink", {"code": sink})  # nodes before their connections, as in Kailash
    for i, name in enumerate(names):
        wb.add_node(
            "PythonCodeNode", name, {"code": MIDDLE, "marks": str(marks), "node": name, "pause": pause}
        )
        wb.add_connection("root", "result", name, "seed")
        wb.add_connection(name, "result", "sink", f"x{i}")
    return wb.build(f"fan{n}")


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (other processes: there is no event to wait on) until it holds."""
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"hang guard: still waiting for {what} after {HANG_GUARD:g} s")
        time.sleep(0.05)


class Fleet:
    def __init__(self, db: str, root: Path) -> None:
        self.root = root
        self.url = f"http://127.0.0.1:{free_port()}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.root / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "trioworks.cli", *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs[name] = proc
        return proc

    def start(self, db: str, workers: int) -> None:
        port = self.url.rsplit(":", 1)[1]
        self.spawn(
            "server",
            [
                "server",
                "--db",
                db,
                "--port",
                port,
                "--client",
                "c:s",
                "--sweep-interval",
                "0.2",
                "--files-dir",
                str(self.root / "files"),
            ],
        )
        log = self.root / "server.log"
        wait_until(lambda: "listening on" in log.read_text(errors="replace"), "the server to listen")
        for i in range(workers):
            args = ["worker", "--dag", "--url", self.url, "--client-id", "c", "--client-secret", "s"]
            args += ["--worker-id", f"w{i}", "--max-activities", "16", "--poll-interval", "0.02"]
            self.spawn(f"w{i}", [*args, "--heartbeat-interval", "0.5"])

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def fleet(fresh_postgres_url: str, tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(fresh_postgres_url, tmp_path)
    try:
        fleet.start(fresh_postgres_url, workers=3)
        yield fleet
    finally:
        fleet.close()


def runs(marks: Path) -> Counter[str]:
    return Counter(p.name.split(".")[0] for p in marks.iterdir())


def test_fan_out_fan_in_each_node_once(fleet: Fleet, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    runtime = DistributedRuntime(
        fleet.url, client_id="c", client_secret="s", timeout_seconds=LEASE_SECONDS, lease_retries=5
    )
    result = runtime.execute(fan(NODES, marks, 0.0))
    assert result.ok, result.summary()
    assert result.results["sink"] == {"result": 2 * (NODES - 2)}
    assert set(result.statuses.values()) == {NodeStatus.COMPLETED}
    counts = runs(marks)
    assert len(counts) == NODES - 2 and set(counts.values()) == {1}


def test_a_killed_worker_loses_nothing(fleet: Fleet, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    runtime = DistributedRuntime(
        fleet.url, client_id="c", client_secret="s", timeout_seconds=LEASE_SECONDS, lease_retries=5
    )
    workflow = fan(NODES, marks, 0.05)

    async def main() -> object:
        async with trio.open_nursery() as nursery:
            result: list[object] = []

            async def run() -> None:
                result.append(await runtime.execute_workflow_async(workflow))

            nursery.start_soon(run)
            # kill w0 once the run is well under way (other processes: poll the marks)
            await trio.to_thread.run_sync(
                wait_until, lambda: len(runs(marks)) >= NODES // 4, "a quarter of the nodes"
            )
            fleet.procs["w0"].kill()
            fleet.procs["w0"].wait()
        return result[0]

    result = trio.run(main)
    assert result.ok, result.summary()  # type: ignore[attr-defined]
    assert result.results["sink"] == {"result": 2 * (NODES - 2)}  # type: ignore[attr-defined]
    counts = runs(marks)
    assert len(counts) == NODES - 2  # every node ran; the killed worker's in-flight ones ran twice
