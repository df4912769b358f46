"""Fixtures of the server tests.

``storage`` is parametrized over the backends: every storage test runs on each of them. A
backend joins by adding a param to ``BACKENDS`` and a branch to ``_open_backend`` (the Postgres
backend skips itself when no database is reachable).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from server_helpers import ManualClock

from trioworks.server import Definition, Server, ServerConfig, SQLiteStorage, Storage, parse_definition

BACKENDS = ["sqlite", "postgres"]


def _open_backend(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Storage:
    if name == "sqlite":
        return SQLiteStorage(tmp_path / "server.db")
    if name == "postgres":
        from trioworks.server._postgres import PostgresStorage

        # An empty database per test, in the session's throwaway cluster (tests/conftest.py);
        # skips the test when Postgres is not installed.
        return PostgresStorage(request.getfixturevalue("fresh_postgres_url"), max_threads=4)
    raise AssertionError(f"unknown backend {name}")


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    store = _open_backend(request.param, tmp_path, request)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def define(storage: Storage) -> Callable[..., Definition]:
    """``define(name, *activities)``: parse and store a definition at time 0."""

    def define(name: str, *activities: dict[str, Any]) -> Definition:
        definition = parse_definition({"name": name, "activities": list(activities)})
        storage.put_definition(definition, now=0.0)
        return definition

    return define


@attrs.frozen
class Api:
    """A running server (real hypercorn on port 0) and an authenticated client for it."""

    client: httpx.AsyncClient
    clock: ManualClock
    server: Server
    db_path: Path

    async def snapshot(self) -> list[str]:
        """Every row of every table, to check that bad input changed nothing."""

        def dump() -> list[str]:
            conn = sqlite3.connect(self.db_path)
            try:
                return list(conn.iterdump())
            finally:
                conn.close()

        return await trio.to_thread.run_sync(dump)


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(
        db=str(tmp_path / "api.db"),
        port=0,
        clients={"client": "s3cret"},
        clock=ManualClock(),
        sweep_interval=3600.0,
        max_body_bytes=64 * 1024,
        max_file_bytes=32 * 1024,
    )


@contextlib.asynccontextmanager
async def running_api(config: ServerConfig) -> AsyncIterator[Api]:
    """Serve ``config`` in a nursery of its own; an authenticated client for it."""
    async with trio.open_nursery() as nursery:
        server = Server(config)
        url = await nursery.start(server.run)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            reply = await client.post(
                "/api/v1/oauth/token",
                json={"grant_type": "client_credentials", "client_id": "client", "client_secret": "s3cret"},
            )
            client.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"
            assert isinstance(config.clock, ManualClock)
            yield Api(client, config.clock, server, Path(config.db))
        nursery.cancel_scope.cancel()


@pytest.fixture
async def api(server_config: ServerConfig) -> AsyncIterator[Api]:
    async with running_api(server_config) as running:
        yield running
