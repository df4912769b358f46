"""The server's HTTP/1.1 front (``serve_http`` + ``asgi_responder``) on real sockets, and the
connection state machine on memory streams under hypothesis (any split of the bytes, pipelining,
chunked bodies, garbage)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httptools
import httpx
import pytest
import trio
import trio.lowlevel
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from trioworks.server.http import asgi_responder, serve_http

# -- the app ----------------------------------------------------------------------------------
SEEN: dict[str, Any] = {}


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {"size": len(body), "sha": hashlib.sha256(body).hexdigest(), "method": request.method}
    )


async def stream_in(request: Request) -> Response:
    """Reads the body piece by piece; records how it ended."""
    size = 0
    SEEN["upload"] = "reading"
    if "reading" in SEEN:
        SEEN["reading"].set()
    try:
        async for chunk in request.stream():
            size += len(chunk)
    except ClientDisconnect:
        SEEN["upload"] = "disconnected"
        raise
    finally:
        if "ended" in SEEN:
            SEEN["ended"].set()
    SEEN["upload"] = "done"
    return JSONResponse({"size": size})


async def stream_out(request: Request) -> Response:
    n = int(request.query_params["n"])

    async def parts() -> AsyncIterator[bytes]:
        for i in range(n):
            yield bytes([i % 256]) * 1000

    return StreamingResponse(parts(), media_type="application/octet-stream")


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def wait(request: Request) -> Response:
    SEEN["waiting"].set()
    try:
        await SEEN["release"].wait()
    except trio.Cancelled:
        SEEN["wait"] = "cancelled"
        raise
    return PlainTextResponse("released")


async def boom(request: Request) -> Response:
    raise RuntimeError("boom")


APP = Starlette(
    routes=[
        Route("/echo", echo, methods=["GET", "POST"]),
        Route("/upload", stream_in, methods=["POST"]),
        Route("/download", stream_out),
        Route("/hello", hello),
        Route("/wait", wait),
        Route("/boom", boom),
    ]
)


@asynccontextmanager
async def front(**options: Any) -> AsyncIterator[tuple[str, trio.Nursery]]:
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            functools.partial(serve_http, asgi_responder(APP), "127.0.0.1", 0, **options)
        )
        yield urls[0], nursery
        nursery.cancel_scope.cancel()


async def connect(url: str) -> trio.SocketStream:
    host, port = url.removeprefix("http://").split(":")
    return await trio.open_tcp_stream(host, int(port))


class Responses:
    """HTTP responses parsed from a byte stream (httptools), in order."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[dict[str, Any]] = []
        self.current: dict[str, Any] = {}

    def on_message_begin(self) -> None:
        self.current = {"headers": {}, "body": b""}

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current["headers"][name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        self.current["status"] = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.current["body"] += body

    def on_message_complete(self) -> None:
        self.done.append(self.current)

    async def read(self, stream: trio.abc.ReceiveStream, count: int) -> list[dict[str, Any]]:
        """Read until ``count`` responses are complete, or the stream ends."""
        while len(self.done) < count:
            data = await stream.receive_some(65536)
            if not data:
                break
            self.parser.feed_data(data)
        return self.done


async def exchange(url: str, raw: bytes, count: int) -> list[dict[str, Any]]:
    stream = await connect(url)
    async with stream:
        await stream.send_all(raw)
        with trio.fail_after(10):
            return await Responses().read(stream, count)


def get(path: str, *extra: str) -> bytes:
    return ("\r\n".join([f"GET {path} HTTP/1.1", "Host: x", *extra]) + "\r\n\r\n").encode()


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = "\r\n".join([f"POST {path} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}", *extra])
    return head.encode() + b"\r\n\r\n" + body


def chunked(path: str, parts: list[bytes]) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + body


# -- real sockets -----------------------------------------------------------------------------
async def test_keep_alive_and_pipelining_answer_in_order() -> None:
    async with front() as (url, _):
        raw = get("/hello") + post("/echo", b"abc") + get("/echo") + get("/hello", "Connection: close")
        replies = await exchange(url, raw, 5)
    assert [r["status"] for r in replies] == [200, 200, 200, 200]
    assert replies[0]["body"] == b"hello" and replies[1]["body"].startswith(b'{"size":3,')
    assert b'"method":"GET"' in replies[2]["body"]
    assert replies[3]["headers"]["connection"] == "close" and "connection" not in replies[0]["headers"]


@pytest.mark.parametrize(
    "last",
    [post("/echo", b"abc", "Connection: close"), b"POST /echo HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"],
    ids=["connection-close", "http-1.0"],
)
async def test_what_follows_a_last_request_in_the_same_packet_is_not_read(last: bytes) -> None:
    # The requests up to the one that ends the connection are served; the bytes after it (here a
    # further request and garbage, sent in the same write) are neither answered nor an error.
    async with front() as (url, _):
        replies = await exchange(url, get("/hello") + last + get("/hello") + b"\x00garbage", 4)
    assert [r["status"] for r in replies] == [200, 200]
    assert replies[1]["body"].startswith(b'{"size":3,') and replies[1]["headers"]["connection"] == "close"


async def test_an_absolute_target_is_its_path_and_query() -> None:
    async with front() as (url, _):
        (reply,) = await exchange(url, get("http://example.com/hello?x=1"), 1)
        (missing,) = await exchange(url, get("http://example.com/nowhere?x=1"), 1)
    assert reply["body"] == b"hello" and missing["status"] == 404


async def test_chunked_request_bodies() -> None:
    parts = [b"a" * 10, b"b" * 70_000, b"", b"c"]
    async with front() as (url, _):
        (reply,) = await exchange(url, chunked("/echo", parts), 1)
    whole = b"".join(parts)
    assert reply["status"] == 200
    assert reply["body"] == b'{"size":%d,"sha":"%s","method":"POST"}' % (
        len(whole),
        hashlib.sha256(whole).hexdigest().encode(),
    )


async def test_expect_100_continue_is_answered_when_the_body_is_read() -> None:
    async with front() as (url, _):
        stream = await connect(url)
        async with stream:
            await stream.send_all(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
            )
            with trio.fail_after(10):
                interim = await stream.receive_some()
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            await stream.send_all(b"hi")
            with trio.fail_after(10):
                (reply,) = await Responses().read(stream, 1)
    assert reply["status"] == 200 and b'"size":2' in reply["body"]


async def test_head_has_the_headers_and_no_body() -> None:
    async with front() as (url, _):
        stream = await connect(url)
        async with stream:
            await stream.send_all(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n" + get("/hello"))
            data = b""
            with trio.fail_after(10):
                while data.count(b"HTTP/1.1 ") < 2 or not data.endswith(b"hello"):
                    data += await stream.receive_some()
    first, second = data.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 OK") and b"content-length: 5" in first and first.endswith(b"\r\n\r\n")
    assert second.endswith(b"\r\n\r\nhello")


async def test_streamed_response_and_upload() -> None:
    async with front() as (url, _), httpx.AsyncClient(base_url=url) as client:
        reply = await client.get("/download", params={"n": 300})
        assert reply.status_code == 200 and len(reply.content) == 300_000
        assert reply.headers["transfer-encoding"] == "chunked"
        assert reply.content[:1000] == b"\x00" * 1000 and reply.content[-1000:] == bytes([299 % 256]) * 1000

        async def body() -> AsyncIterator[bytes]:
            for _ in range(50):
                yield b"z" * 10_000

        reply = await client.post("/upload", content=body())
        assert reply.json() == {"size": 500_000} and SEEN["upload"] == "done"


async def test_bad_requests_get_4xx_and_the_server_goes_on() -> None:
    async with front(max_head=4096, max_body=100) as (url, _):
        cases = [
            (b"\x00\xff garbage\r\n\r\n", 400),
            (b"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
            (b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (get("/" + "a" * 5000), 431),
            (post("/echo", b"x" * 101), 413),
        ]
        for raw, status in cases:
            (reply,) = await exchange(url, raw, 1)
            assert reply["status"] == status, raw[:40]
            assert reply["headers"]["connection"] == "close"
            assert reply["body"].startswith(b'{"error":{"code":"BAD_REQUEST","message":')
        (reply,) = await exchange(url, get("/hello"), 1)
        assert reply["body"] == b"hello"


async def test_a_failing_app_gets_a_500_and_the_connection_goes_on() -> None:
    async with front() as (url, _):
        boom, hello = await exchange(url, get("/boom") + get("/hello"), 2)
    assert boom["status"] == 500 and hello["body"] == b"hello"


async def test_hanging_up_mid_body_ends_the_handler_and_not_the_server() -> None:
    async with front() as (url, _):
        for _ in range(20):  # hypercorn's send/EOF race took the server down here: try it often
            SEEN.update(upload=None, reading=trio.Event(), ended=trio.Event())
            stream = await connect(url)
            await stream.send_all(
                b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000
            )
            with trio.fail_after(10):
                await SEEN["reading"].wait()
            await stream.aclose()
            with trio.fail_after(10):
                await SEEN["ended"].wait()
            assert SEEN["upload"] == "disconnected"
        (reply,) = await exchange(url, get("/hello"), 1)
    assert reply["body"] == b"hello"


async def test_shutdown_lets_a_request_in_flight_finish_and_closes_idle_connections() -> None:
    SEEN.update(waiting=trio.Event(), release=trio.Event(), wait=None)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            functools.partial(serve_http, asgi_responder(APP), "127.0.0.1", 0, grace=30)
        )
        idle, busy = await connect(urls[0]), await connect(urls[0])
        await idle.send_all(get("/hello"))
        assert (await Responses().read(idle, 1))[0]["body"] == b"hello"
        await busy.send_all(get("/wait"))
        await SEEN["waiting"].wait()
        nursery.cancel_scope.cancel()  # the server's caller is cancelled: shutdown starts
        with trio.CancelScope(shield=True), trio.fail_after(10):
            assert await idle.receive_some() == b""  # an idle connection is closed at once
            SEEN["release"].set()
            (reply,) = await Responses().read(busy, 1)
            assert reply["body"] == b"released" and reply["headers"]["connection"] == "close"
            assert await busy.receive_some() == b""
    assert SEEN["wait"] is None


async def test_shutdown_cancels_what_outlives_the_grace_period() -> None:
    SEEN.update(waiting=trio.Event(), release=trio.Event(), wait=None)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            functools.partial(serve_http, asgi_responder(APP), "127.0.0.1", 0, grace=0)
        )
        stream = await connect(urls[0])
        await stream.send_all(get("/wait"))
        await SEEN["waiting"].wait()
        nursery.cancel_scope.cancel()
    assert SEEN["wait"] == "cancelled"
    with trio.fail_after(10):
        assert await stream.receive_some() == b""  # closed without an answer
    with pytest.raises(OSError):  # nothing listens any more
        await connect(urls[0])


# -- memory streams, any split of the bytes ---------------------------------------------------
async def serve_memory(raw_pieces: list[bytes], count: int, **options: Any) -> list[dict[str, Any]]:
    """Serve one connection over a memory stream: send ``raw_pieces`` one by one (then EOF),
    read responses until ``count`` or the end."""
    from trioworks.server.http._front import _Front

    client, server = trio.testing.memory_stream_pair()
    options = {
        "grace": 1,
        "idle_timeout": 60,
        "head_timeout": 60,
        "max_head": 8192,
        "max_body": None,
        **options,
    }
    connection = _Front(asgi_responder(APP), **options)
    responses = Responses()

    async def send() -> None:
        try:
            for piece in raw_pieces:
                await client.send_all(piece)
                await trio.lowlevel.checkpoint()
            await client.send_eof()
        except trio.BrokenResourceError:
            pass  # the server answered (400) and closed before reading everything

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.connection, server)
        nursery.start_soon(send)
        with trio.fail_after(10):
            return await responses.read(client, count)


def splits(data: bytes) -> st.SearchStrategy[list[bytes]]:
    return st.lists(st.integers(0, len(data)), max_size=8).map(
        lambda cuts: [data[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True)]
    )


REQUEST = st.one_of(
    st.builds(lambda body: ("sized", body), st.binary(max_size=300)),
    st.builds(lambda parts: ("chunked", parts), st.lists(st.binary(max_size=100), max_size=4)),
    st.just(("get", b"")),
)


@given(requests=st.lists(REQUEST, min_size=1, max_size=5), data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_pipelined_requests_in_any_split_get_their_answers_in_order(requests: list[Any], data: Any) -> None:
    raw = b""
    expected = []
    for kind, body in requests:
        if kind == "sized":
            raw += post("/echo", body)
        elif kind == "chunked":
            raw += chunked("/echo", body)
            body = b"".join(body)
        else:
            raw += get("/echo")
        expected.append(hashlib.sha256(body).hexdigest())
    pieces = data.draw(splits(raw))
    replies = trio.run(serve_memory, pieces, len(requests))
    assert [r["status"] for r in replies] == [200] * len(requests)
    assert [r["body"].split(b'"sha":"')[1][:64].decode() for r in replies] == expected


@given(garbage=st.binary(min_size=1, max_size=200), data=st.data())
@settings(max_examples=60, deadline=None)
def test_garbage_ends_the_connection_with_a_400_or_nothing(garbage: bytes, data: Any) -> None:
    replies = trio.run(serve_memory, data.draw(splits(garbage)), 3)
    assert all(r["status"] in (200, 400, 404, 405, 413, 431, 500) for r in replies)
