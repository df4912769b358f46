"""Query-string parameters of the GET routes, checked: 422 naming the parameter."""

from __future__ import annotations

import datetime as dt
from typing import overload

from starlette.requests import Request

from .._errors import ValidationFailed
from ._requests import VERSION_STAMP

__all__ = ["int_query", "time_query", "version_query"]


@overload
def int_query(request: Request, name: str, default: int, lo: int, hi: int) -> int: ...
@overload
def int_query(request: Request, name: str, default: None, lo: int, hi: int) -> int | None: ...
def int_query(request: Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ValidationFailed.one(name, f"must be an integer from {lo} to {hi}, got {raw!r}")
    return int(raw)


def version_query(request: Request) -> int | str | None:
    raw = request.query_params.get("version")
    if raw is not None and VERSION_STAMP.match(raw):
        return raw
    return int_query(request, "version", None, 1, 2**31)


def time_query(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ValidationFailed.one(
            name, f"must be an ISO 8601 time like 2025-11-06T00:00:00Z, got {raw!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()
