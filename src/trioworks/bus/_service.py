"""A service on the bus: its routes and background tasks, supervised, with one lifecycle.

A voice service declares what it does (routes: a handler per subscription; tasks: background
loops; a :meth:`Service.setup` that acquires what serving needs and registers its cleanups) and
:class:`Service` does the rest, the same way for every service: supervision with one restart
policy, the retained health topic, :exc:`ServiceFailed`, and shutdown in order.

The shutdown order is hypercorn's (``hypercorn/trio/run.py``): an outer nursery (there: the
lifespan; here: the bus) outlives an inner one (there: the connections; here: the routes and
tasks), which gets a grace deadline; only once the inner nursery is over is the outer one
cancelled, so what the routes and tasks send while they stop still reaches the broker.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs
import trio

from ..core import RestartIntensityExceeded, RestartPolicy, find_error, single_error, supervise
from ._bus import Bus
from ._dispatch import Handler, MalformedHandler, Overflow

__all__ = ["Route", "Service", "ServiceFailed", "Task", "run_service"]

logger = logging.getLogger("trioworks.bus")

_ONCE = RestartPolicy(max_restarts=0)


@attrs.frozen
class Route:
    """One subscription a service declares: filter, handler and how its queue behaves.

    ``on_malformed(raw, error)``, when given, is called for each message on the route that
    breaks its contract (see :meth:`Bus.subscribe`), e.g. to answer a bad request with an error.
    ``dedupe``: handle a redelivered message (same envelope id and data within 60 s) only once.
    """

    pattern: str
    handler: Handler
    capacity: int = 64
    overflow: Overflow = Overflow.BLOCK
    concurrency: int = 1
    name: str | None = None
    on_malformed: MalformedHandler | None = None
    dedupe: bool = False


@attrs.frozen
class Task:
    """One background task a service declares: ``run()`` beside the routes, supervised like them.

    ``run`` is called with no arguments (use :func:`functools.partial` for some). When it raises
    it is restarted under ``restart`` (None: the service's policy); when it returns it is done and
    the service goes on serving. ``RestartPolicy(max_restarts=0)`` for a task that cannot start
    over (a stream that is read once): its first failure fails the service.
    """

    name: str
    run: Callable[[], Awaitable[object]]
    restart: RestartPolicy | None = None


class ServiceFailed(Exception):
    """A route or task of the service failed more often than its restart policy allows.

    ``cause`` is the :exc:`~trioworks.core.RestartIntensityExceeded` naming the route or task;
    its ``__cause__`` is the last error of that route or task.
    """

    def __init__(self, service: str, cause: RestartIntensityExceeded) -> None:
        super().__init__(service, cause)
        self.service = service
        self.cause = cause

    def __str__(self) -> str:
        return f"service {self.service!r} failed: {_describe_failure(self.cause)}"


def _describe_failure(failure: RestartIntensityExceeded) -> str:
    """``failure`` and the error that ended it, in one line (the health ``err`` of a crash)."""
    last = failure.__cause__
    if last is None:
        return str(failure)
    error = single_error(last)
    return f"{failure}: {type(error).__name__}: {error}"


@attrs.frozen
class _Cleanup:
    name: str
    close: Callable[[], Awaitable[object]]
    timeout: float


class Service:
    """The bus, the service's routes and tasks in one supervised nursery, and its health.

    Use it as is (``Service(bus, routes)``) or as the base of a service class, which passes its
    routes and tasks to ``__init__`` and overrides :meth:`setup` when it needs a model, a store
    or a program before serving. Nothing else: no nursery, shield or health code of its own.

    ``run`` calls :meth:`setup`, starts the bus, subscribes every route (handlers supervised with
    ``restart``), starts every task (supervised, see :class:`Task`), publishes retained
    ``system/health/<source>`` ``{ok: true, event: "ready"}`` and only then calls
    ``task_status.started()``.

    Resource handling:
        On the way out (cancelled or failing), in order: (1) the routes, the tasks and what was
        started with :meth:`start_soon` are cancelled; their own shielded cleanups (a final reply,
        a drain) can still publish, because (2) the bus outlives them, for at most ``grace``
        seconds after the stop began, then publishes its final health and disconnects;
        (3) the cleanups registered with :meth:`add_cleanup` run, last registered first, each
        shielded and bounded by its timeout (one that raises is logged and the rest still run).

    Error handling:
        A route handler or task that raises is logged and restarted under its restart policy.
        When one fails past it, everything stops as above, the final health is
        ``{ok: false, event: "crashed", err}`` (``err`` names the route or task and its last
        error) and ``run`` raises :exc:`ServiceFailed`. When cancelled, the final health is
        ``{ok: false, event: "stopped"}`` and nothing is raised beyond the Cancelled. Errors
        from :meth:`setup` propagate as they are, before the bus connects (no health is
        published); errors of the bus itself (its transport) propagate as they are.
    """

    def __init__(
        self,
        bus: Bus,
        routes: Iterable[Route] = (),
        *,
        tasks: Iterable[Task] = (),
        restart: RestartPolicy = RestartPolicy(),
        grace: float = 5.0,
    ) -> None:
        if grace < 0:
            raise ValueError(f"service {bus.source!r}: grace must be >= 0 seconds, got {grace}")
        self.bus = bus
        self.routes = list(routes)
        self.tasks = list(tasks)
        self.restart = restart
        self.grace = grace
        self._cleanups: list[_Cleanup] = []
        self._work: trio.Nursery | None = None

    @property
    def name(self) -> str:
        return self.bus.source

    # --- what a service may override or call ----------------------------------------------

    async def setup(self) -> None:
        """Acquire what serving needs (a model, a store, a program); called first by :meth:`run`.

        Override it; register each release with :meth:`add_cleanup` as soon as its resource is
        acquired, so that it is released even when a later step of ``setup`` fails. The base
        does nothing.
        """
        await trio.lowlevel.checkpoint()

    def add_cleanup(self, close: Callable[[], Awaitable[object]], *, name: str, timeout: float = 5.0) -> None:
        """Have ``close()`` called when :meth:`run` ends, after the bus has disconnected.

        Cleanups run last registered first, each in a shielded scope bounded by ``timeout``
        seconds. Registrations last for one :meth:`run` (each run starts with none).
        Not a checkpoint.
        """
        self._cleanups.append(_Cleanup(name, close, timeout))

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: Any, name: str) -> None:
        """Run ``fn(*args)`` once beside the routes and tasks (e.g. one task per request).

        It is cancelled with them when the service stops (step 1 above). It is not restarted:
        an exception escaping it fails the service like a task past its restart intensity, so
        a task that must not take the service down handles its own errors. Only while
        :meth:`run` is serving (else RuntimeError). Not a checkpoint.
        """
        if self._work is None:
            raise RuntimeError(f"service {self.name!r} is not serving: start_soon needs run() first")
        child = functools.partial(fn, *args)
        self._work.start_soon(functools.partial(supervise, child, name=name, policy=_ONCE), name=name)

    # --- the lifecycle --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Set up, then serve until cancelled or until a route or task gives up (see the class)."""
        self._cleanups = []
        try:
            await self.setup()
            await self._serve_until_stopped(task_status)
        finally:
            await self._run_cleanups()

    async def _serve_until_stopped(self, task_status: trio.TaskStatus[None]) -> None:
        bus_scope = trio.CancelScope()

        async def run_bus(*, task_status: trio.TaskStatus[None]) -> None:
            with bus_scope:
                await self.bus.run(task_status=task_status)

        try:
            async with trio.open_nursery() as outer:
                await outer.start(run_bus)
                # Connected: from now on the bus outlives a cancellation of the service, until the
                # work nursery below is over (or the grace deadline set when it stops has passed).
                bus_scope.shield = True
                try:
                    async with trio.open_nursery() as work:
                        try:
                            await self._start_work(work)
                            task_status.started()
                            await trio.sleep_forever()
                        finally:
                            # The stop begins (cancelled, or a route or task gave up): the work
                            # nursery's shielded cleanups have the bus for `grace` seconds.
                            self._work = None
                            bus_scope.deadline = min(bus_scope.deadline, trio.current_time() + self.grace)
                except BaseException as exc:
                    failure = find_error(exc, RestartIntensityExceeded)
                    if failure is not None:  # what the bus's final health says
                        self.bus.set_exit_health("crashed", _describe_failure(failure))
                    raise
                finally:
                    bus_scope.cancel()  # the work is over: the bus says goodbye and disconnects
        except BaseException as exc:
            failure = find_error(exc, RestartIntensityExceeded)
            if failure is None:
                raise  # a stop (Cancelled) or an error of the bus itself
            raise ServiceFailed(self.name, failure) from exc

    async def _start_work(self, work: trio.Nursery) -> None:
        self._work = work  # a handler may start_soon as soon as its route is subscribed
        for route in self.routes:
            await self.bus.subscribe(
                route.pattern,
                route.handler,
                capacity=route.capacity,
                overflow=route.overflow,
                concurrency=route.concurrency,
                name=route.name,
                restart=self.restart,
                nursery=work,
                on_malformed=route.on_malformed,
                dedupe=route.dedupe,
            )
        for task in self.tasks:
            policy = task.restart if task.restart is not None else self.restart
            await work.start(functools.partial(supervise, task.run, name=task.name, policy=policy))
        await self.bus.publish_health(True, "ready")

    async def _run_cleanups(self) -> None:
        cleanups, self._cleanups = self._cleanups, []
        for cleanup in reversed(cleanups):
            with trio.CancelScope(shield=True), trio.move_on_after(cleanup.timeout) as bounded:
                try:
                    await cleanup.close()
                except Exception:
                    logger.exception("service %r: cleanup %r failed", self.name, cleanup.name)
            if bounded.cancelled_caught:
                logger.warning(
                    "service %r: cleanup %r took over %s s; abandoned",
                    self.name,
                    cleanup.name,
                    cleanup.timeout,
                )


async def run_service(service: Service) -> int:
    """Run ``service`` until it ends; the process exit code: 1 if it failed, else 0."""
    try:
        await service.run()
    except ServiceFailed as exc:
        logger.error("%s", exc)
        return 1
    return 0
