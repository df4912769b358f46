"""Node values between workers: small ones inline in the activity output, large ones as files.

A node's output travels as JSON. Encoded (compact, ASCII) up to ``max_inline_bytes`` it stays in
the activity's output row (``out``); larger, the worker streams it into a file of the activity
(the Kruxia Flow file route, ``POST .../activities/{key}/files/out.json``) and the row carries
the file's reference string (``out_file``, as any activity's file output) and a stub ``out``:
``None``, or for a switch the taken branch's key mapped to ``None`` so that the server's
``depends_on`` conditions still see which branch was taken. Readers (a downstream node's
worker, :class:`DistributedRuntime`'s result) download the file and decode it.

Encoding is streamed: :func:`json_chunks` yields the compact encoding piece by piece (C-speed
pieces: a flat container or a slice of one per piece, long strings split), so the file is written
without a second full copy of the value. The first few pieces are produced on the loop (a small
output is done there); the rest is encoded, and written if it passes the threshold, in a
thread under the caller's codec limiter. Decoding reads the downloaded file in a thread under the
same limiter.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import trio

from ..core import run_in_thread

__all__ = [
    "DEFAULT_MAX_INLINE_BYTES",
    "VALUE_FILENAME",
    "Offloaded",
    "ValueFiles",
    "decode_file",
    "json_chunks",
    "not_json_reason",
    "offload",
]

DEFAULT_MAX_INLINE_BYTES = 64 * 1024
"""A node's encoded output larger than this travels as a file (``--max-inline-bytes``)."""
VALUE_FILENAME = "out.json"

# ensure_ascii (json's default): the file is ASCII, so a lone surrogate in a str travels too.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_SCALARS = (str, int, float, bool, type(None))
_PIECE_ITEMS = 4096  # scalars per piece of a long flat list
_PIECE_CHARS = 64 * 1024  # characters of a long string per piece
# Encoded on the loop before the rest moves to a thread: a few pieces, a few milliseconds at most.
_LOOP_PIECES = 256
_LOOP_BYTES = 32 * 1024


class ValueFiles(Protocol):
    """What the worker gives the runner to move values: the activity's file transfers
    (:class:`trioworks.worker.ActivityContext` has these)."""

    async def temp_dir(self) -> Path: ...

    async def upload_file(self, local_path: str | os.PathLike[str], filename: str | None = None) -> str: ...

    async def download_file(self, reference: str) -> str: ...


def _encode(value: Any) -> str:
    return _ENCODER.encode(value)


def _key(key: Any) -> str:
    """A dict key as ``json`` writes it (``1`` -> ``"1"``); TypeError as ``json`` raises it."""
    return _encode({key: None})[1:-6]  # '{"k":null}' -> '"k"'


def _flat_size(item: Any, max_keys: int = 64) -> int | None:
    """About how many characters ``item`` encodes to if one C call may encode it (a scalar
    other than a long string, or a dict of at most ``max_keys`` such, about ``_PIECE_CHARS``
    long at most: a record); None if it must be walked."""
    if isinstance(item, str):
        return len(item) + 2 if len(item) <= _PIECE_CHARS else None
    if isinstance(item, _SCALARS):
        return 8
    if isinstance(item, dict) and len(item) <= max_keys:
        size = 2
        for value in item.values():
            if isinstance(value, str):
                size += len(value) + 12
            elif isinstance(value, _SCALARS):
                size += 20
            else:
                return None
        return size if size <= _PIECE_CHARS else None
    return None


def _flat_run(items: list[Any] | tuple[Any, ...], start: int) -> int:
    """End of the run of flat items from ``start`` that makes one piece (at most
    ``_PIECE_ITEMS`` items and about ``_PIECE_CHARS`` characters); ``start`` when there is none."""
    end, chars = start, 0
    while end < len(items) and end - start < _PIECE_ITEMS:
        size = _flat_size(items[end])
        if size is None:
            break
        chars += size
        if chars > _PIECE_CHARS and end > start:
            break
        end += 1
    return end


def json_chunks(value: Any, _walking: set[int] | None = None) -> Iterator[str]:
    """The compact JSON of ``value`` (``json.dumps(value, separators=(",", ":"),
    allow_nan=False)``, character for character) in pieces.

    Containers are walked; a flat one (scalars, or records: small dicts of scalars) is one
    piece, a long one a piece per slice, a long string a piece per slice. Raises ``TypeError`` /
    ``ValueError`` as ``json.dumps`` does (a set, NaN, a container that holds itself), possibly
    after some pieces were yielded; ``RecursionError`` for a value nested too deeply.
    """
    if isinstance(value, dict | list | tuple) and not (
        isinstance(value, dict) and _flat_size(value, _PIECE_ITEMS) is not None
    ):
        walking = set() if _walking is None else _walking
        if id(value) in walking:
            raise ValueError("Circular reference detected")
        walking.add(id(value))
        try:
            yield from _container_chunks(value, walking)
        finally:
            walking.discard(id(value))
        return
    if isinstance(value, str):
        if len(value) <= _PIECE_CHARS:
            yield _encode(value)
            return
        yield '"'
        for start in range(0, len(value), _PIECE_CHARS):
            yield _encode(value[start : start + _PIECE_CHARS])[1:-1]
        yield '"'
    else:
        yield _encode(value)  # a flat dict, a number, bool, None; or the TypeError json raises


def _container_chunks(
    value: dict[Any, Any] | list[Any] | tuple[Any, ...], walking: set[int]
) -> Iterator[str]:
    if isinstance(value, dict):
        items = list(value.items())
        values = [v for _k, v in items]
        yield "{"
        i = 0
        while i < len(items):
            comma = "," if i else ""
            end = _flat_run(values, i)
            if end > i:
                yield comma + _encode(dict(items[i:end]))[1:-1]
                i = end
            else:
                yield f"{comma}{_key(items[i][0])}:"
                yield from json_chunks(values[i], walking)
                i += 1
        yield "}"
    else:
        yield "["
        i = 0
        while i < len(value):
            comma = "," if i else ""
            end = _flat_run(value, i)
            if end > i:
                yield comma + _encode(list(value[i:end]))[1:-1]
                i = end
            else:
                yield comma
                yield from json_chunks(value[i], walking)
                i += 1
        yield "]"


def _check(value: Any) -> None:
    for _ in json_chunks(value):
        pass


def not_json_reason(output: Any) -> str | None:
    """Why ``output`` cannot travel as JSON (naming the top-level output that fails), or None."""
    try:
        _check(output)
    except (TypeError, ValueError, RecursionError) as exc:
        if isinstance(output, dict):
            for name, value in output.items():
                try:
                    _check(value)
                except (TypeError, ValueError, RecursionError) as inner:
                    return f"output {name!r} {_why(inner)}"
        return f"it {_why(exc)}"
    return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "is nested too deeply to encode as JSON"
    return f"is not JSON ({exc})"


class Offloaded:
    """An output written to a local file (``path``, ``size`` bytes of JSON)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size


def _finish(pieces: list[bytes], size: int, rest: Iterator[str], limit: int, path: Path) -> int | None:
    """Thread: encode the rest; None if the whole stays within ``limit`` (nothing written), else
    the buffered pieces and the rest written to ``path`` and the total size."""
    while size <= limit:
        text = next(rest, None)
        if text is None:
            return None
        data = text.encode("ascii")
        pieces.append(data)
        size += len(data)
    handle: IO[bytes]
    with open(path, "wb") as handle:
        for piece in pieces:
            handle.write(piece)
        pieces.clear()
        for text in rest:
            data = text.encode("ascii")
            handle.write(data)
            size += len(data)
    return size


async def offload(
    value: Any, max_inline_bytes: int, temp_dir: Callable[[], Any], limiter: trio.CapacityLimiter
) -> Offloaded | None:
    """None when ``value`` encodes to at most ``max_inline_bytes``; else the local file it was
    streamed into (in ``await temp_dir()``).

    The first pieces (up to ``_LOOP_PIECES`` or ``_LOOP_BYTES``, never past ``max_inline_bytes``)
    are encoded on the loop, so a small value costs no thread; the rest, with the file writes, in a thread under
    ``limiter`` (waited for if cancelled: the file is the activity's, removed with its temp
    directory). Raises ``TypeError`` / ``ValueError`` for a value that is not JSON.
    """
    pieces: list[bytes] = []
    size = 0
    chunks = json_chunks(value)
    for text in chunks:
        data = text.encode("ascii")
        pieces.append(data)
        size += len(data)
        if size > max_inline_bytes or size > _LOOP_BYTES or len(pieces) >= _LOOP_PIECES:
            break
    else:
        return None
    # Not VALUE_FILENAME: downloads of the node's inputs land in the same folder under that name.
    path = Path(await temp_dir()) / "output.json"
    total = await run_in_thread(_finish, pieces, size, chunks, max_inline_bytes, path, limiter=limiter)
    return None if total is None else Offloaded(path, total)


def _load(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


async def decode_file(path: str, limiter: trio.CapacityLimiter) -> Any:
    """The JSON value in ``path``, decoded in a thread under ``limiter``."""
    return await run_in_thread(_load, path, limiter=limiter)
