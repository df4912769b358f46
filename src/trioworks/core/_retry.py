"""The one retry helper: exponential backoff with jitter, limiter released between attempts."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import trio

__all__ = ["RetryPolicy", "retry"]

T = TypeVar("T")


def _is_exception(exc: BaseException) -> bool:
    """Default ``retry_on``: retry any :class:`Exception` (never Cancelled or KeyboardInterrupt)."""
    return isinstance(exc, Exception)


@attrs.frozen
class RetryPolicy:
    """How many times to try, and how long to wait between tries.

    The delay before retry ``n`` (``n = 1`` is the wait before the 2nd attempt) is
    ``min(base_delay * factor ** (n - 1), max_delay)``, multiplied by ``uniform(1 - jitter, 1)``,
    so jitter only ever shortens a delay and never exceeds ``max_delay``.
    """

    max_attempts: int = attrs.field(
        default=3, validator=[attrs.validators.instance_of(int), attrs.validators.ge(1)]
    )
    """Total attempts including the first; 1 means no retry."""
    base_delay: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
    """Seconds before the 2nd attempt."""
    factor: float = attrs.field(default=2.0, validator=attrs.validators.gt(0))
    """Exponential growth factor; 1.0 gives a fixed delay."""
    max_delay: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    """Cap on a single delay, applied before jitter."""
    jitter: float = attrs.field(default=0.1, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
    """Fraction in [0, 1] by which a delay may be randomly shortened."""
    retry_on: Callable[[BaseException], bool] = attrs.field(
        default=_is_exception, validator=attrs.validators.is_callable()
    )
    """Predicate on the failure; only consulted for :class:`Exception` instances."""

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based). ``rng`` defaults to :mod:`random`."""
        if retry_number < 1:
            raise ValueError(f"retry_number must be >= 1, got {retry_number}")
        try:
            raw = self.base_delay * self.factor ** (retry_number - 1)
        except OverflowError:  # huge retry_number with factor > 1: the cap applies anyway
            raw = self.max_delay
        capped = min(raw, self.max_delay)
        if self.jitter == 0:
            return capped
        uniform = rng.uniform if rng is not None else random.uniform
        return capped * uniform(1 - self.jitter, 1)

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether to try again after ``exc`` ended attempt number ``attempt`` (1-based).

        Never true for :exc:`trio.Cancelled`, :exc:`KeyboardInterrupt` or any other
        non-:class:`Exception` (including a ``BaseExceptionGroup`` holding a Cancelled).
        """
        if not isinstance(exc, Exception) or attempt >= self.max_attempts:
            return False
        return bool(self.retry_on(exc))


async def retry(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    limiter: trio.CapacityLimiter | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    rng: random.Random | None = None,
) -> T:
    """Await ``fn()`` until it succeeds or ``policy`` says to stop; return its result.

    Each attempt runs inside ``async with limiter:`` when a limiter is given. The slot is
    released before the backoff sleep and re-acquired for the next attempt, so a task waiting
    to retry never holds capacity others could use.

    Before each backoff sleep, ``on_retry(failed_attempt_number, exc, delay)`` is called.

    Error handling:
        When the policy gives up (attempts exhausted or ``retry_on`` false), the last
        exception itself is re-raised with its traceback, not wrapped. Exceptions from
        ``on_retry`` propagate (chained to the attempt's exception) and end the retrying.

    Cancellation:
        Every attempt and every backoff sleep (:func:`trio.sleep`) is a checkpoint, so
        cancellation is delivered promptly, including while waiting between attempts.
        :exc:`trio.Cancelled` and other non-Exception errors are never retried.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            if limiter is None:
                return await fn()
            async with limiter:
                return await fn()
        except Exception as exc:
            if not policy.should_retry(exc, attempt):
                raise
            delay = policy.delay(attempt, rng)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
        # Sleep outside the except block: the limiter is released and the failed exception's
        # traceback is not kept alive across the wait.
        await trio.sleep(delay)
