"""End to end: the reference server + ``trioworks worker --std``'s workers run a workflow of echo and http_request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from std_http_app import http_app

from trioworks.cli import main
from trioworks.server import Server, ServerConfig
from trioworks.worker import Worker, WorkerConfig
from trioworks.worker.std import PY_STD_ACTIVITIES, STD_ACTIVITIES

pytestmark = pytest.mark.slow

DEFINITION = """
name: std_end_to_end
activities:
  - key: check
    worker: std
    activity_name: echo
    parameters:
      email: "{{INPUT.email}}"
      doc: 1
  - key: notify
    worker: std
    activity_name: http_request
    parameters:
      method: POST
      url: "{{INPUT.url}}/echo"
      headers:
        Content-Type: "application/json"
      body:
        Subject: "Result for {{check.echo.email}}"
        Workflow: "{{WORKFLOW.id}}"
    depends_on:
      - check
  - key: compute
    worker: py-std
    activity_name: script
    parameters:
      inputs:
        status: "{{notify.response.status}}"
      script: |
        OUTPUT = {"doubled": int(INPUT["status"]) * 2}
    depends_on:
      - notify
"""


async def _wait_done(client: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    with trio.fail_after(60):
        while True:  # polling on purpose: the route has no long poll
            body = (await client.get(f"/api/v1/workflows/{workflow_id}")).json()
            if body["status"] in ("completed", "failed"):
                return body
            await trio.sleep(0.05)


async def test_server_and_std_worker_run_echo_http_and_script(tmp_path: Path) -> None:
    config = ServerConfig(db=str(tmp_path / "e2e.db"), port=0, clients={"client": "s3cret"})
    async with trio.open_nursery() as nursery, http_app() as target:
        url = await nursery.start(Server(config).run)
        base = WorkerConfig(api_url=url, client_id="client", client_secret="s3cret")
        std = Worker(
            WorkerConfig(api_url=url, client_id="client", client_secret="s3cret", worker="std"),
            STD_ACTIVITIES,
        )
        py_std = Worker(base, PY_STD_ACTIVITIES)
        await nursery.start(std.run)
        await nursery.start(py_std.run)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            token = await client.post(
                "/api/v1/oauth/token",
                json={"grant_type": "client_credentials", "client_id": "client", "client_secret": "s3cret"},
            )
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            deployed = await client.post(
                "/api/v1/workflow_definitions",
                content=DEFINITION,
                headers={"Content-Type": "application/yaml"},
            )
            assert deployed.status_code == 201, deployed.text
            started = await client.post(
                "/api/v1/workflows",
                json={"definition_name": "std_end_to_end", "input": {"email": "a@b.c", "url": target}},
            )
            workflow_id = started.json()["workflow_id"]
            body = await _wait_done(client, workflow_id)
        await std.drain()
        await py_std.drain()
        nursery.cancel_scope.cancel()
    assert body["status"] == "completed", body
    outputs = {
        a["activity_key"]: {o["name"]: o["value"] for o in a["outputs"] or ()} for a in body["activities"]
    }
    assert outputs["check"] == {"echo": {"email": "a@b.c", "doc": 1}}
    response = outputs["notify"]["response"]
    assert response["status"] == 200
    assert response["body"]["json"] == {"Subject": "Result for a@b.c", "Workflow": workflow_id}
    assert outputs["compute"] == {"result": {"doubled": 400}}


def test_cli_std_check_lists_both_workers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--std", "--check", "--url", "http://server.test", "--worker-id", "w1"]) == 0
    err = capsys.readouterr().err
    assert "worker w1 (std)" in err
    assert "http_request (async)" in err and "postgres_transaction (async)" in err
    assert "worker w1-py-std (py-std) -> http://server.test" in err


def test_cli_worker_needs_app_or_std(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--check", "--url", "http://server.test"]) == 2
    assert "--app MODULE" in capsys.readouterr().err
