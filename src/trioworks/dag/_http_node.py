"""Kailash's ``HTTPRequestNode`` and ``AsyncHTTPRequestNode``, on httpx.

Parameter and output names are Kailash's: ``url``, ``method``, ``headers``, ``params``,
``data``, ``json_data`` (``json`` is accepted too), ``response_format``, ``timeout``,
``verify_ssl``, ``retry_count``, ``retry_backoff`` and the ``auth_*`` settings in; out
``{"response": {"status_code", "headers", "content_type", "content", "response_time_ms",
"url"}, "status_code", "success"}`` (plus ``recovery_suggestions`` on a 4xx/5xx).

The sync node does blocking I/O, so the runtime runs it in a worker thread (under its thread
limiter); the async node awaits ``httpx.AsyncClient`` on the Trio loop, and its retries wait
with :func:`trio.sleep` (so cancelling the run stops a waiting retry at once).

Error handling, as Kailash: an HTTP error status is a result (``success: False``), not an
exception; a transport failure after the last retry is a result too, with ``error`` and
``error_type`` and ``response: None``. A bad ``method`` or ``response_format``, or no
``url``, raises :class:`NodeValidationError` naming the parameter.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core import RetryPolicy, retry
from ._errors import NodeValidationError
from ._node_api import AsyncNode, Node, NodeParameter, register_node

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncHTTPRequestNode", "HTTPRequestNode"]

log = logging.getLogger("trioworks.dag.nodes.http")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
FORMATS = ("auto", "json", "text", "binary")


def _opt(name: str, kind: Any, default: Any = None, description: str = "", **kw: Any) -> NodeParameter:
    return NodeParameter(name=name, type=kind, required=False, default=default, description=description, **kw)


HTTP_PARAMETERS: dict[str, NodeParameter] = {
    "url": _opt("url", str, description="URL to send the request to"),
    "method": NodeParameter(name="method", type=str, required=True, default="GET", description="HTTP method"),
    "headers": _opt("headers", dict, {}, "HTTP headers"),
    "params": _opt("params", dict, {}, "query parameters"),
    "data": _opt("data", Any, description="request body (form dict, str or bytes)"),
    "json_data": _opt("json_data", Any, description="JSON body", auto_map_from=["json"]),
    "response_format": _opt("response_format", str, "auto", "json, text, binary or auto"),
    "timeout": _opt("timeout", float, 30, "seconds"),
    "verify_ssl": _opt("verify_ssl", bool, True),
    "retry_count": _opt("retry_count", int, 0, "retries after a transport failure"),
    "retry_backoff": _opt("retry_backoff", float, 0.5, "seconds before the first retry, doubling"),
    "auth_type": _opt("auth_type", str, description="bearer, basic, api_key or oauth2"),
    "auth_token": _opt("auth_token", str),
    "auth_username": _opt("auth_username", str),
    "auth_password": _opt("auth_password", str),
    "api_key_header": _opt("api_key_header", str, "X-API-Key"),
    "rate_limit_delay": _opt("rate_limit_delay", float, 0, "seconds to wait before the request"),
    "log_requests": _opt("log_requests", bool, False),
}

HTTP_OUTPUTS: dict[str, NodeParameter] = {
    "response": NodeParameter(name="response", type=dict, description="status, headers, content"),
    "status_code": NodeParameter(name="status_code", type=int),
    "success": NodeParameter(name="success", type=bool, description="status code 200-299"),
}

_SUGGESTIONS = {
    401: ["Check authentication credentials", "Verify the API key or token is valid"],
    403: ["Verify you have permission to access this resource", "Check the API key's scopes"],
    404: ["Verify the URL path is correct", "Check that the resource exists"],
    429: ["Rate limit exceeded: wait before retrying", "Check the rate limit headers"],
}


def _auth_headers(kwargs: Mapping[str, Any]) -> dict[str, str]:
    headers = {str(k): str(v) for k, v in (kwargs.get("headers") or {}).items()}
    kind = (kwargs.get("auth_type") or "").lower()
    token = kwargs.get("auth_token")
    if kind in ("bearer", "oauth2") and token:
        headers["Authorization"] = f"Bearer {token}"
    elif kind == "basic" and kwargs.get("auth_username") and kwargs.get("auth_password"):
        pair = f"{kwargs['auth_username']}:{kwargs['auth_password']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif kind == "api_key" and token:
        headers[kwargs.get("api_key_header") or "X-API-Key"] = str(token)
    return headers


def request_arguments(node_id: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The httpx ``request(...)`` arguments for validated node inputs."""
    url = kwargs.get("url")
    if not url:
        raise NodeValidationError(f"HTTPRequestNode {node_id!r}: parameter 'url' is required")
    method = str(kwargs.get("method") or "GET").upper()
    if method not in METHODS:
        raise NodeValidationError(
            f"HTTPRequestNode {node_id!r}: invalid method {kwargs.get('method')!r}; one of {', '.join(METHODS)}"
        )
    fmt = kwargs.get("response_format") or "auto"
    if fmt not in FORMATS:
        raise NodeValidationError(
            f"HTTPRequestNode {node_id!r}: invalid response_format {fmt!r}; one of {', '.join(FORMATS)}"
        )
    arguments: dict[str, Any] = {
        "method": method,
        "url": str(url),
        "headers": _auth_headers(kwargs),
        "params": kwargs.get("params") or None,
    }
    if kwargs.get("json_data") is not None:
        arguments["json"] = kwargs["json_data"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        arguments["data" if isinstance(data, Mapping) else "content"] = data
    return arguments


def response_output(response: httpx.Response, fmt: str, elapsed_ms: float) -> dict[str, Any]:
    """Kailash's output dict for one response."""
    content_type = response.headers.get("content-type", "")
    if fmt == "auto":
        fmt = "json" if "json" in content_type else "text" if "text/" in content_type else "binary"
    content: Any
    if fmt == "json":
        try:
            content = response.json()
        except ValueError:
            log.warning("response of %s is not JSON; returned as text", response.url)
            content = response.text
    elif fmt == "text":
        content = response.text
    else:
        content = response.content
    success = 200 <= response.status_code < 300
    out: dict[str, Any] = {
        "response": {
            "status_code": response.status_code,
            "headers": dict(response.headers),
            "content_type": content_type,
            "content": content,
            "response_time_ms": elapsed_ms,
            "url": str(response.url),
        },
        "status_code": response.status_code,
        "success": success,
    }
    if not success:
        out["recovery_suggestions"] = _SUGGESTIONS.get(
            response.status_code,
            ["Server error: retry after a delay"]
            if response.status_code >= 500
            else ["Check the API documentation for this status code"],
        )
    return out


def failure_output(exc: Exception) -> dict[str, Any]:
    return {
        "response": None,
        "status_code": None,
        "success": False,
        "error": str(exc) or type(exc).__name__,
        "error_type": type(exc).__name__,
        "recovery_suggestions": [
            "Check network connectivity",
            "Verify the URL is correct and reachable",
            "Increase timeout or retry_count",
        ],
    }


def _policy(kwargs: Mapping[str, Any]) -> RetryPolicy:
    import httpx

    return RetryPolicy(
        max_attempts=max(int(kwargs.get("retry_count") or 0), 0) + 1,
        base_delay=max(float(kwargs.get("retry_backoff") or 0), 0.0),
        factor=2.0,
        max_delay=60.0,
        jitter=0.0,
        retry_on=lambda exc: isinstance(exc, httpx.TransportError),
    )


def _log(node: Node, arguments: Mapping[str, Any], kwargs: Mapping[str, Any]) -> None:
    # Never the headers or body: they carry the credentials _auth_headers put there.
    import httpx

    level = logging.INFO if kwargs.get("log_requests") else logging.DEBUG
    node.logger.log(level, "%s %s", arguments["method"], httpx.URL(arguments["url"]).copy_with(password=None))


@register_node()
class HTTPRequestNode(Node):
    """An HTTP request with httpx (sync: the runtime runs it in a worker thread)."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return dict(HTTP_PARAMETERS)

    def get_output_schema(self) -> dict[str, NodeParameter]:
        return dict(HTTP_OUTPUTS)

    def run(self, **kwargs: Any) -> dict[str, Any]:
        import httpx

        arguments = request_arguments(self.id, kwargs)
        _log(self, arguments, kwargs)
        policy = _policy(kwargs)
        if kwargs.get("rate_limit_delay"):
            time.sleep(float(kwargs["rate_limit_delay"]))  # in the node's worker thread
        with httpx.Client(timeout=kwargs.get("timeout", 30), verify=kwargs.get("verify_ssl", True)) as client:
            for attempt in range(1, policy.max_attempts + 1):
                start = time.perf_counter()
                try:
                    response = client.request(**arguments)
                except httpx.TransportError as exc:
                    if not policy.should_retry(exc, attempt):
                        log.warning(
                            "node %r: %s %s failed: %r", self.id, arguments["method"], arguments["url"], exc
                        )
                        return failure_output(exc)
                    time.sleep(policy.delay(attempt))
                    continue
                elapsed = (time.perf_counter() - start) * 1000
                return response_output(response, kwargs.get("response_format") or "auto", elapsed)
        raise AssertionError("unreachable: the last attempt returns")


@register_node()
class AsyncHTTPRequestNode(AsyncNode):
    """An HTTP request with ``httpx.AsyncClient``, awaited on the Trio loop."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return dict(HTTP_PARAMETERS)

    def get_output_schema(self) -> dict[str, NodeParameter]:
        return dict(HTTP_OUTPUTS)

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        import httpx
        import trio

        arguments = request_arguments(self.id, kwargs)
        _log(self, arguments, kwargs)
        if kwargs.get("rate_limit_delay"):
            await trio.sleep(float(kwargs["rate_limit_delay"]))
        timeout = kwargs.get("timeout", 30)
        async with httpx.AsyncClient(timeout=timeout, verify=kwargs.get("verify_ssl", True)) as client:

            async def attempt() -> tuple[httpx.Response, float]:
                start = time.perf_counter()
                response = await client.request(**arguments)
                return response, (time.perf_counter() - start) * 1000

            try:
                response, elapsed = await retry(attempt, _policy(kwargs))
            except httpx.TransportError as exc:
                log.warning("node %r: %s %s failed: %r", self.id, arguments["method"], arguments["url"], exc)
                return failure_output(exc)
        return response_output(response, kwargs.get("response_format") or "auto", elapsed)
