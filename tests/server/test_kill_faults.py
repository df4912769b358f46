"""Real ``trioworks server`` and ``trioworks worker`` processes killed mid-run, on SQLite and Postgres.

Workflows of two chained activities are submitted; one worker is killed with SIGKILL while it runs
an activity, another gets SIGTERM (it drains: finishes what it runs, exits 0), and the server is
killed with SIGKILL and restarted on the same database and port while work is in flight. Every
workflow must complete with the right outputs, and no activity may run more often than it was
handed out: each extra run of an activity needs a requeue (a lease expiry or a retryable failure)
counted in its ``retry_count``. The default retry policy (no ``settings.retry``: 4 attempts) is
what lets a worker crash cost a re-run instead of the workflow.

Leases are 3 s and the sweeper runs every 0.2 s, so a run takes seconds. Waits are on conditions
(journal lines, workflow states) with a generous overall deadline only as a hang guard.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import output_values

from _services import free_port

pytestmark = pytest.mark.slow

WORKFLOWS = 12  # more than a worker's 8 slots: wa cannot take every first activity
LEASE_SECONDS = 3  # settings.timeout_seconds: the lease a killed worker's activities wait out
HANG_GUARD = 120.0  # seconds; only a hung run ever gets near it
APP = Path(__file__).with_name("fault_activities.py")
DEFINITION = {
    "name": "chain",
    "activities": [
        {
            "key": "first",
            "worker": "py-std",
            "activity_name": "step",
            "parameters": {"x": "{{INPUT.n}}", "seconds": 0.3},
            "settings": {"timeout_seconds": LEASE_SECONDS},
        },
        {
            "key": "second",
            "worker": "py-std",
            "activity_name": "step",
            "parameters": {"x": "{{first.value}}", "seconds": 0.3},
            "depends_on": ["first"],
            "settings": {"timeout_seconds": LEASE_SECONDS},
        },
    ],
}


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (other processes: there is no event to wait on) until it holds."""
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"hang guard: still waiting for {what} after {HANG_GUARD:g} s")
        time.sleep(0.02)


class Cluster:
    """One server process and its worker processes, all on ``db``; logs and journal in ``root``."""

    def __init__(self, db: str, root: Path) -> None:
        self.db = db
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.journal = root / "journal.txt"
        self.journal.touch()
        self.server: subprocess.Popen[bytes] | None = None
        self.server_starts = 0
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self._env = {**os.environ, "FAULT_JOURNAL": str(self.journal), "FAULT_HOLD_WORKER": "wa"}

    def _spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "trioworks.cli", *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env,
            )

    def start_server(self) -> None:
        self.server_starts += 1
        log = self.root / f"server{self.server_starts}.log"
        args = ["server", "--db", self.db, "--port", str(self.port), "--client", "c:s"]
        args += ["--sweep-interval", "0.2", "--files-dir", str(self.root / "files")]
        self.server = server = self._spawn(args, log)

        def listening() -> bool:
            assert server.poll() is None, f"server exited: {log.read_text(errors='replace')}"
            return "listening on" in log.read_text(errors="replace")

        wait_until(listening, "the server to listen")

    def kill_server(self) -> None:
        assert self.server is not None
        self.server.kill()
        self.server.wait()

    def start_worker(self, name: str) -> None:
        args = ["worker", "--app", str(APP), "--url", self.url, "--client-id", "c", "--client-secret", "s"]
        args += ["--worker-id", name, "--max-activities", "8", "--poll-interval", "0.05"]
        args += ["--heartbeat-interval", "0.5", "--shutdown-timeout", "60"]
        self.workers[name] = self._spawn(args, self.root / f"{name}.log")

    def runs(self) -> list[tuple[str, str, str]]:
        """(event, activity_id, worker_id) for every journal line so far."""
        lines = self.journal.read_text(encoding="utf-8").splitlines()
        return [(e, a, w) for e, a, w in (line.split() for line in lines)]

    def running_on(self, worker: str) -> bool:
        """``worker`` has started an activity it has not finished."""
        counts = Counter((e, a) for e, a, w in self.runs() if w == worker)
        return any(counts[("start", a)] > counts[("end", a)] for _, a in counts)

    def close(self) -> None:
        for proc in [*self.workers.values(), self.server]:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'faults.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_db" if request.param == "sqlite" else "fresh_postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def cluster(db: str, tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(db, tmp_path)
    try:
        yield running
    finally:
        running.close()


@contextlib.contextmanager
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as http:
        reply = http.post(
            "/api/v1/oauth/token",
            json={"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"},
        )
        assert reply.status_code == 200, reply.text
        http.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"
        yield http


def test_killed_workers_and_server_lose_no_activity(cluster: Cluster) -> None:
    cluster.start_server()
    with client(cluster.url) as http:
        assert http.post("/api/v1/workflow_definitions", json=DEFINITION).status_code == 201
        ids = []
        for n in range(WORKFLOWS):
            reply = http.post("/api/v1/workflows", json={"definition_name": "chain", "input": {"n": n}})
            assert reply.status_code == 201, reply.text
            ids.append(reply.json()["workflow_id"])

    # One worker at a time, so that each is sure to get work whatever the machine's speed: wa holds
    # what it takes (it never finishes an activity, see fault_activities) and has fewer slots than
    # there are first activities, so wb finds the rest; wc finds wb's follow-ups and wa's requeues.
    cluster.start_worker("wa")
    wait_until(lambda: cluster.running_on("wa"), "worker wa to run an activity")
    cluster.start_worker("wb")
    wait_until(lambda: cluster.running_on("wb"), "worker wb to run an activity")
    # SIGTERM in the middle of an activity: it drains (finishes, reports) and exits 0.
    cluster.workers["wb"].send_signal(signal.SIGTERM)
    assert cluster.workers["wb"].wait(HANG_GUARD) == 0, (cluster.root / "wb.log").read_text()
    # SIGKILL in the middle of an activity: its leases must expire and the activities run again.
    cluster.workers["wa"].kill()
    cluster.start_worker("wc")
    # SIGKILL the server while wc runs something, restart it on the same database and port.
    wait_until(lambda: cluster.running_on("wc"), "worker wc to run an activity")
    cluster.kill_server()
    cluster.start_server()

    with client(cluster.url) as http:

        def workflows() -> list[dict[str, Any]]:
            return [http.get(f"/api/v1/workflows/{i}").json() for i in ids]

        wait_until(
            lambda: all(w["status"] in ("completed", "failed") for w in workflows()),
            "every workflow to finish",
        )
        done = workflows()

    for n, workflow in enumerate(done):
        assert workflow["status"] == "completed", workflow
        outputs = {a["activity_key"]: output_values(a) for a in workflow["activities"]}
        assert outputs == {"first": {"value": n * 10 + 1}, "second": {"value": (n * 10 + 1) * 10 + 1}}
    starts = Counter(a for e, a, _ in cluster.runs() if e == "start")
    retries = {a["activity_id"]: a["retry_count"] for w in done for a in w["activities"]}
    assert set(starts) == set(retries), (
        "an activity completed without running, or ran outside these workflows"
    )
    # Each run needs a claim: a second run only after a requeue (lease expiry or retryable failure).
    extra = {a: (starts[a], retries[a]) for a in starts if starts[a] > retries[a] + 1}
    assert not extra, f"activities run more often than handed out (runs, retry_count): {extra}"
    # The killed worker's activity was re-run elsewhere: the lease expiry is what moved it.
    killed = {a for e, a, w in cluster.runs() if w == "wa" and e == "start"} - {
        a for e, a, w in cluster.runs() if w == "wa" and e == "end"
    }
    assert killed and all(retries[a] >= 1 for a in killed), (killed, retries)
