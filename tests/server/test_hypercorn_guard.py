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
from hypercorn.events import Closed, RawData
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
        server = _server()
        await server.protocol_send(RawData(b"HTTP/1.1 400 \r\n\r\n"))  # held for its end
        await server.protocol_send(RawData(b""))  # the end: head and end go out, and lose
    assert hypercorn.trio.run.TCPServer is GuardedTCPServer
    assert TCPServer.protocol_send is not GuardedTCPServer.protocol_send  # hypercorn's class untouched


async def test_outside_the_guard_hypercorn_behaves_as_upstream() -> None:
    with pytest.raises(trio.BusyResourceError):
        await _server().protocol_send(RawData(b"x"))


def test_a_foreign_replacement_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hypercorn.trio.run, "TCPServer", object)
    with pytest.raises(RuntimeError, match=r"outside the range"), hypercorn_guard():
        pass


class RecordingStream:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send_all(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.sent.append(data)

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def _recording() -> tuple[GuardedTCPServer, RecordingStream]:
    stream = RecordingStream()
    server = GuardedTCPServer(None, Config(), WorkerContext(None), {}, stream)  # type: ignore[arg-type]
    server.protocol = Protocol()  # type: ignore[assignment]
    return server, stream


HEAD = b"HTTP/1.1 200 \r\ncontent-length: 2\r\n\r\n"


async def test_a_response_goes_out_in_one_send_under_the_guard() -> None:
    server, stream = _recording()
    with hypercorn_guard():
        for part in (HEAD, b"{}", b""):  # head, body, end (as hypercorn writes a sized response)
            await server.protocol_send(RawData(part))
    assert stream.sent == [HEAD + b"{}"]


async def test_an_interim_response_is_never_held() -> None:
    # A client sending "Expect: 100-continue" waits for this before it sends its body.
    server, stream = _recording()
    with hypercorn_guard():
        await server.protocol_send(RawData(b"HTTP/1.1 100 \r\n\r\n"))
    assert stream.sent == [b"HTTP/1.1 100 \r\n\r\n"]


async def test_a_held_head_goes_out_before_the_connection_closes() -> None:
    server, stream = _recording()
    with hypercorn_guard():
        await server.protocol_send(RawData(HEAD))
        await server.protocol_send(Closed())
    assert stream.sent == [HEAD]


async def test_outside_the_guard_every_part_is_sent_as_upstream() -> None:
    server, stream = _recording()
    for part in (HEAD, b"{}", b""):
        await server.protocol_send(RawData(part))
    assert stream.sent == [HEAD, b"{}", b""]
