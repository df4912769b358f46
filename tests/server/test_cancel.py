"""Cancelling a workflow: storage rules (SQLite and Postgres), the HTTP route, the original SDK's call."""

from __future__ import annotations

import pytest
import trio
from server_helpers import Api, activity
from test_http import DEFINITION, deploy_and_submit, error_of, poll

from trioworks.core import run_in_thread
from trioworks.server import ActivityStatus, Conflict, NotFound, Storage, WorkflowStatus

S = ActivityStatus
FAIL = {"code": "BOOM", "message": "it broke", "retryable": True}


def test_cancel_stops_pending_and_running_activities(storage: Storage, define) -> None:
    define("d", activity("a"), activity("b"), activity("c", "a"))
    wf = storage.create_workflow("d", None, {}, None, 0.0)
    (a,) = storage.claim("std", "w1", 1, 1.0)  # a runs; b stays pending; c not scheduled
    cancelled = storage.cancel_workflow(wf.id, 2.0)
    assert cancelled.status is WorkflowStatus.CANCELLED and cancelled.updated_at == 2.0
    assert storage.claim("std", "w2", 5, 3.0) == []  # the pending one is never handed out
    with pytest.raises(Conflict, match="cancelled"):
        storage.heartbeat(a.activity_id, "w1", 3.0)
    with pytest.raises(Conflict, match="cancelled"):
        storage.complete(a.activity_id, "w1", {"v": 1}, 0, None, 3.0)
    with pytest.raises(Conflict, match="cancelled"):
        storage.fail(a.activity_id, "w1", FAIL, 0, None, 3.0)
    assert storage.claim("std", "w2", 5, 10_000.0) == []  # its lease expiring changes nothing
    storage.sweep(10_000.0)
    workflow, rows = storage.get_workflow(wf.id)
    assert workflow.status is WorkflowStatus.CANCELLED
    assert {r.key: (r.status, r.error and r.error["code"]) for r in rows} == {
        k: (S.FAILED, "WORKFLOW_CANCELLED") for k in "abc"
    }
    again = storage.cancel_workflow(wf.id, 5.0)  # idempotent: unchanged
    assert again.status is WorkflowStatus.CANCELLED and again.updated_at == 2.0


def test_cancel_keeps_finished_work_and_refuses_finished_workflows(storage: Storage, define) -> None:
    define("d", activity("a"), activity("b", "a"))
    wf = storage.create_workflow("d", None, {}, None, 0.0)
    (a,) = storage.claim("std", "w1", 1, 1.0)
    storage.complete(a.activity_id, "w1", {"v": 1}, 0, None, 2.0)
    storage.cancel_workflow(wf.id, 3.0)
    statuses = {r.key: r.status for r in storage.get_workflow(wf.id)[1]}
    assert statuses == {"a": S.COMPLETED, "b": S.FAILED}

    done = storage.create_workflow("d", None, {}, None, 4.0)
    for _ in range(2):
        (row,) = storage.claim("std", "w1", 1, 5.0)
        storage.complete(row.activity_id, "w1", {}, 0, None, 5.0)
    with pytest.raises(Conflict, match="completed"):
        storage.cancel_workflow(done.id, 6.0)
    define("f", activity("x", settings={"retry": {"max_attempts": 1}}))
    failed = storage.create_workflow("f", None, {}, None, 7.0)
    (x,) = storage.claim("std", "w1", 1, 7.0)
    storage.fail(x.activity_id, "w1", {**FAIL, "retryable": False}, 0, None, 8.0)
    with pytest.raises(Conflict, match="failed"):
        storage.cancel_workflow(failed.id, 9.0)
    with pytest.raises(NotFound):
        storage.cancel_workflow("00000000-0000-0000-0000-000000000000", 9.0)


async def test_cancel_route(api: Api) -> None:
    workflow_id = await deploy_and_submit(api, url="u")
    (fetch,) = await poll(api)  # a worker holds 'fetch'
    reply = await api.client.post(f"/api/v1/workflows/{workflow_id}/cancel")
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "cancelled" and reply.json()["id"] == workflow_id
    assert (await api.client.post(f"/api/v1/workflows/{workflow_id}/cancel")).status_code == 200
    route = f"/api/v1/activities/{fetch['activity_id']}"
    beat = error_of(await api.client.post(f"{route}/heartbeat", json={"worker_id": "w1"}), 409, "CONFLICT")
    assert "cancelled" in beat["message"]
    done = {"worker_id": "w1", "output": {"body": 1}}
    error_of(await api.client.post(f"{route}/complete", json=done), 409, "CONFLICT")
    doc = (await api.client.get(f"/api/v1/workflows/{workflow_id}")).json()
    assert doc["status"] == "cancelled"  # the refused completion resurrected nothing
    assert {a["status"] for a in doc["activities"]} == {"failed"}
    listed = (await api.client.get("/api/v1/workflows", params={"status": "cancelled"})).json()
    assert [w["id"] for w in listed["workflows"]] == [workflow_id]
    error_of(await api.client.post("/api/v1/workflows/nope/cancel"), 404, "NOT_FOUND")


async def test_cancel_route_names_the_status_of_a_finished_workflow(api: Api) -> None:
    definition = {"name": "one", "activities": [activity("a")]}
    assert (await api.client.post("/api/v1/workflow_definitions", json=definition)).status_code == 201
    reply = await api.client.post("/api/v1/workflows", json={"definition_name": "one", "input": {}})
    workflow_id = reply.json()["workflow_id"]
    (a,) = await poll(api)
    done = {"worker_id": "w1", "output": {}}
    assert (
        await api.client.post(f"/api/v1/activities/{a['activity_id']}/complete", json=done)
    ).status_code == 200
    error = error_of(await api.client.post(f"/api/v1/workflows/{workflow_id}/cancel"), 409, "CONFLICT")
    assert "completed" in error["message"]


async def test_original_sdk_cancel_workflow(api: Api) -> None:
    kruxiaflow = pytest.importorskip("kruxiaflow")
    workflow_id = await deploy_and_submit(api, url="u")
    assert DEFINITION["name"] == "etl"
    token = api.client.headers["Authorization"].removeprefix("Bearer ")

    def cancel(workflow_id: str) -> None:
        with kruxiaflow.KruxiaFlow(str(api.client.base_url), token) as client:
            client.cancel_workflow(workflow_id)

    limiter = trio.CapacityLimiter(1)
    await run_in_thread(cancel, workflow_id, limiter=limiter)
    assert (await api.client.get(f"/api/v1/workflows/{workflow_id}")).json()["status"] == "cancelled"
    with pytest.raises(kruxiaflow.WorkflowNotFoundError):
        await run_in_thread(cancel, "nope", limiter=limiter)
