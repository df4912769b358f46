"""The transport interface the bus is written against, and the raw message it carries.

A transport moves bytes; the bus owns envelopes, contracts, dispatch and correlation. Swapping
:class:`~trioworks.bus.InProcessTransport` for :class:`~trioworks.bus.MqttTransport` changes
nothing above this line (the httpx ``MockTransport`` idea).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
import trio
from trio_util import AsyncValue

__all__ = ["RawMessage", "Sink", "Transport"]


@attrs.frozen
class RawMessage:
    """One message as the transport sees it: topic, encoded bytes, QoS and retain flag."""

    topic: str
    payload: bytes
    qos: int = attrs.field(default=0, validator=attrs.validators.in_((0, 1)))
    retain: bool = False


Sink = Callable[[RawMessage], Awaitable[None]]
"""Where a transport delivers a subscription's messages. May block (backpressure)."""


class Transport(Protocol):
    """What :class:`~trioworks.bus.Bus` needs from a transport.

    ``run`` serves until cancelled and calls ``task_status.started()`` once connected. While it
    runs, ``publish``/``subscribe``/``unsubscribe`` may be called from any task. Subscriptions
    survive reconnects: the transport re-subscribes every registered filter on each new
    connection before publishing resumes.
    """

    client_id: str

    @property
    def connections(self) -> AsyncValue[int] | None:
        """Capability: a transport that reconnects counts its connections here (each one fully
        re-subscribed), and the bus says its health again on each new one. ``None``: it never
        reconnects (:class:`~trioworks.bus.InProcessTransport`)."""

    def set_will(self, will: RawMessage | None) -> None:
        """The message the broker publishes if this client dies without a clean disconnect."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None: ...

    async def publish(self, message: RawMessage) -> None:
        """Send ``message``. QoS 1 returns once the broker acknowledged it."""

    async def subscribe(self, pattern: str, qos: int, sink: Sink) -> Any:
        """Register ``sink`` for ``pattern``; active at the broker when this returns. Returns a token."""

    async def unsubscribe(self, token: Any) -> None:
        """Stop delivering to the subscription ``token``; idempotent."""
