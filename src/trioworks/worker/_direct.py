"""Small buffered HTTP/1.1 exchanges on kept-alive Trio streams: the worker's API calls.

Poll, heartbeat, complete, fail and the token fetch each send a few hundred bytes of JSON and
read the whole (small) answer. Profiled on the 2-CPU bench machine, httpcore's general pool
around them (request-to-connection assignment, expiry checks, locks, per-request events and
stream wrappers) was about half of the worker's CPU per no-op activity. Here an exchange takes
an idle connection (or opens one), writes the request in one ``send``, lets h11 parse the
answer, and returns the connection for reuse: nothing else. Streamed uploads and downloads,
and every request through a proxy, still go through httpcore (``_transport.py``).

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
never saw that request.
"""

from __future__ import annotations

import ssl
from typing import Any

import h11
import httpx
import trio

__all__ = ["BUFFERED", "DirectPool"]

BUFFERED = "trioworks.buffered"
"""Request extension: the caller reads the whole response at once (a small JSON exchange)."""

_Key = tuple[bytes, bytes, int]
_READ_SIZE = 64 * 1024


class _Stale(Exception):
    """A kept-alive connection turned out closed before the server saw the request."""


class _Connection:
    def __init__(self, stream: trio.abc.Stream, socket: Any) -> None:
        self.stream = stream
        self.socket = socket
        self.http = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0
        self.used = False

    def alive(self) -> bool:
        # An idle HTTP/1.1 connection has nothing to read: readable means the server closed it.
        try:
            return not self.socket.is_readable()
        except OSError:
            return False

    async def exchange(self, request: httpx.Request, body: bytes) -> httpx.Response:
        http = self.http
        head = h11.Request(method=request.method, target=request.url.raw_path, headers=request.headers.raw)
        data = http.send(head) or b""
        if body:
            data += http.send(h11.Data(data=body)) or b""
        data += http.send(h11.EndOfMessage()) or b""
        received = False
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if self.used:
                raise _Stale from exc
            raise httpx.WriteError(f"writing the request failed: {exc}") from exc
        status, reason = 0, b""
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        while True:
            try:
                event = http.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if event is h11.NEED_DATA:
                try:
                    chunk = await self.stream.receive_some(_READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    if self.used and not received:
                        raise _Stale from exc
                    raise httpx.ReadError(f"reading the response failed: {exc}") from exc
                if not chunk and self.used and not received:
                    raise _Stale
                received = received or bool(chunk)
                http.receive_data(bytes(chunk))
            elif isinstance(event, h11.Response):
                status, headers, reason = event.status_code, list(event.headers), event.reason
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("Server disconnected without sending a complete response.")
            # h11.InformationalResponse (1xx): nothing to do; the final response follows.
        return httpx.Response(
            status,
            headers=headers,
            content=b"".join(chunks),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    def reusable(self) -> bool:
        if self.http.our_state is h11.DONE and self.http.their_state is h11.DONE:
            self.http.start_next_cycle()
            self.used = True
            return True
        return False


class DirectPool:
    """Kept-alive connections per (scheme, host, port) for :data:`BUFFERED` requests."""

    def __init__(self, *, ssl_context: ssl.SSLContext, max_idle: int, keepalive_expiry: float | None) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._expiry = keepalive_expiry
        self._idle: dict[_Key, list[_Connection]] = {}
        self._closed = False

    def _take(self, key: _Key) -> _Connection | None:
        idle = self._idle.get(key)
        now = trio.current_time()
        while idle:
            conn = idle.pop()
            fresh = self._expiry is None or now - conn.idle_since < self._expiry
            if fresh and conn.alive():
                return conn
            _close_now(conn)
        return None

    def _put(self, key: _Key, conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if self._closed or len(idle) >= self._max_idle:
            _close_now(conn)
            return
        conn.idle_since = trio.current_time()
        idle.append(conn)

    async def _connect(self, key: _Key, limit: float | None) -> _Connection:
        scheme, host, port = key
        hostname = host.decode("ascii")
        with trio.move_on_after(limit if limit is not None else float("inf")) as scope:
            try:
                sock = await trio.open_tcp_stream(hostname, port)  # TCP_NODELAY set by Trio
                stream: trio.abc.Stream = sock
                if scheme == b"https":
                    stream = trio.SSLStream(sock, self._ssl_context, server_hostname=hostname)
                    await stream.do_handshake()
            except (OSError, trio.BrokenResourceError) as exc:
                raise httpx.ConnectError(f"connecting to {hostname}:{port} failed: {exc}") from exc
            return _Connection(stream, sock.socket)
        assert scope.cancelled_caught
        raise httpx.ConnectTimeout(f"connecting to {hostname}:{port} took over {limit} s")

    async def exchange(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` (its body already in memory) and read the whole response."""
        url = request.url
        key = (url.raw_scheme, url.raw_host, url.port or (443 if url.raw_scheme == b"https" else 80))
        timeouts = request.extensions.get("timeout") or {}
        body = request.content
        for attempt in (1, 2):
            conn = self._take(key) if attempt == 1 else None
            if conn is None:
                conn = await self._connect(key, timeouts.get("connect"))
            try:
                response = await self._timed(conn, request, body, timeouts)
            except _Stale:
                _close_now(conn)
                continue
            except BaseException:
                _close_now(conn)
                raise
            if conn.reusable():
                self._put(key, conn)
            else:
                _close_now(conn)
            return response
        raise AssertionError("unreachable: a new connection is never stale")  # pragma: no cover

    async def _timed(
        self, conn: _Connection, request: httpx.Request, body: bytes, timeouts: dict[str, Any]
    ) -> httpx.Response:
        limits = [t for t in (timeouts.get("read"), timeouts.get("write")) if t is not None]
        if not limits:
            return await conn.exchange(request, body)
        with trio.move_on_after(max(limits)) as scope:
            return await conn.exchange(request, body)
        assert scope.cancelled_caught
        raise httpx.ReadTimeout(f"no complete response within {max(limits)} s")

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                _close_now(conn)
        self._idle.clear()
        await trio.lowlevel.checkpoint()


def _close_now(conn: _Connection) -> None:
    """Close without waiting (no TLS close_notify: the peer sees the TCP close)."""
    try:
        conn.socket.close()
    except OSError:
        pass
