"""Wake word detection on a Wyoming wake server (:class:`WyomingWake`: openWakeWord...), plugged
in through ``WakeService(detector=...)``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import trio

from .._audio import STT_RATE, pcm_seconds
from ..wyoming import AUDIO_FORMAT, WyomingConnection, WyomingError, WyomingEvent, connect
from ._spotter import Detection

__all__ = ["WyomingWake"]


class WyomingWake:
    """Wake word detection on a Wyoming wake server (openWakeWord...): an
    :class:`~trioworks.services.wake.AsyncDetector` with a :meth:`detections` reader.

    One connection for the whole stream: ``detect`` (``names``: the wake words to listen for;
    None: the server's), ``audio-start``, then each :meth:`feed` is an ``audio-chunk``. The
    server's ``detection`` events come through :meth:`detections`, which the wake service reads
    beside the feeding. :exc:`WyomingError` names the URL.
    """

    def __init__(self, url: str, *, names: list[str] | None = None) -> None:
        self.url = url
        self.names = names
        self._conn: WyomingConnection | None = None
        self._opened = trio.Event()
        self._heard = 0

    async def _open(self) -> WyomingConnection:
        conn = await connect(self.url)
        await conn.send(WyomingEvent("detect", {"names": self.names} if self.names else {}))
        await conn.send(WyomingEvent("audio-start", dict(AUDIO_FORMAT)))
        self._conn = conn
        self._opened.set()
        return conn

    async def feed(self, pcm: bytes) -> Detection | None:
        conn = self._conn if self._conn is not None else await self._open()
        await conn.send(WyomingEvent("audio-chunk", dict(AUDIO_FORMAT), pcm))
        self._heard += len(pcm)
        return None

    async def detections(self) -> AsyncIterator[Detection]:
        """The server's detections, as they come (waits for the first :meth:`feed`)."""
        await self._opened.wait()
        assert self._conn is not None
        while True:
            event = await self._conn.expect("detection", "not-detected")
            if event.type == "detection":
                name = event.data.get("name")
                yield Detection(str(name or ""), pcm_seconds(self._heard, STT_RATE), 1.0, 0.0)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(WyomingError):
                with trio.move_on_after(1) as scope:
                    scope.shield = True
                    await conn.send(WyomingEvent("audio-stop"))
            await conn.aclose()
        else:
            await trio.lowlevel.checkpoint()
