"""``http_request``: the original std worker's HTTP activity, on httpx.

Parameters (as the original's ``HttpRequestParams``): ``method``, ``url``, ``headers``, ``query``,
``body`` (sent as JSON), ``timeout_seconds`` (default 30), ``include_body`` (default true; never for
HEAD), ``download_to_file``. Output ``response``: ``{status, success, body}``; ``body`` is the
parsed JSON when the content type is ``application/json`` or ``*+json`` (or, with no content
type, when the bytes parse as JSON), else the text. A non-2xx status is not an error: it is
reported with ``success: false``, as the original does.

Ours: the body read is capped (``max_response_bytes``, default 10 MiB): a larger response fails
the activity (terminal ``RESPONSE_TOO_LARGE``) instead of filling the worker's memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import httpx
import trio

from .._context import ActivityContext
from .._errors import ActivityError, TerminalActivityError
from .._results import ActivityResult, OutputType

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "HttpRequestParams", "http_request", "make_http_request"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
MAX_RESPONSE_ENV = "TRIOWORKS_STD_HTTP_MAX_RESPONSE_BYTES"
USER_AGENT = "trioworks-std/1 (Kruxia Flow compatible)"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def _scalar_text(value: Any) -> str:
    # The original takes string maps; templates may resolve to numbers or booleans, sent as JSON text.
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    raise TypeError(f"expected a string, number or boolean, got {type(value).__name__}")


def _string_map(field: str, value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TerminalActivityError(
            f"http_request: parameter {field!r} must be a mapping of strings", code="INVALID_PARAMETERS"
        )
    try:
        return {str(k): _scalar_text(v) for k, v in value.items()}
    except TypeError as exc:
        raise TerminalActivityError(
            f"http_request: parameter {field!r}: {exc}", code="INVALID_PARAMETERS"
        ) from None


@attrs.frozen(kw_only=True)
class HttpRequestParams:
    method: str
    url: str
    headers: Any = None
    query: Any = None
    body: Any = None
    timeout_seconds: float | None = None
    include_body: bool | None = None
    download_to_file: str | None = None
    max_response_bytes: int | None = None


def _max_bytes(params: HttpRequestParams) -> int:
    if params.max_response_bytes is not None:
        return params.max_response_bytes
    return int(os.environ.get(MAX_RESPONSE_ENV, DEFAULT_MAX_RESPONSE_BYTES))


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json") or "application/json" in content_type


async def _read_capped(response: httpx.Response, limit: int, url: str) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TerminalActivityError(
            f"http_request: {url} declares {declared} bytes, more than the {limit}-byte cap",
            code="RESPONSE_TOO_LARGE",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise TerminalActivityError(
                f"http_request: the response of {url} exceeds the {limit}-byte cap", code="RESPONSE_TOO_LARGE"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _decode_body(raw: bytes, content_type: str | None, url: str) -> Any:
    if content_type is None:
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None  # the original reports no body when an untyped body is not JSON
    if _is_json(content_type):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ActivityError(
                f"http_request: {url} answered {content_type} that is not JSON: {exc}"
            ) from None
    return raw.decode("utf-8", errors="replace")


def _request(params: HttpRequestParams) -> tuple[str, dict[str, str], dict[str, str] | None, bytes | None]:
    method = params.method.upper()
    if method not in _METHODS:
        raise TerminalActivityError(
            f"http_request: unknown method {params.method!r}", code="INVALID_PARAMETERS"
        )
    headers = _string_map("headers", params.headers) or {}
    if not any(k.lower() == "user-agent" for k in headers):
        headers["User-Agent"] = USER_AGENT
    content = None
    if params.body is not None:
        content = json.dumps(params.body).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    return method, headers, _string_map("query", params.query), content


def make_http_request(
    transport: httpx.AsyncBaseTransport | None = None,
) -> Callable[[HttpRequestParams, ActivityContext], Awaitable[ActivityResult]]:
    """The activity function, sending through ``transport`` (default: httpx's network transport).

    The transport is httpx's own seam: a test or an air-gapped deployment routes requests to
    local services with it (``httpx.ASGITransport``, ``httpx.MockTransport``) without patching.
    """

    async def http_request(params: HttpRequestParams, ctx: ActivityContext) -> ActivityResult:
        return await _http_request(params, ctx, transport)

    return http_request


async def _http_request(
    params: HttpRequestParams, ctx: ActivityContext, transport: httpx.AsyncBaseTransport | None
) -> ActivityResult:
    """Send one HTTP request; network errors and timeouts are retryable failures."""
    method, headers, query, content = _request(params)
    timeout = params.timeout_seconds if params.timeout_seconds is not None else DEFAULT_TIMEOUT
    limit = _max_bytes(params)
    include_body = (params.include_body if params.include_body is not None else True) and method != "HEAD"
    try:
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=True, transport=transport) as client,
            client.stream(method, params.url, headers=headers, params=query, content=content) as response,
        ):
            status = response.status_code
            reply: dict[str, Any] = {"status": status, "success": response.is_success}
            if params.download_to_file is not None:
                return await _download(params.download_to_file, response, limit, reply, ctx)
            if include_body:
                raw = await _read_capped(response, limit, params.url)
                body = _decode_body(raw, response.headers.get("content-type"), params.url)
                if body is not None:
                    reply["body"] = body
    except httpx.TimeoutException as exc:
        raise ActivityError(
            f"http_request: {method} {params.url} timed out after {timeout:g} s ({exc!r})"
        ) from None
    except httpx.InvalidURL as exc:
        raise TerminalActivityError(
            f"http_request: invalid url {params.url!r}: {exc}", code="INVALID_PARAMETERS"
        ) from None
    except httpx.HTTPError as exc:
        raise ActivityError(f"http_request: {method} {params.url} failed: {exc}") from None
    return ActivityResult.value("response", reply)


async def _download(
    filename: str, response: httpx.Response, limit: int, reply: dict[str, Any], ctx: ActivityContext
) -> ActivityResult:
    if not filename or "/" in filename or filename.startswith("."):
        raise TerminalActivityError(
            f"http_request: download_to_file must be a plain file name, got {filename!r}",
            code="INVALID_PARAMETERS",
        )
    path = trio.Path(await ctx.temp_dir()) / filename
    raw = await _read_capped(response, limit, str(response.url))
    await path.write_bytes(raw)
    result = ActivityResult.value("response", reply)
    # A FILE output declared by the definition gets the downloaded file (uploaded by the worker).
    for output in ctx.output_definitions:
        if output.get("type") == "file" or output.get("output_type") == "file":
            result = result.with_output(output["name"], str(path), OutputType.FILE)
    return result


http_request = make_http_request()
"""The activity function on the network."""
