"""One MQTT connection: a TCP stream, its protocol state machine and its pending acknowledgements."""

from __future__ import annotations

import urllib.parse
from typing import Any

import trio
from moat.lib.mqtt.client_state_machine import MQTTClientStateMachine

from ..core import Correlator
from ._errors import BusError

__all__ = ["MqttError"]


class MqttError(BusError):
    """The broker refused an operation (CONNECT, SUBSCRIBE or PUBLISH) with a reason code."""


class _ConnectionLost(Exception):
    """The connection an operation was using went away; the caller retries on the next one."""


class _Connection:
    """One TCP connection and its protocol state; replaced wholesale on reconnect."""

    def __init__(self, stream: trio.SocketStream, sm: MQTTClientStateMachine, keep_alive: int) -> None:
        self.stream = stream
        self.sm = sm
        # The broker may impose its own keep-alive in CONNACK; otherwise ours applies.
        self.keep_alive = sm.keep_alive or keep_alive
        self.acks: Correlator[int, Any] = Correlator()  # packet id -> PUBACK/SUBACK/UNSUBACK
        self.send_lock = trio.Lock()
        self.alive = True
        self.ping_pending = False
        self.early: list[Any] = []  # packets read together with the CONNACK, for the reader

    async def flush(self) -> None:
        """Send whatever the state machine has queued. Raises _ConnectionLost on a dead socket."""
        async with self.send_lock:
            data = self.sm.get_outbound_data()
            if not data:
                return
            if not self.alive:
                raise _ConnectionLost
            try:
                await self.stream.send_all(bytes(data))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise _ConnectionLost from exc

    async def call(self, packet_id: int) -> Any:
        """Flush, then wait for the acknowledgement of ``packet_id`` (registered before sending)."""
        with self.acks.expect(packet_id) as waiter:
            await self.flush()
            return await waiter.wait()


def _parse_url(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError(f"broker url must look like mqtt://host:port, got {url!r}")
    return parts.hostname, parts.port or 1883
