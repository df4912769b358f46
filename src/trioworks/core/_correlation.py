"""The one correlation mechanism: a table of waiters keyed by correlation id.

Every request/response exchange in trioworks (bus requests, MQTT packet acknowledgements) uses
:class:`Correlator`; no subsystem keeps its own dict of futures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

import trio

__all__ = ["Correlator", "DuplicateCorrelationId", "Waiter"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class DuplicateCorrelationId(Exception):
    """A waiter for this correlation id is already registered."""

    def __init__(self, key: object) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"a waiter for correlation id {self.key!r} is already registered"


class Waiter(Generic[T]):
    """One pending exchange: resolved once, with a value or an error, by the :class:`Correlator`."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def _settle(self, value: T | None, error: BaseException | None) -> bool:
        if self._event.is_set():
            return False  # first answer wins; a duplicate reply is ignored
        self._value, self._error = value, error
        self._event.set()
        return True

    async def wait(self) -> T:
        """Wait for the answer and return it, or raise the error it was failed with.

        This is a checkpoint. Cancelling it leaves the waiter registered until the
        :meth:`Correlator.expect` block exits, which removes it.
        """
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set together with the event


class Correlator(Generic[K, T]):
    """Waiters keyed by correlation id.

    Register with ``with correlator.expect(key) as waiter:`` *before* sending the request, then
    ``await waiter.wait()`` (under a cancel scope for the deadline). The waiter is removed when
    the block exits, however it exits, so a timed-out or cancelled request leaves nothing behind.
    None of the methods here are checkpoints.
    """

    def __init__(self) -> None:
        self._waiters: dict[K, Waiter[T]] = {}

    def __len__(self) -> int:
        return len(self._waiters)

    def __contains__(self, key: object) -> bool:
        return key in self._waiters

    @contextlib.contextmanager
    def expect(self, key: K) -> Iterator[Waiter[T]]:
        """Register a waiter for ``key`` for the duration of the block.

        Raises :exc:`DuplicateCorrelationId` (before registering anything) when a waiter for
        ``key`` already exists; the existing waiter is left untouched.
        """
        if key in self._waiters:
            raise DuplicateCorrelationId(key)
        waiter: Waiter[T] = Waiter()
        self._waiters[key] = waiter
        try:
            yield waiter
        finally:
            # Only remove our own waiter; the key cannot have been re-registered while we held it.
            if self._waiters.get(key) is waiter:
                del self._waiters[key]

    def resolve(self, key: K, value: T) -> bool:
        """Hand ``value`` to the waiter for ``key``.

        Returns False when nobody waits for ``key`` (a late or unknown reply) or the waiter was
        already answered; the caller decides whether to log or count that.
        """
        waiter = self._waiters.get(key)
        return waiter is not None and waiter._settle(value, None)

    def fail(self, key: K, error: BaseException) -> bool:
        """Make the waiter for ``key`` raise ``error``; same return value as :meth:`resolve`."""
        waiter = self._waiters.get(key)
        return waiter is not None and waiter._settle(None, error)

    def fail_all(self, error: BaseException) -> int:
        """Fail every waiter not yet answered with ``error`` (e.g. the connection was lost).

        Each waiter re-raises the same exception object. Returns how many were failed.
        """
        return sum(waiter._settle(None, error) for waiter in list(self._waiters.values()))
