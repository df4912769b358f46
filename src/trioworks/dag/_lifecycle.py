"""What Kailash's runtimes share beyond running: reference counting, ``close()``, context
managers, time limits checked at entry, and awaiting a run from a foreign event loop."""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import trio

from ..core import run_in_thread
from ._errors import HardTimeLimitExceeded, SoftTimeLimitExceeded

__all__ = ["RuntimeLifecycle", "check_time_limits", "run_limited"]

T = TypeVar("T")


class RuntimeLifecycle:
    """``ref_count``, ``acquire()``/``release()``/``close()``, ``with`` and ``async with``.

    ``close()`` drops one reference; at zero the runtime is closed (idempotent). Resources of
    the registry are cleaned up at the end of each sync ``execute`` and by ``async with``.
    """

    _ref_count: int = 1
    _closed: bool = False

    @property
    def ref_count(self) -> int:
        return self._ref_count

    @property
    def closed(self) -> bool:
        return self._closed

    _thread_pool: ThreadPoolExecutor | None = None

    @property
    def thread_pool(self) -> ThreadPoolExecutor | None:
        """Kailash's ``runtime.thread_pool``: a ``ThreadPoolExecutor`` of ``thread_pool_size``
        workers for the caller's own blocking work (``loop.run_in_executor(runtime.thread_pool,
        fn)``); made on first use, no threads until work is submitted; ``None`` once closed.
        The runtime's sync nodes do not use it: they run in Trio's worker threads under the
        ``thread_pool_size`` limiter."""
        if self._closed:
            return None
        if self._thread_pool is None:
            self._thread_pool = ThreadPoolExecutor(
                max_workers=int(self.thread_limiter.total_tokens),  # type: ignore[attr-defined]
                thread_name_prefix="trioworks-dag-pool",
            )
        return self._thread_pool

    async def cleanup(self) -> None:
        """Kailash's ``await runtime.cleanup()``: shut ``thread_pool`` down (waiting for its
        work, in a worker thread) and clean up the resource registry's resources. Idempotent."""
        pool, self._thread_pool = self._thread_pool, None
        if pool is not None:
            await await_in_trio(functools.partial(_shutdown, pool))
        await self.cleanup_resources()  # type: ignore[attr-defined]

    def acquire(self) -> Any:
        if self._closed:
            raise RuntimeError("Cannot acquire a closed runtime")
        self._ref_count += 1
        return self

    def release(self) -> None:
        self.close()

    def close(self) -> None:
        if self._ref_count > 0:
            self._ref_count -= 1
        if self._ref_count == 0:
            self._closed = True
            pool, self._thread_pool = self._thread_pool, None
            if pool is not None:
                pool.shutdown(wait=False)  # does not block: running work ends on its own

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_time_limits(soft_time_limit: Any, time_limit: Any) -> None:
    """Kailash's entry check: positive finite numbers, and soft strictly less than hard."""
    for name, value in (("soft_time_limit", soft_time_limit), ("time_limit", time_limit)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number of seconds, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        if value <= 0:
            raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
    if soft_time_limit is not None and time_limit is not None and not soft_time_limit < time_limit:
        raise ValueError(
            f"soft_time_limit ({soft_time_limit!r}) must be strictly less than time_limit ({time_limit!r})"
        )


async def run_limited(
    fn: Callable[[], Awaitable[T]], soft_time_limit: float | None, time_limit: float | None
) -> T:
    """Run ``fn`` under the limits; past one, cancel it and raise the matching exception."""
    if soft_time_limit is None and time_limit is None:
        return await fn()
    limit = min(x for x in (soft_time_limit, time_limit) if x is not None)
    with trio.move_on_after(limit) as scope:
        return await fn()
    assert scope.cancelled_caught
    if soft_time_limit is not None:
        raise SoftTimeLimitExceeded(f"workflow exceeded its soft_time_limit of {soft_time_limit:g} s")
    raise HardTimeLimitExceeded(f"workflow exceeded its time_limit of {time_limit:g} s")


async def await_in_trio(fn: Callable[[], Awaitable[T]]) -> T:
    """Await ``fn`` under Trio even when the caller runs on asyncio: then the Trio engine runs
    in a worker thread with its own ``trio.run`` and the asyncio caller awaits that thread."""
    import sniffio

    library = sniffio.current_async_library()
    if library == "trio":
        return await fn()
    if library != "asyncio":
        raise RuntimeError(f"trioworks.dag runs under Trio (or is awaited from asyncio), not {library}")
    import anyio.to_thread  # httpx's own dependency: awaits a thread on the caller's asyncio loop

    return await anyio.to_thread.run_sync(trio.run, fn)


async def _shutdown(pool: ThreadPoolExecutor) -> None:
    await run_in_thread(functools.partial(pool.shutdown, wait=True), limiter=trio.CapacityLimiter(1))
