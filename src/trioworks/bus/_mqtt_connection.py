"""One MQTT connection: a TCP stream, its protocol state machine and its pending acknowledgements."""

from __future__ import annotations

import urllib.parse
from typing import Any

import trio
from moat.lib.mqtt import MQTTDisconnectPacket, MQTTPublishPacket, QoS, ReasonCode
from moat.lib.mqtt.client_state_machine import MQTTClientStateMachine

from ..core import Correlator
from ._errors import BusError

__all__ = ["MqttError"]


class MqttError(BusError):
    """The broker refused an operation (CONNECT, SUBSCRIBE or PUBLISH) with a reason code."""


class _ConnectionLost(Exception):
    """The connection an operation was using went away; the caller retries on the next one."""


# DISCONNECT reasons that say nothing about what this client sent (the broker going away, a
# duplicate client id, an idle connection): a publish in flight then is simply sent again.
_NOT_A_REFUSAL = frozenset(
    {
        ReasonCode.SUCCESS,
        ReasonCode.SERVER_BUSY,
        ReasonCode.SERVER_SHUTTING_DOWN,
        ReasonCode.KEEP_ALIVE_TIMEOUT,
        ReasonCode.SESSION_TAKEN_OVER,
        ReasonCode.ADMINISTRATIVE_ACTION,
        ReasonCode.USE_ANOTHER_SERVER,
        ReasonCode.SERVER_MOVED,
        ReasonCode.CONNECTION_RATE_EXCEEDED,
        ReasonCode.MAXIMUM_CONNECT_TIME,
    }
)


def disconnect_refusal(packet: MQTTDisconnectPacket) -> str | None:
    """What a broker's DISCONNECT says about the packets in flight: a refusal, or None."""
    if packet.reason_code in _NOT_A_REFUSAL:
        return None
    return f"the broker disconnected this client ({packet.reason_code.name})"


def publish_size(topic: str, payload: bytes, qos: int, retain: bool) -> int:
    """Bytes of the PUBLISH packet for this message, as moat-lib-mqtt encodes it."""
    out = bytearray()
    MQTTPublishPacket(
        topic=topic, payload=payload, qos=QoS(qos), retain=retain, packet_id=1 if qos else None
    ).encode(out)
    return len(out)


class _Connection:
    """One TCP connection and its protocol state; replaced wholesale on reconnect."""

    def __init__(
        self,
        stream: trio.SocketStream,
        sm: MQTTClientStateMachine,
        keep_alive: int,
        max_packet: int | None = None,
    ) -> None:
        self.stream = stream
        self.sm = sm
        # The broker may impose its own keep-alive in CONNACK; otherwise ours applies.
        self.keep_alive = sm.keep_alive or keep_alive
        self.max_packet = max_packet
        """The broker's Maximum Packet Size from CONNACK, when it set one."""
        self.refusal: str | None = None
        """Why the connection ended, when the broker ended it over something this client sent
        (a DISCONNECT with an error reason, or a reply it could not decode)."""
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
