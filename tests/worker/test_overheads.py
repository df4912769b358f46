"""The worker's overhead fixes: a small request leaves in one write; the start-up heap can be frozen."""

from __future__ import annotations

from functools import partial
from typing import Any

import httpcore
import httpx
import pytest
import trio

from trioworks.worker import WorkerConfig
from trioworks.worker._client import WorkerApiClient
from trioworks.worker._transport import (
    _FLUSH_AT,
    WorkerTransport,
    _CoalescingStream,
    environment_proxy,
)


class RecordingStream(httpcore.AsyncNetworkStream):
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        await trio.lowlevel.checkpoint()
        return b"reply"

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await trio.lowlevel.checkpoint()
        self.writes.append(buffer)

    async def aclose(self) -> None:
        self.closed = True


async def test_head_and_body_leave_in_one_write_when_the_response_is_read() -> None:
    inner = RecordingStream()
    stream = _CoalescingStream(inner)
    await stream.write(b"POST / HTTP/1.1\r\n\r\n")
    await stream.write(b"")
    await stream.write(b"{}")
    assert inner.writes == []
    assert await stream.read(100) == b"reply"
    assert inner.writes == [b"POST / HTTP/1.1\r\n\r\n{}"]


async def test_large_bodies_are_written_in_bounded_chunks() -> None:
    inner = RecordingStream()
    stream = _CoalescingStream(inner)
    chunk = b"x" * (_FLUSH_AT // 4)
    for _ in range(9):
        await stream.write(chunk)
    assert [len(w) for w in inner.writes] == [_FLUSH_AT, _FLUSH_AT]
    await stream.read(10)
    assert sum(map(len, inner.writes)) == 9 * len(chunk)


async def test_close_drops_what_is_pending() -> None:
    inner = RecordingStream()
    stream = _CoalescingStream(inner)
    await stream.write(b"half a request")
    await stream.aclose()
    assert inner.closed and inner.writes == []


def _answering(seen: list[bytes]) -> Any:
    """A tiny HTTP/1.1 server's connection handler: records each request line, answers an empty poll."""

    async def handler(stream: trio.SocketStream) -> None:
        buffer = b""
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            buffer += data
            while b"\r\n\r\n" in buffer:
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                if len(rest) < length:
                    break
                seen.append(head.split(b"\r\n")[0])
                buffer = rest[length:]
                body = b'{"activities": []}'
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(body), body)
                )

    return handler


async def test_requests_round_trip_over_a_real_socket() -> None:
    """The client's calls get their answers through the coalescing pool."""
    seen: list[bytes] = []
    with trio.fail_after(10):  # a request lost in the buffer would hang
        await _round_trips(_answering(seen))
    assert seen == [b"POST /api/v1/workers/poll HTTP/1.1"] * 3


async def test_with_a_proxy_in_the_environment_calls_go_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a proxy in the environment the same transport sends every call through it."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    seen: list[bytes] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            (proxy,) = await nursery.start(partial(trio.serve_tcp, _answering(seen), 0, host="127.0.0.1"))
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.socket.getsockname()[1]}")
            async with WorkerApiClient(WorkerConfig(api_url="http://worker-api.invalid")) as client:
                assert await client.poll(5) == []
            nursery.cancel_scope.cancel()
    # A forward proxy gets the absolute URL; the API host itself is never resolved.
    assert seen == [b"POST http://worker-api.invalid/api/v1/workers/poll HTTP/1.1"]


async def _round_trips(handler: Any) -> None:
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        client = WorkerApiClient(WorkerConfig(api_url=f"http://127.0.0.1:{port}"))
        async with client:
            for _ in range(3):
                assert await client.poll(5) == []
        nursery.cancel_scope.cancel()


def _clear_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_one_transport_with_or_without_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool is httpcore's, built through its public ``network_backend`` parameter."""
    _clear_proxies(monkeypatch)
    config = WorkerConfig(api_url="http://127.0.0.1:1")
    direct = WorkerApiClient(config)._transport
    assert isinstance(direct, WorkerTransport)
    assert type(direct.pool) is httpcore.AsyncConnectionPool
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    proxied = WorkerApiClient(config)._transport
    assert isinstance(proxied, WorkerTransport)
    assert isinstance(proxied.pool, httpcore.AsyncHTTPProxy)


def test_the_environment_proxy_for_the_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_proxies(monkeypatch)
    assert environment_proxy("http://api.example") is None
    monkeypatch.setenv("HTTPS_PROXY", "proxy.example:3128")
    assert environment_proxy("http://api.example") is None
    assert environment_proxy("https://api.example") == "http://proxy.example:3128"
    monkeypatch.setenv("ALL_PROXY", "socks5://socks.example:1080")
    assert environment_proxy("http://api.example") == "socks5://socks.example:1080"
    monkeypatch.setenv("NO_PROXY", "api.example")
    assert environment_proxy("https://api.example") is None
    assert environment_proxy("https://other.example") == "http://proxy.example:3128"


def test_an_unknown_proxy_scheme_is_named() -> None:
    with pytest.raises(ValueError, match=r"ftp://proxy\.example"):
        WorkerTransport(limits=httpx.Limits(), proxy="ftp://proxy.example")


async def test_httpcore_errors_arrive_as_httpx_errors() -> None:
    """The transport's own exception table: the most specific httpx class, the message kept."""

    class Refusing(httpcore.AsyncNetworkBackend):
        async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
            await trio.lowlevel.checkpoint()
            raise httpcore.ConnectTimeout("took too long")

    transport = WorkerTransport(limits=httpx.Limits(), network_backend=Refusing())
    with pytest.raises(httpx.ConnectTimeout, match="took too long") as caught:
        await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:1/"))
    assert isinstance(caught.value.__cause__, httpcore.ConnectTimeout)
    await transport.aclose()


async def test_freeze_gc_freezes_while_serving_and_unfreezes_after(fake: Any) -> None:
    """``freeze_gc=True`` (what ``trioworks worker`` passes) moves the start-up heap out of the GC."""
    import gc
    import random

    from worker_fake import make_config

    from trioworks.worker import Worker

    gc.unfreeze()
    worker = Worker(make_config(), [], transport=fake.transport, rng=random.Random(1), freeze_gc=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        assert gc.get_freeze_count() > 1000
        await worker.drain()
    assert gc.get_freeze_count() == 0
