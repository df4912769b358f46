"""Small buffered HTTP/1.1 exchanges on kept-alive connections: the worker's API calls.

Poll, heartbeat, complete, fail and the token fetch each send a few hundred bytes of JSON and
read the whole (small) answer. Profiled on the 2-CPU bench machine, httpcore's general pool
around them was about half of the worker's CPU per no-op activity, and after that was gone,
building :class:`httpx.Request` / :class:`httpx.Response` objects and h11's pure-Python state
machine were about half of what was left. Here an exchange takes an idle connection (or opens
one), writes a request head the caller built as bytes plus its body in one ``send``, lets
``httptools`` (llhttp, in C) parse the answer, and returns the connection for reuse: nothing
else. On a plain TCP connection the socket is driven directly (``send``, then
:func:`trio.lowlevel.wait_readable` and ``recv``): one system call each way and one trip
through the scheduler per exchange. TLS connections go through :class:`trio.SSLStream`.
Streamed uploads and downloads, and every request through a proxy, still go through httpcore
(``_transport.py``).

Entry points: :meth:`DirectPool.call` (a pre-built head and body; what
:class:`~trioworks.worker._client.WorkerApiClient` uses) and :meth:`DirectPool.exchange` (an
:class:`httpx.Request`, answered with an :class:`httpx.Response`; what
:class:`~trioworks.worker._transport.WorkerTransport` uses for requests marked :data:`BUFFERED`).

Resource handling: a connection is reused only after a complete exchange that both sides may
continue; a cancelled or failed exchange closes its connection at once. Idle connections
expire after ``keepalive_expiry`` and are dropped when the server has closed them (the socket
turns readable while idle). :meth:`DirectPool.aclose` closes the idle ones; a connection in
use belongs to its exchange.

Error handling: failures raise httpx's exceptions (:class:`httpx.ConnectError`,
``ConnectTimeout``, ``ReadTimeout``, ``WriteError``, ``ReadError``, ``RemoteProtocolError``),
so callers see the same errors as from httpx's own transports. A kept-alive connection that the
server closed while it was idle (the request could not be written, or the answer ended before
its first byte) is retried once on a new connection, as browsers and urllib3 do: the server
never saw that request. A request is never written once the calling task is cancelled.
"""

from __future__ import annotations

import select
import socket
import ssl
from typing import Any

import httptools
import httpx
import trio

__all__ = ["BUFFERED", "DirectPool", "Reply"]

BUFFERED = "trioworks.buffered"
"""Request extension: the caller reads the whole response at once (a small JSON exchange)."""

Key = tuple[bytes, bytes, int]
"""(scheme, host, port) of a connection."""

_READ_SIZE = 64 * 1024
_RECENT = 0.05
"""An idle connection returned this recently (seconds) is taken without the liveness check."""


class Reply:
    """A whole answer: status, reason phrase, raw headers (as received), body."""

    __slots__ = ("content", "headers", "reason", "status")

    def __init__(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], content: bytes
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content = content


class _Stale(Exception):
    """A kept-alive connection turned out closed before the server saw the request."""


class _Answer:
    """httptools callbacks for one response (1xx interim answers are skipped)."""

    __slots__ = ("chunks", "done", "extra", "headers", "keep_alive", "parser", "reason", "started", "status")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.reason = b""
        self.status = 0
        self.started = False
        self.done = False
        self.keep_alive = False
        self.extra = False

    def on_message_begin(self) -> None:
        if self.done:  # bytes after the answer: the connection is not in a known state
            self.extra = True

    def on_status(self, status: bytes) -> None:
        if not self.done:
            self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.done:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if not self.done:
            self.started = True

    def on_body(self, body: bytes) -> None:
        if not self.done:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.done:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # interim answer: the final one follows
            self.headers, self.chunks, self.reason, self.started = [], [], b"", False
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        self.done = True

    def ends_at_close(self) -> bool:
        """A started answer with neither a length nor chunked framing: its body ends with the connection."""
        if not self.started:
            return False
        status = self.parser.get_status_code()
        if status in (204, 304) or status < 200:
            return False
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def reply(self) -> Reply:
        content = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        return Reply(self.status, self.reason, self.headers, content)


class _Connection:
    __slots__ = ("idle_since", "sock", "stream", "used")

    def __init__(self, sock: Any, stream: trio.abc.Stream | None) -> None:
        self.sock = sock
        """A plain non-blocking :class:`socket.socket` (``stream`` is None), or the Trio socket
        under ``stream`` (TLS)."""
        self.stream = stream
        self.idle_since = 0.0
        self.used = False
        """Whether the last exchange completed and both sides may continue: an idle connection
        was used before, so its failure before the first byte of an answer means it was stale."""

    def alive(self) -> bool:
        # An idle HTTP/1.1 connection has nothing to read: readable means the server closed it.
        try:
            readable, _, _ = select.select((self.sock,), (), (), 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        """Close without waiting (no TLS close_notify: the peer sees the TCP close)."""
        try:
            if self.stream is None:
                trio.lowlevel.notify_closing(self.sock)
            self.sock.close()
        except OSError:
            pass

    async def _send(self, data: bytes) -> None:
        if self.stream is not None:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise OSError(str(exc)) from exc
            return
        sock, view = self.sock, memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
                continue
            view = view[sent:]

    async def _receive(self, wait_first: bool) -> bytes:
        if self.stream is not None:
            try:
                return bytes(await self.stream.receive_some(_READ_SIZE))
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise OSError(str(exc)) from exc
        sock = self.sock
        # Right after the request the answer is not there yet: wait first, then read. The rest of
        # a long answer is usually there already: read first.
        if wait_first:
            await trio.lowlevel.wait_readable(sock)
        while True:
            try:
                data: bytes = sock.recv(_READ_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
                continue
            return data

    async def exchange(self, data: bytes) -> Reply:
        """Write ``data`` (a whole request), read the whole answer."""
        # Nothing is written for a task that is already cancelled (the plain path's first
        # checkpoint comes only after the write).
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            await self._send(data)
        except OSError as exc:
            if self.used:
                raise _Stale from exc
            raise httpx.WriteError(f"writing the request failed: {exc}") from exc
        answer = _Answer()
        received = False
        while not answer.done:
            try:
                chunk = await self._receive(not received)
            except OSError as exc:
                if self.used and not received:
                    raise _Stale from exc
                raise httpx.ReadError(f"reading the response failed: {exc}") from exc
            if not chunk:
                if self.used and not received:
                    raise _Stale
                if answer.ends_at_close():
                    answer.done = True
                    break
                raise httpx.RemoteProtocolError("Server disconnected without sending a complete response.")
            received = True
            try:
                answer.parser.feed_data(chunk)
            except httptools.HttpParserUpgrade:
                raise httpx.RemoteProtocolError("the server switched protocols") from None
            except httptools.HttpParserError as exc:
                if not answer.done:
                    raise httpx.RemoteProtocolError(f"malformed response: {exc}") from exc
                answer.extra = True  # junk after a complete answer
        self.used = True
        if not answer.keep_alive or answer.extra:
            self.used = False  # (not reusable: the pool closes it)
        return answer.reply()


class DirectPool:
    """Kept-alive connections per (scheme, host, port) for small buffered exchanges."""

    def __init__(self, *, ssl_context: ssl.SSLContext, max_idle: int, keepalive_expiry: float | None) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._expiry = keepalive_expiry
        self._idle: dict[Key, list[_Connection]] = {}
        self._closed = False

    def _take(self, key: Key) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = trio.current_time()
        while idle:
            conn = idle.pop()
            since = now - conn.idle_since
            # Idle for under 50 ms (a busy worker's usual case): skip the system call. A close
            # that raced it is still caught (the exchange sees it before the first byte).
            fresh = self._expiry is None or since < self._expiry
            if fresh and (since < _RECENT or conn.alive()):
                return conn
            conn.close()
        return None

    def _put(self, key: Key, conn: _Connection) -> None:
        idle = self._idle.get(key)
        if idle is None:
            idle = self._idle[key] = []
        if self._closed or len(idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = trio.current_time()
        idle.append(conn)

    async def _connect(self, key: Key, limit: float | None) -> _Connection:
        scheme, host, port = key
        hostname = host.decode("ascii")
        with trio.move_on_after(limit if limit is not None else float("inf")) as scope:
            try:
                stream = await trio.open_tcp_stream(hostname, port)  # TCP_NODELAY set by Trio
                if scheme == b"https":
                    tls = trio.SSLStream(stream, self._ssl_context, server_hostname=hostname)
                    try:
                        await tls.do_handshake()
                    except BaseException:
                        stream.socket.close()
                        raise
                    return _Connection(stream.socket, tls)
            except (OSError, trio.BrokenResourceError) as exc:
                raise httpx.ConnectError(f"connecting to {hostname}:{port} failed: {exc}") from exc
            # Plain TCP: the socket is driven directly (see the module's docstring).
            trio_socket = stream.socket
            sock = socket.socket(
                trio_socket.family, trio_socket.type, trio_socket.proto, trio_socket.detach()
            )
            sock.setblocking(False)
            return _Connection(sock, None)
        assert scope.cancelled_caught
        raise httpx.ConnectTimeout(f"connecting to {hostname}:{port} took over {limit} s")

    async def call(self, key: Key, data: bytes, limit: float | None, connect_limit: float | None) -> Reply:
        """Send ``data`` (a whole request: head and body) to ``key``; read the whole answer.

        ``limit`` (seconds) bounds the write and the read together; ``connect_limit`` a new connection.
        """
        for attempt in (1, 2):
            conn = self._take(key) if attempt == 1 else None
            if conn is None:
                conn = await self._connect(key, connect_limit)
            try:
                # An enclosing deadline that comes first (a report's, with the default settings)
                # makes this one's cancel scope useless: it would never fire.
                if limit is None or trio.current_effective_deadline() <= trio.current_time() + limit:
                    reply = await conn.exchange(data)
                else:
                    with trio.move_on_after(limit) as scope:
                        reply = await conn.exchange(data)
                    if scope.cancelled_caught:
                        raise httpx.ReadTimeout(f"no complete response within {limit} s")
            except _Stale:
                conn.close()
                continue
            except BaseException:
                conn.close()
                raise
            if conn.used:
                self._put(key, conn)
            else:
                conn.close()
            return reply
        raise AssertionError("unreachable: a new connection is never stale")  # pragma: no cover

    async def exchange(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` (its body already in memory) and read the whole response."""
        url = request.url
        key = (url.raw_scheme, url.raw_host, url.port or (443 if url.raw_scheme == b"https" else 80))
        timeouts = request.extensions.get("timeout") or {}
        limits = [t for t in (timeouts.get("read"), timeouts.get("write")) if t is not None]
        lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), url.raw_path)]
        lines += [b"%s: %s\r\n" % pair for pair in request.headers.raw]
        data = b"".join(lines) + b"\r\n" + request.content
        reply = await self.call(key, data, max(limits) if limits else None, timeouts.get("connect"))
        return httpx.Response(
            reply.status,
            headers=reply.headers,
            content=reply.content,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reply.reason},
        )

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        await trio.lowlevel.checkpoint()
