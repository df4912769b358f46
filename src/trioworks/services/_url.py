"""Wyoming server URLs (``tcp://host:port``): parsed here, apart from the clients, so that the
services' configs can check them without importing the clients (which import the services)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["parse_url", "wyoming_url"]


def parse_url(url: str) -> tuple[str, int]:
    """``tcp://host:port`` -> ``(host, port)``; ``ValueError`` naming the URL otherwise."""
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    try:
        port = parts.port if parts is not None else None
    except ValueError:
        port = None
    if parts is None or parts.scheme != "tcp" or not parts.hostname or port is None:
        raise ValueError(f"expected a Wyoming server URL tcp://HOST:PORT, got {url!r}")
    return parts.hostname, port


def wyoming_url(
    error: Callable[[str, str], ValueError],
) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    """An attrs validator: None, or a URL :func:`parse_url` accepts (else ``error(field, problem)``)."""

    def check(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        try:
            parse_url(value)
        except ValueError as exc:
            raise error(attribute.name, str(exc)) from None

    return check
