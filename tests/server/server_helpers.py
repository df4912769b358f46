"""Helpers shared by the server tests (imported by name: the test directories are not packages,
so ``from conftest import ...`` would find whichever conftest was imported first)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from trioworks.server import Server, ServerConfig


def activity(key: str, *deps: Any, worker: str = "std", **extra: Any) -> dict[str, Any]:
    """One activity of a definition; ``deps`` are keys or ``{activity_key, condition}`` dicts."""
    return {
        "key": key,
        "worker": worker,
        "activity_name": extra.pop("name", key),
        "depends_on": list(deps),
        **extra,
    }


class ManualClock:
    """POSIX seconds that only move when a test says so (leases, retries, token expiry)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@attrs.frozen
class Api:
    """A running server (its real HTTP front on port 0) and an authenticated client for it."""

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


def output_values(activity: dict[str, Any]) -> dict[str, Any] | None:
    """An activity's outputs as ``{name: value}`` (the server sends the original's ``[{name, type, value}]``)."""
    outputs = activity["outputs"]
    return None if outputs is None else {o["name"]: o["value"] for o in outputs}
