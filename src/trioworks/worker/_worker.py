"""The worker: poll with reserved slots, run activities, drain on shutdown."""

from __future__ import annotations

import gc
import logging
import random
import signal
from collections.abc import Iterable

import attrs
import cattrs
import httpx
import trio
import trio_util

from ..core import Metrics, RestartPolicy, RetryPolicy, supervise
from ._activity import Activity, ActivityDefinition, registry_of
from ._client import WorkerApiClient
from ._config import WorkerConfig
from ._context import ActivityContext, CancelReason
from ._errors import ApiError, AuthenticationError
from ._execute import ActivityRunner, Limiters
from ._heartbeats import HeartbeatStarter
from ._wire import PendingActivity

__all__ = ["Worker", "WorkerStats"]

logger = logging.getLogger("trioworks.worker")

_AUTH_BACKOFF = RetryPolicy(base_delay=1.0, factor=2.0, max_delay=60.0, jitter=0.5)
_ERROR_BACKOFF = RetryPolicy(base_delay=0.5, factor=2.0, max_delay=30.0, jitter=0.5)


@attrs.frozen
class WorkerStats:
    """A snapshot of the worker's health."""

    slots_total: int
    slots_used: int
    running: int
    started: int
    completed: int
    failed: int
    lease_lost: int
    reports_lost: int
    polls: int
    poll_errors: int
    loop_lag: float
    """Latest event-loop lag seen by the ticker, seconds."""
    loop_lag_max: float

    @property
    def slots_free(self) -> int:
        return self.slots_total - self.slots_used

    def line(self) -> str:
        return (
            f"slots {self.slots_used}/{self.slots_total} used, running {self.running}, "
            f"completed {self.completed}, failed {self.failed}, lease lost {self.lease_lost}, "
            f"reports lost {self.reports_lost}, polls {self.polls} ({self.poll_errors} failed), "
            f"loop lag {self.loop_lag * 1000:.1f} ms (max {self.loop_lag_max * 1000:.1f} ms)"
        )


class Worker:
    """Polls a Kruxia Flow server for activities and runs them.

    Start it with ``await nursery.start(worker.run)`` (or ``trio.run(worker.run)``); stop it with
    :meth:`request_drain` / :meth:`drain`, SIGINT/SIGTERM when ``handle_signals`` is true, or by
    cancelling ``run``. ``freeze_gc=True`` calls :func:`gc.freeze` once serving (and
    :func:`gc.unfreeze` when ``run`` returns): process-wide, so set it only when the worker owns
    the process, as ``trioworks worker`` does.

    Resource handling:
        ``max_activities`` work slots; a slot is reserved *before* polling and the poll asks for
        exactly the reserved number (``min(free, poll_max_activities)``), so claimed work never
        waits. Plain ``def`` activities use the thread limiter, process activities the process
        limiter, file transfers the I/O limiter; heartbeats, reports and polls use none of these.
        The HTTP client is closed when ``run`` returns.

    Error handling:
        Poll failures are retried forever with backoff (separate, longer backoff for
        authentication failures); every activity outcome is reported (see ``docs/worker.md``).
        The poller runs under :func:`~trioworks.core.supervise`; if it keeps crashing,
        :exc:`~trioworks.core.RestartIntensityExceeded` propagates after the running
        activities were cancelled and reported as ``WORKER_SHUTDOWN``.
    """

    def __init__(
        self,
        config: WorkerConfig,
        activities: Iterable[ActivityDefinition | Activity],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        handle_signals: bool = False,
        freeze_gc: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.registry = registry_of(activities)
        self.metrics = Metrics()
        self.work_slots = trio.CapacityLimiter(config.max_activities)
        self.limiters = Limiters(
            threads=trio.CapacityLimiter(config.thread_slots),
            processes=trio.CapacityLimiter(config.max_processes),
            io=trio.CapacityLimiter(4),
        )
        self._client = WorkerApiClient(config, transport=transport, rng=rng)
        self._heartbeats = HeartbeatStarter()
        self._runner = ActivityRunner(
            config, self._client, self.registry, self.limiters, self.metrics, self._heartbeats
        )
        self._handle_signals = handle_signals
        self._freeze_gc = freeze_gc
        self._rng = rng or random.Random()
        self._running: dict[str, ActivityContext] = {}
        # Claimed activities not yet finished (including ones whose task has not started yet):
        # what a drain waits for.
        self._claimed = trio_util.AsyncValue(0)
        # Set when an activity here finished (its report is in): an idle poller polls at once,
        # since that completion may have made its dependents ready.
        self._finished_one = trio.Event()
        self._cancelling = False
        self._drain_requested = trio.Event()
        self._force = trio.Event()
        self._finished = trio.Event()
        self._poll_scope = trio.CancelScope()
        self._started = False

    @property
    def client(self) -> WorkerApiClient:
        return self._client

    @property
    def running(self) -> dict[str, ActivityContext]:
        """Contexts of the running activities, by activity id (a copy)."""
        return dict(self._running)

    # -- stopping ----------------------------------------------------------------

    def request_drain(self, *, force: bool = False) -> None:
        """Start a graceful drain; a second call (or ``force=True``) cuts the wait short.

        Not a checkpoint; safe to call before ``run`` starts or after it ended.
        """
        if self._drain_requested.is_set() or force:
            self._force.set()
        self._drain_requested.set()

    async def drain(self, *, force: bool = False) -> None:
        """:meth:`request_drain`, then wait until ``run`` has finished."""
        self.request_drain(force=force)
        await self._finished.wait()

    # -- running -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until drained. ``task_status.started(self)`` once the poller runs.

        Drain phases: (1) stop polling (a poll already sent is completed and its activities
        run); (2) wait up to ``shutdown_timeout`` for running activities, or until a second
        drain request / signal; (3) cancel the rest, which report ``WORKER_SHUTDOWN``
        (retryable), each within ``report_timeout``. Returns when all are reported.
        """
        if self._started:
            raise RuntimeError("a Worker runs once; make a new one to serve again")
        self._started = True
        try:
            async with self._client, trio.open_nursery() as root:
                root.start_soon(self._lag_ticker)
                root.start_soon(self._heartbeats.run)
                if self._handle_signals:
                    await root.start(self._signal_watcher)
                async with trio.open_nursery() as activities:
                    await activities.start(self._poller, activities)
                    logger.info(
                        "worker %s (%s) serving %s with %d slots",
                        self.config.worker_id,
                        self.config.worker,
                        ", ".join(sorted(self.registry)) or "no activities",
                        self.config.max_activities,
                    )
                    if self._freeze_gc:
                        # The start-up heap (imports, registry, client) is most of the process's
                        # objects; left in the oldest generation, each full collection walks it
                        # on the loop (25-45 ms measured with CPU activities running). Frozen, it
                        # is never walked; it is unfrozen when run returns.
                        gc.freeze()
                    task_status.started(self)
                    await self._drain_requested.wait()
                    await self._drain_running()
                root.cancel_scope.cancel()
        finally:
            if self._freeze_gc:
                gc.unfreeze()
            self._finished.set()
            logger.info("worker %s stopped: %s", self.config.worker_id, self.stats().line())

    async def _drain_running(self) -> None:
        logger.info("draining: polling stopped, %d activities running", len(self._running))
        self._poll_scope.cancel()
        with trio.move_on_after(self.config.shutdown_timeout) as waiting:
            async with trio.open_nursery() as race:

                async def cut_short() -> None:
                    await self._force.wait()
                    waiting.cancel()

                race.start_soon(cut_short)
                await self._claimed.wait_value(0)
                race.cancel_scope.cancel()
        if self._claimed.value:
            logger.warning("draining: cancelling %d activities still running", self._claimed.value)
        self._cancelling = True  # activities whose task starts after this are cancelled at once
        for ctx in list(self._running.values()):
            ctx.cancel(CancelReason.SHUTDOWN)

    async def _signal_watcher(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                second = self._drain_requested.is_set()
                logger.warning(
                    "%s: %s", signal.Signals(signum).name, "cutting the drain short" if second else "draining"
                )
                self.request_drain()

    # -- polling -------------------------------------------------------------------

    async def _poller(
        self, activities: trio.Nursery, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        def restarted(name: str, exc: BaseException, count: int) -> None:
            self.metrics.counter("poller.restarts").inc()

        with self._poll_scope:
            await supervise(
                lambda: self._poll_loop(activities),
                name="poller",
                policy=RestartPolicy(max_restarts=5, window=60.0),
                on_restart=restarted,
                task_status=task_status,
            )

    async def _reserve(self) -> list[object]:
        """Wait for one free slot, then take every free one up to ``poll_max_activities``."""
        tokens = [object()]
        await self.work_slots.acquire_on_behalf_of(tokens[0])
        while len(tokens) < min(self.config.poll_max_activities, 100):
            token = object()
            try:
                self.work_slots.acquire_on_behalf_of_nowait(token)
            except trio.WouldBlock:
                break
            tokens.append(token)
        return tokens

    async def _poll_loop(self, activities: trio.Nursery) -> None:
        idle = self.config.poll_interval
        auth_failures = errors = 0
        polls = self.metrics.counter("polls")
        while True:
            tokens = await self._reserve()
            try:
                # A poll that reached the server may have claimed rows: never abandon it halfway
                # (the drain cancels the poll scope), so it finishes shielded, bounded by a timeout.
                limit = self.config.request_timeout + 5
                with trio.CancelScope(shield=True, deadline=trio.current_time() + limit) as scope:
                    claimed = await self._client.poll(len(tokens))
                if scope.cancelled_caught:
                    raise trio.TooSlowError(f"no poll answer within {limit:g} s")
            except (
                ApiError,
                httpx.HTTPError,
                trio.TooSlowError,
                ValueError,
                cattrs.BaseValidationError,
            ) as exc:
                # ValueError / validation error: a 200 whose body is not a poll answer.
                self.metrics.counter("polls.failed").inc()
                if isinstance(exc, AuthenticationError):
                    auth_failures += 1
                    delay = _AUTH_BACKOFF.delay(auth_failures, self._rng)
                else:
                    errors += 1
                    delay = _ERROR_BACKOFF.delay(errors, self._rng)
                logger.warning("poll failed (%s); next poll in %.2f s", exc, delay)
                self._release(tokens)
                await trio.sleep(delay)
                continue
            except BaseException:
                self._release(tokens)
                raise
            polls.inc()
            auth_failures = errors = 0
            self._claimed.value += len(claimed)
            for pending, token in zip(claimed, tokens, strict=False):
                activities.start_soon(self._activity_task, pending, token)
            self._release(tokens[len(claimed) :])
            if claimed:
                idle = self.config.poll_interval
                continue
            self._finished_one = trio.Event()
            with trio.move_on_after(idle * self._rng.uniform(0.5, 1.0)) as backoff:
                await self._finished_one.wait()
            if backoff.cancelled_caught:  # nothing finished here meanwhile: back off further
                idle = min(idle * 2, self.config.poll_interval_max)

    def _release(self, tokens: list[object]) -> None:
        for token in tokens:
            self.work_slots.release_on_behalf_of(token)

    async def _activity_task(self, pending: PendingActivity, token: object) -> None:
        def track(ctx: ActivityContext | None) -> None:
            if ctx is None:
                self._running.pop(pending.activity_id, None)
                return
            self._running[pending.activity_id] = ctx
            if self._cancelling:
                ctx.cancel(CancelReason.SHUTDOWN)

        try:
            await self._runner.run(pending, track)
        finally:
            self.work_slots.release_on_behalf_of(token)
            self._finished_one.set()
            self._claimed.value -= 1

    # -- health ----------------------------------------------------------------------

    def stats(self) -> WorkerStats:
        snap = self.metrics.snapshot()
        return WorkerStats(
            slots_total=int(self.work_slots.total_tokens),
            slots_used=self.work_slots.borrowed_tokens,
            running=len(self._running),
            started=int(snap.get("activities.started", 0)),
            completed=int(snap.get("activities.completed", 0)),
            failed=int(snap.get("activities.failed", 0)),
            lease_lost=int(snap.get("activities.lease_lost", 0)),
            reports_lost=int(snap.get("reports.lost", 0)),
            polls=int(snap.get("polls", 0)),
            poll_errors=int(snap.get("polls.failed", 0)),
            loop_lag=float(snap.get("loop_lag", 0.0)),
            loop_lag_max=float(snap.get("loop_lag.high_water", 0.0)),
        )

    async def _lag_ticker(self) -> None:
        """Measure how late a short sleep wakes up (event-loop lag); log a health line now and then."""
        lag = self.metrics.gauge("loop_lag")
        next_log = trio.current_time() + self.config.health_interval
        while True:
            before = trio.current_time()
            await trio.sleep(self.config.lag_interval)
            now = trio.current_time()
            lag.set(max(0.0, now - before - self.config.lag_interval))
            if now >= next_log:
                next_log = now + self.config.health_interval
                logger.info("health: %s", self.stats().line())
