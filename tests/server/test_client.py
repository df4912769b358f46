"""trioworks.client (AsyncClient, Client, the workflow DSL) against the real server in process."""

from __future__ import annotations

import datetime
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from server_helpers import output_values

from trioworks.client import (
    Activity,
    AsyncClient,
    AuthenticationError,
    Client,
    Dependency,
    DeploymentError,
    KruxiaFlowError,
    Workflow,
    WorkflowNotFoundError,
    workflow,
)
from trioworks.server import Server, ServerConfig
from trioworks.worker import Worker, WorkerConfig
from trioworks.worker.std import STD_ACTIVITIES

CREDENTIALS = {"client_id": "client", "client_secret": "s3cret"}


def echo_flow() -> Workflow:
    first = Activity(key="first", activity_name="echo", parameters={"n": "{{INPUT.n}}", "id": workflow.id})
    second = Activity(
        key="second",
        activity_name="echo",
        parameters={"from_first": first["echo.n"]},
        depends_on=[Dependency.on(first, first["echo.n"] == 7)],
    )
    return Workflow(name="client_flow", activities=[first, second])


@pytest.fixture
async def server_url(tmp_path: Path) -> AsyncIterator[str]:
    config = ServerConfig(db=str(tmp_path / "client.db"), port=0, clients={"client": "s3cret"})
    async with trio.open_nursery() as nursery:
        yield await nursery.start(Server(config).run)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def with_worker(server_url: str) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        worker = Worker(WorkerConfig(api_url=server_url, worker="std", **CREDENTIALS), STD_ACTIVITIES)
        await nursery.start(worker.run)
        yield server_url
        await worker.drain(force=True)


async def test_deploy_start_wait_get_output(with_worker: str) -> None:
    async with AsyncClient(with_worker, **CREDENTIALS) as client:
        deployed = await client.deploy(echo_flow())
        assert (deployed["name"], deployed["version_number"]) == ("client_flow", 1)
        assert (await client.deploy(echo_flow())).get("unchanged") is True
        started = await client.start_workflow("client_flow", inputs={"n": 7})
        done = await client.wait_for_workflow(started["workflow_id"], poll_interval=0.05)
        assert done["status"] == "completed", done
        outputs = {a["activity_key"]: output_values(a) for a in done["activities"]}
        assert outputs["first"]["echo"]["id"] == started["workflow_id"]
        assert outputs["second"] == {"echo": {"from_first": 7}}
        output = await client.get_workflow_output(started["workflow_id"])
        assert output["output"]["second"] == {"echo": {"from_first": 7}}
        activity = await client.get_activity_output(started["workflow_id"], "first")
        assert activity["status"] == "completed"
        listed = await client.list_workflows(status="completed", definition_name="client_flow")
        assert [w["id"] for w in listed["workflows"]] == [started["workflow_id"]]
        later = await client.list_workflows(
            created_after=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
        )
        assert later["total"] == 0
        assert (await client.get_workflow_cost(started["workflow_id"]))["total_cost_usd"] == "0.0"
        definitions = await client.list_definitions()
        assert [d["name"] for d in definitions["definitions"]] == ["client_flow"]
        stored = await client.get_definition("client_flow", version=1)
        assert [a["key"] for a in stored["activities"]] == ["first", "second"]


async def test_deploy_yaml_text_path_and_dict(server_url: str, tmp_path: Path) -> None:
    yaml_text = str(echo_flow()).replace("client_flow", "from_yaml")
    path = tmp_path / "flow.yaml"
    path.write_text(yaml_text.replace("from_yaml", "from_path"))
    async with AsyncClient(server_url, **CREDENTIALS) as client:
        assert (await client.deploy(yaml_text))["name"] == "from_yaml"
        assert (await client.deploy(path))["name"] == "from_path"
        assert (await client.deploy({**echo_flow().to_dict(), "name": "from_dict"}))["name"] == "from_dict"


async def test_errors_name_the_problem(server_url: str) -> None:
    async with AsyncClient(server_url, **CREDENTIALS) as client:
        with pytest.raises(DeploymentError) as refused:
            await client.deploy(
                {
                    "name": "bad",
                    "activities": [
                        {"key": "a", "worker": "std", "activity_name": "echo", "depends_on": ["zz"]}
                    ],
                }
            )
        assert "zz" in str(refused.value)
        with pytest.raises(WorkflowNotFoundError):
            await client.get_workflow("00000000-0000-0000-0000-000000000000")
        with pytest.raises(WorkflowNotFoundError):
            await client.start_workflow("no_such_flow")
    async with AsyncClient(server_url, client_id="client", client_secret="wrong") as bad:
        with pytest.raises(AuthenticationError):
            await bad.list_workflows()
    async with AsyncClient(server_url) as anonymous:
        with pytest.raises(AuthenticationError):
            await anonymous.list_workflows()


async def test_output_before_completion_is_an_error_and_signal_reaches_the_server(server_url: str) -> None:
    async with AsyncClient(server_url, **CREDENTIALS) as client:
        await client.deploy(echo_flow())
        started = await client.start_workflow("client_flow", inputs={"n": 1})  # no worker: stays pending
        with pytest.raises(KruxiaFlowError) as early:
            await client.get_workflow_output(started["workflow_id"])
        assert early.value.status_code == 400
        with pytest.raises(KruxiaFlowError):
            await client.signal_workflow(started["workflow_id"], "first", {"ok": True})


async def test_cancel_workflow(server_url: str) -> None:
    async with AsyncClient(server_url, **CREDENTIALS) as client:
        await client.deploy(echo_flow())
        started = await client.start_workflow("client_flow", inputs={"n": 1})
        await client.cancel_workflow(started["workflow_id"])
        assert (await client.get_workflow(started["workflow_id"]))["status"] == "cancelled"


async def test_sync_client_same_verbs(with_worker: str) -> None:
    def run() -> dict[str, Any]:
        with Client(with_worker, **CREDENTIALS) as client:
            client.deploy(echo_flow())
            started = client.start_workflow("client_flow", inputs={"n": 7})
            return client.wait_for_workflow(started["workflow_id"], poll_interval=0.05, timeout=60)

    # The blocking client runs in a thread: the server and the worker share this test's loop.
    done = await trio.to_thread.run_sync(functools.partial(run))
    assert done["status"] == "completed"


def test_client_needs_an_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KRUXIAFLOW_API_URL", raising=False)
    with pytest.raises(ValueError, match="api_url"):
        Client()
