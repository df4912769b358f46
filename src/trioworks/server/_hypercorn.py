"""A workaround for a race in hypercorn's Trio TCP server (seen with hypercorn 0.18.0).

When a client closes its connection in the middle of a request body, hypercorn writes a 400
response while its ``_close()`` sends EOF on the same stream without holding the send lock. The
losing ``send_all`` raises :exc:`trio.BusyResourceError`, which hypercorn does not catch: it
escapes the connection task, and through ``trio.serve_listeners`` it cancels the whole server.
One client hanging up mid-upload must not stop the server, so a send that loses that race is
dropped (the connection is closing anyway), the way hypercorn already drops sends on a broken
or closed stream. ``tests/server/test_http.py`` hangs up mid-upload twenty times to check it.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import trio
from hypercorn.trio.tcp_server import TCPServer

__all__ = ["patch_hypercorn"]

logger = logging.getLogger("trioworks.server")


def patch_hypercorn() -> None:
    """Install the workaround once per process (idempotent)."""
    original = TCPServer.protocol_send
    if getattr(original, "_trioworks_patched", False):
        return

    @functools.wraps(original)
    async def protocol_send(self: TCPServer, event: Any) -> None:
        try:
            await original(self, event)
        except trio.BusyResourceError:
            logger.debug("dropped a send on a connection that is closing (hypercorn send/EOF race)")

    protocol_send._trioworks_patched = True  # type: ignore[attr-defined]  # a marker on a function object
    TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]  # the patch itself (see above)
