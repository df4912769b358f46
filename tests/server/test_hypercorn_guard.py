"""The hypercorn send/EOF race guard, and the hypercorn internals it relies on.

hypercorn offers no public hook for it (see ``trioworks.server.http._hypercorn.py``), so this file
pins what the guard assumes; an upgrade that changes any of it fails here rather than silently
letting one client hang-up stop the server again.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from typing import Any

import hypercorn.trio.run
import pytest
import trio
from hypercorn.config import Config
from hypercorn.events import RawData
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext

from trioworks.server.http._hypercorn import GuardedTCPServer, hypercorn_guard


class LosingStream:
    """A stream whose every send loses the race with a concurrent ``send_eof``."""

    async def send_all(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        raise trio.BusyResourceError("another task is already sending")


class Protocol:
    async def handle(self, event: Any) -> None:
        await trio.lowlevel.checkpoint()


def _server() -> GuardedTCPServer:
    server = GuardedTCPServer(None, Config(), WorkerContext(None), {}, LosingStream())  # type: ignore[arg-type]
    server.protocol = Protocol()  # type: ignore[assignment]
    return server


def test_hypercorn_is_in_the_tested_range() -> None:
    major, minor = (int(part) for part in importlib.metadata.version("hypercorn").split(".")[:2])
    assert (0, 17) <= (major, minor) < (0, 19), "update the pin in pyproject.toml and _hypercorn.py together"


def test_serve_builds_its_handler_from_the_name_the_guard_replaces() -> None:
    # hypercorn.trio.serve -> worker_serve -> partial(TCPServer, app, config, context, state)
    assert "TCPServer" in hypercorn.trio.run.worker_serve.__code__.co_names
    assert list(inspect.signature(TCPServer.__init__).parameters) == [
        "self",
        "app",
        "config",
        "context",
        "state",
        "stream",
    ]
    assert inspect.iscoroutinefunction(TCPServer.protocol_send)


async def test_a_losing_send_is_dropped_under_the_guard() -> None:
    with hypercorn_guard():
        await _server().protocol_send(RawData(b"HTTP/1.1 400 \r\n\r\n"))
    assert hypercorn.trio.run.TCPServer is GuardedTCPServer
    assert TCPServer.protocol_send is not GuardedTCPServer.protocol_send  # hypercorn's class untouched


async def test_outside_the_guard_hypercorn_behaves_as_upstream() -> None:
    with pytest.raises(trio.BusyResourceError):
        await _server().protocol_send(RawData(b"x"))


def test_a_foreign_replacement_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hypercorn.trio.run, "TCPServer", object)
    with pytest.raises(RuntimeError, match=r"outside the range"), hypercorn_guard():
        pass
