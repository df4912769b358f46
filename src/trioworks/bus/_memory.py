"""The in-process transport: the embedded default, with MQTT's semantics and no broker.

Retained messages, wildcards, QoS 0/1 (both are reliable in process) and the last will behave as
they do over MQTT, so a service tested in process behaves the same against mosquitto.
"""

from __future__ import annotations

import itertools

import attrs
import trio
from trio_util import AsyncValue

from ._topics import matches, validate_filter, validate_topic
from ._transport import RawMessage, Sink

__all__ = ["InProcessBroker", "InProcessTransport"]


@attrs.define(eq=False)
class _Feed:
    pattern: str
    sink: Sink
    owner: InProcessTransport


class InProcessBroker:
    """A broker living in this process; share one between the transports that should talk.

    Delivery is synchronous with the publisher: ``publish`` hands the message to each matching
    subscription's sink in turn, so a sink that blocks (overflow policy ``BLOCK``) slows only
    the publisher, never another subscription's handler.
    """

    def __init__(self) -> None:
        self.retained: dict[str, RawMessage] = {}
        self._feeds: list[_Feed] = []

    async def publish(self, message: RawMessage) -> None:
        """Store (or, with an empty payload, clear) a retained message, then deliver to every match."""
        validate_topic(message.topic)
        if message.retain:
            if message.payload:
                self.retained[message.topic] = message
            else:
                self.retained.pop(message.topic, None)
        for feed in list(self._feeds):
            if feed in self._feeds and matches(feed.pattern, message.topic):
                await feed.sink(message)
        await trio.lowlevel.checkpoint()

    async def _add(self, feed: _Feed) -> None:
        self._feeds.append(feed)
        for message in list(self.retained.values()):
            if matches(feed.pattern, message.topic):
                await feed.sink(attrs.evolve(message, retain=True))

    def _remove(self, feed: _Feed) -> None:
        if feed in self._feeds:
            self._feeds.remove(feed)


class InProcessTransport:
    """One client of an :class:`InProcessBroker`."""

    _ids = itertools.count(1)

    def __init__(self, broker: InProcessBroker, *, client_id: str | None = None) -> None:
        self.broker = broker
        self.client_id = client_id or f"inproc-{next(self._ids)}"
        self._will: RawMessage | None = None
        self._feeds: list[_Feed] = []
        self._running = False
        self.connections: AsyncValue[int] | None = None  # one connection for the whole run

    def set_will(self, will: RawMessage | None) -> None:
        self._will = will

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; leaving (for any reason) is a clean disconnect: no will."""
        self._running = True
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            self._running = False
            for feed in self._feeds:
                self.broker._remove(feed)
            self._feeds.clear()

    async def kill(self) -> None:
        """Simulate this client dying: drop its subscriptions and publish its last will."""
        for feed in self._feeds:
            self.broker._remove(feed)
        self._feeds.clear()
        if self._will is not None:
            await self.broker.publish(self._will)

    async def publish(self, message: RawMessage) -> None:
        await self.broker.publish(message)

    async def subscribe(self, pattern: str, qos: int, sink: Sink) -> _Feed:
        validate_filter(pattern)
        feed = _Feed(pattern, sink, self)
        self._feeds.append(feed)
        await self.broker._add(feed)
        return feed

    async def unsubscribe(self, token: _Feed) -> None:
        if token in self._feeds:
            self._feeds.remove(token)
        self.broker._remove(token)
        await trio.lowlevel.checkpoint()
