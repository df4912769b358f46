"""The original's response shapes and the operating routes: versions, list paging, required
inputs, cost, queues, /metrics, OpenAPI and the docs page (real server on SQLite)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from server_helpers import Api, activity, output_values

FLOW = {
    "name": "ops",
    "activities": [
        activity("ask", outputs=["response"], parameters={"prompt": "{{INPUT.topic}}"}),
        activity("after", "ask", parameters={"text": "{{ask.response}}"}),
    ],
}


async def _deploy(api: Api, body: dict[str, Any] = FLOW) -> dict[str, Any]:
    reply = await api.client.post("/api/v1/workflow_definitions", json=body)
    assert reply.status_code in (200, 201), reply.text
    return reply.json()


async def _start(api: Api, **body: Any) -> httpx.Response:
    return await api.client.post("/api/v1/workflows", json={"definition_name": "ops", **body})


async def _claim(api: Api, worker_id: str = "w1") -> list[dict[str, Any]]:
    reply = await api.client.post("/api/v1/workers/poll", json={"worker": "std", "worker_id": worker_id})
    assert reply.status_code == 200, reply.text
    return reply.json()["activities"]


async def test_versions_are_the_originals_timestamp_strings(api: Api) -> None:
    first = await _deploy(api)
    stamp = dt.datetime.fromtimestamp(api.clock.now, dt.UTC).strftime("%Y%m%d.%H%M%S.%f")
    assert (first["version"], first["version_number"]) == (stamp, 1)
    api.clock.advance(1.5)
    second = await _deploy(api, {**FLOW, "description": "changed"})
    assert second["version_number"] == 2 and second["version"] > first["version"]
    listing = (await api.client.get("/api/v1/workflow_definitions")).json()["definitions"]
    assert [d["version"] for d in listing] == [second["version"]]
    older = await api.client.get(f"/api/v1/workflow_definitions/ops?version={first['version']}")
    assert (older.json()["version_number"] == 1 and "description" not in older.json()) or (
        older.json()["description"] is None
    )
    versions = (await api.client.get("/api/v1/workflow_definitions/ops/versions")).json()["versions"]
    assert [v["version"] for v in versions] == [first["version"], second["version"]]
    started = await _start(api, input={"topic": "t"}, version=first["version"])
    assert started.status_code == 201, started.text
    assert (started.json()["definition_version"], started.json()["definition_version_number"]) == (
        first["version"],
        1,
    )
    unknown = await _start(api, input={"topic": "t"}, version="20000101.000000.000000")
    assert unknown.status_code == 404 and "20000101.000000.000000" in unknown.json()["error"]["message"]
    bad = await _start(api, input={"topic": "t"}, version="v1")
    assert bad.status_code == 422 and "version" in bad.json()["error"]["details"]["field_errors"]


async def test_a_start_without_a_needed_input_is_refused_naming_it(api: Api) -> None:
    await _deploy(api)
    before = await api.snapshot()
    reply = await _start(api, input={"other": 1})
    assert reply.status_code == 422, reply.text
    fields = reply.json()["error"]["details"]["field_errors"]
    assert list(fields) == ["input.topic"] and "ask" in fields["input.topic"][0]
    assert await api.snapshot() == before
    guarded = {
        "name": "guarded",
        "activities": [activity("a", parameters={"p": "{{ INPUT.topic | default('x') }}", "q": "hi"})],
    }
    await _deploy(api, guarded)
    ok = await api.client.post("/api/v1/workflows", json={"definition_name": "guarded", "input": {}})
    assert ok.status_code == 201, ok.text


async def test_get_workflow_shapes_outputs_error_and_state_data(api: Api) -> None:
    await _deploy(api)
    workflow_id = (await _start(api, input={"topic": "t"})).json()["workflow_id"]
    (ask,) = await _claim(api)
    early = await api.client.get(f"/api/v1/workflows/{workflow_id}/activities/ask/output")
    assert early.status_code == 400 and "not completed" in early.json()["error"]["message"]
    await api.client.post(
        f"/api/v1/activities/{ask['activity_id']}/complete",
        json={"worker_id": "w1", "output": {"response": {"content": "three bullets"}}},
    )
    (after,) = await _claim(api)
    await api.client.post(
        f"/api/v1/activities/{after['activity_id']}/fail",
        json={"worker_id": "w1", "error": {"code": "BOOM", "message": "it broke", "retryable": False}},
    )
    doc = (await api.client.get(f"/api/v1/workflows/{workflow_id}")).json()
    assert doc["state_data"] == {} and doc["status"] == "failed"
    by_key = {a["activity_key"]: a for a in doc["activities"]}
    # What the quickstart's `jq -r '.status, .activities[].outputs[]?.value.content'` reads.
    assert by_key["ask"]["outputs"] == [
        {"name": "response", "type": "value", "value": {"content": "three bullets"}}
    ]
    assert output_values(by_key["ask"]) == {"response": {"content": "three bullets"}}
    assert (by_key["after"]["error"], by_key["after"]["error_code"]) == ("BOOM: it broke", "BOOM")
    assert doc["error_message"] == "BOOM: it broke"
    out = (await api.client.get(f"/api/v1/workflows/{workflow_id}/activities/ask/output")).json()
    assert out["output"] == by_key["ask"]["outputs"] and out["completed_at"] and out["files"] == []


async def test_list_paging_dates_and_paused(api: Api) -> None:
    await _deploy(api)
    times = []
    for _ in range(3):
        times.append(api.clock.now)
        assert (await _start(api, input={"topic": "t"})).status_code == 201
        api.clock.advance(60)

    def at(t: float) -> str:
        return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")

    page = (await api.client.get("/api/v1/workflows")).json()
    assert (page["limit"], page["offset"], page["total"]) == (100, 0, 3)
    middle = await api.client.get(
        "/api/v1/workflows", params={"created_after": at(times[0]), "created_before": at(times[2])}
    )
    assert middle.json()["total"] == 1
    after = (await api.client.get("/api/v1/workflows", params={"created_after": at(times[0] + 1)})).json()
    assert after["total"] == 2
    paused = (await api.client.get("/api/v1/workflows?status=paused")).json()
    assert paused["total"] == 0
    for params, field in (
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_after": at(times[2]), "created_before": at(times[0])}, "created_after"),
        ({"status": "sleeping"}, "status"),
    ):
        reply = await api.client.get("/api/v1/workflows", params=params)
        assert reply.status_code == 422 and field in reply.json()["error"]["details"]["field_errors"]


async def test_cost_summary_and_history(api: Api) -> None:
    await _deploy(api)
    workflow_id = (await _start(api, input={"topic": "t"})).json()["workflow_id"]
    (ask,) = await _claim(api)
    usage = [
        {"provider": "anthropic", "model": "m1", "input_tokens": 100, "output_tokens": 20, "cost_usd": 0.25},
        {"provider": "openai", "model": "m2", "input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 3},
    ]
    await api.client.post(
        f"/api/v1/activities/{ask['activity_id']}/complete",
        json={"worker_id": "w1", "output": {"response": "r"}, "cost_usd": 0.5, "usage": usage},
    )
    (after,) = await _claim(api)
    await api.client.post(
        f"/api/v1/activities/{after['activity_id']}/complete",
        json={"worker_id": "w1", "output": {}, "cost_usd": 0.125},
    )
    cost = (await api.client.get(f"/api/v1/workflows/{workflow_id}/cost")).json()
    assert cost == {
        "workflow_id": workflow_id,
        "workflow_name": "ops",
        "total_cost_usd": "0.625",
        "budget_limit_usd": None,
        "budget_remaining_usd": None,
        "total_activities": 2,
    }
    history = (await api.client.get(f"/api/v1/workflows/{workflow_id}/cost/history")).json()
    lines = [(h["activity_key"], h["provider"], h["cost_usd"], h["total_tokens"]) for h in history]
    # ask reported 0.5 in all: 0.25 on its first call, the rest as a lump (the second call had no price).
    assert lines == [
        ("ask", "anthropic", "0.25", 120),
        ("ask", "openai", "0.0", 18),
        ("ask", None, "0.25", None),
        ("after", None, "0.125", None),
    ]
    assert all(h["attempt"] == 1 and h["created_at"] for h in history)
    missing = await api.client.get("/api/v1/workflows/nope/cost")
    assert missing.status_code == 404
    analytics = (await api.client.get("/api/v1/cost/analytics?group_by=provider")).json()
    assert (analytics["total_workflows"], analytics["total_cost_usd"], analytics["total_activities"]) == (
        1,
        "0.625",
        4,
    )
    assert analytics["total_tokens"] == 138 and analytics["cache_hit_rate"] == 3 / 110
    groups = {g["key"]: g["total_cost_usd"] for g in analytics["groups"]}
    assert groups == {None: "0.375", "anthropic": "0.25", "openai": "0.0"}
    assert analytics["top_workflows"][0]["workflow_id"] == workflow_id
    assert analytics["top_definitions"] == [
        {
            "definition_name": "ops",
            "workflows": 1,
            "total_cost_usd": "0.625",
            "avg_cost_per_workflow": "0.625",
        }
    ]
    past = await api.client.get("/api/v1/cost/analytics", params={"end_date": "2000-01-01T00:00:00Z"})
    assert past.json()["total_workflows"] == 0
    bad = await api.client.get("/api/v1/cost/analytics?group_by=colour")
    assert bad.status_code == 400 and "group_by" in bad.json()["error"]["message"]


async def test_queues_say_when_nobody_polls(api: Api) -> None:
    await _deploy(api)
    workflow_id = (await _start(api, input={"topic": "t"})).json()["workflow_id"]
    doc = (await api.client.get(f"/api/v1/workflows/{workflow_id}")).json()
    assert doc["queues"] == {"std": {"last_polled_at": None, "idle_seconds": None}}
    await api.client.post("/api/v1/workers/poll", json={"worker": "other", "worker_id": "w9"})
    api.clock.advance(42)
    doc = (await api.client.get(f"/api/v1/workflows/{workflow_id}")).json()
    assert doc["queues"]["std"]["last_polled_at"] is None  # a poll of another queue says nothing
    listed = (await api.client.get("/api/v1/queues")).json()["queues"]
    assert [(q["worker"], q["idle_seconds"]) for q in listed] == [("other", 42.0)]
    await _claim(api)
    doc = (await api.client.get(f"/api/v1/workflows/{workflow_id}")).json()
    assert doc["queues"] == {}  # nothing of it is waiting in a queue any more


async def test_metrics_in_prometheus_text(api: Api) -> None:
    await _deploy(api)
    await _start(api, input={"topic": "t"})
    await _claim(api)
    reply = await httpx.AsyncClient(base_url=str(api.client.base_url)).get("/metrics")  # public
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in reply.text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples["trioworks_server_workflows_started_total"] == 1
    assert samples["trioworks_server_activities_claimed_total"] == 1
    assert samples["trioworks_server_requests_in_flight_high_water"] >= 1
    assert "# TYPE trioworks_server_requests_total counter" in reply.text


async def test_openapi_and_docs_cover_every_route(api: Api) -> None:
    public = httpx.AsyncClient(base_url=str(api.client.base_url))
    async with public:
        spec = (await public.get("/api/v1/openapi.json")).json()
        page = await public.get("/api/v1/docs")
    assert spec["openapi"].startswith("3.") and spec["info"]["title"]
    documented = {(p, m.upper()) for p, ops in spec["paths"].items() for m in ops}
    assert {
        ("/api/v1/workers/poll", "POST"),
        ("/api/v1/workflow_definitions", "GET"),
        ("/api/v1/workflows/{workflow_id}/cancel", "POST"),
        ("/api/v1/workflows/{workflow_id}/cost", "GET"),
        ("/api/v1/workflows/{workflow_id}/activities/{activity_key}/files/{filename}", "GET"),
        ("/metrics", "GET"),
        ("/api/v1/openapi.json", "GET"),
    } <= documented
    for path, method in documented:  # every documented route is served (none answers 404/405 as unknown)
        concrete = path.replace("{", "").replace("}", "")
        reply = await api.client.request(method, concrete)
        assert "no route" not in reply.text and reply.status_code != 405, (method, path, reply.text)
    cancel = spec["paths"]["/api/v1/workflows/{workflow_id}/cancel"]["post"]
    assert cancel["security"] and cancel["parameters"][0]["name"] == "workflow_id"
    assert "security" not in spec["paths"]["/metrics"]["get"]
    assert page.status_code == 200 and "/api/v1/workflows/{workflow_id}/cost/history" in page.text
