"""The bus: typed publish, subscribe with per-subscription dispatch, and request/response."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import trio
from trio_util import AsyncValue

from ..core import Correlator, Metrics, RestartPolicy
from ._codec import Envelope, Message, encode, fill_times, new_id, spec_for, type_for_topic
from ._contracts import HealthStatus
from ._dispatch import Handler, MalformedHandler, Overflow, Subscription, find_intensity
from ._errors import PayloadTooLarge, RequestTimeout
from ._topics import validate_filter, validate_topic
from ._transport import RawMessage, Transport

__all__ = ["DEFAULT_MAX_PAYLOAD", "Bus"]

logger = logging.getLogger("trioworks.bus")

DEFAULT_MAX_PAYLOAD = 256 * 1024
"""Bytes; larger messages are refused on publish and dropped (counted) on receipt."""


def health_topic(client_id: str) -> str:
    return f"system/health/{client_id}"


class Bus:
    """Typed messaging over a :class:`Transport`, for one service (``source``).

    Start it with ``await nursery.start(bus.run)``; it is connected when that returns.
    ``publish``, ``subscribe`` and ``request`` may then be called from any task.
    The broker's last will for this client is ``system/health/<source>`` retained
    ``{ok: false, event: "offline", err: "connection lost"}``, so a service that dies is marked
    unhealthy; one that stops cleanly publishes ``{ok: false, event: "stopped"}`` itself.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        source: str,
        metrics: Metrics | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.transport = transport
        self.source = source
        self.metrics = metrics if metrics is not None else Metrics()
        self.max_payload = max_payload
        self._clock = clock
        self._nursery: trio.Nursery | None = None
        self._correlator: Correlator[str, Message] = Correlator()
        self._reply_routes: dict[str, Subscription] = {}
        self._route_lock = trio.Lock()
        self._names: set[str] = set()
        self._exit_health: tuple[str, str | None] = ("stopped", None)
        self._health: HealthStatus | None = None  # the last one published, restored on reconnect
        self.goodbye_timeout = 2.0
        will = self._envelope(
            health_topic(source), HealthStatus(ok=False, event="offline", err="connection lost")
        )
        transport.set_will(
            RawMessage(health_topic(source), encode(health_topic(source), will), qos=1, retain=True)
        )

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the transport and own the nursery of subscriptions started without one.

        ``task_status.started()`` is called once the transport is connected. Runs until
        cancelled. Errors from the transport or a subscription (after its restarts) propagate.

        Resource handling:
            On the way out (cancelled or failing) the bus publishes its retained health
            ``{ok: false, event: exit_event}`` (``"stopped"`` unless :meth:`set_exit_health`
            said otherwise), shielded and bounded by ``goodbye_timeout`` seconds, and only then
            stops the transport (a clean disconnect: the broker does not send the last will).
        """
        transport_scope = trio.CancelScope()

        async def run_transport(*, task_status: trio.TaskStatus[None]) -> None:
            with transport_scope:
                await self.transport.run(task_status=task_status)

        async with trio.open_nursery() as nursery:
            await nursery.start(run_transport)
            # Connected: from now on the transport outlives a cancellation of the bus long
            # enough to send the goodbye below; its scope is cancelled explicitly after it.
            transport_scope.shield = True
            self._nursery = nursery
            connections = self.transport.connections  # declared by transports that reconnect
            if connections is not None:
                nursery.start_soon(self._restore_health, connections)
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None
                with trio.CancelScope(shield=True), trio.move_on_after(self.goodbye_timeout):
                    try:
                        await self.publish_health(False, *self._exit_health)
                    except Exception:
                        logger.warning(
                            "bus %r could not publish its final health", self.source, exc_info=True
                        )
                transport_scope.cancel()
                # The subscriptions die with the transport; a later run() starts afresh.
                self._reply_routes.clear()
                self._names.clear()

    async def _restore_health(self, connections: AsyncValue[int]) -> None:
        # After a lost connection the broker has published our last will ("offline"), and a
        # broker restarted without persistence has forgotten every retained message: say again
        # what we last said, on each new connection.
        seen = connections.value
        while True:
            seen = await connections.wait_value(lambda n, last=seen: n > last)
            health = self._health
            if health is None:
                continue
            try:
                await self.publish(health_topic(self.source), health)
                self.metrics.counter("bus.health.restored").inc()
            except Exception:
                logger.warning("bus %r could not restore its health", self.source, exc_info=True)

    def set_exit_health(self, event: str, err: str | None = None) -> None:
        """What the final health message (published when :meth:`run` ends) says."""
        self._exit_health = (event, err)

    # --- publishing -------------------------------------------------------------------------

    def _envelope(self, topic: str, data: Any, id: str | None = None) -> Envelope:
        ts = self._clock()
        # An unset transcript ts / tts status timestamp (py-tars always has one) is the envelope's.
        return Envelope(
            id=id or new_id(),
            type=type_for_topic(topic),
            ts=ts,
            source=self.source,
            data=fill_times(data, ts),
        )

    async def publish(
        self,
        topic: str,
        data: Any,
        *,
        qos: int | None = None,
        retain: bool | None = None,
        id: str | None = None,
    ) -> Envelope:
        """Wrap ``data`` in an envelope and publish it on ``topic``; return the envelope.

        ``data`` must be the topic's contract class (a ``dict`` for off-table topics);
        ``qos``/``retain`` default to the topic table's (QoS 1, not retained off-table).
        Raises :exc:`TopicError`, :exc:`ContractError` or :exc:`PayloadTooLarge` before sending.

        Cancellation: a checkpoint. QoS 1 returns once the broker acknowledged the message
        (over MQTT, waiting through reconnects); cancelling it may still deliver the message.
        """
        validate_topic(topic)
        spec = spec_for(topic)
        envelope = self._envelope(topic, data, id)
        payload = encode(topic, envelope)
        if len(payload) > self.max_payload:
            raise PayloadTooLarge(topic, len(payload), self.max_payload)
        message = RawMessage(
            topic,
            payload,
            qos=qos if qos is not None else (spec.qos if spec else 1),
            retain=retain if retain is not None else (spec.retain if spec else False),
        )
        await self.transport.publish(message)
        self.metrics.counter("bus.published").inc()
        return envelope

    async def reply(self, request: Message, topic: str, data: Any, **kwargs: Any) -> Envelope:
        """Publish ``data`` on ``topic`` with the request's envelope id as correlation id."""
        return await self.publish(topic, data, id=request.envelope.id, **kwargs)

    async def publish_health(self, ok: bool, event: str, err: str | None = None) -> Envelope:
        """Publish this service's retained ``system/health/<source>``.

        Over a transport that reconnects (MQTT), the last health published is published again
        on each new connection (it replaces the broker's last will, ``offline``).
        """
        health = HealthStatus(ok=ok, event=event, err=err)
        self._health = health
        return await self.publish(health_topic(self.source), health)

    async def clear_retained(self, topic: str) -> None:
        """Remove the broker's retained message on ``topic`` (an empty retained publish, QoS 1).

        Current subscribers receive the empty message; the bus skips it without calling handlers.
        """
        validate_topic(topic)
        await self.transport.publish(RawMessage(topic, b"", qos=1, retain=True))

    # --- subscribing ------------------------------------------------------------------------

    async def subscribe(
        self,
        pattern: str,
        handler: Handler,
        *,
        capacity: int = 64,
        overflow: Overflow = Overflow.BLOCK,
        concurrency: int = 1,
        name: str | None = None,
        qos: int = 1,
        restart: RestartPolicy = RestartPolicy(),
        nursery: trio.Nursery | None = None,
        on_malformed: MalformedHandler | None = None,
        dedupe: bool = False,
    ) -> Subscription:
        """Subscribe ``handler`` to ``pattern`` (``+``/``#`` wildcards allowed).

        The handler runs in the subscription's own task(s), started in ``nursery`` (the bus's
        own when None), each fed by a queue of ``capacity`` messages with the ``overflow``
        policy. With ``concurrency=1`` messages are handled one at a time in arrival order.
        A handler that raises is logged and restarted under ``restart``; past that limit
        :exc:`RestartIntensityExceeded` propagates into ``nursery``. Retained messages matching
        ``pattern`` are delivered after the subscription is active, which it is when this returns.

        Bad input: a message that fails to decode is logged, counted (``malformed``) and, when
        ``on_malformed`` is given, passed to it as ``(raw, EnvelopeError)`` in the handler's task
        and order (so a service can answer a bad request; :func:`salvage` reads its ids); it
        never reaches ``handler``. A message over ``max_payload`` bytes is logged, counted
        (``oversized``) and dropped on arrival, before it is queued or parsed: neither callback
        sees it.

        ``dedupe``: a message whose key (envelope id and ``seq``, else a digest of ``data``; see
        :func:`~trioworks.bus._dispatch.dedupe_key`) this subscription handled in the last 60 s is
        dropped (counted in ``duplicates``): QoS 1 delivers at least once, so a resend can repeat
        a request. For routes whose handler must not run twice for one message.
        """
        validate_filter(pattern)
        target = nursery if nursery is not None else self._nursery
        if target is None:
            raise RuntimeError("Bus.subscribe needs a nursery: start bus.run first or pass nursery=")
        name = name or pattern
        if name in self._names:
            raise ValueError(f"a subscription named {name!r} already exists on this bus")
        sub = Subscription(
            name=name,
            pattern=pattern,
            handler=handler,
            capacity=capacity,
            overflow=overflow,
            concurrency=concurrency,
            max_payload=self.max_payload,
            metrics=self.metrics,
            restart=restart,
            on_malformed=on_malformed,
            dedupe=dedupe,
        )
        self._names.add(name)

        async def serve(*, task_status: trio.TaskStatus[None]) -> None:
            try:
                await sub.serve(task_status=task_status)
            except BaseException as exc:
                failure = find_intensity(exc)
                if failure is not None:  # the health this bus leaves behind says why
                    self.set_exit_health("crashed", str(failure))
                raise

        try:
            await target.start(serve)
        except BaseException:
            # Cancelled (or failed) while starting: the name must not stay taken, or every later
            # subscribe under it (e.g. the reply route of the next request) would be refused.
            self._names.discard(name)
            raise
        try:
            sub.token = await self.transport.subscribe(pattern, qos, sub.offer)
        except BaseException:
            sub.stop()
            self._names.discard(name)
            raise
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        """Stop ``sub``: unsubscribe at the transport, cancel its handler tasks. Idempotent."""
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await self.transport.unsubscribe(sub.token)
        sub.stop()
        self._names.discard(sub.name)

    # --- request / response -------------------------------------------------------------------

    async def _reply_route(self, reply_topic: str) -> None:
        async with self._route_lock:
            if reply_topic not in self._reply_routes:
                self._reply_routes[reply_topic] = await self.subscribe(
                    reply_topic, self._on_reply, capacity=256, name=f"replies:{reply_topic}"
                )

    async def _on_reply(self, message: Message) -> None:
        if not self._correlator.resolve(message.envelope.id, message):
            # A late reply (its request timed out) or one meant for another client.
            self.metrics.counter("bus.replies.unmatched").inc()

    @property
    def pending_requests(self) -> int:
        """How many requests are waiting for a reply (0 whenever none is in flight)."""
        return len(self._correlator)

    async def request(
        self,
        topic: str,
        data: Any,
        *,
        reply_topic: str,
        timeout: float,  # noqa: ASYNC109  # the spec's per-request deadline; applied as a cancel scope below
        id: str | None = None,
        qos: int | None = None,
    ) -> Message:
        """Publish a request and return the reply whose envelope id equals the request's.

        The waiter is registered before publishing and removed when this returns, raises or is
        cancelled. ``id`` defaults to a fresh uuid; one already in flight raises
        :exc:`DuplicateCorrelationId`. The ``timeout`` deadline (a cancel scope around the
        publish and the wait) raises :exc:`RequestTimeout`. The first request on a
        ``reply_topic`` subscribes to it once, for the life of the bus.
        """
        await self._reply_route(reply_topic)
        request_id = id or new_id()
        with self._correlator.expect(request_id) as waiter:
            with trio.move_on_after(timeout) as scope:
                await self.publish(topic, data, id=request_id, qos=qos)
                return await waiter.wait()
        assert scope.cancelled_caught
        self.metrics.counter("bus.requests.timed_out").inc()
        raise RequestTimeout(topic, reply_topic, request_id, timeout)
