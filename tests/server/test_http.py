"""The HTTP API against the real app: the server on port 0 in the test's nursery, httpx on Trio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import httpx
import trio
import yaml
from server_helpers import Api, activity, running_api

from trioworks.server import ServerConfig, SQLiteStorage

DEFINITION = {
    "name": "etl",
    "activities": [
        activity("fetch", outputs=["body"], parameters={"url": "{{INPUT.url}}"}),
        activity(
            "store",
            "fetch",
            parameters={"data": "{{fetch.body}}", "wf": "{{WORKFLOW.id}}"},
            settings={"timeout_seconds": 30, "retry": {"max_attempts": 2, "base_seconds": 5}},
        ),
    ],
}


def error_of(reply: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    body = reply.json()["error"]
    assert body["code"] == code and body["message"]
    return body


async def deploy_and_submit(api: Api, **input: Any) -> str:
    assert (await api.client.post("/api/v1/workflow_definitions", json=DEFINITION)).status_code in (200, 201)
    reply = await api.client.post("/api/v1/workflows", json={"definition_name": "etl", "input": input})
    assert reply.status_code == 201, reply.text
    return reply.json()["workflow_id"]


async def poll(api: Api, worker_id: str = "w1", n: int = 10) -> list[dict[str, Any]]:
    reply = await api.client.post(
        "/api/v1/workers/poll", json={"worker": "std", "worker_id": worker_id, "max_activities": n}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["count"] == len(reply.json()["activities"])
    return reply.json()["activities"]


async def test_public_routes(api: Api) -> None:
    client = httpx.AsyncClient(base_url=str(api.client.base_url))
    async with client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/health/ready")
        assert ready.json() == {"status": "ready", "checks": {"database": {"status": "ok"}}}
        info = (await client.get("/api/v1/info")).json()
        assert info["api_version"] == "v1" and "workflows" in info["features"]
        error_of(await client.get("/api/v1/workflows"), 401, "UNAUTHORIZED")
        bad = await client.get("/api/v1/workflows", headers={"Authorization": "Bearer nope"})
        error_of(bad, 401, "UNAUTHORIZED")


async def test_token_endpoint(api: Api) -> None:
    url = "/api/v1/oauth/token"
    form = {"grant_type": "client_credentials", "client_id": "client", "client_secret": "s3cret"}
    ok = await api.client.post(url, data=form)
    assert ok.status_code == 200 and ok.json()["token_type"] == "Bearer" and ok.json()["expires_in"] == 3600
    error_of(await api.client.post(url, json={**form, "client_secret": "wrong"}), 401, "UNAUTHORIZED")
    error_of(await api.client.post(url, json={**form, "client_id": "who"}), 401, "UNAUTHORIZED")
    missing = error_of(
        await api.client.post(url, json={"grant_type": "client_credentials"}), 400, "BAD_REQUEST"
    )
    assert "client_id" in missing["message"]
    error_of(await api.client.post(url, json={**form, "grant_type": "password"}), 400, "BAD_REQUEST")
    error_of(
        await api.client.post(url, content=b"x", headers={"Content-Type": "text/plain"}), 415, "BAD_REQUEST"
    )
    # Tokens expire on the server's clock.
    api.clock.advance(3601)
    error_of(await api.client.get("/api/v1/workflows"), 401, "UNAUTHORIZED")


async def test_workflow_round_trip(api: Api) -> None:
    workflow_id = await deploy_and_submit(api, url="http://x")
    again = await api.client.post("/api/v1/workflow_definitions", json=DEFINITION)
    assert again.status_code == 200 and again.json()["unchanged"] is True
    listing = (await api.client.get("/api/v1/workflow_definitions")).json()
    assert listing == {
        "definitions": [
            {**listing["definitions"][0], "name": "etl", "version_number": 1, "activity_count": 2}
        ],
        "total": 1,
    }
    assert (await api.client.get("/api/v1/workflow_definitions/etl?version=1")).json()["activities"][0][
        "key"
    ] == "fetch"

    (fetch,) = await poll(api)
    assert fetch["parameters"] == {"url": "http://x"} and fetch["timeout_seconds"] is None
    assert fetch["output_definitions"] == [{"name": "body", "type": "value"}]
    error_of(await api.client.get(f"/api/v1/workflows/{workflow_id}/output"), 400, "BAD_REQUEST")
    beat = await api.client.post(
        f"/api/v1/activities/{fetch['activity_id']}/heartbeat", json={"worker_id": "w1"}
    )
    assert beat.json()["acknowledged"] is True
    done = await api.client.post(
        f"/api/v1/activities/{fetch['activity_id']}/complete",
        json={
            "worker_id": "w1",
            "output": {"body": [1, 2]},
            "cost_usd": 0.5,
            "usage": [{"provider": "p", "model": "m", "input_tokens": 3}],
        },
    )
    assert done.json() == {"acknowledged": True}
    (store,) = await poll(api)
    assert store["parameters"] == {"data": [1, 2], "wf": workflow_id}
    assert store["timeout_seconds"] == 30 and store["settings"]["retry"]["max_attempts"] == 2
    failed = await api.client.post(
        f"/api/v1/activities/{store['activity_id']}/fail",
        json={
            "worker_id": "w1",
            "error": {"code": "X", "message": "flaky", "retryable": True},
            "cost_usd": "0.25",  # the original SDK sends its Decimal as a string
        },
    )
    assert failed.json() == {"acknowledged": True, "will_retry": True}
    assert await poll(api) == []
    api.clock.advance(5)
    (store,) = await poll(api, "w2")
    await api.client.post(
        f"/api/v1/activities/{store['activity_id']}/complete", json={"worker_id": "w2", "output": {}}
    )

    status = (await api.client.get(f"/api/v1/workflows/{workflow_id}")).json()
    assert status["status"] == "completed"
    assert [a["status"] for a in status["activities"]] == ["completed", "completed"]
    output = (await api.client.get(f"/api/v1/workflows/{workflow_id}/output")).json()
    assert (output["workflow_id"], output["status"], output["total_cost_usd"]) == (
        workflow_id,
        "completed",
        "0.75",
    )
    assert (output["output"], output["cost_usd"]) == ({"fetch": {"body": [1, 2]}, "store": {}}, 0.75)
    assert output["outputs"]["fetch"]["output"] == [{"name": "body", "type": "value", "value": [1, 2]}]
    assert output["terminal_outputs"] == ["store"] and output["outputs"]["store"]["is_terminal"]
    assert output["completed_at"] == output["outputs"]["store"]["completed_at"]
    listed = (await api.client.get("/api/v1/workflows?status=completed&definition_name=etl")).json()
    assert (listed["total"], listed["count"], listed["workflows"][0]["id"]) == (1, 1, workflow_id)
    metrics = (await api.client.get("/api/v1/metrics")).json()["metrics"]
    assert metrics["server.workflows_started"] == 1
    assert (metrics["server.activities_claimed"], metrics["server.activities_completed"]) == (3, 2)
    assert (metrics["server.activities_retried"], metrics["server.requests_in_flight"]) == (1, 1)  # this one


async def test_yaml_definition_and_unique_key(api: Api) -> None:
    body = yaml.safe_dump(DEFINITION)
    reply = await api.client.post(
        "/api/v1/workflow_definitions", content=body, headers={"Content-Type": "application/yaml"}
    )
    assert reply.status_code == 201, reply.text
    submit = {"definition_name": "etl", "input": {"url": "u"}, "unique_key": "once"}
    assert (await api.client.post("/api/v1/workflows", json=submit)).status_code == 201
    error_of(await api.client.post("/api/v1/workflows", json=submit), 409, "CONFLICT")
    error_of(
        await api.client.post("/api/v1/workflows", json={**submit, "definition_name": "nope"}),
        404,
        "NOT_FOUND",
    )


async def test_definition_body_is_yaml_whatever_its_content_type(api: Api) -> None:
    """As the original: ``curl --data-binary @flow.yaml`` (form-urlencoded), no type, text/plain."""
    url = "/api/v1/workflow_definitions"
    for i, content_type in enumerate(("application/x-www-form-urlencoded", None, "text/plain")):
        body = yaml.safe_dump({**DEFINITION, "name": f"etl{i}"}).encode()
        headers = {"Content-Type": content_type} if content_type else {}
        reply = await api.client.post(url, content=body, headers=headers)
        assert reply.status_code == 201, (content_type, reply.text)
        assert reply.json()["name"] == f"etl{i}"
    # The YAML bounds hold whatever the type: an alias bomb and deep nesting are a 400.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    bomb = b"a0: &a0 [x]\n" + b"".join(
        f"a{i}: &a{i} [".encode() + b",".join([f"*a{i - 1}".encode()] * 9) + b"]\n" for i in range(1, 9)
    )
    for body, expected in ((bomb, "expands"), (b"- " * 100 + b"x", "nest"), (b"  ", "empty")):
        error = error_of(await api.client.post(url, content=body, headers=form), 400, "BAD_REQUEST")
        assert expected in error["message"], error
    # A JSON content type is still read as JSON (and YAML-only syntax refused).
    error_of(
        await api.client.post(url, content=b"name: x", headers={"Content-Type": "application/json"}),
        400,
        "BAD_REQUEST",
    )


async def test_worker_conflicts(api: Api) -> None:
    await deploy_and_submit(api, url="u")
    (fetch,) = await poll(api)
    route = f"/api/v1/activities/{fetch['activity_id']}"
    error_of(await api.client.post(f"{route}/heartbeat", json={"worker_id": "other"}), 409, "CONFLICT")
    error_of(
        await api.client.post(f"{route}/complete", json={"worker_id": "other", "output": {}}), 409, "CONFLICT"
    )
    error_of(
        await api.client.post("/api/v1/activities/nope/heartbeat", json={"worker_id": "w1"}), 404, "NOT_FOUND"
    )
    assert (
        await api.client.post(f"{route}/complete", json={"worker_id": "w1", "output": {"body": 1}})
    ).status_code == 200
    again = await api.client.post(f"{route}/complete", json={"worker_id": "w1", "output": {"body": 1}})
    assert again.status_code == 200 and again.json()["warnings"]
    error_of(await api.client.post(f"{route}/heartbeat", json={"worker_id": "w1"}), 409, "CONFLICT")


async def test_expired_lease_gives_409_to_the_old_worker(api: Api) -> None:
    definition = {
        "name": "short",
        "activities": [activity("a", settings={"timeout_seconds": 10, "retry": {"max_attempts": 2}})],
    }
    await api.client.post("/api/v1/workflow_definitions", json=definition)
    await api.client.post("/api/v1/workflows", json={"definition_name": "short", "input": {}})
    (first,) = await poll(api, "w1")
    api.clock.advance(11)
    (second,) = await poll(api, "w2")
    assert second["activity_id"] == first["activity_id"]
    beat = await api.client.post(
        f"/api/v1/activities/{first['activity_id']}/heartbeat", json={"worker_id": "w1"}
    )
    error_of(beat, 409, "CONFLICT")


async def test_signal(api: Api) -> None:
    definition = {"name": "gate", "activities": [activity("wait", settings={"wait_for_signal": True})]}
    await api.client.post("/api/v1/workflow_definitions", json=definition)
    workflow_id = (
        await api.client.post("/api/v1/workflows", json={"definition_name": "gate", "input": {}})
    ).json()["workflow_id"]
    assert await poll(api) == []
    status = (await api.client.get(f"/api/v1/workflows/{workflow_id}")).json()
    assert status["activities"][0]["status"] == "waiting"
    reply = await api.client.post(
        f"/api/v1/workflows/{workflow_id}/signal",
        json={"activity_key": "wait", "event_name": "go", "data": {"ok": 1}},
    )
    assert reply.json()["signaled"] is True
    (activity_,) = await poll(api)
    assert activity_["signal_data"] == {"ok": 1}


async def test_files(api: Api) -> None:
    workflow_id = await deploy_and_submit(api, url="u")
    (fetch,) = await poll(api)  # files are written by the worker running the activity
    base = f"/api/v1/workflows/{workflow_id}/activities/fetch/files"
    payload = bytes(range(256)) * 100  # 25.6 kB, several chunks
    up = await api.client.post(f"{base}/dir/data.bin", content=payload, headers={"Content-Type": "image/png"})
    assert (
        up.status_code == 201
        and up.json()["size"] == len(payload)
        and up.json()["content_type"] == "image/png"
    )
    down = await api.client.get(f"{base}/dir/data.bin")
    assert down.content == payload and down.headers["content-type"] == "image/png"
    assert down.headers["content-disposition"] == 'attachment; filename="data.bin"'
    plain = await api.client.post(f"{base}/raw", content=b"x")
    assert plain.json()["content_type"] == "application/octet-stream"
    before = await api.snapshot()
    error_of(await api.client.post(f"{base}/.hidden", content=b"x"), 422, "VALIDATION_ERROR")
    error_of(await api.client.post(f"{base}/a/%2E%2E/b", content=b"x"), 422, "VALIDATION_ERROR")
    error_of(await api.client.post(f"{base}/big", content=b"x" * (33 * 1024)), 413, "BAD_REQUEST")
    error_of(
        await api.client.post(f"/api/v1/workflows/{workflow_id}/activities/zz/files/f", content=b"x"),
        404,
        "NOT_FOUND",
    )
    error_of(await api.client.get(f"{base}/missing"), 404, "NOT_FOUND")
    assert await api.snapshot() == before
    assert not list((api.db_path.parent / "api.db.files").rglob("*.part"))
    output_url = f"/api/v1/workflows/{workflow_id}/activities/fetch/output"
    early = await api.client.get(output_url)  # the original's 400 before completion
    assert early.status_code == 400 and "not completed" in early.json()["error"]["message"]
    done = await api.client.post(
        f"/api/v1/activities/{fetch['activity_id']}/complete", json={"worker_id": "w1", "output": {"n": 1}}
    )
    assert done.status_code == 200, done.text
    out = (await api.client.get(output_url)).json()
    assert out["output"] == [{"name": "n", "type": "value", "value": 1}] and out["completed_at"]
    assert [f["filename"] for f in out["files"]] == ["dir/data.bin", "raw"]
    assert out["files"][0]["download_url"] == f"{base}/dir/data.bin"
    assert (await api.client.get(out["files"][1]["download_url"])).content == b"x"


async def test_original_sdk_client_routes(api: Api) -> None:
    # KruxiaFlow.deploy() posts a definition to /workflows; start_workflow() uses /workflows/start.
    deployed = await api.client.post("/api/v1/workflows", json=DEFINITION)
    assert deployed.status_code == 201 and deployed.json()["version_number"] == 1
    started = await api.client.post(
        "/api/v1/workflows/start", json={"name": "etl", "inputs": {"url": "u"}, "version": "1"}
    )
    assert started.status_code == 201 and started.json()["status"] == "created"
    (fetch,) = await poll(api)
    assert fetch["parameters"] == {"url": "u"}
    missing = error_of(
        await api.client.post("/api/v1/workflows/start", json={"inputs": {}}), 422, "VALIDATION_ERROR"
    )
    assert "name" in missing["details"]["field_errors"]
    error_of(await api.client.post("/api/v1/workflows/start", json={"name": "ghost"}), 404, "NOT_FOUND")


async def test_sweeper_reclaims_expired_leases(server_config: ServerConfig) -> None:
    # No poll comes after the expiry: only the periodic sweep can notice it.
    config = attrs.evolve(server_config, sweep_interval=0.05)
    async with running_api(config) as api:
        settings = {"timeout_seconds": 5, "retry": {"max_attempts": 1}}  # no retry: the expiry fails it
        definition = {"name": "lease", "activities": [activity("a", settings=settings)]}
        await api.client.post("/api/v1/workflow_definitions", json=definition)
        started = await api.client.post("/api/v1/workflows", json={"definition_name": "lease", "input": {}})
        await poll(api)
        api.clock.advance(6)
        url = f"/api/v1/workflows/{started.json()['workflow_id']}"
        with trio.fail_after(10):
            while True:  # polling a remote server: there is no event to wait on
                doc = (await api.client.get(url)).json()
                if doc["status"] == "failed":
                    break
                await trio.sleep(0.05)
        assert doc["activities"][0]["error_code"] == "LEASE_EXPIRED"
    assert doc["activities"][0]["error"].startswith("LEASE_EXPIRED: ")


async def test_upload_cut_short_leaves_nothing(api: Api) -> None:
    workflow_id = await deploy_and_submit(api, url="u")
    path = f"/api/v1/workflows/{workflow_id}/activities/fetch/files/cut.bin"
    before = (await api.client.get("/api/v1/metrics")).json()["metrics"]["server.requests"]
    url = httpx.URL(str(api.client.base_url))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
        f"Authorization: {api.client.headers['Authorization']}\r\n\r\n"
    )
    for _ in range(20):  # the crash this guards against was a race: try it more than once
        stream = await trio.open_tcp_stream(url.host, url.port)
        await stream.send_all(head.encode() + b"x" * 5000)
        await stream.aclose()  # 95 kB short
    with trio.fail_after(10):
        while True:  # until the upload's handler has ended (the only request left is ours)
            metrics = (await api.client.get("/api/v1/metrics")).json()["metrics"]
            if metrics["server.requests"] >= before + 21 and metrics["server.requests_in_flight"] == 1:
                break
            await trio.sleep(0.02)
    error_of(await api.client.get(path), 404, "NOT_FOUND")
    assert not list((api.db_path.parent / "api.db.files").rglob("*cut.bin*"))


async def test_broken_connections_do_not_take_the_server_down(api: Api) -> None:
    url = httpx.URL(str(api.client.base_url))
    auth = api.client.headers["Authorization"]
    broken = [
        b"\x00\xff garbage\r\n\r\n",
        b"POST /api/v1/workers/poll HTTP/1.1\r\nHost: x\r\n",  # headers never end
        b"POST /api/v1/workers/poll HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n"
        + f"Authorization: {auth}\r\nContent-Type: application/json\r\n\r\n".encode()
        + b'{"worker": "std"',  # JSON body cut short
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    for raw in broken:
        stream = await trio.open_tcp_stream(url.host, url.port)
        with trio.move_on_after(0.5):
            await stream.send_all(raw)
            await stream.receive_some()  # whatever the server says, if anything
        await stream.aclose()
    with trio.fail_after(5):
        while True:  # until every handler has ended (the only request in flight is this one)
            metrics = (await api.client.get("/api/v1/metrics")).json()["metrics"]
            if metrics["server.requests_in_flight"] == 1:
                break
            await trio.sleep(0.02)
    assert (await api.client.get("/health")).json() == {"status": "ok"}


async def test_ready_is_503_when_the_database_is_gone(server_config: ServerConfig, tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "gone.db")
    async with running_api(attrs.evolve(server_config, storage=storage, db=str(tmp_path / "gone.db"))) as api:
        assert (await api.client.get("/health/ready")).status_code == 200
        storage.close()
        reply = await api.client.get("/health/ready")
        assert reply.status_code == 503
        body = reply.json()
        assert body["status"] == "not_ready" and body["checks"]["database"]["status"] == "error"
        assert (await api.client.get("/health")).status_code == 200  # alive, just not ready
