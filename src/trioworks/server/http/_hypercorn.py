"""A guard against a race in hypercorn's Trio TCP server (seen with hypercorn 0.18.0).

When a client closes its connection in the middle of a request body, hypercorn writes a 400
response while its ``_close()`` sends EOF on the same stream without holding the send lock. The
losing ``send_all`` raises :exc:`trio.BusyResourceError`, which hypercorn does not catch: it
escapes the connection task, and through ``trio.serve_listeners`` it cancels the whole server.
One client hanging up mid-upload must not stop the server, so a send that loses that race is
dropped (the connection is closing anyway), the way hypercorn already drops sends on a broken
or closed stream. ``tests/server/test_http.py`` hangs up mid-upload twenty times to check it.

hypercorn has no public hook for this: ``hypercorn.trio.serve`` builds its connection handler
from the name ``TCPServer`` in ``hypercorn.trio.run``. So:

- the workaround is a subclass, :class:`GuardedTCPServer`; hypercorn's own class is untouched;
- :func:`hypercorn_guard` points that one name at the subclass (once per process) and marks the
  calling task's context, so only connections served under it (our :class:`Server`) drop the
  losing send; any other hypercorn server in the process behaves exactly as upstream;
- ``pyproject.toml`` pins hypercorn to the tested range (``>=0.17,<0.19``), and
  ``tests/server/test_hypercorn_guard.py`` fails if the internals used here change.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

import hypercorn.trio.run
import trio
from hypercorn.events import Closed, RawData
from hypercorn.trio.tcp_server import TCPServer

__all__ = ["GuardedTCPServer", "hypercorn_guard"]

logger = logging.getLogger("trioworks.server")

_guarded: contextvars.ContextVar[bool] = contextvars.ContextVar("trioworks_hypercorn_guarded", default=False)


def _final_head(data: bytes) -> bool:
    """True for the head of a final (not ``1xx``) HTTP/1.1 response, as h11 writes one."""
    return data.startswith(b"HTTP/1.1 ") and data[9:10] != b"1" and data.endswith(b"\r\n\r\n")


class GuardedTCPServer(TCPServer):
    """hypercorn's connection handler; under :func:`hypercorn_guard` a send that loses the
    send/EOF race is dropped instead of taking the server down, and a response goes out in one
    ``send`` instead of one per part.

    hypercorn writes a response's head, its body and its end (``b""`` for a sized body) as
    separate sends. Under the guard, a final response's head (not a ``1xx``, which the client
    may be waiting for before it sends its body) is held and goes out with the next data; an
    empty send is skipped; anything held goes out before the connection closes. A response
    always ends with a body or an end-of-message event, so nothing stays held. One ``send``
    less per request: about 0.1 ms of the server's CPU (``docs/performance.md``).
    """

    _held: bytes = b""

    async def protocol_send(self, event: Any) -> None:
        try:
            if not _guarded.get():
                await super().protocol_send(event)
            elif isinstance(event, RawData):
                if not self._held and _final_head(event.data):
                    self._held = event.data  # wait for its body or its end
                    return
                data, self._held = self._held + event.data, b""
                if data:
                    await super().protocol_send(RawData(data=data))
            else:
                if self._held and isinstance(event, Closed):
                    data, self._held = self._held, b""
                    await super().protocol_send(RawData(data=data))
                await super().protocol_send(event)
        except trio.BusyResourceError:
            if not _guarded.get():
                raise
            logger.debug("dropped a send on a connection that is closing (hypercorn send/EOF race)")


def _install() -> None:
    current = getattr(hypercorn.trio.run, "TCPServer", None)
    if current is GuardedTCPServer:
        return
    if current is not TCPServer:
        raise RuntimeError(
            f"hypercorn.trio.run.TCPServer is {current!r}, not hypercorn's TCPServer: "
            "this hypercorn version is outside the range trioworks supports (>=0.17,<0.19)"
        )
    hypercorn.trio.run.TCPServer = GuardedTCPServer  # type: ignore[misc]


@contextlib.contextmanager
def hypercorn_guard() -> Iterator[None]:
    """Serve hypercorn inside this block to get the guard; tasks started here inherit it."""
    _install()
    token = _guarded.set(True)
    try:
        yield
    finally:
        _guarded.reset(token)
