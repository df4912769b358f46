"""The server's seams: a storage is a Dialect plus Connections handed to one SqlStorage, and a
route is declared once, on its handler."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from server_helpers import activity
from starlette.routing import Route

from trioworks.server import (
    Dialect,
    ServerConfig,
    SQLiteStorage,
    SqlStorage,
    Storage,
    StorageUnavailable,
    parse_definition,
)
from trioworks.server.http import Context, build_app
from trioworks.server.storage import SQLITE, Connections, FileStore, SQLiteConnections


class Recording:
    """:class:`Connections` around another one, counting transactions; can be made to fail."""

    def __init__(self, inner: Connections) -> None:
        self.inner = inner
        self.transactions = 0
        self.fail_with: BaseException | None = None

    @property
    def closed(self) -> bool:
        return self.inner.closed

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        if self.fail_with is not None:
            raise self.fail_with
        self.transactions += 1
        with self.inner.transaction() as cursor:
            yield cursor

    def check(self) -> None:
        self.inner.check()

    def close(self) -> None:
        self.inner.close()


def test_a_backend_is_a_dialect_and_connections(tmp_path: Path) -> None:
    connections = Recording(SQLiteConnections(tmp_path / "db.sqlite"))
    store = SqlStorage(SQLITE, connections, max_threads=2)
    assert isinstance(store, Storage) and store.max_threads == 2
    opened = connections.transactions  # the schema
    store.put_definition(parse_definition({"name": "d", "activities": [activity("a")]}), 1.0)
    workflow = store.create_workflow("d", None, {}, None, 2.0)
    (claimed,) = store.claim("std", "w1", 10, 3.0)
    store.complete(claimed.activity_id, "w1", {"ok": True}, 0.0, None, 4.0)
    # Each Storage method is one transaction on the injected connections.
    assert connections.transactions - opened == 4
    assert store.get_workflow(workflow.id)[0].status.value == "completed"
    store.close()
    assert connections.closed
    with pytest.raises(RuntimeError, match="closed"):
        store.check()


def test_the_dialect_says_which_errors_mean_unavailable(tmp_path: Path) -> None:
    class Down(Exception):
        pass

    dialect = Dialect(name="sqlite-down", float_type="REAL", unavailable_errors=(Down,))
    connections = Recording(SQLiteConnections(tmp_path / "db.sqlite"))
    store = SqlStorage(dialect, connections)
    connections.fail_with = Down("connection refused\n  (retry later)")
    with pytest.raises(StorageUnavailable, match="database unavailable: connection refused"):
        store.list_definitions()
    connections.fail_with = ValueError("a bug")  # not the dialect's: propagates as it is
    with pytest.raises(ValueError, match="a bug"):
        store.list_definitions()


def test_a_failing_schema_closes_the_connections(tmp_path: Path) -> None:
    connections = Recording(SQLiteConnections(tmp_path / "db.sqlite"))
    connections.fail_with = OSError("disk gone")
    with pytest.raises(OSError, match="disk gone"):
        SqlStorage(SQLITE, connections)
    assert connections.closed


def test_the_compatible_names_are_the_composition(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "db.sqlite", max_threads=3)
    try:
        assert isinstance(store, SqlStorage)
        assert store.dialect is SQLITE and isinstance(store.connections, SQLiteConnections)
        assert store.files_dir == tmp_path / "db.sqlite.files"
    finally:
        store.close()


def test_each_route_is_declared_once(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "db.sqlite")
    try:
        config = ServerConfig()
        ctx = Context(
            storage=store,
            auth=None,
            clock=config.clock,
            storage_limiter=trio.CapacityLimiter(1),
            control_limiter=trio.CapacityLimiter(1),
            file_limiter=trio.CapacityLimiter(1),
            max_body_bytes=1024,
            max_file_bytes=1024,
            files=FileStore(tmp_path / "files", trio.CapacityLimiter(1)),
            metrics=config.metrics,
        )
        routes = [r for r in build_app(ctx).routes if isinstance(r, Route)]
    finally:
        store.close()
    served = Counter((method, r.path) for r in routes for method in r.methods or ())
    assert max(served.values()) == 1, [k for k, n in served.items() if n > 1]
    # The spec's routes, each once (HEAD comes with every GET).
    assert {k for k in served if k[0] != "HEAD"} >= {
        ("GET", "/health"),
        ("GET", "/health/ready"),
        ("POST", "/api/v1/oauth/token"),
        ("POST", "/api/v1/workers/poll"),
        ("POST", "/api/v1/activities/{activity_id}/heartbeat"),
        ("POST", "/api/v1/activities/{activity_id}/complete"),
        ("POST", "/api/v1/activities/{activity_id}/fail"),
        ("POST", "/api/v1/workflows"),
        ("GET", "/api/v1/workflows/{workflow_id}"),
        ("PUT", "/api/v1/workflows/{workflow_id}/activities/{activity_key}/files/{filename:path}"),
        ("POST", "/api/v1/schedules"),
        ("GET", "/api/v1/schedules"),
        ("GET", "/api/v1/schedules/{schedule_id}"),
        ("PATCH", "/api/v1/schedules/{schedule_id}"),
        ("DELETE", "/api/v1/schedules/{schedule_id}"),
    }
    # 21 + POST .../cancel + (GET) .../cost, .../cost/history, /api/v1/queues, /metrics,
    # /api/v1/openapi.json, /api/v1/docs, /api/v1/workflow_definitions/{name}/versions, /api/v1/cost/analytics
    # + the 5 of /api/v1/schedules
    assert len(routes) == 35
