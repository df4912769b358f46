"""Following a connection's dotted path (``"result.rows.0"``) through a node's output."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ._errors import MappingPathError, NodeInputError

__all__ = ["resolve_path"]

log = logging.getLogger("trioworks.dag")


def resolve_path(
    output: Any, path: str, *, node_id: str, field: str, source: str, strict: bool = True
) -> Any:
    """Follow a dotted ``path`` through mappings (and sequence indexes) of ``output``."""
    return _follow(output, path, tuple(path.split(".")), node_id, field, source, strict)


def _follow(
    output: Any, path: str, keys: tuple[str, ...], node_id: str, field: str, source: str, strict: bool = True
) -> Any:
    value = output
    for key in keys:
        if type(value) is dict and key in value:  # the common case, without an ABC check
            value = value[key]
        elif not strict and (value is None or (isinstance(value, Mapping) and key not in value)):
            # Kailash: a missing key gives None (logged), not an error.
            log.debug(
                "node %r, input %r: path %r of node %r's output is missing: None",
                node_id,
                field,
                path,
                source,
            )
            return None
        elif isinstance(value, Mapping):
            if key not in value:
                raise MappingPathError(node_id, field, source, path, key, [str(k) for k in value])
            value = value[key]
        elif (
            isinstance(value, list | tuple)
            and key.lstrip("-").isdigit()
            and -len(value) <= int(key) < len(value)
        ):
            value = value[int(key)]
        else:
            raise NodeInputError(
                node_id,
                field,
                f"path {path!r} of node {source!r}'s output reaches a {type(value).__name__} "
                f"before {key!r}; only mappings (and list indexes) can be followed",
            )
    return value
