"""Hostile or careless input (issue 10): one request, workflow or client cannot hurt anyone else's
work. Each test names the case of the issue it reproduces; each failed before the fix."""

from __future__ import annotations

import sqlite3
from typing import Any

import trio
from server_helpers import Api, activity

ONE = {"name": "one", "activities": [activity("a", parameters={"x": "{{INPUT.x}}"})]}


async def _submit(api: Api, body: dict[str, Any]) -> str:
    reply = await api.client.post("/api/v1/workflows", json=body)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["workflow_id"])


def _poison(db_path: Any, workflow_id: str) -> None:
    """What an older server stored for input ``{"x": 1e400}``: infinity in the activity's parameters."""
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            conn.execute(
                "UPDATE activities SET parameters = '{\"x\":Infinity}' WHERE workflow_id = ?", (workflow_id,)
            )
    finally:
        conn.close()


# -- case 1: one workflow's input poisons the polls of others ---------------------------------------
async def test_case1_non_finite_input_is_refused_at_the_edge(api: Api) -> None:
    await api.client.post("/api/v1/workflow_definitions", json=ONE)
    before = await api.snapshot()
    for body in (b'{"definition_name": "one", "input": {"x": 1e400}}', b'{"definition_name": "one", "input": {"x": -1e999}}'):
        reply = await api.client.post("/api/v1/workflows", content=body, headers={"Content-Type": "application/json"})
        assert reply.status_code == 400, reply.text
        assert "1e" in reply.json()["error"]["message"]
    assert await api.snapshot() == before


async def test_case1_one_bad_row_fails_only_its_own_workflow(api: Api) -> None:
    await api.client.post("/api/v1/workflow_definitions", json=ONE)
    poisoned = await _submit(api, {"definition_name": "one", "input": {"x": 0}})
    _poison(api.db_path, poisoned)
    others = [await _submit(api, {"definition_name": "one", "input": {"x": i}}) for i in range(10)]
    reply = await api.client.post("/api/v1/workers/poll", json={"worker": "std", "worker_id": "w", "max_activities": 11})
    assert reply.status_code == 200, reply.text
    handed = reply.json()["activities"]
    assert sorted(a["workflow_id"] for a in handed) == sorted(others)
    for a in handed:
        done = await api.client.post(
            f"/api/v1/activities/{a['activity_id']}/complete", json={"worker_id": "w", "output": {"y": a["parameters"]["x"]}}
        )
        assert done.status_code == 200, done.text
    for wid in others:
        assert (await api.client.get(f"/api/v1/workflows/{wid}")).json()["status"] == "completed"
    bad = (await api.client.get(f"/api/v1/workflows/{poisoned}")).json()
    assert bad["status"] == "failed" and bad["activities"][0]["error"]["code"] == "INVALID_DATA"
    # Nothing stranded: a later poll finds nothing, however far the clock moves.
    api.clock.advance(600)
    reply = await api.client.post("/api/v1/workers/poll", json={"worker": "std", "worker_id": "w", "max_activities": 11})
    assert reply.json()["count"] == 0
