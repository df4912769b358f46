"""The MQTT transport: moat-lib-mqtt's sans-io MQTT 5 state machine driven by our own Trio I/O.

Why not moat-lib-mqtt's ``AsyncMQTTClient``: it has no reconnect, leaves an in-flight QoS 1
publish waiting forever when the connection dies, returns from ``publish`` without error on a
dead stream, and retries connects with its own ``stamina`` policy. Its state machine
(``MQTTClientStateMachine``: CONNECT/PUBLISH/SUBSCRIBE encoding, packet ids, PUBACKs to the
broker) is the part worth reusing; connection, reconnect, acknowledgements and routing live here.
"""

from __future__ import annotations

import logging
import math
import random
import sys
from collections.abc import Sequence
from typing import Any

import attrs
import trio
from moat.lib.mqtt import (
    MQTTConnAckPacket,
    MQTTConnectPacket,
    MQTTDisconnectPacket,
    MQTTException,
    MQTTPingResponsePacket,
    MQTTPublishAckPacket,
    MQTTPublishPacket,
    MQTTSubscribeAckPacket,
    MQTTUnsubscribeAckPacket,
    Pattern,
    PropertyType,
    QoS,
    ReasonCode,
    Subscription,
    Will,
)
from moat.lib.mqtt.client_state_machine import MQTTClientStateMachine
from trio_util import AsyncValue

from ..core import Metrics, RetryPolicy, retry
from ._mqtt_connection import (
    MqttError,
    _Connection,
    _ConnectionLost,
    _parse_url,
    disconnect_refusal,
    publish_size,
)
from ._topics import matches, validate_filter
from ._transport import RawMessage, Sink

__all__ = ["MqttError", "MqttTransport"]

logger = logging.getLogger("trioworks.bus.mqtt")

DEFAULT_RECONNECT = RetryPolicy(
    max_attempts=sys.maxsize, base_delay=0.2, factor=2.0, max_delay=5.0, jitter=0.5
)

PUBLISH_REFUSALS = 3
"""A QoS 1 publish in flight on this many connections in a row that the broker ended over
something this client sent (a DISCONNECT with an error reason, or a PUBACK with a reason code
the protocol library cannot decode: mosquitto answers a message over its ``message_size_limit``
with PUBACK 0x95) raises :exc:`MqttError` instead of being sent again."""


@attrs.define(eq=False)
class _Feed:
    """One subscriber of a filter. The reader puts messages into ``inbox`` without waiting;
    the feed's pump task hands them to ``sink`` in order, and may wait there."""

    pattern: str
    qos: int
    sub_id: int
    sink: Sink
    inbox: trio.MemorySendChannel[RawMessage]
    outbox: trio.MemoryReceiveChannel[RawMessage]

    async def pump(self) -> None:
        async with self.outbox:
            async for raw in self.outbox:
                await self.sink(raw)


class MqttTransport:
    """A reconnecting MQTT 5 client (tested against mosquitto 2).

    ``run`` connects (retrying with ``reconnect``: exponential backoff with jitter, via the
    core :func:`~trioworks.core.retry`), re-subscribes every registered filter, then calls
    ``task_status.started()``; after a lost connection it does the same again, forever, until
    cancelled.

    Sessions (MQTT 5): with ``session_expiry`` > 0 (seconds, default 300) the broker keeps this
    client's session that long after a lost connection, and each reconnect resumes it: QoS 1
    messages for its subscriptions that arrive while it is away are queued by the broker and
    delivered when it is back, even if it re-subscribes after their publisher resent them. A
    session left behind by an earlier process with this client id is ended on the first
    connection (so its queued messages never reach the new one); a clean shutdown ends the
    session at once (DISCONNECT with expiry 0). Across a broker *restart* this holds only if the
    broker persists sessions (mosquitto: ``persistence true``, and ``autosave_interval``, since
    mosquitto 2.0 saves the sessions of connected clients only then). ``session_expiry=0``: a
    clean session on every connection; what was published while this client was away is lost
    to it.

    Delivery guarantees: ``publish`` with QoS 1 returns once the broker sent PUBACK; if the
    connection dies first, it waits for the next connection and sends again (at least once).
    QoS 0 while disconnected is dropped and counted (``mqtt.qos0_dropped``).

    Refusals are final, never retried: a PUBACK with an error reason code (e.g.
    ``NOT_AUTHORIZED`` from an ACL, ``QUOTA_EXCEEDED``, ``PAYLOAD_FORMAT_INVALID``) raises
    :exc:`MqttError` naming the topic and the reason; a message larger than the broker's
    Maximum Packet Size (from CONNACK) raises it before anything is sent; a message in flight
    each time the broker ended the connection over what this client sent, ``PUBLISH_REFUSALS``
    times in a row, raises it too. Each is counted in ``mqtt.publish_refused``.

    Backpressure: the connection's reader never waits for a subscription (it must keep reading
    PUBACKs, or a handler publishing on this same connection would deadlock against its own
    full queue). It puts each message into the subscription's ``backlog`` (default 256
    messages), from which the subscription's own pump task offers it to the subscription,
    waiting there under overflow ``BLOCK``. A message that finds that backlog full is dropped
    and counted (``mqtt.backlog_dropped``): a broker cannot be made to wait per subscription.

    Metrics: counters ``mqtt.connects``, ``mqtt.connect_failures``, ``mqtt.connections_lost``,
    ``mqtt.publish_resends``, ``mqtt.publish_refused``, ``mqtt.qos0_dropped``,
    ``mqtt.backlog_dropped``.
    """

    def __init__(
        self,
        url: str = "mqtt://127.0.0.1:1883",
        *,
        client_id: str,
        keep_alive: int = 30,
        reconnect: RetryPolicy = DEFAULT_RECONNECT,
        connect_timeout: float = 5.0,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        backlog: int = 256,
        session_expiry: int = 300,
    ) -> None:
        if isinstance(session_expiry, bool) or not isinstance(session_expiry, int) or session_expiry < 0:
            raise ValueError(
                f"session_expiry must be an integer number of seconds >= 0, got {session_expiry!r}"
            )
        self.session_expiry = session_expiry
        self.host, self.port = _parse_url(url)
        self.client_id = client_id
        self.keep_alive = keep_alive
        self.reconnect = reconnect
        self.connect_timeout = connect_timeout
        self.metrics = metrics if metrics is not None else Metrics()
        self._rng = rng
        self.backlog = backlog
        self._pumps: trio.Nursery | None = None
        self._will: Will | None = None
        self._conn: AsyncValue[_Connection | None] = AsyncValue(None)
        self._feeds: list[_Feed] = []
        self._sub_ids: dict[str, int] = {}
        # Never reused: a late message carrying an old subscription id must not reach a new feed.
        self._next_sub_id = 1
        self.connections = AsyncValue(0)
        """How many connections were made so far (each one fully re-subscribed)."""

    def set_will(self, will: RawMessage | None) -> None:
        self._will = None
        if will is not None:
            self._will = Will(topic=will.topic, payload=will.payload, retain=will.retain, qos=QoS(will.qos))

    # --- connection lifecycle -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve, reconnect; until cancelled (then a clean DISCONNECT: no last will).

        Error handling: failures to connect are retried under ``reconnect``; when its attempts
        run out the last error propagates. A lost connection is logged and re-established.
        """
        status: trio.TaskStatus[None] | None = task_status
        # The feeds' pump tasks outlive each connection: subscriptions survive reconnects.
        async with trio.open_nursery() as self._pumps:
            try:
                while True:
                    conn = await retry(self._connect, self.reconnect, on_retry=self._on_retry, rng=self._rng)
                    await self._serve(conn, status)
                    status = None
                    self.metrics.counter("mqtt.connections_lost").inc()
                    await trio.sleep(self.reconnect.delay(1, self._rng))
            finally:
                self._pumps = None

    def _on_retry(self, attempt: int, exc: BaseException, delay: float) -> None:
        self.metrics.counter("mqtt.connect_failures").inc()
        logger.warning(
            "MQTT connect to %s:%d failed (attempt %d: %r); retrying in %.2f s",
            self.host,
            self.port,
            attempt,
            exc,
            delay,
        )

    async def _connect(self) -> _Connection:
        conn, resumed = await self._connect_once()
        if resumed and self.connections.value == 0:
            # A session this client id left behind (an earlier process): its queued messages
            # and subscription ids are not ours. End it and start a fresh one.
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await conn.stream.send_all(self._disconnect_packet(conn.sm, ending=True))
            await trio.aclose_forcefully(conn.stream)
            conn, _ = await self._connect_once()
        return conn

    async def _connect_once(self) -> tuple[_Connection, bool]:
        """A connection whose CONNACK said SUCCESS, and whether it resumed a session."""
        with trio.fail_after(self.connect_timeout):
            stream = await trio.open_tcp_stream(self.host, self.port)
            try:
                sm = MQTTClientStateMachine(client_id=self.client_id)
                await stream.send_all(self._connect_packet(sm))
                while True:
                    data = await stream.receive_some(65536)
                    if not data:
                        raise ConnectionError("the broker closed the connection during CONNECT")
                    packets = sm.feed_bytes(data)
                    for i, packet in enumerate(packets):
                        if isinstance(packet, MQTTConnAckPacket):
                            if packet.reason_code is not ReasonCode.SUCCESS:
                                raise MqttError(f"broker refused CONNECT: {packet.reason_code.name}")
                            announced = packet.properties.get(PropertyType.MAXIMUM_PACKET_SIZE)
                            max_packet = announced if isinstance(announced, int) else None
                            conn = _Connection(stream, sm, self.keep_alive, max_packet)
                            # A resumed session's queued messages can share the CONNACK's read.
                            conn.early = list(packets[i + 1 :])
                            return conn, packet.session_present
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise

    def _connect_packet(self, sm: MQTTClientStateMachine) -> bytes:
        # Never a clean start when sessions are kept, not even the first time (a session left
        # behind by an earlier process is ended in _connect): mosquitto 2.0 persists across its
        # restarts only the sessions that began with clean_start false.
        clean_start = not self.session_expiry
        sm.connect(will=self._will, clean_start=clean_start, keep_alive=self.keep_alive)
        data = bytes(sm.get_outbound_data())
        if not self.session_expiry:
            return data
        # moat-lib-mqtt's connect() cannot send CONNECT properties. It has put the state machine
        # in CONNECTING (what it needs to read the CONNACK); send the same CONNECT with a
        # session expiry instead of the one it encoded.
        packet = MQTTConnectPacket(
            client_id=self.client_id,
            will=self._will,
            clean_start=clean_start,
            keep_alive=self.keep_alive,
            properties={PropertyType.SESSION_EXPIRY_INTERVAL: self.session_expiry},
        )
        out = bytearray()
        packet.encode(out)
        return bytes(out)

    def _disconnect_packet(self, sm: MQTTClientStateMachine, *, ending: bool) -> bytes:
        sm.disconnect()
        data = bytes(sm.get_outbound_data())
        if not (ending and self.session_expiry):
            return data
        # A clean shutdown: end the session now rather than session_expiry seconds later.
        packet = MQTTDisconnectPacket(
            reason_code=ReasonCode.SUCCESS, properties={PropertyType.SESSION_EXPIRY_INTERVAL: 0}
        )
        out = bytearray()
        packet.encode(out)
        return bytes(out)

    async def _serve(self, conn: _Connection, task_status: trio.TaskStatus[None] | None) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read, conn, nursery.cancel_scope)
                if conn.keep_alive:
                    nursery.start_soon(self._ping, conn, nursery.cancel_scope)
                try:
                    await self._subscribe_on(conn, sorted(self._sub_ids, key=self._sub_ids.__getitem__))
                except _ConnectionLost:
                    nursery.cancel_scope.cancel()  # the reader may still sit on a half-dead socket
                    return
                self._conn.value = conn
                self.metrics.counter("mqtt.connects").inc()
                self.connections.value += 1
                logger.info("MQTT %r connected to %s:%d", self.client_id, self.host, self.port)
                if task_status is not None:
                    task_status.started()
                await trio.sleep_forever()  # until _read or _ping cancels: the connection is gone
        finally:
            # Cancelled from outside (not a lost connection, which ends the nursery above on
            # its own): this client is going away for good.
            ending = trio.current_effective_deadline() == -math.inf
            self._conn.value = None
            conn.alive = False
            conn.acks.fail_all(_ConnectionLost())
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                try:
                    await conn.stream.send_all(self._disconnect_packet(conn.sm, ending=ending))
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, MQTTException):
                    pass  # already gone: the broker will publish the will
                await trio.aclose_forcefully(conn.stream)

    async def _read(self, conn: _Connection, scope: trio.CancelScope) -> None:
        packets: Sequence[Any]  # the early list, or what the state machine parsed
        try:
            while True:
                if conn.early:
                    packets, conn.early = conn.early, []
                else:
                    data = await conn.stream.receive_some(65536)
                    if not data:
                        logger.warning("MQTT %r: the broker closed the connection", self.client_id)
                        return
                    packets = conn.sm.feed_bytes(data)
                for packet in packets:
                    if isinstance(packet, MQTTPublishPacket):
                        self._deliver(packet)
                    elif isinstance(
                        packet, MQTTPublishAckPacket | MQTTSubscribeAckPacket | MQTTUnsubscribeAckPacket
                    ):
                        conn.acks.resolve(packet.packet_id, packet)
                    elif isinstance(packet, MQTTPingResponsePacket):
                        conn.ping_pending = False
                    elif isinstance(packet, MQTTDisconnectPacket):
                        logger.warning(
                            "MQTT %r: broker disconnected us (%s)", self.client_id, packet.reason_code.name
                        )
                        conn.refusal = disconnect_refusal(packet)
                        return
                await conn.flush()  # the PUBACKs the state machine queued for received messages
        except MQTTException as exc:
            # A packet the state machine cannot decode, e.g. mosquitto's PUBACK 0x95 (packet
            # too large), which MQTT 5 does not allow for PUBACK: the broker refused something.
            conn.refusal = f"the broker sent a reply this client cannot decode ({exc})"
            logger.warning("MQTT %r: connection lost: %r", self.client_id, exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, _ConnectionLost) as exc:
            logger.warning("MQTT %r: connection lost: %r", self.client_id, exc)
        finally:
            conn.alive = False
            scope.cancel()

    async def _ping(self, conn: _Connection, scope: trio.CancelScope) -> None:
        while True:
            await trio.sleep(conn.keep_alive)
            if conn.ping_pending:
                logger.warning("MQTT %r: no PINGRESP within %d s", self.client_id, conn.keep_alive)
                conn.alive = False
                scope.cancel()
                return
            conn.ping_pending = True
            conn.sm.ping()
            try:
                await conn.flush()
            except _ConnectionLost:
                scope.cancel()
                return

    def _deliver(self, packet: MQTTPublishPacket) -> None:
        payload = packet.payload.encode() if isinstance(packet.payload, str) else bytes(packet.payload)
        raw = RawMessage(packet.topic, payload, qos=min(int(packet.qos), 1), retain=packet.retain)
        ids = packet.properties.get(PropertyType.SUBSCRIPTION_IDENTIFIER)
        if ids:
            # The broker names the subscription(s) this copy is for, so overlapping filters
            # never deliver the same copy twice to one feed.
            id_set = set(ids) if isinstance(ids, list | tuple) else {ids}
            feeds = [f for f in self._feeds if f.sub_id in id_set]
        else:
            feeds = [f for f in self._feeds if matches(f.pattern, packet.topic)]
        for feed in feeds:
            try:
                feed.inbox.send_nowait(raw)
            except trio.WouldBlock:
                self.metrics.counter("mqtt.backlog_dropped").inc()
                logger.warning(
                    "MQTT %r: backlog of %r full, dropped a message on %r",
                    self.client_id,
                    feed.pattern,
                    raw.topic,
                )
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # unsubscribed meanwhile

    # --- operations ---------------------------------------------------------------------------

    async def _subscribe_on(self, conn: _Connection, patterns: list[str]) -> None:
        for pattern in patterns:
            qos = max(f.qos for f in self._feeds if f.pattern == pattern)
            sub = Subscription(
                pattern=Pattern(pattern), max_qos=QoS(qos), subscription_id=self._sub_ids[pattern]
            )
            ack = await conn.call(conn.sm.subscribe([sub]))
            if ack.reason_codes[0] not in (
                ReasonCode.GRANTED_QOS_0,
                ReasonCode.GRANTED_QOS_1,
                ReasonCode.GRANTED_QOS_2,
            ):
                raise MqttError(f"broker refused SUBSCRIBE {pattern!r}: {ack.reason_codes[0].name}")

    def _refused(self, message: RawMessage, why: str) -> MqttError:
        self.metrics.counter("mqtt.publish_refused").inc()
        logger.warning("MQTT %r: broker refused PUBLISH on %r: %s", self.client_id, message.topic, why)
        return MqttError(f"broker refused PUBLISH on {message.topic!r}: {why}")

    async def publish(self, message: RawMessage) -> None:
        """Publish; QoS 1 waits for PUBACK, across reconnects (see the class docstring).

        Raises :exc:`MqttError` when the broker refuses the message (never sent again then).
        """
        attempt = 0
        refusals = 0
        while True:
            if message.qos == 0:
                conn = self._conn.value
                if conn is None:
                    self.metrics.counter("mqtt.qos0_dropped").inc()
                    await trio.lowlevel.checkpoint()
                    return
            else:
                conn = await self._conn.wait_value(lambda c: c is not None)
            assert conn is not None
            attempt += 1
            if attempt > 1:
                self.metrics.counter("mqtt.publish_resends").inc()
            if conn.max_packet is not None:
                size = publish_size(message.topic, message.payload, message.qos, message.retain)
                if size > conn.max_packet:
                    # Sending it would only get the connection closed (and the message resent).
                    await trio.lowlevel.checkpoint()
                    raise self._refused(
                        message, f"{size}-byte packet, over the broker's maximum of {conn.max_packet} bytes"
                    )
            try:
                packet_id = conn.sm.publish(
                    message.topic, message.payload, qos=QoS(message.qos), retain=message.retain
                )
                if packet_id is None:
                    await conn.flush()
                    return
                ack = await conn.call(packet_id)
            except _ConnectionLost:
                if message.qos == 0:
                    self.metrics.counter("mqtt.qos0_dropped").inc()
                    return
                if conn.refusal is not None:
                    refusals += 1
                    if refusals >= PUBLISH_REFUSALS:
                        raise self._refused(
                            message,
                            f"the broker ended the connection {refusals} times in a row while it "
                            f"waited for its PUBACK (last: {conn.refusal})",
                        ) from None
                await self._conn.wait_value(lambda c, dead=conn: c is not dead)  # no spinning on it
                continue
            except MQTTException as exc:  # the state machine says we are not connected (any more)
                if message.qos == 0:
                    self.metrics.counter("mqtt.qos0_dropped").inc()
                    return
                logger.debug("publish on %r waits for the next connection after %r", message.topic, exc)
                await self._conn.wait_value(lambda c, dead=conn: c is not dead)
                continue
            if ack.reason_code not in (ReasonCode.SUCCESS, ReasonCode.NO_MATCHING_SUBSCRIBERS):
                raise self._refused(message, ack.reason_code.name)
            return

    async def subscribe(self, pattern: str, qos: int, sink: Sink) -> _Feed:
        """Register ``sink``; subscribed at the broker (SUBACK received) when this returns, or
        re-subscribed on the next connection if the current one drops meanwhile."""
        validate_filter(pattern)
        if self._pumps is None:
            raise RuntimeError("MqttTransport.subscribe needs the transport running (start run first)")
        sub_id = self._sub_ids.get(pattern)
        if sub_id is None:
            sub_id = self._sub_ids[pattern] = self._next_sub_id
            self._next_sub_id += 1
        inbox, outbox = trio.open_memory_channel[RawMessage](self.backlog)
        feed = _Feed(pattern, qos, sub_id, sink, inbox, outbox)
        self._pumps.start_soon(feed.pump)
        self._feeds.append(feed)
        try:
            while True:
                conn = await self._conn.wait_value(lambda c: c is not None)
                assert conn is not None
                try:
                    await self._subscribe_on(conn, [pattern])
                    return feed
                except _ConnectionLost:
                    # _serve re-subscribes it on the next connection; wait for that one.
                    await self._conn.wait_value(lambda c, dead=conn: c is not dead)
        except BaseException:
            await self.unsubscribe(feed)
            raise

    async def unsubscribe(self, token: _Feed) -> None:
        if token not in self._feeds:
            await trio.lowlevel.checkpoint()
            return
        self._feeds.remove(token)
        token.inbox.close()  # its pump ends once the backlog is handed over
        if any(f.pattern == token.pattern for f in self._feeds):
            await trio.lowlevel.checkpoint()
            return
        del self._sub_ids[token.pattern]
        conn = self._conn.value
        if conn is None:
            await trio.lowlevel.checkpoint()
            return
        packet_id = conn.sm.unsubscribe([Pattern(token.pattern)])
        if packet_id is not None:
            try:
                await conn.call(packet_id)
            except _ConnectionLost:
                pass  # the next connection will not re-subscribe it anyway
