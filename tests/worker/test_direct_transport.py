"""The worker's direct path for small JSON calls (``worker/_direct.py``), against real sockets.

A scripted HTTP/1.1 server (h11, Trio) plays each situation: keep-alive, a server that closes an
idle connection, ``Connection: close``, chunked answers, silence, a disconnect mid-answer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import h11
import httpx
import pytest
import trio

from trioworks.worker import WorkerConfig, _direct
from trioworks.worker._client import WorkerApiClient
from trioworks.worker._direct import BUFFERED
from trioworks.worker._errors import LeaseLostError
from trioworks.worker._transport import WorkerTransport

Answer = Callable[[h11.Request, bytes, trio.SocketStream], Awaitable[bool]]
"""Answers one request; returns whether the connection stays open for the next."""


class Server:
    """Counts connections and requests; ``answer`` decides what each request gets."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[int, str, bytes]] = []
        self.closed_by_client = 0
        self.port = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        number = self.connections
        http = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = None, b""
                while True:
                    event = http.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        if not data:
                            self.closed_by_client += 1
                            return
                        http.receive_data(data)
                    elif isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += bytes(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        break
                assert request is not None
                self.requests.append((number, request.target.decode(), body))
                if not await self.answer(request, body, stream):
                    return
                http = h11.Connection(h11.SERVER)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed_by_client += 1
        finally:
            await stream.aclose()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self.handle, listeners)


def reply(body: Any, *, status: int = 200, close: bool = False, chunked: bool = False) -> Answer:
    async def answer(request: h11.Request, received: bytes, stream: trio.SocketStream) -> bool:
        payload = json.dumps(body).encode()
        head = f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
        if close:
            head += "Connection: close\r\n"
        if chunked:
            data = head.encode() + b"Transfer-Encoding: chunked\r\n\r\n"
            half = len(payload) // 2
            for part in (payload[:half], payload[half:]):
                data += f"{len(part):x}\r\n".encode() + part + b"\r\n"
            data += b"0\r\n\r\n"
        else:
            data = head.encode() + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
        await stream.send_all(data)
        return not close

    return answer


def client(port: int, **config: Any) -> WorkerApiClient:
    cfg = WorkerConfig(api_url=f"http://127.0.0.1:{port}", client_id="", worker="w", **config)
    return WorkerApiClient(cfg)


def request(port: int, path: str = "/x", payload: Any = None) -> httpx.Request:
    return httpx.Request(
        "POST", f"http://127.0.0.1:{port}{path}", json=payload or {"n": 1}, extensions={BUFFERED: True}
    )


async def test_calls_share_one_kept_alive_connection_and_bodies_arrive_whole() -> None:
    server = Server(reply({"activities": [], "count": 0}))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        async with client(server.port) as api:
            for _ in range(5):
                assert await api.poll(3) == []
        nursery.cancel_scope.cancel()
    assert server.connections == 1
    assert [n for n, _, _ in server.requests] == [1] * 5
    assert json.loads(server.requests[0][2]) == {
        "worker": "w",
        "worker_id": api._config.worker_id,
        "max_activities": 3,
    }


@pytest.mark.parametrize("close_seen", [True, False], ids=["close-seen-while-idle", "close-races-the-send"])
async def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error(
    monkeypatch: pytest.MonkeyPatch, close_seen: bool
) -> None:
    # The server answers, then closes every connection after its first request (a short
    # keep-alive timeout): the next call finds its idle connection closed and uses a new one.
    # When the close arrives only after the idle check (the race), the send or the first read
    # fails on the old connection and the request is sent again on a new one.
    if not close_seen:
        monkeypatch.setattr(_direct._Connection, "alive", lambda self: True)

    async def answer_then_close(request: h11.Request, body: bytes, stream: trio.SocketStream) -> bool:
        await reply({"ok": True})(request, body, stream)
        return False

    server = Server(answer_then_close)
    transport = WorkerTransport(limits=httpx.Limits(max_keepalive_connections=4))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        for _ in range(3):
            response = await transport.handle_async_request(request(server.port))
            assert response.json() == {"ok": True}
            await trio.sleep(0.05)  # let the server's close arrive
        await transport.aclose()
        nursery.cancel_scope.cancel()
    assert server.connections == 3
    assert len(server.requests) == 3  # each request reached the server exactly once


async def test_connection_close_answers_and_chunked_bodies() -> None:
    server = Server(reply({"items": list(range(50))}, close=True, chunked=True))
    transport = WorkerTransport(limits=httpx.Limits(max_keepalive_connections=4))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        for _ in range(2):
            response = await transport.handle_async_request(request(server.port))
            assert response.status_code == 200
            assert response.json() == {"items": list(range(50))}
            assert response.http_version == "HTTP/1.1"
        await transport.aclose()
        nursery.cancel_scope.cancel()
    assert server.connections == 2  # "Connection: close" is honoured: no reuse


async def test_a_silent_server_is_a_read_timeout_and_the_connection_is_closed(autojump_clock: Any) -> None:
    async def silent(request: h11.Request, body: bytes, stream: trio.SocketStream) -> bool:
        await trio.sleep_forever()
        return False  # pragma: no cover

    server = Server(silent)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        async with client(server.port, request_timeout=5.0) as api:
            with pytest.raises(httpx.ReadTimeout):
                await api.poll(1)
        nursery.cancel_scope.cancel()
    assert len(server.requests) == 1  # a read timeout is not retried by the transport


async def test_cancelling_a_call_closes_its_connection() -> None:
    got_request, client_gone = trio.Event(), trio.Event()

    async def stall(request: h11.Request, body: bytes, stream: trio.SocketStream) -> bool:
        got_request.set()
        # Wait for the client to go away: the read sees the connection closed.
        assert await stream.receive_some(1) == b""
        client_gone.set()
        return False

    server = Server(stall)
    transport = WorkerTransport(limits=httpx.Limits(max_keepalive_connections=4))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        async with trio.open_nursery() as inner:
            inner.start_soon(transport.handle_async_request, request(server.port))
            await got_request.wait()
            inner.cancel_scope.cancel()
        with trio.fail_after(30):  # a guard far beyond what a correct build needs
            await client_gone.wait()
        await transport.aclose()
        nursery.cancel_scope.cancel()
    assert transport._direct is not None
    assert not any(transport._direct._idle.values())


async def test_a_disconnect_in_the_middle_of_an_answer_is_a_protocol_error() -> None:
    async def half(request: h11.Request, body: bytes, stream: trio.SocketStream) -> bool:
        await stream.send_all(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial')
        return False

    server = Server(half)
    transport = WorkerTransport(limits=httpx.Limits(max_keepalive_connections=4))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.handle_async_request(request(server.port))
        await transport.aclose()
        nursery.cancel_scope.cancel()
    assert len(server.requests) == 1  # the server saw it: no silent retry


async def test_nobody_listening_is_a_connect_error() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening
        transport = WorkerTransport(limits=httpx.Limits(max_keepalive_connections=4))
        with pytest.raises(httpx.ConnectError):
            await transport.handle_async_request(request(port))
        await transport.aclose()


async def test_streamed_requests_still_go_through_httpcore() -> None:
    # An upload (an async body) and a request without the marker take httpcore's path: the
    # direct pool never sees them.
    server = Server(reply({"ok": True}))
    transport = WorkerTransport(limits=httpx.Limits(max_keepalive_connections=4))

    async def body() -> Any:
        yield b"abc"

    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        streamed = httpx.Request(
            "POST", f"http://127.0.0.1:{server.port}/up", content=body(), headers={"Content-Length": "3"}
        )
        response = await transport.handle_async_request(streamed)
        await response.aread()
        await response.aclose()
        assert response.json() == {"ok": True}
        assert transport._direct is not None and not transport._direct._idle
        await transport.aclose()
        nursery.cancel_scope.cancel()
    assert server.requests[0][1:] == ("/up", b"abc")


def raw(data: bytes, *, close: bool = False) -> Answer:
    async def answer(request: h11.Request, received: bytes, stream: trio.SocketStream) -> bool:
        await stream.send_all(data)
        return not close

    return answer


async def test_interim_answers_are_skipped_and_the_connection_kept() -> None:
    payload = b'{"activities":[]}'
    server = Server(
        raw(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
            % (len(payload), payload)
        )
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        async with client(server.port) as api:
            for _ in range(3):
                assert await api.poll(1) == []
        nursery.cancel_scope.cancel()
    assert server.connections == 1


async def test_a_body_that_ends_with_the_connection() -> None:
    # No Content-Length, no chunking: the body is what comes before the server closes.
    server = Server(raw(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"activities": []}', close=True))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        async with client(server.port) as api:
            for _ in range(2):
                assert await api.poll(1) == []
        nursery.cancel_scope.cancel()
    assert server.connections == 2


async def test_bytes_after_the_answer_retire_the_connection() -> None:
    # An answer followed by junk (or a second, unasked answer): the first is the reply, and the
    # connection, in an unknown state, is not reused.
    for extra in (b"garbage garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"):
        server = Server(raw(b'HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n{"activities": []}' + extra))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            async with client(server.port) as api:
                for _ in range(2):
                    assert await api.poll(1) == []
            nursery.cancel_scope.cancel()
        assert server.connections == 2


async def test_a_malformed_answer_is_a_protocol_error() -> None:
    server = Server(raw(b"HTTP/1.1 abc\r\n\r\n", close=True))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        async with client(server.port) as api:
            with pytest.raises(httpx.RemoteProtocolError):
                await api.poll(1)
        nursery.cancel_scope.cancel()


async def test_errors_carry_the_servers_code_and_message() -> None:
    body = json.dumps({"error": {"code": "NOPE", "message": "not yours"}}).encode()
    server = Server(raw(b"HTTP/1.1 409 Conflict\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        async with client(server.port) as api:
            with pytest.raises(LeaseLostError) as caught:
                await api.heartbeat("a1")
        nursery.cancel_scope.cancel()
    assert (caught.value.status, caught.value.code, caught.value.message) == (409, "NOPE", "not yours")


async def test_a_cancelled_caller_sends_nothing() -> None:
    server = Server(reply({"activities": []}))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        async with client(server.port) as api:
            assert await api.poll(1) == []  # a kept-alive connection now exists
            with trio.CancelScope() as scope:
                scope.cancel()
                await api.poll(1)
        await trio.sleep(0.2)  # anything sent would have arrived
        nursery.cancel_scope.cancel()
    assert len(server.requests) == 1


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (made by the openssl command, if there is one)."""
    import shutil
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a certificate")
    directory = tmp_path_factory.mktemp("tls")
    key, cert = str(directory / "key.pem"), str(directory / "cert.pem")
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


async def test_tls_connections_are_kept_alive_too(certificate: tuple[str, str]) -> None:
    import ssl

    key, cert = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=cert)
    server = Server(reply({"n": 1}))

    async def handle(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, server_context, server_side=True)
        await server.handle(tls)  # type: ignore[arg-type]

    pool = _direct.DirectPool(ssl_context=client_context, max_idle=4, keepalive_expiry=5.0)
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        data = b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}"
        for _ in range(3):
            answer = await pool.call((b"https", b"127.0.0.1", port), data, 10.0, 10.0)
            assert (answer.status, json.loads(answer.content)) == (200, {"n": 1})
        await pool.aclose()
        nursery.cancel_scope.cancel()
    assert server.connections == 1
    assert [body for _, _, body in server.requests] == [b"{}"] * 3


async def test_an_answer_larger_than_one_read_arrives_whole() -> None:
    big = {"items": list(range(100_000))}  # ~600 KB: many reads
    server = Server(reply(big))
    transport = WorkerTransport(limits=httpx.Limits(max_keepalive_connections=4))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        for _ in range(2):
            response = await transport.handle_async_request(request(server.port))
            assert response.json() == big
        await transport.aclose()
        nursery.cancel_scope.cancel()
    assert server.connections == 1
