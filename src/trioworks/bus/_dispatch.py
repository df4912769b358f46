"""Per-subscription dispatch: a bounded channel, an overflow policy and its own handler task(s).

This is the fix for the original's head-of-line blocking: no dispatch loop ever awaits a
handler. The transport only *offers* a message to a subscription's queue; the subscription's
own task(s) decode it and run the handler.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable

import trio

from ..core import Metrics, RestartIntensityExceeded, RestartPolicy, find_error, supervise
from ._codec import Envelope, Message, converter, decode
from ._errors import EnvelopeError
from ._transport import RawMessage

__all__ = ["Handler", "MalformedHandler", "Overflow", "Subscription", "find_intensity"]

logger = logging.getLogger("trioworks.bus")

Handler = Callable[[Message], Awaitable[object]]
MalformedHandler = Callable[[RawMessage, EnvelopeError], Awaitable[object]]
"""Called with a message that failed to decode and the error naming each bad field."""


def find_intensity(exc: BaseException) -> RestartIntensityExceeded | None:
    """The RestartIntensityExceeded in ``exc`` (or in its nested exception groups), if any."""
    return find_error(exc, RestartIntensityExceeded)


class Overflow(enum.Enum):
    """What a full subscription queue does with one more message."""

    BLOCK = "block"
    """Wait for room: backpressure on the publisher (in process) or the connection (MQTT)."""
    DROP_OLDEST = "drop_oldest"
    """Discard the oldest queued message to make room (right for streams and status)."""
    DROP_NEWEST = "drop_newest"
    """Discard the incoming message."""


DEDUPE_WINDOW = 60.0
"""Seconds a subscription with ``dedupe`` remembers a message's key (see :func:`dedupe_key`)."""
DEDUPE_MAX = 4096
"""Message keys a subscription with ``dedupe`` remembers at most (the oldest are forgotten)."""


def dedupe_key(envelope: Envelope) -> str:
    """What identifies a message for ``dedupe``: its envelope id and its ``seq`` when the data
    has one, else a digest of the data (not the id alone: py-tars streams every ``tts/say``
    chunk of a reply under the reply's correlation id). A QoS 1 redelivery has the same key."""
    seq = getattr(envelope.data, "seq", None)
    if isinstance(seq, int):
        return f"{envelope.id}|seq={seq}"
    data = converter.unstructure(envelope.data)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return f"{envelope.id}|{hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()}"


class _RecentIds:
    """Message keys seen in the last ``DEDUPE_WINDOW`` seconds (at most ``DEDUPE_MAX``)."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}  # id -> trio time it is forgotten, oldest first

    def seen(self, id_: str) -> bool:
        """Whether ``id_`` was seen in the window; remembers it either way. Not a checkpoint."""
        now = trio.current_time()
        while self._expiry and (len(self._expiry) >= DEDUPE_MAX or next(iter(self._expiry.values())) <= now):
            del self._expiry[next(iter(self._expiry))]
        if self._expiry.get(id_, -1.0) > now:
            return True
        self._expiry[id_] = now + DEDUPE_WINDOW
        return False


class Subscription:
    """One subscription: filter, bounded queue, overflow policy and handler task(s).

    Created by :meth:`Bus.subscribe`. Metrics (names prefixed ``bus.sub.<name>.``): counters
    ``received``, ``dropped``, ``oversized``, ``malformed``, ``duplicates``, ``handled``,
    ``failed`` and the gauge ``queued`` (with its high-water mark).
    """

    def __init__(
        self,
        *,
        name: str,
        pattern: str,
        handler: Handler,
        capacity: int,
        overflow: Overflow,
        concurrency: int,
        max_payload: int,
        metrics: Metrics,
        restart: RestartPolicy,
        on_malformed: MalformedHandler | None = None,
        dedupe: bool = False,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"subscription {name!r}: capacity must be >= 1, got {capacity}")
        if concurrency < 1:
            raise ValueError(f"subscription {name!r}: concurrency must be >= 1, got {concurrency}")
        self.name = name
        self.pattern = pattern
        self.overflow = Overflow(overflow)
        self.concurrency = concurrency
        self._handler = handler
        self._on_malformed = on_malformed
        self._recent = _RecentIds() if dedupe else None
        self._max_payload = max_payload
        self._restart = restart
        self._send, self._receive = trio.open_memory_channel[RawMessage](capacity)
        self._scope = trio.CancelScope()
        self.token: object = None  # the transport's, set by the bus once subscribed
        prefix = f"bus.sub.{name}."
        self._received = metrics.counter(prefix + "received")
        self._dropped = metrics.counter(prefix + "dropped")
        self._oversized = metrics.counter(prefix + "oversized")
        self._malformed = metrics.counter(prefix + "malformed")
        self._handled = metrics.counter(prefix + "handled")
        self._duplicates = metrics.counter(prefix + "duplicates")
        self._failed = metrics.counter(prefix + "failed")
        self._queued = metrics.gauge(prefix + "queued")

    async def offer(self, raw: RawMessage) -> None:
        """The transport's sink: queue ``raw`` under the overflow policy.

        Never runs the handler. Only ``BLOCK`` on a full queue waits; the drop policies return
        at once (a checkpoint-free path, so delivery to other subscriptions is never delayed).
        """
        if len(raw.payload) > self._max_payload:
            self._oversized.inc()
            logger.warning(
                "dropped %d-byte message on %r for subscription %r: over the %d-byte limit",
                len(raw.payload),
                raw.topic,
                self.name,
                self._max_payload,
            )
            return
        self._received.inc()
        try:
            try:
                self._send.send_nowait(raw)
            except trio.WouldBlock:
                if self.overflow is Overflow.BLOCK:
                    await self._send.send(raw)
                elif self.overflow is Overflow.DROP_NEWEST:
                    self._dropped.inc()
                else:
                    self._receive.receive_nowait()  # full, so never WouldBlock; we are single-threaded
                    self._dropped.inc()
                    self._send.send_nowait(raw)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # The handler tasks are gone (stopped, or failed past their restarts): nobody will
            # ever read this queue, so a BLOCK offer must not wait forever.
            self._dropped.inc()
            return
        self._queued.set(self._send.statistics().current_buffer_used)

    async def _consume(self) -> None:
        async for raw in self._receive:
            self._queued.set(self._send.statistics().current_buffer_used)
            if not raw.payload:
                continue  # a retained message being cleared, not a message for the handler
            try:
                envelope = decode(raw.topic, raw.payload)
            except EnvelopeError as exc:
                # Bad input from another service must not take this one down: log, count, and
                # let the service answer it (a requester should not wait for its deadline).
                self._malformed.inc()
                logger.warning("subscription %r dropped a message: %s", self.name, exc)
                if self._on_malformed is not None:
                    try:
                        await self._on_malformed(raw, exc)
                    except Exception:
                        self._failed.inc()
                        raise  # like a failing handler: logged and restarted by the supervisor
                continue
            if self._recent is not None and self._recent.seen(dedupe_key(envelope)):
                # QoS 1 is at least once: a resend after a lost acknowledgement, or a resumed
                # session's redelivery, is the same envelope again. Handle it once.
                self._duplicates.inc()
                continue
            try:
                await self._handler(Message(raw.topic, envelope, raw.retain))
            except Exception:
                self._failed.inc()
                raise  # the supervisor logs it and restarts this consumer
            self._handled.inc()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the handler task(s), each supervised with the restart policy, until :meth:`stop`.

        Raises :exc:`~trioworks.core.RestartIntensityExceeded` (inside an ExceptionGroup) when a
        handler keeps failing; the message being handled when a handler raised is lost.
        """
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    for i in range(self.concurrency):
                        child_name = f"{self.name}#{i}" if self.concurrency > 1 else self.name
                        nursery.start_soon(
                            functools.partial(supervise, self._consume, name=child_name, policy=self._restart)
                        )
                    task_status.started()
        finally:
            self._receive.close()  # later offers are dropped instead of blocking

    def stop(self) -> None:
        """Cancel the handler task(s); queued messages are discarded. Not a checkpoint."""
        self._scope.cancel()
        self._send.close()
