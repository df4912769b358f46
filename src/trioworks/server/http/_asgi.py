"""ASGI over :class:`~._h1.H1Connection`: an ASGI 3 ``http`` app answers requests of the front.

:func:`asgi_responder` makes the :data:`~._front.Respond` of :func:`~._front.serve_http` for an
ASGI app: the scope is built from the request head (spec version 2.4: a failed send raises
:exc:`OSError`, so a streaming response stops when the client goes away), ``receive`` reads the
body from the connection as the app asks for it (so an upload is streamed with back-pressure)
and ``send`` writes the response as the app produces it (its head goes out with the first body
part; a whole response in one send). No lifespan events are sent: the apps served here have
no startup or shutdown of their own (:class:`~trioworks.server.Server` owns those).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from ._front import Respond
from ._h1 import ClientGone, H1Connection, ProtocolError, RequestHead

__all__ = ["Exchange", "asgi_responder", "http_scope"]

logger = logging.getLogger("trioworks.server.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

_ASGI = {"version": "3.0", "spec_version": "2.4"}
_DISCONNECT: Message = {"type": "http.disconnect"}


def http_scope(conn: H1Connection, head: RequestHead) -> dict[str, Any]:
    """The ASGI ``http`` scope of a request (a fresh dict: apps write into theirs)."""
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": head.http_version,
        "method": head.method,
        "scheme": "http",
        "path": head.path,
        "raw_path": head.raw_path,
        "query_string": head.query,
        "root_path": "",
        "headers": head.headers,
        "client": conn.client,
        "server": conn.server,
    }


class Exchange:
    """One request's ``receive`` and ``send`` over its connection (one task uses both)."""

    def __init__(self, conn: H1Connection) -> None:
        self.conn = conn
        self.gone = False  # the client went away, or sent a body we cannot read
        self.error: ProtocolError | None = None
        self._status = 0
        self._headers: Any = ()
        self._done: trio.Event | None = None
        self._ended = False  # the body's last part was received by the app

    async def receive(self) -> Message:
        """The next part of the body; ``http.disconnect`` if the client went away (or its body
        is malformed or too large), or once the response is out. After the body's last part,
        waits for that."""
        conn = self.conn
        if self.gone:
            await trio.lowlevel.checkpoint()
            return _DISCONNECT
        if conn.body_done:
            if not self._ended:  # an empty body (or one the connection has read whole)
                self._ended = True
                await trio.lowlevel.checkpoint()
                return {"type": "http.request", "body": b"", "more_body": False}
            if not conn.finished:  # ASGI: block until the response is out (or the client gone)
                if self._done is None:
                    self._done = trio.Event()
                await self._done.wait()
            await trio.lowlevel.checkpoint()
            return _DISCONNECT
        try:
            data, more = await conn.read()
        except ClientGone:
            self.gone = True
            return _DISCONNECT
        except ProtocolError as exc:
            self.gone, self.error = True, exc
            return _DISCONNECT
        self._ended = not more
        return {"type": "http.request", "body": data, "more_body": more}

    async def send(self, message: Message) -> None:
        """Write a response message; :exc:`OSError` if the client is gone."""
        kind = message["type"]
        conn = self.conn
        if self.gone:  # the app was told the client is gone; a bad body gets our 4xx in settle()
            await trio.lowlevel.checkpoint()
            raise OSError("the client is gone")
        try:
            if kind == "http.response.start":
                self._status, self._headers = message["status"], message.get("headers", ())
                await trio.lowlevel.checkpoint()  # the head goes out with the first body part
            elif kind == "http.response.body":
                if conn.finished:
                    return
                body, more = message.get("body", b""), message.get("more_body", False)
                if not conn.started:
                    if not self._status:
                        raise RuntimeError("ASGI app sent a body before http.response.start")
                    if more:
                        await conn.start(self._status, self._headers, body)
                    else:
                        await conn.respond(self._status, self._headers, body)
                        self.finish()
                else:
                    await conn.write(body)
                    if not more:
                        await conn.end()
                        self.finish()
            else:
                raise RuntimeError(f"unsupported ASGI message {kind!r}")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.gone = True
            self.finish()
            raise OSError("the client closed the connection") from exc

    def finish(self) -> None:
        """The response is out (or never will be): wake a ``receive`` waiting for that."""
        if self._done is not None:
            self._done.set()

    async def settle(self, failure: Exception | None) -> None:
        """After the app: answer what it left unanswered, log what it raised.

        A malformed or oversized body gets its 4xx (the app saw a disconnect); an app that
        raised before responding, or returned without a response, a 500; a client that went
        away, nothing. A response cut short closes the connection.
        """
        conn = self.conn
        self.finish()
        if failure is not None:
            if conn.finished:  # already answered (Starlette re-raises after its 500, logged by then)
                logger.debug("request handler raised after its response: %r", failure)
            else:
                logger.error("request handler failed", exc_info=failure)
        if conn.finished:
            return
        if self.error is not None:
            await conn.error(self.error.status, str(self.error))
        elif self.gone:
            conn.closing = True
        elif not conn.started:
            if failure is None:
                logger.error("request handler returned without a response")
            await conn.error(500, "internal server error")
        else:
            conn.closing = True  # a response cut short: the client sees the connection close


def asgi_responder(app: ASGIApp) -> Respond:
    """The :data:`~._front.Respond` serving requests with the ASGI ``app``."""

    async def respond(conn: H1Connection, head: RequestHead) -> None:
        await run_asgi(app, http_scope(conn, head), Exchange(conn))

    return respond


async def run_asgi(app: ASGIApp, scope: Scope, exchange: Exchange) -> None:
    """Run ``app`` on one request; what it raises is logged, answered if possible, not raised."""
    failure: Exception | None = None
    try:
        await app(scope, exchange.receive, exchange.send)
    except Exception as exc:
        failure = exc
    await exchange.settle(failure)
