"""The server's HTTP front: listening sockets, one task per connection, graceful shutdown.

:func:`serve_http` accepts connections (``trio.serve_listeners``) and runs each in its own task
in a nursery it owns; a connection's task reads a request head, hands the request to the
``respond`` callable (which reads the body and writes the response through the
:class:`~._h1.H1Connection`), and repeats while the connection can be reused (keep-alive).
Pipelined requests are served one after the other.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import trio

from ._h1 import MAX_HEAD, H1Connection, ProtocolError, RequestHead

__all__ = ["Respond", "serve_http"]

Respond = Callable[[H1Connection, RequestHead], Awaitable[None]]
"""Answer one request: read its body with ``conn.read()``, write one response."""


class _Front:
    def __init__(
        self,
        respond: Respond,
        *,
        grace: float,
        idle_timeout: float,
        head_timeout: float,
        max_head: int,
        max_body: int | None,
    ) -> None:
        self.respond = respond
        self.grace = grace
        self.idle_timeout = idle_timeout
        self.head_timeout = head_timeout
        self.max_head = max_head
        self.max_body = max_body
        self.live: dict[H1Connection, trio.CancelScope] = {}
        self.draining = False
        self.all_closed = trio.Event()

    async def connection(self, stream: trio.SocketStream) -> None:
        conn = H1Connection(
            stream,
            max_head=self.max_head,
            max_body=self.max_body,
            idle_timeout=self.idle_timeout,
            head_timeout=self.head_timeout,
        )
        # Shielded: shutdown lets a request in flight finish; drain() cancels this scope when
        # the grace period is over.
        with trio.CancelScope(shield=True) as scope:
            self.live[conn] = scope
            try:
                await self._serve(conn)
            finally:
                del self.live[conn]
                if self.draining and not self.live:
                    self.all_closed.set()
                await trio.aclose_forcefully(stream)

    async def _serve(self, conn: H1Connection) -> None:
        try:
            while not self.draining:
                head = await conn.next_head()
                if head is None:
                    return
                await self.respond(conn, head)
                if not conn.finished:  # the responder sent nothing (a client gone mid-body)
                    return
                await conn.discard_body()
                if not conn.reusable():
                    return
        except ProtocolError as exc:
            await conn.error(exc.status, str(exc))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away while we wrote: nobody left to tell

    async def drain(self) -> None:
        """Stop reading new requests; give those in flight ``grace`` seconds, then cancel them."""
        self.draining = True
        for conn in list(self.live):
            conn.closing = True  # a response still to come says so
            if conn.idle is not None:  # waiting for a request: close now
                conn.idle.cancel()
        if self.live:
            with trio.move_on_after(self.grace):
                await self.all_closed.wait()
        for scope in self.live.values():
            scope.cancel()


def _url(listener: trio.SocketListener) -> str:
    host, port = listener.socket.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve_http(
    respond: Respond,
    host: str,
    port: int,
    *,
    grace: float = 5.0,
    idle_timeout: float = 5.0,
    head_timeout: float = 30.0,
    max_head: int = MAX_HEAD,
    max_body: int | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP/1.1 on ``host:port`` (``0``: a free port) until cancelled.

    Calls ``task_status.started(urls)`` (``http://host:port`` of each listening socket) once
    every socket listens.

    A connection waits ``idle_timeout`` seconds for a request, then ``head_timeout`` for the
    rest of a head once it started arriving; heads over ``max_head`` bytes get 431, bodies over
    ``max_body`` (None: no cap here, the responder's own) 413, malformed requests 400; each
    then closes its connection, never the server.

    Resource handling:
        Connection tasks live in a nursery of this call, each in a shielded cancel scope. When
        this call is cancelled it stops accepting and closes the listeners, closes idle
        connections, gives requests in flight ``grace`` seconds to finish (their responses say
        ``connection: close``), then cancels what is left. Every socket is closed on the way out.

    Error handling:
        An error binding the sockets propagates before ``started``. A client's protocol error,
        reset or hang-up ends its connection only. An exception escaping ``respond`` is a bug:
        it propagates and stops the server.
    """
    front = _Front(
        respond,
        grace=grace,
        idle_timeout=idle_timeout,
        head_timeout=head_timeout,
        max_head=max_head,
        max_body=max_body,
    )
    listeners = await trio.open_tcp_listeners(port, host=host)
    async with trio.open_nursery() as connections:
        try:
            async with trio.open_nursery() as acceptors:
                await acceptors.start(
                    functools.partial(
                        trio.serve_listeners, front.connection, listeners, handler_nursery=connections
                    )
                )
                task_status.started([_url(listener) for listener in listeners])
        finally:
            with trio.CancelScope(shield=True):
                await front.drain()
