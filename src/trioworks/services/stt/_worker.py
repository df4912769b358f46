"""The decoder process: one :class:`Recognizer` behind a pipe (``python -m`` this module).

Why a process: pocketsphinx holds the GIL inside each call, and with the general language
model one 30 ms frame can take 100–400 ms (measured on 2 busy cores), which a thread cannot
hide from the Trio loop. In its own process the decoder cannot stall the loop at all.

Protocol (stdin -> stdout), one request at a time: a request is an op byte (``F`` feed,
``L`` flush, ``R`` reset) and a 4-byte little-endian length then that many bytes of PCM; each
reply is a 4-byte length then JSON: ``{"results": [...]}`` or ``{"error": ..., "field": ...}``.
The first reply, before any request, says the recognizer loaded (``{"results": []}``) or not.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any, BinaryIO

import attrs

__all__ = ["config_from_json", "config_to_json", "serve"]


def config_to_json(config: Any) -> str:
    return json.dumps(
        attrs.asdict(config, value_serializer=lambda _i, _a, v: str(v) if isinstance(v, Path) else v)
    )


def config_from_json(text: str) -> Any:
    from ._config import SttConfig

    raw = json.loads(text)
    raw["phrases"] = tuple(raw["phrases"])
    raw["keyphrases"] = tuple(tuple(item) for item in raw["keyphrases"])
    for field in ("lm_path", "dict_path", "jsgf_path"):
        if raw[field] is not None:
            raw[field] = Path(raw[field])
    return SttConfig(**raw)


def _reply(out: BinaryIO, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    out.write(struct.pack("<I", len(body)) + body)
    out.flush()


def _read_block(stream: BinaryIO, n: int) -> bytes | None:
    """The child's side, blocking: ``n`` bytes, or None at the end (the parent reads its replies
    with :func:`trioworks.core.read_exactly`)."""
    data = b""
    while len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            return None
        data += more
    return data


def serve(config_json: str, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Load the recognizer, then answer requests until stdin ends."""
    from ._config import SttConfigError
    from ._recognizer import Recognizer, VoiceUnavailable

    try:
        recognizer = Recognizer(config_from_json(config_json))
    except SttConfigError as exc:
        _reply(stdout, {"error": exc.problem, "field": exc.field})
        return
    except VoiceUnavailable as exc:
        _reply(stdout, {"error": str(exc), "field": None})
        return
    _reply(stdout, {"results": []})
    while (head := _read_block(stdin, 5)) is not None:
        op, length = head[:1], struct.unpack("<I", head[1:])[0]
        pcm = _read_block(stdin, length) if length else b""
        if pcm is None:
            return
        if op == b"F":
            results = recognizer.feed(pcm)
        elif op == b"L":
            results = recognizer.flush()
        elif op == b"R":
            recognizer.reset()
            results = []
        else:
            _reply(stdout, {"error": f"unknown op {op!r}", "field": None})
            return
        _reply(stdout, {"results": [attrs.asdict(r) for r in results]})


if __name__ == "__main__":
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
