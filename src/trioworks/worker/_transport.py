"""The worker's HTTP transport: an httpcore pool behind httpx's public transport interface.

httpcore writes a request's head and its body with two ``send`` calls. On a fast link every
worker call (poll, heartbeat, complete) is a few hundred bytes, so the second system call (and
the second TCP segment, with ``TCP_NODELAY``) is a large share of its cost: measured on the
2-CPU bench machine, about a quarter of the worker's CPU per no-op activity. Here writes are
held back until the connection next reads (or until 64 KiB are pending), so a small request goes
out in one ``send``; a large upload still streams in 64 KiB writes.

Small JSON calls (poll, heartbeat, complete, fail, the token: the client hands them to
:attr:`WorkerTransport.direct` as bytes, and requests marked
:data:`~trioworks.worker._direct.BUFFERED` take the same pool) skip httpcore altogether when no
proxy or custom backend is set: see ``_direct.py``. What follows is the path of everything else (streamed uploads and downloads,
proxied requests).

Only public extension points are used: :class:`WorkerTransport` is an
:class:`httpx.AsyncBaseTransport` that owns an :class:`httpcore.AsyncConnectionPool` (or, with a
proxy, an :class:`httpcore.AsyncHTTPProxy` / :class:`httpcore.AsyncSOCKSProxy`) built with the
``network_backend`` parameter, and maps httpcore's exceptions to httpx's with its own table (as
httpx's ``AsyncHTTPTransport`` does). An upgrade of httpx cannot reach into it.
"""

from __future__ import annotations

import contextlib
import ssl
import urllib.request
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpcore
import httpx

from ._direct import BUFFERED, DirectPool

__all__ = ["WorkerTransport", "environment_proxy"]

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


# httpcore's exceptions as httpx's (the table httpx's own transport keeps). The most specific
# class wins: the raised exception's MRO is walked, so ReadTimeout maps to httpx.ReadTimeout and
# not to httpx.TimeoutException.
_EXCEPTIONS: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for kind in type(exc).__mro__:
            mapped = _EXCEPTIONS.get(kind)
            if mapped is not None:
                raise mapped(str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        with _mapped():
            await self._stream.aclose()


def environment_proxy(url: str) -> str | None:
    """The proxy the environment sets for ``url`` (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
    either case, minus ``NO_PROXY``), or None."""
    proxies = urllib.request.getproxies_environment()
    target = httpx.URL(url)
    # proxy_bypass_environment is in the stdlib but not in typeshed's stubs
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if target.host and bypass(target.host, proxies):
        return None
    proxy = proxies.get(target.scheme) or proxies.get("all")
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


class WorkerTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over the coalescing backend, direct or through ``proxy`` (http, https or socks5).

    TLS as httpx's default (:func:`httpx.create_ssl_context`: certifi, ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``). Network failures raise :class:`httpx.TransportError` subclasses.
    """

    def __init__(
        self,
        *,
        limits: httpx.Limits,
        proxy: str | httpx.Proxy | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        ssl_context = httpx.create_ssl_context()
        # Small JSON exchanges (BUFFERED requests) skip httpcore when nothing sits in between.
        self._direct: DirectPool | None = None
        if proxy is None and network_backend is None:
            self._direct = DirectPool(
                ssl_context=ssl_context,
                max_idle=limits.max_keepalive_connections or 0,
                keepalive_expiry=limits.keepalive_expiry,
            )
        backend = network_backend or _CoalescingBackend()
        pool_limits: dict[str, Any] = {
            "max_connections": limits.max_connections,
            "max_keepalive_connections": limits.max_keepalive_connections,
            "keepalive_expiry": limits.keepalive_expiry,
            "network_backend": backend,
        }
        self.pool: httpcore.AsyncConnectionPool  # AsyncHTTPProxy and AsyncSOCKSProxy are pools too
        if proxy is None:
            self.pool = httpcore.AsyncConnectionPool(ssl_context=ssl_context, **pool_limits)
            return
        proxy = httpx.Proxy(proxy) if isinstance(proxy, str) else proxy
        proxy_url = httpcore.URL(
            scheme=proxy.url.raw_scheme,
            host=proxy.url.raw_host,
            port=proxy.url.port,
            target=proxy.url.raw_path,
        )
        if proxy.url.scheme in ("http", "https"):
            self.pool = httpcore.AsyncHTTPProxy(
                proxy_url=proxy_url,
                proxy_auth=proxy.raw_auth,
                proxy_headers=proxy.headers.raw,
                proxy_ssl_context=proxy.ssl_context,
                ssl_context=ssl_context,
                **pool_limits,
            )
        elif proxy.url.scheme in ("socks5", "socks5h"):
            self.pool = httpcore.AsyncSOCKSProxy(
                proxy_url=proxy_url, proxy_auth=proxy.raw_auth, ssl_context=ssl_context, **pool_limits
            )
        else:
            raise ValueError(f"proxy {proxy.url}: scheme must be http, https, socks5 or socks5h")

    @property
    def direct(self) -> DirectPool | None:
        """The pool of small JSON exchanges (None with a proxy or a custom network backend)."""
        return self._direct

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if (
            self._direct is not None
            and request.extensions.get(BUFFERED)
            and isinstance(request.stream, httpx.ByteStream)
        ):
            return await self._direct.exchange(request)
        assert isinstance(request.stream, httpx.AsyncByteStream)
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _mapped():
            response = await self.pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        if self._direct is not None:
            await self._direct.aclose()
        with _mapped():
            await self.pool.aclose()
