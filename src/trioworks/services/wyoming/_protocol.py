"""The Wyoming protocol over Trio TCP streams: events, their framing, and the errors.

An event on the wire is one JSON header line (``{"type": ..., "data": {...}, "data_length": N,
"payload_length": M, "version": ...}``), then ``data_length`` bytes of JSON merged into the
header's ``data``, then ``payload_length`` bytes of payload (audio). Written here from the
protocol's description; the ``wyoming`` package is asyncio and is not used.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import trio

from .._audio import STT_RATE
from .._url import parse_url

__all__ = [
    "AUDIO_FORMAT",
    "WyomingConnection",
    "WyomingError",
    "WyomingEvent",
    "connect",
    "describe",
    "parse_url",
]

AUDIO_FORMAT: dict[str, int] = {"rate": STT_RATE, "width": 2, "channels": 1}
"""The audio the services exchange with Wyoming servers: 16 kHz, 16-bit, mono."""

MAX_HEADER = 64 * 1024
"""A header line longer than this is malformed (a server speaking something else)."""
MAX_BODY = 64 * 1024 * 1024
VERSION = "1.5.0"


class WyomingError(Exception):
    """A Wyoming server could not be used: unreachable, gone mid-stream, or not speaking the
    protocol. The message names the server's URL and what went wrong."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"Wyoming server {url}: {problem}")
        self.url = url
        self.problem = problem


@attrs.frozen
class WyomingEvent:
    type: str
    data: dict[str, Any] = attrs.field(factory=dict)
    payload: bytes = b""


class WyomingConnection:
    """One TCP connection to a Wyoming server: :meth:`send` and :meth:`receive` events.

    Not safe for two concurrent senders or receivers. Errors are :exc:`WyomingError` naming
    ``url``: the server closed (or reset) the connection, or sent a malformed event.
    """

    def __init__(self, url: str, stream: trio.abc.Stream) -> None:
        self.url = url
        self._stream = stream
        self._buffer = bytearray()

    async def send(self, event: WyomingEvent) -> None:
        header: dict[str, Any] = {"type": event.type, "version": VERSION}
        data = json.dumps(event.data).encode() if event.data else b""
        if data:
            header["data_length"] = len(data)
        if event.payload:
            header["payload_length"] = len(event.payload)
        try:
            await self._stream.send_all(json.dumps(header).encode() + b"\n" + data + event.payload)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise WyomingError(self.url, f"the connection broke while sending {event.type} ({exc})") from None

    async def _fill(self, want: str) -> None:
        try:
            more = await self._stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise WyomingError(self.url, f"the connection broke while waiting for {want} ({exc})") from None
        if not more:
            raise WyomingError(self.url, f"the server closed the connection while we waited for {want}")
        self._buffer += more

    async def _take(self, n: int, want: str) -> bytes:
        while len(self._buffer) < n:
            await self._fill(want)
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    async def receive(self, want: str = "an event") -> WyomingEvent:
        """The next event. ``want`` names what the caller waits for, for the error messages."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_HEADER:
                raise WyomingError(self.url, f"malformed event header: no end of line in {MAX_HEADER} bytes")
            await self._fill(want)
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        try:
            header = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WyomingError(self.url, f"malformed event header {line[:80]!r} ({exc})") from None
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            raise WyomingError(self.url, f"malformed event header {line[:80]!r} (no type)")
        data = header.get("data") or {}
        data_length, payload_length = header.get("data_length") or 0, header.get("payload_length") or 0
        for name, value in (("data_length", data_length), ("payload_length", payload_length)):
            if not isinstance(value, int) or not 0 <= value <= MAX_BODY:
                raise WyomingError(self.url, f"malformed event header: {name} {value!r}")
        if not isinstance(data, dict):
            raise WyomingError(self.url, f"malformed event header: data is not an object ({data!r})")
        if data_length:
            raw = await self._take(data_length, want)
            try:
                extra = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise WyomingError(self.url, f"malformed event data of {header['type']} ({exc})") from None
            if not isinstance(extra, dict):
                raise WyomingError(self.url, f"malformed event data of {header['type']}: not an object")
            data = {**data, **extra}
        payload = await self._take(payload_length, want) if payload_length else b""
        return WyomingEvent(header["type"], data, payload)

    async def expect(self, *types: str) -> WyomingEvent:
        """The next event, which must be one of ``types`` (``error`` events become errors)."""
        want = " or ".join(types)
        event = await self.receive(want)
        if event.type == "error":
            raise WyomingError(
                self.url, f"the server answered an error: {event.data.get('text', event.data)}"
            )
        if event.type not in types:
            raise WyomingError(self.url, f"expected {want}, got {event.type}")
        return event

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._stream.aclose()


async def connect(url: str, *, connect_within: float = 5.0) -> WyomingConnection:
    """Open a connection to the server at ``url`` (``tcp://host:port``); :exc:`WyomingError`
    naming it when it cannot be reached within ``connect_within`` s."""
    timeout = connect_within
    host, port = parse_url(url)
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(host, port)
    except trio.TooSlowError:
        raise WyomingError(url, f"no answer within {timeout:g} s") from None
    except OSError as exc:
        raise WyomingError(url, f"cannot connect ({exc.strerror or exc})") from None
    return WyomingConnection(url, stream)


async def describe(url: str, *, answer_within: float = 5.0) -> dict[str, Any]:
    """The server's ``info`` (what it offers: ``asr``, ``tts``, ``wake``...), by ``describe``."""
    timeout = answer_within
    conn = await connect(url, connect_within=timeout)
    try:
        with trio.fail_after(timeout):
            await conn.send(WyomingEvent("describe"))
            return (await conn.expect("info")).data
    except trio.TooSlowError:
        raise WyomingError(url, f"no info within {timeout:g} s of describe") from None
    finally:
        await conn.aclose()
