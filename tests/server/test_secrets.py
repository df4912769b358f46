"""``{{SECRET.name}}``: filled from ``KRUXIAFLOW_SECRET_<NAME>`` at hand-out, never stored or returned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from server_helpers import Api, running_api

from trioworks.server import ServerConfig
from trioworks.server.rules import secrets_from_env

VALUE = "postgres://user:pw-VERY-secret-42@db/examples"
FLOW = """
name: secretive
activities:
  - key: query
    activity_name: postgres_query
    parameters:
      db_url: "{{SECRET.db_url}}"
      label: "db={{ SECRET.db_url }} for {{INPUT.who}}"
      who: "{{INPUT.who}}"
"""


async def _poll(api: Api) -> list[dict[str, Any]]:
    reply = await api.client.post(
        "/api/v1/workers/poll", json={"worker": "std", "worker_id": "w", "max_activities": 5}
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["activities"]


async def _all_gets(api: Api, workflow_id: str, activity_id: str) -> str:
    routes = [
        "/api/v1/workflow_definitions",
        "/api/v1/workflow_definitions/secretive",
        "/api/v1/workflows",
        f"/api/v1/workflows/{workflow_id}",
        f"/api/v1/workflows/{workflow_id}/activities",
        f"/api/v1/activities/{activity_id}",
    ]
    return "".join([(await api.client.get(r)).text for r in routes])


def test_secret_names_map_as_the_original() -> None:
    env = {"KRUXIAFLOW_SECRET_DB_URL": "x", "KRUXIAFLOW_SECRET_Api_Key": "y", "OTHER": "z"}
    assert secrets_from_env(env) == {"db_url": "x", "api_key": "y"}


async def test_secret_filled_at_hand_out_only(server_config: ServerConfig) -> None:
    config = attrs.evolve(server_config, secrets={"db_url": VALUE})
    async with running_api(config) as api:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        deployed = await api.client.post("/api/v1/workflow_definitions", content=FLOW.encode(), headers=form)
        assert deployed.status_code == 201, deployed.text
        # An input carrying a SECRET template of its own is not filled: the activity fails instead.
        sneaky = await api.client.post(
            "/api/v1/workflows", json={"definition_name": "secretive", "input": {"who": "{{SECRET.db_url}}"}}
        )
        assert sneaky.status_code == 201
        started = await api.client.post(
            "/api/v1/workflows", json={"definition_name": "secretive", "input": {"who": "me"}}
        )
        workflow_id = started.json()["workflow_id"]
        (handed,) = await _poll(api)
        assert handed["worker"] == "std"  # item 3: the default worker
        assert handed["parameters"] == {"db_url": VALUE, "label": f"db={VALUE} for me", "who": "me"}
        sneaky_state = (await api.client.get(f"/api/v1/workflows/{sneaky.json()['workflow_id']}")).json()
        assert sneaky_state["status"] == "failed", sneaky_state
        assert "SECRET" in str(sneaky_state) and VALUE not in str(sneaky_state)
        assert VALUE not in await _all_gets(api, workflow_id, handed["activity_id"])
        db_path = api.db_path
    stored = b"".join(p.read_bytes() for p in Path(db_path).parent.glob(Path(db_path).name + "*"))
    assert b"{{SECRET.db_url}}" in stored and VALUE.encode() not in stored


async def test_missing_secret_is_loud(server_config: ServerConfig) -> None:
    async with running_api(attrs.evolve(server_config, secrets={})) as api:
        reply = await api.client.post("/api/v1/workflow_definitions", content=FLOW.encode())
        assert reply.status_code == 422, reply.text
        error = reply.json()["error"]
        assert "'db_url'" in error["message"] and "KRUXIAFLOW_SECRET_DB_URL" in error["message"]
    # Deployed while the server had it, run after a restart without it: the activity fails, naming it.
    async with running_api(attrs.evolve(server_config, secrets={"db_url": VALUE})) as api:
        assert (
            await api.client.post("/api/v1/workflow_definitions", content=FLOW.encode())
        ).status_code == 201
        started = await api.client.post(
            "/api/v1/workflows", json={"definition_name": "secretive", "input": {"who": "me"}}
        )
        workflow_id = started.json()["workflow_id"]
    async with running_api(attrs.evolve(server_config, secrets={})) as api:
        assert await _poll(api) == []
        state = (await api.client.get(f"/api/v1/workflows/{workflow_id}")).json()
        assert state["status"] == "failed" and "KRUXIAFLOW_SECRET_DB_URL" in str(state), state
        assert VALUE not in str(state)


async def test_secret_in_a_condition_is_refused(api: Api) -> None:
    flow = (
        FLOW
        + """  - key: next
    activity_name: noop
    depends_on:
      - activity_key: query
        conditions: ["{{SECRET.db_url}} == 'x'"]
"""
    )
    reply = await api.client.post("/api/v1/workflow_definitions", content=flow.encode())
    assert reply.status_code == 422 and "parameters only" in reply.text, reply.text
