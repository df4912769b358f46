"""Fixtures of the server tests.

``storage`` is parametrized over the backends: every storage test runs on each of them. A
backend joins by adding a param to ``BACKENDS`` and a branch to ``_open_backend`` (the Postgres
backend skips itself when no database is reachable).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trioworks.server import Definition, SQLiteStorage, Storage, parse_definition

BACKENDS = ["sqlite"]


def _open_backend(name: str, tmp_path: Path) -> Storage:
    if name == "sqlite":
        return SQLiteStorage(tmp_path / "server.db")
    raise AssertionError(f"unknown backend {name}")


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    store = _open_backend(request.param, tmp_path)
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
