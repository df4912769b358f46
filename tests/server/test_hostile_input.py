"""Hostile or careless input (issue 10): one request, workflow or client cannot hurt anyone else's
work. Each test names the case of the issue it reproduces; each failed before the fix."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import jwt
import pytest
import trio
from server_helpers import Api, activity, running_api

from trioworks.cli import main
from trioworks.server import Client, Server, ServerConfig, SQLiteStorage, load_clients_file, parse_clients

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
    assert bad["status"] == "failed" and bad["activities"][0]["error_code"] == "INVALID_DATA"
    # Nothing stranded: a later poll finds nothing, however far the clock moves.
    api.clock.advance(600)
    reply = await api.client.post(
        "/api/v1/workers/poll", json={"worker": "std", "worker_id": "w", "max_activities": 11}
    )
    assert reply.json()["count"] == 0


# -- case 8: 500s that are the client's fault, or the database's -----------------------------------
@pytest.fixture
async def pg_api(server_config: ServerConfig, fresh_postgres_url: str) -> AsyncIterator[Api]:
    files = Path(server_config.db).parent / "files"  # and the JWT secret file next to it, not in cwd
    async with running_api(attrs.evolve(server_config, db=fresh_postgres_url, files_dir=files)) as running:
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

    from trioworks.server import PostgresStorage

    # A short wait for a pooled connection, so that the test does not wait the default 10 s.
    store = PostgresStorage(fresh_postgres_url, max_threads=2, acquire_timeout=1.0)
    try:
        files = Path(server_config.db).parent / "files"
        async with running_api(attrs.evolve(server_config, storage=store, files_dir=files)) as api:
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
    polled = await api.client.post("/api/v1/workers/poll", json={"worker": "std", "worker_id": "w"})
    assert polled.json()["count"] == 0  # the one activity is claimed already, by "w"
    rows = (await api.client.get(f"/api/v1/workflows/{wid}")).json()["activities"]
    done = await api.client.post(
        f"/api/v1/activities/{rows[0]['activity_id']}/complete", json={"worker_id": "w", "output": {}}
    )
    assert done.status_code == 200, done.text
    listing = (await api.client.get(f"/api/v1/workflows/{wid}/activities/a/output")).json()["files"]
    assert sorted(f["filename"] for f in listing) == ["a", "d/b"]


# -- case 6: no authorization between clients ----------------------------------------------------
TWO = {
    "name": "two",
    "activities": [activity("a", worker="billing"), activity("b", worker="mail")],
}


async def _token(client: httpx.AsyncClient, client_id: str, secret: str) -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    reply = await client.post("/api/v1/oauth/token", json=form)
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


async def test_case6_clients_touch_only_their_worker_types_and_workers(server_config: ServerConfig) -> None:
    clients = {
        "client": "s3cret",
        "bill": Client("b", frozenset({"billing"})),
        "mail": Client("m", frozenset({"mail"})),
    }
    async with running_api(attrs.evolve(server_config, clients=clients)) as api:
        bill = await _token(api.client, "bill", "b")
        mail = await _token(api.client, "mail", "m")
        await api.client.post("/api/v1/workflow_definitions", json=TWO)
        wid = await _submit(api, {"definition_name": "two"})
        poll = "/api/v1/workers/poll"
        # A worker type the client is not configured for: 403, nothing claimed.
        reply = await api.client.post(poll, json={"worker": "billing", "worker_id": "m1"}, headers=mail)
        assert reply.status_code == 403 and "billing" in reply.json()["error"]["message"]
        reply = await api.client.post(poll, json={"worker": "billing", "worker_id": "b1"}, headers=bill)
        (claimed,) = reply.json()["activities"]
        # Another client naming b1 (its worker_id) cannot report on b1's activity, nor poll as b1.
        base = f"/api/v1/activities/{claimed['activity_id']}"
        for path, body in (
            ("/heartbeat", {"worker_id": "b1"}),
            ("/complete", {"worker_id": "b1", "output": {"stolen": True}}),
            ("/fail", {"worker_id": "b1", "error": {"code": "X", "message": "m", "retryable": False}}),
        ):
            reply = await api.client.post(base + path, json=body, headers=mail)
            assert reply.status_code == 403, reply.text
        reply = await api.client.post(poll, json={"worker": "mail", "worker_id": "b1"}, headers=mail)
        assert reply.status_code == 403
        # Its files: only b1's client writes them, and only while the activity runs.
        files = f"/api/v1/workflows/{wid}/activities/a/files/report.txt"
        assert (await api.client.put(files, content=b"forged", headers=mail)).status_code == 403
        assert (await api.client.put(files, content=b"real", headers=bill)).status_code == 201
        done = await api.client.post(base + "/complete", json={"worker_id": "b1", "output": {}}, headers=bill)
        assert done.status_code == 200, done.text
        assert (await api.client.put(files, content=b"late", headers=bill)).status_code == 409
        assert (await api.client.get(files, headers=bill)).content == b"real"


async def test_case6_tokens_from_the_future_are_refused(api: Api) -> None:
    secret = api.server.config.jwt_secret
    assert secret is None  # the test server keeps its secret in a file next to the database
    secret_file = api.db_path.with_name(api.db_path.name + ".jwt-secret")
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    key = secret_file.read_text().strip()
    now = int(api.clock())
    for claim in ("iat", "nbf"):
        claims = {"sub": "client", "iss": "trioworks", "iat": now, "exp": now + 7200, claim: now + 3600}
        forged = jwt.encode(claims, key, algorithm="HS256")
        reply = await api.client.get("/api/v1/workflows", headers={"Authorization": f"Bearer {forged}"})
        assert reply.status_code == 401 and claim in reply.json()["error"]["message"]
    # The secret is nowhere in the database, nor in any answer of the API.
    assert not any(key in line for line in await api.snapshot())
    assert key not in (await api.client.get("/api/v1/metrics")).text


async def test_case6_token_route_reads_at_most_a_few_kb(api: Api) -> None:
    form = {"grant_type": "client_credentials", "client_id": "client", "client_secret": "s3cret"}
    padded = json.dumps({**form, "pad": "x" * 8192}).encode()

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the cap applies while reading
        for i in range(0, len(padded), 1024):
            yield padded[i : i + 1024]

    for content in (padded, chunked()):
        reply = await api.client.post(
            "/api/v1/oauth/token", content=content, headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == 413, reply.text


def test_case6_legacy_secret_moves_from_the_database_to_a_file(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "old.db")
    store.meta_setdefault("jwt_secret", "legacy-secret")

    async def main() -> None:
        config = ServerConfig(storage=store, port=0, clients={"c": "s"}, files_dir=tmp_path / "files")
        async with trio.open_nursery() as nursery:
            await nursery.start(Server(config).run)
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
        assert store.meta_take("jwt_secret") is None
    finally:
        store.close()
    secret_file = tmp_path / "old.db.jwt-secret"
    assert secret_file.read_text().strip() == "legacy-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


# -- case 4: a large body costs the server a bounded multiple of the body cap ----------------------
DEFAULT_BODY_CAP: int = attrs.fields(ServerConfig).max_body_bytes.default  # type: ignore[assignment]
DECODED_FACTOR = 24  # docs/server.md: a request costs at most ~24 times the body cap


def _worst_case_body(size: int) -> bytes:
    """A submit body of about ``size`` bytes decoding to as many objects as possible: distinct
    two-character strings (~59 bytes each decoded, for 5 on the wire)."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    items = [f'"{a}{b}"' for a in alphabet for b in alphabet]
    count = (size - 100) // 5
    values = ",".join(items[i % len(items)] for i in range(count))
    return f'{{"definition_name": "one", "input": {{"x": 1, "pad": [{values}]}}}}'.encode()


async def _peak_while(send: Any) -> tuple[httpx.Response, int]:
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        reply = await send()
        return reply, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


async def test_case4_a_body_over_the_cap_is_refused_before_it_is_held(server_config: ServerConfig) -> None:
    body = _worst_case_body(3 * DEFAULT_BODY_CAP)  # under the old 50 MB cap: it was decoded

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]

    async with running_api(attrs.evolve(server_config, max_body_bytes=DEFAULT_BODY_CAP)) as api:
        await api.client.post("/api/v1/workflow_definitions", json=ONE)
        reply, peak = await _peak_while(lambda: api.client.post("/api/v1/workflows", content=chunks()))
    assert reply.status_code == 413, reply.text
    assert peak < 2 * DEFAULT_BODY_CAP, f"{peak / 2**20:.1f} MiB"


async def test_case4_a_body_under_the_cap_costs_a_bounded_multiple(server_config: ServerConfig) -> None:
    cap = 512 * 1024  # the ratio is what is stated and checked; a small cap keeps the test fast
    body = _worst_case_body(cap - 1024)
    async with running_api(attrs.evolve(server_config, max_body_bytes=cap)) as api:
        await api.client.post("/api/v1/workflow_definitions", json=ONE)
        reply, peak = await _peak_while(lambda: api.client.post("/api/v1/workflows", content=body))
    assert reply.status_code == 201, reply.text
    assert peak < DECODED_FACTOR * cap, f"{peak / cap:.1f} x the cap"


# -- case 3: a 446-byte YAML definition froze the server ------------------------------------------
def _laughs(levels: int) -> bytes:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return ("\n".join(lines) + "\nname: bomb\n").encode()


async def test_case3_yaml_alias_bombs_and_deep_nesting_are_a_400(api: Api) -> None:
    before = await api.snapshot()
    headers = {"Content-Type": "application/yaml"}
    bomb = _laughs(9)  # 9**9 = 387 million nodes once expanded, in under 500 bytes
    assert len(bomb) < 500
    for body, expected in (
        (bomb, "expands"),
        (b"x: " + b"[" * 5000 + b"]" * 5000, "nest"),
        (b"- " * 100 + b"x", "nest"),
    ):
        reply = await api.client.post("/api/v1/workflow_definitions", content=body, headers=headers)
        assert reply.status_code == 400, reply.text
        assert expected in reply.json()["error"]["message"]
    # ... and in JSON, deep nesting is refused before json.loads recurses (and the engine after it).
    deep = b'{"definition_name": "one", "input": {"x": ' + b"[" * 200 + b"]" * 200 + b"}}"
    reply = await api.client.post(
        "/api/v1/workflows", content=deep, headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 400 and "nests" in reply.json()["error"]["message"]
    assert await api.snapshot() == before
    # A document that uses aliases a little is fine.
    fine = b"name: ok\nactivities:\n  - &a {key: a, worker: std, activity_name: a}\n  - {key: b, worker: std, activity_name: b}\n"
    assert (
        await api.client.post("/api/v1/workflow_definitions", content=fine, headers=headers)
    ).status_code == 201


# -- case 5: the server printed the Postgres password ---------------------------------------------
def test_case5_server_never_prints_the_database_password(fresh_postgres_url: str, tmp_path: Path) -> None:
    password = "hunter2-do-not-print"
    url = fresh_postgres_url.replace("postgres@", f"postgres:{password}@", 1)  # trust auth ignores it
    command = [sys.executable, "-m", "trioworks.cli", "server", "--port", "0", "--client", "c:s", "--db", url]
    command += ["--files-dir", str(tmp_path / "files")]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    lines = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "listening on" in line:
                break
    finally:
        proc.terminate()
        rest = proc.communicate(timeout=30)[1]
    output = "".join(lines) + rest
    assert "listening on" in output and "postgres:***@" in output, output
    assert password not in output


# -- case 9: --insecure-dev on a public address ----------------------------------------------------
def test_case9_insecure_dev_refused_on_a_non_loopback_host(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["server", "--insecure-dev", "--host", "0.0.0.0"]) == 2
    assert "--insecure-dev-allow-remote" in capsys.readouterr().err
    # Allowed explicitly, it is still loudly warned about (a bad --db ends the run before it serves).
    bad_db = ["--db", "mysql://x"]
    assert (
        main(["server", "--insecure-dev", "--insecure-dev-allow-remote", "--host", "10.1.2.3", *bad_db]) == 2
    )
    assert "ANYONE" in capsys.readouterr().err
    assert main(["server", "--insecure-dev", "--host", "127.0.0.1", *bad_db]) == 2
    assert "ANYONE" not in capsys.readouterr().err


def test_case6_client_configuration(tmp_path: Path) -> None:
    clients = parse_clients("a:x,b:y:billing,mail,c:z")
    assert clients == {
        "a": Client("x"),
        "b": Client("y", frozenset({"billing", "mail"})),
        "c": Client("z"),
    }
    with pytest.raises(ValueError, match="expected ID:SECRET"):
        parse_clients("a:x,stray")
    secret = tmp_path / "b.secret"
    secret.write_text("from-file\n")
    secret.chmod(0o600)
    toml = tmp_path / "clients.toml"
    toml.write_text(
        '[clients.a]\nsecret = "x"\n[clients.b]\nsecret_file = "b.secret"\nworkers = ["billing"]\n'
    )
    assert load_clients_file(toml) == {"a": Client("x"), "b": Client("from-file", frozenset({"billing"}))}
    secret.chmod(0o644)  # a secret others can read is refused
    with pytest.raises(ValueError, match="chmod 600"):
        load_clients_file(toml)
