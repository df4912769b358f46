"""Fixtures of the server tests.

``storage`` is parametrized over the backends: every storage test runs on each of them. A
backend joins by adding a param to ``BACKENDS`` and a branch to ``_open_backend`` (the Postgres
backend skips itself when no database is reachable).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from server_helpers import Api, ManualClock, running_api

from trioworks.server import Definition, ServerConfig, SQLiteStorage, Storage, parse_definition

BACKENDS = ["sqlite", "postgres"]


def _open_backend(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Storage:
    if name == "sqlite":
        return SQLiteStorage(tmp_path / "server.db")
    if name == "postgres":
        from trioworks.server import PostgresStorage

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
def pg(fresh_postgres_url: str) -> Iterator[Any]:
    """A :class:`PostgresStorage` on an empty database of its own (skips without Postgres)."""
    from trioworks.server import PostgresStorage

    store = PostgresStorage(fresh_postgres_url, max_threads=8)
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


@pytest.fixture
async def api(server_config: ServerConfig) -> AsyncIterator[Api]:
    async with running_api(server_config) as running:
        yield running
