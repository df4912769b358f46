"""Bad input on every route: a clear 4xx in the spec's error body, never a 500, nothing changed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import Api, activity, running_api

from trioworks.server import ServerConfig

GOOD_DEF = {
    "name": "d",
    "activities": [activity("a"), activity("b", "a", settings={"wait_for_signal": True})],
}


async def setup(api: Api) -> tuple[str, str]:
    """A workflow with one claimed activity; returns (workflow_id, activity_id)."""
    await api.client.post("/api/v1/workflow_definitions", json=GOOD_DEF)
    wf = (await api.client.post("/api/v1/workflows", json={"definition_name": "d", "input": {}})).json()
    polled = await api.client.post("/api/v1/workers/poll", json={"worker": "std", "worker_id": "w"})
    return wf["workflow_id"], polled.json()["activities"][0]["activity_id"]


# (method, path template, JSON body or raw bytes, expected status, expected field in field_errors or None)
CASES: list[tuple[str, str, Any, int, str | None]] = [
    ("POST", "/api/v1/workers/poll", {"worker_id": "w"}, 422, "worker"),
    ("POST", "/api/v1/workers/poll", {"worker": "", "worker_id": "w"}, 422, "worker"),
    (
        "POST",
        "/api/v1/workers/poll",
        {"worker": "std", "worker_id": "w", "max_activities": 101},
        422,
        "max_activities",
    ),
    (
        "POST",
        "/api/v1/workers/poll",
        {"worker": "std", "worker_id": "w", "max_activities": "2"},
        422,
        "max_activities",
    ),
    ("POST", "/api/v1/workers/poll", [1, 2], 422, "body"),
    ("POST", "/api/v1/workers/poll", b"{not json", 400, None),
    ("POST", "/api/v1/workers/poll", b"", 400, None),
    ("POST", "/api/v1/activities/{aid}/complete", b'{"worker_id": "w", "output": {"x": NaN}}', 400, None),
    ("POST", "/api/v1/workers/poll", b"[" * 20000 + b"]" * 20000, 400, None),
    ("POST", "/api/v1/workers/poll", b'{"worker": "std", "worker_id": "\\ud800"}', 400, None),
    ("POST", "/api/v1/activities/{aid}/heartbeat", {}, 422, "worker_id"),
    ("POST", "/api/v1/activities/{aid}/complete", {"worker_id": "w"}, 422, "output"),
    ("POST", "/api/v1/activities/{aid}/complete", {"worker_id": "w", "output": [1]}, 422, "output"),
    (
        "POST",
        "/api/v1/activities/{aid}/complete",
        {"worker_id": "w", "output": {}, "cost_usd": -1},
        422,
        "cost_usd",
    ),
    (
        "POST",
        "/api/v1/activities/{aid}/complete",
        {"worker_id": "w", "output": {}, "usage": [{"provider": "p"}]},
        422,
        "usage[0].model",
    ),
    (
        "POST",
        "/api/v1/activities/{aid}/complete",
        {"worker_id": "w", "output": {}, "usage": [{"provider": "p", "model": "m", "input_tokens": -3}]},
        422,
        "usage[0].input_tokens",
    ),
    ("POST", "/api/v1/activities/{aid}/fail", {"worker_id": "w"}, 422, "error"),
    (
        "POST",
        "/api/v1/activities/{aid}/complete",
        {"worker_id": "w", "output": {}, "cost_usd": "lots"},
        422,
        "cost_usd",
    ),
    (
        "POST",
        "/api/v1/activities/{aid}/fail",
        {"worker_id": "w", "error": {"code": "", "message": "m", "retryable": True}},
        422,
        "error.code",
    ),
    (
        "POST",
        "/api/v1/activities/{aid}/fail",
        {"worker_id": "w", "error": {"code": "c", "message": "m", "retryable": "yes"}},
        422,
        "error.retryable",
    ),
    (
        "POST",
        "/api/v1/activities/{aid}/fail",
        {"worker_id": "other", "error": {"code": "c", "message": "m", "retryable": True}},
        409,
        None,
    ),
    (
        "POST",
        "/api/v1/activities/00000000-0000-0000-0000-000000000000/fail",
        {"worker_id": "w", "error": {"code": "c", "message": "m", "retryable": True}},
        404,
        None,
    ),
    (
        "POST",
        "/api/v1/workflow_definitions",
        {"name": "x", "activities": [activity("a", "ghost")]},
        422,
        "activities[0].depends_on[0]",
    ),
    ("POST", "/api/v1/workflow_definitions", {"name": "x"}, 422, "activities"),
    ("POST", "/api/v1/workflow_definitions", b"name: [unclosed", 400, None),
    (
        "POST",
        "/api/v1/workflow_definitions",
        b"name: x\nactivities:\n  - {key: a, worker: std, activity_name: a, parameters: {day: 2024-01-01}}\n",
        400,
        None,
    ),
    ("GET", "/api/v1/workflow_definitions/ghost", None, 404, None),
    ("GET", "/api/v1/workflow_definitions/d?version=x", None, 422, "version"),
    ("POST", "/api/v1/workflows", {"input": {}}, 422, "definition_name"),
    ("POST", "/api/v1/workflows", {"definition_name": "d", "input": []}, 422, "input"),
    ("POST", "/api/v1/workflows", {"definition_name": "d", "version": 0}, 422, "version"),
    ("POST", "/api/v1/workflows", {"definition_name": "d", "version": 10**30}, 422, "version"),
    ("POST", "/api/v1/workflows", {"definition_name": "d", "version": 9}, 404, None),
    ("GET", "/api/v1/workflows?status=bogus", None, 422, "status"),
    ("GET", "/api/v1/workflows?limit=0", None, 422, "limit"),
    ("GET", "/api/v1/workflows?offset=-1", None, 422, "offset"),
    ("GET", "/api/v1/workflows/ghost", None, 404, None),
    ("GET", "/api/v1/workflows/{wid}/activities/ghost/output", None, 404, None),
    ("POST", "/api/v1/workflows/{wid}/signal", {"activity_key": "b"}, 422, "event_name"),
    (
        "POST",
        "/api/v1/workflows/{wid}/signal",
        {"activity_key": "b", "event_name": "e", "data": 3},
        422,
        "data",
    ),
    ("POST", "/api/v1/workflows/{wid}/signal", {"activity_key": "a", "event_name": "e"}, 400, None),
    ("POST", "/api/v1/workflows/ghost/signal", {"activity_key": "a", "event_name": "e"}, 404, None),
    ("DELETE", "/api/v1/workflows", None, 405, None),
    ("GET", "/api/v1/nothing/here", None, 404, None),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), CASES)
async def test_bad_input_is_a_clear_4xx_and_changes_nothing(
    api: Api, method: str, path: str, body: Any, status: int, field: str | None
) -> None:
    wid, aid = await setup(api)
    before = await api.snapshot()
    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        content_type = "application/yaml" if "definitions" in path else "application/json"
        kwargs = {"content": body, "headers": {"Content-Type": content_type}}
    elif body is not None:
        kwargs = {"json": body}
    reply = await api.client.request(method, path.format(wid=wid, aid=aid), **kwargs)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["message"]
    if field is not None:
        assert error["code"] == "VALIDATION_ERROR"
        assert field in error["details"]["field_errors"], error
    assert await api.snapshot() == before


async def test_wrong_content_type_and_body_cap(api: Api) -> None:
    before = await api.snapshot()
    reply = await api.client.post(
        "/api/v1/workers/poll", content=b"worker=std", headers={"Content-Type": "text/plain"}
    )
    assert reply.status_code == 415 and reply.json()["error"]["code"] == "BAD_REQUEST"
    huge = {"worker": "std", "worker_id": "w", "pad": "x" * (65 * 1024)}
    reply = await api.client.post("/api/v1/workers/poll", json=huge)
    assert reply.status_code == 413 and "limit" in reply.json()["error"]["message"]
    assert await api.snapshot() == before


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
_fields = st.sampled_from(
    [
        "worker",
        "worker_id",
        "max_activities",
        "output",
        "error",
        "usage",
        "cost_usd",
        "definition_name",
        "input",
        "version",
        "unique_key",
        "activity_key",
        "event_name",
        "data",
        "name",
        "activities",
    ]
)
_bodies = st.dictionaries(_fields, _json, max_size=5) | _json
_routes = st.sampled_from(
    [
        "/api/v1/workers/poll",
        "/api/v1/activities/{aid}/heartbeat",
        "/api/v1/activities/{aid}/complete",
        "/api/v1/activities/{aid}/fail",
        "/api/v1/workflow_definitions",
        "/api/v1/workflows",
        "/api/v1/workflows/{wid}/signal",
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=_routes, body=_bodies)
async def test_random_bodies_never_500(server_config: ServerConfig, route: str, body: Any) -> None:
    # One server per example (the same database file): fixtures do not restart between examples.
    async with running_api(server_config) as api:
        listing = (await api.client.get("/api/v1/workflows")).json()["workflows"]
        if not listing:
            wid, aid = await setup(api)
        else:
            wid = listing[0]["id"]
            aid = (await api.client.get(f"/api/v1/workflows/{wid}")).json()["activities"][0]["activity_id"]
        before = await api.snapshot()
        reply = await api.client.post(
            route.format(wid=wid, aid=aid),
            content=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        assert reply.status_code < 500, reply.text
        if reply.status_code >= 400:
            assert reply.json()["error"]["message"]
            assert await api.snapshot() == before
