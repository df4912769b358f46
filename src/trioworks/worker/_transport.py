"""The worker's HTTP transport: httpx's own, with each small request sent in one write.

httpcore writes a request's head and its body with two ``send`` calls. On a fast link every
worker call (poll, heartbeat, complete) is a few hundred bytes, so the second system call (and
the second TCP segment, with ``TCP_NODELAY``) is a large share of its cost: measured on the
2-CPU bench machine, about a quarter of the worker's CPU per no-op activity. Here writes are
held back until the connection next reads (or until 64 KiB are pending), so a small request goes
out in one ``send``; a large upload still streams in 64 KiB writes.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["worker_transport"]

_FLUSH_AT = 64 * 1024


class _CoalescingStream(httpcore.AsyncNetworkStream):
    """Buffers writes until a read or 64 KiB; everything else is delegated."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._pending: list[bytes] = []
        self._size = 0
        self._timeout: float | None = None

    async def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._size = 0
            await self._stream.write(data, timeout=self._timeout)

    # httpcore's interface takes ``timeout`` arguments (hence the ASYNC109 exemptions below).
    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        self._pending.append(buffer)
        self._size += len(buffer)
        self._timeout = timeout
        if self._size >= _FLUSH_AT:
            await self._flush()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        # Every HTTP/1.1 exchange reads its response after sending: the request leaves here.
        await self._flush()
        return await self._stream.read(max_bytes, timeout=timeout)

    async def aclose(self) -> None:
        # Bytes still pending belong to a request that is being abandoned: drop them.
        self._pending.clear()
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        await self._flush()
        return _CoalescingStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _CoalescingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore.TrioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _CoalescingStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _CoalescingStream(await self._backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def worker_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's transport (same TLS, proxy-less pool, exception mapping) over the coalescing backend."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    # httpx has no parameter for the network backend; its pool is rebuilt with the same settings.
    # The attribute is private but has been stable across httpx 0.2x; checked by the tests.
    pool = transport._pool
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=pool._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_CoalescingBackend(),
    )
    return transport
