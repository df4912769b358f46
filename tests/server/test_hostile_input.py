"""Hostile or careless input (issue 10): one request, workflow or client cannot hurt anyone else's
work. Each test names the case of the issue it reproduces; each failed before the fix."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
from server_helpers import Api, activity, running_api

from trioworks.server import ServerConfig

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
    for body in (
        b'{"definition_name": "one", "input": {"x": 1e400}}',
        b'{"definition_name": "one", "input": {"x": -1e999}}',
    ):
        reply = await api.client.post(
            "/api/v1/workflows", content=body, headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == 400, reply.text
        assert "1e" in reply.json()["error"]["message"]
    assert await api.snapshot() == before


async def test_case1_one_bad_row_fails_only_its_own_workflow(api: Api) -> None:
    await api.client.post("/api/v1/workflow_definitions", json=ONE)
    poisoned = await _submit(api, {"definition_name": "one", "input": {"x": 0}})
    _poison(api.db_path, poisoned)
    others = [await _submit(api, {"definition_name": "one", "input": {"x": i}}) for i in range(10)]
    reply = await api.client.post(
        "/api/v1/workers/poll", json={"worker": "std", "worker_id": "w", "max_activities": 11}
    )
    assert reply.status_code == 200, reply.text
    handed = reply.json()["activities"]
    assert sorted(a["workflow_id"] for a in handed) == sorted(others)
    for a in handed:
        done = await api.client.post(
            f"/api/v1/activities/{a['activity_id']}/complete",
            json={"worker_id": "w", "output": {"y": a["parameters"]["x"]}},
        )
        assert done.status_code == 200, done.text
    for wid in others:
        assert (await api.client.get(f"/api/v1/workflows/{wid}")).json()["status"] == "completed"
    bad = (await api.client.get(f"/api/v1/workflows/{poisoned}")).json()
    assert bad["status"] == "failed" and bad["activities"][0]["error"]["code"] == "INVALID_DATA"
    # Nothing stranded: a later poll finds nothing, however far the clock moves.
    api.clock.advance(600)
    reply = await api.client.post(
        "/api/v1/workers/poll", json={"worker": "std", "worker_id": "w", "max_activities": 11}
    )
    assert reply.json()["count"] == 0


# -- case 8: 500s that are the client's fault, or the database's -----------------------------------
@pytest.fixture
async def pg_api(server_config: ServerConfig, fresh_postgres_url: str) -> AsyncIterator[Api]:
    async with running_api(attrs.evolve(server_config, db=fresh_postgres_url)) as running:
        yield running


NUL_REQUESTS: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/workers/poll", {"worker": "std\x00", "worker_id": "w"}),
    ("POST", "/api/v1/workers/poll", {"worker": "std", "worker_id": "w\x00"}),
    ("POST", "/api/v1/activities/{aid}/heartbeat", {"worker_id": "w\x00"}),
    ("POST", "/api/v1/activities/{aid}/complete", {"worker_id": "w\x00", "output": {}}),
    (
        "POST",
        "/api/v1/activities/{aid}/fail",
        {"worker_id": "\x00", "error": {"code": "c", "message": "m", "retryable": True}},
    ),
    ("POST", "/api/v1/workflows", {"definition_name": "one\x00"}),
    ("POST", "/api/v1/workflows", {"definition_name": "one", "unique_key": "k\x00"}),
    ("POST", "/api/v1/workflows/start", {"name": "one\x00"}),
    ("POST", "/api/v1/workflows/{wid}/signal", {"activity_key": "a", "event_name": "e\x00"}),
    ("GET", "/api/v1/workflows/{wid}%00", None),
    ("GET", "/api/v1/workflows?definition_name=one%00", None),
    ("GET", "/api/v1/workflow_definitions/one%00", None),
    ("POST", "/api/v1/activities/{aid}%00/heartbeat", {"worker_id": "w"}),
]


async def test_case8_nul_bytes_are_a_422_on_postgres(pg_api: Api) -> None:
    await pg_api.client.post("/api/v1/workflow_definitions", json=ONE)
    wid = await _submit(pg_api, {"definition_name": "one", "input": {"x": 1}})
    polled = await pg_api.client.post("/api/v1/workers/poll", json={"worker": "std", "worker_id": "w"})
    aid = polled.json()["activities"][0]["activity_id"]
    for method, path, body in NUL_REQUESTS:
        reply = await pg_api.client.request(method, path.format(wid=wid, aid=aid), json=body)
        assert reply.status_code == 422, (path, body, reply.text)
        assert "NUL" in reply.json()["error"]["message"], reply.text
    # ... and nothing changed: the one activity is still claimed, the one workflow running.
    listing = (await pg_api.client.get("/api/v1/workflows")).json()
    assert listing["total"] == 1 and listing["workflows"][0]["status"] == "running"


async def test_case8_postgres_outage_is_a_503_with_one_log_line(
    server_config: ServerConfig, fresh_postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:

    from trioworks.server._postgres import PostgresStorage

    # A short wait for a pooled connection, so that the test does not wait the default 10 s.
    store = PostgresStorage(fresh_postgres_url, max_threads=2, acquire_timeout=1.0)
    try:
        async with running_api(attrs.evolve(server_config, storage=store)) as api:
            await _outage_answers_503(api, fresh_postgres_url, caplog)
    finally:
        store.close()


async def _outage_answers_503(pg_api: Api, fresh_postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    import psycopg

    dbname = fresh_postgres_url.rsplit("/", 1)[1]
    admin_url = fresh_postgres_url.rsplit("/", 1)[0] + "/postgres"

    def outage(allow: bool) -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS {str(allow).lower()}')
            if not allow:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,)
                )

    await trio.to_thread.run_sync(outage, False)
    try:
        caplog.clear()
        for _ in range(3):
            reply = await pg_api.client.get("/api/v1/workflows")
            assert reply.status_code == 503, reply.text
            assert reply.json()["error"]["code"] == "UNAVAILABLE"
            assert "password" not in reply.text
        records = [r for r in caplog.records if r.name.startswith("trioworks")]
        assert len(records) == 3 and all(r.exc_info is None for r in records), records
    finally:
        await trio.to_thread.run_sync(outage, True)


async def test_case8_out_of_range_settings_are_refused_at_deploy(api: Api) -> None:
    before = await api.snapshot()
    for settings, field in (
        ({"retry": {"max_attempts": 10**20}}, "activities[0].settings.retry.max_attempts"),
        ({"timeout_seconds": 10**400}, "activities[0].settings.timeout_seconds"),
        ({"retry": {"max_attempts": 3, "factor": 1e300}}, "activities[0].settings.retry.factor"),
    ):
        body = {"name": "big", "activities": [activity("a", settings=settings)]}
        reply = await api.client.post("/api/v1/workflow_definitions", json=body)
        assert reply.status_code == 422, reply.text
        assert field in reply.json()["error"]["details"]["field_errors"]
    assert await api.snapshot() == before


async def test_case8_long_file_names_and_clashes_are_4xx(api: Api) -> None:
    await api.client.post("/api/v1/workflow_definitions", json=ONE)
    wid = await _submit(api, {"definition_name": "one", "input": {"x": 1}})
    await api.client.post("/api/v1/workers/poll", json={"worker": "std", "worker_id": "w"})
    files = f"/api/v1/workflows/{wid}/activities/a/files"
    reply = await api.client.put(f"{files}/{'n' * 300}", content=b"x")
    assert reply.status_code == 422 and "filename" in reply.json()["error"]["details"]["field_errors"]
    assert (await api.client.put(f"{files}/a", content=b"x")).status_code == 201
    assert (await api.client.put(f"{files}/d/b", content=b"x")).status_code == 201
    for clash in ("a/b", "d"):
        reply = await api.client.put(f"{files}/{clash}", content=b"y")
        assert reply.status_code == 409, reply.text
    listing = (await api.client.get(f"/api/v1/workflows/{wid}/activities/a/output")).json()["files"]
    assert sorted(f["name"] for f in listing) == ["a", "d/b"]
