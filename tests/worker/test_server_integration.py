"""Our worker against the real reference server (its HTTP front on port 0, SQLite), real time."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from trioworks.server import Server, ServerConfig
from trioworks.worker import ActivityContext, ActivityResult, Worker, WorkerConfig, activity

pytestmark = pytest.mark.slow


@activity()
async def make_report(params: dict, ctx: ActivityContext) -> ActivityResult:
    path = (await ctx.temp_dir()) / "report.txt"
    await trio.Path(path).write_text(f"hello {params['who']}\n" * 1000)
    return ActivityResult.file("report", str(path)).with_output("lines", 1000).with_cost(0.01)


@activity()
async def read_report(params: dict, ctx: ActivityContext) -> ActivityResult:
    local = await ctx.download_file(params["report"])
    text = await trio.Path(local).read_text()
    await ctx.heartbeat({"read": len(text)})
    return ActivityResult.values(size=len(text), first=text.splitlines()[0], lines=params["lines"])


@activity()
def blocking_upper(params: dict, ctx: ActivityContext) -> ActivityResult:
    return ActivityResult.value("upper", params["text"].upper())


@activity()
async def refuse(params: dict, ctx: ActivityContext) -> ActivityResult:
    raise ValueError("nope")


attempts: list[str] = []


@activity()
async def flaky(params: dict, ctx: ActivityContext) -> ActivityResult:
    attempts.append(ctx.activity_id)
    if len(attempts) == 1:
        raise ConnectionError("first try fails")
    return ActivityResult.value("attempt", len(attempts))


DEFINITION: dict[str, Any] = {
    "name": "worker-it",
    "activities": [
        {
            "key": "make",
            "worker": "py-std",
            "activity_name": "make_report",
            "parameters": {"who": "{{INPUT.who}}"},
        },
        {
            "key": "read",
            "worker": "py-std",
            "activity_name": "read_report",
            "parameters": {"report": "{{make.report}}", "lines": "{{make.lines}}"},
            "depends_on": [{"activity_key": "make"}],
        },
        {
            "key": "upper",
            "worker": "py-std",
            "activity_name": "blocking_upper",
            "parameters": {"text": "{{read.first}}"},
            "depends_on": [{"activity_key": "read"}],
        },
    ],
}


async def _wait_status(client: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    with trio.fail_after(30):
        while True:
            body = (await client.get(f"/api/v1/workflows/{workflow_id}")).json()
            if body["status"] in ("completed", "failed"):
                return body
            await trio.sleep(0.05)


async def test_workflow_runs_on_our_worker(tmp_path: Path) -> None:
    config = ServerConfig(db=str(tmp_path / "it.db"), port=0, clients={"client": "s3cret"}, token_ttl=3600)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(Server(config).run)
        worker = Worker(
            WorkerConfig(api_url=url, client_id="client", client_secret="s3cret"),
            [make_report, read_report, blocking_upper, refuse, flaky],
        )
        await nursery.start(worker.run)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            token = await client.post(
                "/api/v1/oauth/token",
                json={"grant_type": "client_credentials", "client_id": "client", "client_secret": "s3cret"},
            )
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            assert (await client.post("/api/v1/workflow_definitions", json=DEFINITION)).status_code in (
                200,
                201,
            )
            started = await client.post(
                "/api/v1/workflows", json={"definition_name": "worker-it", "input": {"who": "trio"}}
            )
            workflow_id = started.json()["workflow_id"]
            body = await _wait_status(client, workflow_id)
            assert body["status"] == "completed", body
            outputs = {
                a["activity_key"]: {o["name"]: o["value"] for o in a["outputs"] or ()}
                for a in body["activities"]
            }
            assert outputs["make"]["report"] == f"postgres://{workflow_id}/make/report.txt"
            assert outputs["read"] == {"size": 11 * 1000, "first": "hello trio", "lines": 1000}
            assert outputs["upper"] == {"upper": "HELLO TRIO"}
            stored = await client.get(f"/api/v1/workflows/{workflow_id}/activities/make/files/report.txt")
            assert stored.text.startswith("hello trio\n")

            failing = {
                "name": "worker-it-fail",
                # One attempt: by default the server would retry this retryable error 3 times.
                "activities": [
                    {
                        "key": "x",
                        "worker": "py-std",
                        "activity_name": "refuse",
                        "settings": {"retry": {"max_attempts": 1}},
                    }
                ],
            }
            await client.post("/api/v1/workflow_definitions", json=failing)
            started = await client.post(
                "/api/v1/workflows", json={"definition_name": "worker-it-fail", "input": {}}
            )
            body = await _wait_status(client, started.json()["workflow_id"])
            assert body["status"] == "failed"
            assert "ValueError: nope" in str(body["activities"][0]["error"])

            # A retryable failure is retried by the server (settings.retry) and runs again here.
            retried = {
                "name": "worker-it-retry",
                "activities": [
                    {
                        "key": "x",
                        "worker": "py-std",
                        "activity_name": "flaky",
                        "settings": {"retry": {"max_attempts": 2, "strategy": "fixed", "base_seconds": 0}},
                    }
                ],
            }
            assert (await client.post("/api/v1/workflow_definitions", json=retried)).status_code in (200, 201)
            started = await client.post(
                "/api/v1/workflows", json={"definition_name": "worker-it-retry", "input": {}}
            )
            body = await _wait_status(client, started.json()["workflow_id"])
            assert body["status"] == "completed", body
            assert body["activities"][0]["outputs"] == [{"name": "attempt", "type": "value", "value": 2}]
        await worker.drain()
        assert worker.stats().completed == 4
        nursery.cancel_scope.cancel()


REPO = Path(__file__).resolve().parents[2]

EXAMPLE: dict[str, Any] = {
    "name": "example-app",
    "activities": [
        {
            "key": "greet",
            "worker": "py-std",
            "activity_name": "greet",
            "parameters": {"name": "{{INPUT.who}}"},
        },
        {
            "key": "sum",
            "worker": "py-std",
            "activity_name": "checksum",
            "parameters": {"text": "{{greet.greeting}}"},
            "depends_on": [{"activity_key": "greet"}],
        },
        {"key": "primes", "worker": "py-std", "activity_name": "primes", "parameters": {"below": 1000}},
        {
            "key": "report",
            "worker": "py-std",
            "activity_name": "write_report",
            "parameters": {"lines": [1, 2, 3]},
        },
        {
            "key": "count",
            "worker": "py-std",
            "activity_name": "word_count",
            "parameters": {"report": "{{report.report}}"},
            "depends_on": [{"activity_key": "report"}],
        },
    ],
}


async def test_cli_runs_the_example_app_and_drains_on_sigterm(tmp_path: Path) -> None:
    import os
    import signal
    import sys

    config = ServerConfig(db=str(tmp_path / "cli.db"), port=0, clients={"client": "s3cret"})
    async with trio.open_nursery() as nursery:
        url = await nursery.start(Server(config).run)
        env = {
            **os.environ,
            "KRUXIAFLOW_API_URL": url,
            "KRUXIAFLOW_CLIENT_ID": "client",
            "KRUXIAFLOW_CLIENT_SECRET": "s3cret",
        }
        command = [
            sys.executable,
            "-m",
            "trioworks.cli",
            "worker",
            "--app",
            "examples.worker_app",
            "--processes",
            "1",
        ]
        run = functools.partial(
            trio.run_process, command, cwd=REPO, env=env, check=False, capture_stderr=True
        )
        process = await nursery.start(run)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            token = await client.post(
                "/api/v1/oauth/token",
                json={"grant_type": "client_credentials", "client_id": "client", "client_secret": "s3cret"},
            )
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            defined = await client.post("/api/v1/workflow_definitions", json=EXAMPLE)
            assert defined.status_code in (200, 201), defined.text
            started = await client.post(
                "/api/v1/workflows", json={"definition_name": "example-app", "input": {"who": "cli"}}
            )
            body = await _wait_status(client, started.json()["workflow_id"])
        assert body["status"] == "completed", body
        outputs = {
            a["activity_key"]: {o["name"]: o["value"] for o in a["outputs"] or ()} for a in body["activities"]
        }
        assert outputs["greet"] == {"greeting": "hello cli"}
        assert outputs["primes"] == {"count": 168}
        assert outputs["count"] == {"words": 3}
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            await process.wait()
        assert process.returncode == 0
        nursery.cancel_scope.cancel()
