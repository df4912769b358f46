"""Several reference servers on one Postgres database, over HTTP (real HTTP front, real Postgres).

The servers start together on an empty database (schema creation races),
a workflow submitted through one is worked on through the others, and workers polling different
servers at once never receive the same activity.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from server_helpers import ManualClock, activity, output_values

from _services import free_port
from trioworks.cli import main
from trioworks.server import Server, ServerConfig

SERVERS = 2
WORKFLOWS = 12
DEFINITION = {
    "name": "pair",
    "activities": [
        activity("first", parameters={"n": "{{INPUT.n}}"}),
        activity("second", "first", parameters={"double": "{{first.value}}"}),
    ],
}


async def token(client: httpx.AsyncClient) -> str:
    reply = await client.post(
        "/api/v1/oauth/token",
        json={"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"},
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


async def test_several_servers_share_one_database(fresh_postgres_url: str, tmp_path: Path) -> None:
    clock = ManualClock()
    servers = [
        Server(
            ServerConfig(
                db=fresh_postgres_url,
                port=0,
                clients={"c": "s"},
                jwt_secret="one-secret-for-all-servers-of-this-test",  # configured: it is never kept in the database
                clock=clock,
                sweep_interval=3600.0,
                files_dir=tmp_path / f"files{i}",
            )
        )
        for i in range(SERVERS)
    ]
    urls: list[str] = [""] * SERVERS
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:

            async def start(i: int) -> None:
                urls[i] = await nursery.start(servers[i].run)

            async with trio.open_nursery() as starting:  # start together: the schema race
                for i in range(SERVERS):
                    starting.start_soon(start, i)

            clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in urls]
            try:
                await exercise(clients)
            finally:
                for client in clients:
                    await client.aclose()
            nursery.cancel_scope.cancel()


async def exercise(clients: list[httpx.AsyncClient]) -> None:
    # A token from one server is good on every other: they are configured with one secret.
    bearer = await token(clients[0])
    for client in clients:
        client.headers["Authorization"] = f"Bearer {bearer}"
        assert (await client.get("/health/ready")).status_code == 200
    reply = await clients[1].post("/api/v1/workflow_definitions", json=DEFINITION)
    assert reply.status_code == 201, reply.text
    workflow_ids = []
    for n in range(WORKFLOWS):
        reply = await clients[n % SERVERS].post(
            "/api/v1/workflows", json={"definition_name": "pair", "input": {"n": n}}
        )
        assert reply.status_code == 201, reply.text
        workflow_ids.append(reply.json()["workflow_id"])

    received: list[tuple[str, str]] = []  # (activity_id, worker_id), in order of receipt
    done = trio.Event()

    async def worker(i: int) -> None:
        poll_at, report_at = clients[i % SERVERS], clients[(i + 1) % SERVERS]
        worker_id = f"w{i}"
        while not done.is_set():
            reply = await poll_at.post(
                "/api/v1/workers/poll", json={"worker": "std", "worker_id": worker_id, "max_activities": 3}
            )
            assert reply.status_code == 200, reply.text
            activities: list[dict[str, Any]] = reply.json()["activities"]
            if not activities:
                await trio.sleep(0.01)
                continue
            for item in activities:
                received.append((item["activity_id"], worker_id))
                value = item["parameters"].get("n", item["parameters"].get("double"))
                done_reply = await report_at.post(
                    f"/api/v1/activities/{item['activity_id']}/complete",
                    json={"worker_id": worker_id, "output": {"value": value}},
                )
                assert done_reply.status_code == 200, done_reply.text
            if len(received) == 2 * WORKFLOWS:
                done.set()

    async with trio.open_nursery() as workers:
        for i in range(2 * SERVERS):
            workers.start_soon(worker, i)

    counts = Counter(activity_id for activity_id, _ in received)
    assert len(counts) == 2 * WORKFLOWS and set(counts.values()) == {1}, "an activity was handed out twice"
    assert len({w for _, w in received}) >= 2, "only one worker ever got work: no concurrency was tested"
    for n, workflow_id in enumerate(workflow_ids):
        reply = await clients[(n + 1) % SERVERS].get(f"/api/v1/workflows/{workflow_id}")
        body = reply.json()
        assert body["status"] == "completed", body
        second = next(a for a in body["activities"] if a["activity_key"] == "second")
        assert output_values(second) == {"value": n}


def test_cli_server_runs_on_postgres(fresh_postgres_url: str, tmp_path: Path) -> None:
    """``trioworks server --db postgresql://...`` serves, and is ready once its database is."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "trioworks.cli",
        "server",
        "--db",
        fresh_postgres_url,
        "--port",
        str(port),
    ]
    command += ["--client", "c:s", "--files-dir", str(tmp_path / "files")]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        lines = []
        while not any("listening on" in line for line in lines):  # printed once it listens
            line = proc.stderr.readline()
            assert line, f"server exited: {''.join(lines)}"
            lines.append(line)
        assert "postgresql://postgres@127.0.0.1" in lines[-1], lines
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=30)
        assert ready.json() == {"status": "ready", "checks": {"database": {"status": "ok"}}}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 130


def test_cli_server_names_an_unreachable_database(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://ann:hunter2@127.0.0.1:{free_port()}/jobs"
    assert main(["server", "--db", url, "--port", "0", "--insecure-dev"]) == 2
    err = capsys.readouterr().err
    assert "--db: cannot connect to postgresql://ann@127.0.0.1" in err and "Connection refused" in err
    assert "hunter2" not in err
