"""HTTP/1.1 over one Trio stream: request heads and bodies in (parsed by httptools), responses out.

One :class:`H1Connection` per client connection, used by one task at a time (the connection's
task in :mod:`._front`, which runs each request's handler itself): reads and writes never
overlap, so no send can race another send or the close (the race hypercorn 0.18 had, see
``docs/server.md``).

Reading is on demand: the socket is read only when the current request needs more of its body,
or the next request's head is wanted. A read is parsed whole, so the events of pipelined
requests wait in a queue (at most one read's worth) and are served in order, one at a time.

Limits: a request head (request line and headers) over ``max_head`` bytes is refused (431);
a body is capped by whoever reads it (the handlers, :data:`~.Context.max_body_bytes`) and by
``max_body`` here (413). Bodies may be sized (``Content-Length``) or chunked; a client sending
``Expect: 100-continue`` gets its ``100 Continue`` when the body is first read (so a request
refused before reading its body never makes the client send it).
"""

from __future__ import annotations

import email.utils
import http
import json
import time
from collections import deque
from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote

import attrs
import httptools
import trio

__all__ = ["ClientGone", "H1Connection", "ProtocolError", "RequestHead"]

READ_SIZE: Final = 64 * 1024
MAX_HEAD: Final = 64 * 1024
DISCARD: Final = 64 * 1024  # most unread body bytes skipped to keep a connection after a response
_END: Final = None  # a queued event: the current message's end
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_REASONS = {s.value: s.phrase.encode("latin-1") for s in http.HTTPStatus}
_NO_BODY = frozenset({204, 304})


class ProtocolError(Exception):
    """The request is not HTTP/1.1 we can serve: answer ``status`` (if nothing was sent) and close."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ClientGone(Exception):
    """The client closed (or reset) its connection in the middle of a request."""


@attrs.define
class RequestHead:
    """The request line and headers of one request. ``headers`` names are lower case."""

    method: str
    path: str  # percent-decoded, as an ASGI scope's
    raw_path: bytes
    query: bytes
    headers: list[tuple[bytes, bytes]]
    http_version: str
    keep_alive: bool
    expect_continue: bool


_date: tuple[int, bytes] = (0, b"")


def _date_header() -> bytes:
    """``date: ...\\r\\n`` for this second (formatted once a second)."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, b"date: " + email.utils.formatdate(now, usegmt=True).encode("ascii") + b"\r\n")
    return _date[1]


class H1Connection:
    """One HTTP/1.1 client connection: :meth:`next_head`, then the body with :meth:`read`, then
    one response (:meth:`respond`, or :meth:`start` + :meth:`write` + :meth:`end`); repeat while
    :meth:`reusable`.

    Not safe for concurrent use: one task reads and writes (see the module docstring).
    Every method that awaits checkpoints; a cancelled read loses nothing (trio's
    ``receive_some``), a cancelled write leaves the connection unusable (``closing``).
    """

    def __init__(
        self,
        stream: trio.abc.HalfCloseableStream,
        *,
        max_head: int = MAX_HEAD,
        max_body: int | None = None,
        idle_timeout: float = 5.0,
        head_timeout: float = 30.0,
    ) -> None:
        self.stream = stream
        self.client: tuple[str, int] | None = None  # the ASGI scope's (host, port) of each end
        self.server: tuple[str, int] | None = None
        sock = getattr(stream, "socket", None)
        if sock is not None:
            try:
                self.client, self.server = tuple(sock.getpeername()[:2]), tuple(sock.getsockname()[:2])
            except OSError:  # already reset
                pass
        self.max_head = max_head
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.head_timeout = head_timeout
        self.closing = False  # no further request on this connection
        self.idle: trio.CancelScope | None = None  # while waiting for a head: cancel to stop waiting
        self._parser = httptools.HttpRequestParser(self)
        self._events: deque[RequestHead | bytes | None] = deque()
        self._in_head = False
        self._head_bytes = 0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._expect = False
        self._keep_alive = True  # of the request being parsed
        self._read_no_more = False  # a request ended the connection: later bytes are not HTTP we read
        # The current request and its response.
        self.head: RequestHead | None = None
        self.body_done = True
        self.body_bytes = 0
        self.started = False  # a response head went out
        self.finished = False  # the whole response went out
        self._continue = False  # a 100 Continue is owed before the body is read
        self._chunked = False
        self._discard = False  # HEAD, 204, 304: no body on the wire

    # -- httptools callbacks (run inside feed_data) -------------------------------------------
    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._expect = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_size + len(self._url) > self.max_head:  # a head that came in one read
            raise ProtocolError(f"request head exceeds {self.max_head} bytes", 431)
        parser = self._parser
        target = self._url
        if b"://" in target and not target.startswith(b"/"):  # absolute form: its path and query
            url = httptools.parse_url(target)
            raw_path, query = url.path or b"/", url.query or b""
        else:
            raw_path, _, query = target.partition(b"?")
        try:
            path = unquote(raw_path.decode("ascii"))
        except UnicodeDecodeError:
            raise ProtocolError("request target is not ASCII") from None
        version = parser.get_http_version()
        self._keep_alive = parser.should_keep_alive()
        self._events.append(
            RequestHead(
                method=parser.get_method().decode("ascii"),
                path=path,
                raw_path=raw_path,
                query=query,
                headers=self._headers,
                http_version=version,
                keep_alive=self._keep_alive,
                expect_continue=self._expect and version == "1.1",
            )
        )

    def on_body(self, body: bytes) -> None:
        self._events.append(body)

    def on_message_complete(self) -> None:
        self._events.append(_END)
        if not self._keep_alive:
            # The client's last request (`Connection: close`, HTTP/1.0): what it sent after
            # is not read (RFC 9112 9.6). llhttp refuses such bytes, and its error must not
            # cost the requests before them their answers.
            self._read_no_more = True

    # -- reading ------------------------------------------------------------------------------
    async def _fill(self) -> bool:
        """Read once and parse it; False at end of stream (or a reset connection)."""
        try:
            data = await self.stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self.closing = True
            return False
        if self._read_no_more:
            return True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Served as a plain request (no protocol switch here); nothing after it is read.
            self._read_no_more = self.closing = True
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            raise cause if isinstance(cause, ProtocolError) else ProtocolError(str(exc)) from None
        except httptools.HttpParserError as exc:
            if self._read_no_more:  # bytes after the last request: dropped (see on_message_complete)
                return True
            raise ProtocolError(f"malformed HTTP request: {exc}") from None
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head:
                raise ProtocolError(f"request head exceeds {self.max_head} bytes", 431)
        return True

    async def next_head(self) -> RequestHead | None:
        """The next request's head; None once the client closed, stayed idle past
        ``idle_timeout`` (or sent a head slower than ``head_timeout``), or :attr:`idle` was
        cancelled. Raises :exc:`ProtocolError` for a malformed head."""
        if self.closing:
            return None
        events = self._events
        with trio.move_on_after(self.idle_timeout) as self.idle:
            while not events:
                began = self._in_head
                if not await self._fill():
                    return None
                if self._in_head and not began:  # a head started: it gets head_timeout in all
                    self.idle.deadline = trio.current_time() + self.head_timeout
        self.idle = None
        if not events:
            self.closing = True
            return None
        head = events.popleft()
        assert isinstance(head, RequestHead), "the previous request's body was not drained"
        self.head = head
        self.body_done = bool(events) and events[0] is _END
        if self.body_done:
            events.popleft()
        self.body_bytes = 0
        self.started = self.finished = self._chunked = False
        self._continue = head.expect_continue and not self.body_done
        self._discard = head.method == "HEAD"
        if not head.keep_alive:
            self.closing = True
        return head

    async def read(self) -> tuple[bytes, bool]:
        """The body received so far that was not read yet, and whether more follows.

        Waits for data if none is buffered. Raises :exc:`ClientGone` if the client went away
        before the body ended, :exc:`ProtocolError` for a malformed body (a bad chunk), or one
        over ``max_body`` (413).
        """
        if self.body_done:
            return b"", False
        events = self._events
        while not events:
            if self._continue:
                self._continue = False
                await self.stream.send_all(_CONTINUE)
            if not await self._fill():
                raise ClientGone("the client closed the connection before the request body ended")
        parts: list[bytes] = []
        while events and events[0].__class__ is bytes:
            parts.append(events.popleft())  # type: ignore[arg-type]
        if events and events[0] is _END:
            events.popleft()
            self.body_done = True
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.body_bytes += len(data)
        if self.max_body is not None and self.body_bytes > self.max_body:
            self.closing = True
            raise ProtocolError(f"request body exceeds {self.max_body} bytes", 413)
        return data, not self.body_done

    async def discard_body(self, most: int = DISCARD) -> None:
        """After a response: read and drop what is left of the request body (a request refused
        before its body was read), so the connection can serve the next one. More than ``most``
        bytes, a body the client may still be waiting to send (its ``100 Continue`` never went
        out), or one that does not come within ``idle_timeout``: the connection closes instead."""
        if self.body_done or self.closing:
            return
        if self._continue:
            self.closing = True
            return
        dropped = 0
        with trio.move_on_after(self.idle_timeout) as scope:
            try:
                while not self.body_done and dropped <= most:
                    data, _ = await self.read()
                    dropped += len(data)
            except (ClientGone, ProtocolError):
                pass
        if not self.body_done or scope.cancelled_caught:
            self.closing = True

    # -- writing ------------------------------------------------------------------------------
    def _head_bytes_for(self, status: int, headers: Iterable[tuple[bytes, bytes]], size: int | None) -> bytes:
        """The response head; frames the body by ``size`` when the app did not, else chunked."""
        self._continue = False  # answered before the body was asked for: the client need not send it
        sized = False
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-length":
                sized = True
            elif lower == b"connection":
                if b"close" in value.lower():
                    self.closing = True
                continue  # ours to say
            elif lower == b"transfer-encoding":
                continue  # ours to decide
            lines.append(name + b": " + value + b"\r\n")
        if status in _NO_BODY or status < 200:
            self._discard = True
        elif not sized:
            if size is not None:
                lines.append(b"content-length: %d\r\n" % size)
            elif self.head is not None and self.head.http_version == "1.1":
                self._chunked = True
                lines.append(b"transfer-encoding: chunked\r\n")
            else:
                self.closing = True  # an HTTP/1.0 client: the body ends with the connection
        lines.append(_date_header())
        lines.append(b"server: trioworks\r\n")
        if self.closing:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    async def respond(self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole response in one send (``Content-Length`` added if ``headers`` have none)."""
        head = self._head_bytes_for(status, headers, len(body))
        self.started = True
        await self._send(head if self._discard else head + body)
        self.finished = True

    async def start(self, status: int, headers: Iterable[tuple[bytes, bytes]], first: bytes = b"") -> None:
        """A response head, and the first piece of its body (chunked unless ``headers`` size it)."""
        head = self._head_bytes_for(status, headers, None)
        self.started = True
        await self._send(head + self._frame(first))

    async def write(self, data: bytes) -> None:
        if data:
            await self._send(self._frame(data))

    async def end(self) -> None:
        if self._chunked and not self._discard:
            await self._send(b"0\r\n\r\n")
        self.finished = True

    def _frame(self, data: bytes) -> bytes:
        if self._discard or not data:
            return b""
        if self._chunked:
            return b"%x\r\n%s\r\n" % (len(data), data)
        return data

    async def _send(self, data: bytes) -> None:
        if not data:
            return
        try:
            await self.stream.send_all(data)
        except BaseException:
            self.closing = True  # a half-written response: the connection cannot go on
            raise

    async def error(self, status: int, message: str) -> None:
        """The API's error body with ``status``, then close (nothing is sent if a response
        already started; a client that went away gets nothing)."""
        self.closing = True
        if self.started:
            return
        code = "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR"  # as the API's own errors
        body = json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json")]
        try:
            await self.respond(status, headers, body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def reusable(self) -> bool:
        """Whether another request may follow on this connection."""
        return self.finished and not self.closing
