"""The one supervisor: restart a failing child with backoff, up to a restart intensity."""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable

import attrs
import trio

from ._retry import RetryPolicy

__all__ = ["RestartIntensityExceeded", "RestartPolicy", "supervise"]

logger = logging.getLogger("trioworks.supervisor")

_DEFAULT_BACKOFF = RetryPolicy(base_delay=0.1, factor=2.0, max_delay=5.0, jitter=0.1)


@attrs.frozen
class RestartPolicy:
    """Restart intensity (Erlang style) and the backoff between restarts.

    A child may be restarted at most ``max_restarts`` times within any trailing ``window``
    seconds of the Trio clock; the failure that would need one more gives up.
    """

    max_restarts: int = attrs.field(
        default=3, validator=[attrs.validators.instance_of(int), attrs.validators.ge(0)]
    )
    window: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    backoff: RetryPolicy = attrs.field(
        default=_DEFAULT_BACKOFF, validator=attrs.validators.instance_of(RetryPolicy)
    )
    """Only :meth:`RetryPolicy.delay` is used, with the number of restarts inside the current
    window as ``retry_number``; ``max_attempts`` and ``retry_on`` are ignored here."""


class RestartIntensityExceeded(Exception):
    """A supervised child failed more often than its :class:`RestartPolicy` allows.

    Raised ``from`` the child's last exception (see ``__cause__``).
    """

    def __init__(self, name: str, restarts: int, window: float) -> None:
        # Keep the fields in args so the exception pickles and re-creates itself.
        super().__init__(name, restarts, window)
        self.name = name
        self.restarts = restarts
        """Restarts already made inside the window when the last failure happened."""
        self.window = window

    def __str__(self) -> str:
        return f"child {self.name!r} failed after {self.restarts} restart(s) within {self.window} s"


async def supervise(
    child: Callable[[], Awaitable[object]],
    *,
    name: str,
    policy: RestartPolicy = RestartPolicy(),
    on_restart: Callable[[str, BaseException, int], None] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``child()`` and restart it when it raises, until it returns normally.

    Calls ``task_status.started()`` once, before the first run, so ``await nursery.start(...)``
    returns as soon as supervision has begun.

    Error handling:
        When ``child`` raises an :class:`Exception` (an ``ExceptionGroup`` from a nursery inside
        it counts), the failure is logged with its traceback on logger ``trioworks.supervisor``.
        If ``policy.max_restarts`` restarts already happened within the trailing
        ``policy.window`` seconds, :exc:`RestartIntensityExceeded` is raised from the failure.
        Otherwise ``on_restart(name, exc, restarts_in_window)`` is called (counting this
        restart), the backoff delay is slept and ``child`` runs again. Exceptions from
        ``on_restart`` propagate and end supervision.

    Cancellation:
        :exc:`trio.Cancelled` and any other non-:class:`Exception` (``KeyboardInterrupt``, a
        ``BaseExceptionGroup`` holding a Cancelled) propagate at once with no restart. The
        backoff sleep is a checkpoint, so cancelling between restarts also stops promptly.
    """
    task_status.started()
    restart_times: collections.deque[float] = collections.deque()
    while True:
        try:
            await child()
            return
        except Exception as exc:
            logger.exception("supervised child %r failed", name)
            now = trio.current_time()
            while restart_times and restart_times[0] <= now - policy.window:
                restart_times.popleft()
            if len(restart_times) >= policy.max_restarts:
                raise RestartIntensityExceeded(name, len(restart_times), policy.window) from exc
            restart_times.append(now)
            count = len(restart_times)
            if on_restart is not None:
                on_restart(name, exc, count)
            delay = policy.backoff.delay(count)
        await trio.sleep(delay)
