"""Run blocking work in a thread or a worker process, always under a named limiter.

The two helpers here are the only way trioworks moves work off the Trio loop. Both report *how*
a cancelled call ended through an ``on_cancel`` callback, so that callers (the DAG runtime, the
activity worker) can record an explicit cancellation reason instead of guessing.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import trio
import trio_parallel

__all__ = ["CancelOutcome", "run_in_process", "run_in_thread", "thread_hop"]

T = TypeVar("T")

logger = logging.getLogger("trioworks.offload")

# trio_parallel acquires its limiter internally, which would hide from us whether a cancelled call
# was still queued. We acquire the caller's limiter ourselves and hand trio_parallel a no-op one.
_NO_LIMIT = contextlib.nullcontext()


class CancelOutcome(enum.Enum):
    """How a cancelled offloaded call ended. Passed to ``on_cancel``."""

    NOT_STARTED = "not_started"
    """Cancelled while waiting for a limiter slot (or before the thread picked it up); fn never ran."""
    WAITED = "waited"
    """The thread ran to its end; the cancellation was delivered afterwards and the result discarded."""
    ABANDONED = "abandoned"
    """The thread was left running in the background; its result will be discarded."""
    KILLED = "killed"
    """The worker process running (or about to run) fn was killed."""


def _report(on_cancel: Callable[[CancelOutcome], None] | None, outcome: CancelOutcome) -> None:
    # Called from an ``except trio.Cancelled`` block: an exception from the callback must not
    # replace the Cancelled that is propagating, so it is logged and dropped.
    if on_cancel is None:
        return
    try:
        on_cancel(outcome)
    except Exception:
        logger.exception("on_cancel callback failed for outcome %s", outcome.value)


class _StartGate:
    """Decides, atomically, whether fn runs in the thread or was cancelled before starting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = False
        self._skip = False

    def enter(self) -> bool:
        """Called in the worker thread; returns False if the call was cancelled before it began."""
        with self._lock:
            if self._skip:
                return False
            self._started = True
            return True

    def close(self) -> bool:
        """Called on cancellation; returns True if fn had already started."""
        with self._lock:
            self._skip = not self._started
            return self._started


async def run_in_thread(
    fn: Callable[..., T],
    *args: Any,
    limiter: trio.CapacityLimiter,
    abandon_on_cancel: bool = False,
    on_cancel: Callable[[CancelOutcome], None] | None = None,
) -> T:
    """Run ``fn(*args)`` in a worker thread, holding a slot of ``limiter`` while it runs.

    Returns what ``fn`` returns; exceptions raised by ``fn`` propagate unchanged.

    Cancellation:
        This is a checkpoint. If the call is cancelled, :exc:`trio.Cancelled` propagates
        unchanged and ``on_cancel`` (if given) is called exactly once, before the re-raise, with:

        - ``NOT_STARTED`` if cancelled while waiting for a limiter slot or before the thread
          began ``fn``; ``fn`` is then guaranteed never to run.
        - ``ABANDONED`` if ``abandon_on_cancel`` is true and ``fn`` had started: the thread keeps
          running in the background (still holding its limiter slot until it ends) and its result
          is discarded.
        - ``WAITED`` if ``abandon_on_cancel`` is false: the call waits for ``fn`` to finish, then
          checks for cancellation; the result is discarded. If ``fn`` *raised*, that exception
          propagates instead and ``on_cancel`` is not called.

        ``on_cancel`` is never called when the call returns or raises anything but Cancelled.
        It runs on the Trio loop and must be quick; exceptions from it are logged
        (logger ``trioworks.offload``) and suppressed so the Cancelled still propagates.
    """
    gate = _StartGate()

    def gated() -> T | None:
        if not gate.enter():
            return None  # abandoned before it began: nobody will read this
        return fn(*args)

    try:
        result = await trio.to_thread.run_sync(gated, limiter=limiter, abandon_on_cancel=abandon_on_cancel)
        if not abandon_on_cancel:
            # to_thread ignores cancellation while the thread runs; deliver it now.
            await trio.lowlevel.checkpoint_if_cancelled()
    except trio.Cancelled:
        if not gate.close():
            outcome = CancelOutcome.NOT_STARTED
        elif abandon_on_cancel:
            outcome = CancelOutcome.ABANDONED
        else:
            outcome = CancelOutcome.WAITED
        _report(on_cancel, outcome)
        raise
    return result  # type: ignore[return-value]  # None only when the gate was closed


def _never_abort(_: Any) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED


async def thread_hop(fn: Callable[[], T]) -> T:
    """Run ``fn()`` in one of Trio's cached threads and wait for it, cancellation deferred.

    The lean half of :func:`run_in_thread`, for callers in this package that already hold a slot
    of their limiter (:class:`~._batch.ThreadBatcher`): no limiter, no copied context, no thread
    name (``trio.to_thread`` names the OS thread on every call: two system calls), so ``fn``
    must not call ``trio.from_thread`` without a ``trio_token`` nor read the caller's context
    variables. Not a cancellation point: the call always waits for ``fn`` to end (returns what
    it returns, raises what it raises); a cancellation meanwhile is delivered at the caller's
    next checkpoint.
    """
    task = trio.lowlevel.current_task()
    token = trio.lowlevel.current_trio_token()

    def deliver(result: Any) -> None:  # in the thread: hand the outcome to the waiting task
        token.run_sync_soon(trio.lowlevel.reschedule, task, result)

    trio.lowlevel.start_thread_soon(fn, deliver)
    result: T = await trio.lowlevel.wait_task_rescheduled(_never_abort)
    return result


async def run_in_process(
    fn: Callable[..., T],
    *args: Any,
    limiter: trio.CapacityLimiter | None = None,
    on_cancel: Callable[[CancelOutcome], None] | None = None,
) -> T:
    """Run ``fn(*args)`` in a ``trio_parallel`` worker process, holding a slot of ``limiter``.

    ``fn`` and ``args`` must be picklable (a module-level function, not a lambda or closure),
    and so must the return value and any exception raised; the worker imports ``fn``'s module.
    ``limiter`` defaults to ``trio_parallel.current_default_worker_limiter()``.
    Returns what ``fn`` returns; exceptions raised by ``fn`` propagate (re-created from pickle).

    Cancellation:
        This is a checkpoint. If cancelled, :exc:`trio.Cancelled` propagates unchanged and
        ``on_cancel`` (if given) is called exactly once with:

        - ``NOT_STARTED`` if cancelled while waiting for a limiter slot; no worker was involved.
        - ``KILLED`` once a slot is held: the worker process is killed (SIGKILL) and reaped before
          the call returns. trio_parallel does not tell us whether the worker had already begun
          ``fn`` (it may have been still starting up or unpickling the job), so ``KILLED`` means
          "a worker was given the job and killed", not "fn was interrupted mid-run".

        Same callback rules as :func:`run_in_thread`.
    """
    if limiter is None:
        limiter = trio_parallel.current_default_worker_limiter()
    try:
        await limiter.acquire()
    except trio.Cancelled:
        _report(on_cancel, CancelOutcome.NOT_STARTED)
        raise
    try:
        return await trio_parallel.run_sync(fn, *args, kill_on_cancel=True, limiter=_NO_LIMIT)
    except trio.Cancelled:
        _report(on_cancel, CancelOutcome.KILLED)
        raise
    finally:
        limiter.release()
