"""Bounds on what a request may make the server build, checked before it is built.

A request body is bytes the server decodes into objects; a small body can describe a huge or
deep value (a YAML alias bomb, ``[[[[...]]]]``), and a value the storage or the engine cannot
hold (``1e400``, a NUL byte for Postgres) fails far from the request that sent it. So:

- :func:`check_json_shape` scans a JSON body without recursion (strings removed by a regular
  expression, then a running count of brackets) and refuses nesting deeper than
  :data:`MAX_DEPTH` or more than :data:`MAX_CONTAINERS` objects and arrays, before
  ``json.loads`` builds anything;
- :func:`load_json` decodes with every number finite (``1e400`` is a float overflow, refused);
- :func:`load_yaml` first walks the YAML *event stream* (PyYAML's parser is a state machine, not
  recursive) counting the nodes the document expands to, aliases included, and its depth; a
  billion-laughs document is refused after a few hundred events, before anything is composed.

Every refusal is :exc:`BadRequest` (400) saying which bound was passed.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

import yaml

from .._errors import BadRequest

__all__ = ["MAX_CONTAINERS", "MAX_DEPTH", "MAX_YAML_NODES", "check_json_shape", "load_json", "load_yaml"]

MAX_DEPTH = 64
"""Deepest nesting of objects/arrays accepted in a JSON or YAML body (the engine walks values
recursively: templates, references)."""
MAX_CONTAINERS = 100_000
"""Most objects + arrays in one JSON body: bounds the memory its decoded value takes (an empty
``{}`` is 3 bytes on the wire and ~64 bytes decoded)."""
MAX_YAML_NODES = 100_000
"""Most nodes a YAML document may expand to, aliases counted each time they are used."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")
# A surrogate: escaped (\\uD800-\\uDFFF; a valid pair is checked too, and passes) or raw
# (UTF-8 bytes ED A0-BF .., which json.loads lets through).
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def check_json_shape(body: bytes) -> None:
    """400 if ``body`` nests deeper than :data:`MAX_DEPTH` or has too many containers.

    Linear in the body, no recursion; a malformed body is left for ``json.loads`` to report.
    """
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return  # the common small body: it cannot pass either bound
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    opened = sum(1 for b in brackets if b in _OPEN)
    if opened > MAX_CONTAINERS:
        raise BadRequest(f"request body has {opened} objects and arrays: at most {MAX_CONTAINERS}")
    depth = max(accumulate(1 if b in _OPEN else -1 for b in brackets), default=0)
    if depth > MAX_DEPTH:
        raise BadRequest(f"request body nests {depth} levels deep: at most {MAX_DEPTH}")


def _no_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which are not JSON: stored, they would make every
    # later response that carries them fail to encode (a 500 far from the bad request).
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range (not a finite double)")
    return value


# One decoder for every body: json.loads with options builds a new decoder (and its scanner) on
# every call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def load_json(body: bytes) -> Any:
    """The decoded value of a JSON body; 400 naming the problem.

    Refuses what JSON or the storage cannot hold: non-finite numbers (``NaN``, ``1e400``), lone
    surrogates (no UTF-8 text can carry them), and the shapes :func:`check_json_shape` refuses.
    """
    check_json_shape(body)
    try:
        # As json.loads decodes bytes (UTF-8, -16 or -32, surrogates passed through).
        value = _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
        # "\ud800" escapes decode to lone surrogates, which no UTF-8 response (or database
        # text parameter) can hold: refuse them here rather than fail later with a 500. The
        # check encodes the whole value again, so it runs only when the body has a surrogate.
        if _SURROGATE.search(body):
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    return value


_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STARTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _check_yaml_events(data: bytes) -> None:
    """400 if the document expands past :data:`MAX_YAML_NODES` nodes or :data:`MAX_DEPTH` levels."""
    sizes: dict[str, int] = {}  # anchor -> nodes it expands to
    stack: list[tuple[str | None, int]] = []  # open collections: (anchor, nodes so far)
    for event in yaml.parse(data, Loader=_Loader):
        if isinstance(event, _STARTS):
            stack.append((event.anchor, 1))
            if len(stack) > MAX_DEPTH:
                raise BadRequest(f"YAML body nests more than {MAX_DEPTH} levels deep")
            continue
        if isinstance(event, _ENDS):
            anchor, size = stack.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            anchor, size = None, sizes.get(event.anchor or "", 1)  # unknown: the composer reports it
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        if stack:
            parent, inner = stack.pop()
            stack.append((parent, inner + size))
            size = inner + size
        if size > MAX_YAML_NODES:
            raise BadRequest(
                f"YAML body expands to more than {MAX_YAML_NODES} nodes (aliases counted each time used)"
            )


def load_yaml(data: bytes) -> Any:
    """The decoded value of a YAML body, which must also be JSON; 400 naming the problem."""
    try:
        _check_yaml_events(data)
        value = yaml.load(data, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise BadRequest(f"request body is not valid YAML: {exc}") from None
    try:  # YAML has more types than JSON (dates, .nan): everything stored must be JSON
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"request body has a value JSON cannot hold (quote dates): {exc}") from None
    return value
