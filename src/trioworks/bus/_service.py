"""A service on the bus: routes with supervised handlers and a retained health topic."""

from __future__ import annotations

import logging

import attrs
import trio

from ..core import RestartIntensityExceeded, RestartPolicy
from ._bus import Bus
from ._dispatch import Handler, MalformedHandler, Overflow, find_intensity

__all__ = ["Route", "Service", "ServiceFailed", "run_service"]

logger = logging.getLogger("trioworks.bus")


@attrs.frozen
class Route:
    """One subscription a service declares: filter, handler and how its queue behaves.

    ``on_malformed(raw, error)``, when given, is called for each message on the route that
    breaks its contract (see :meth:`Bus.subscribe`), e.g. to answer a bad request with an error.
    ``dedupe``: handle a redelivered message (same envelope id within 60 s) only once.
    """

    pattern: str
    handler: Handler
    capacity: int = 64
    overflow: Overflow = Overflow.BLOCK
    concurrency: int = 1
    name: str | None = None
    on_malformed: MalformedHandler | None = None
    dedupe: bool = False


class ServiceFailed(Exception):
    """A handler of the service failed more often than its restart policy allows."""

    def __init__(self, service: str, cause: RestartIntensityExceeded) -> None:
        super().__init__(service, cause)
        self.service = service
        self.cause = cause

    def __str__(self) -> str:
        return f"service {self.service!r} failed: {self.cause}"


class Service:
    """The bus, the service's routes in one supervised nursery, and its health.

    ``run`` starts the bus, subscribes every route (handlers supervised with ``restart``),
    publishes retained ``system/health/<source>`` ``{ok: true, event: "ready"}`` and only then
    calls ``task_status.started()``. When a handler exceeds its restart intensity, the bus's
    final health is ``{ok: false, event: "crashed", err}`` and ``run`` raises
    :exc:`ServiceFailed`. When cancelled, the final health is ``{ok: false, event: "stopped"}``.
    """

    def __init__(self, bus: Bus, routes: list[Route], *, restart: RestartPolicy = RestartPolicy()) -> None:
        self.bus = bus
        self.routes = list(routes)
        self.restart = restart

    @property
    def name(self) -> str:
        return self.bus.source

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled or until a handler gives up, then raise :exc:`ServiceFailed`."""
        try:
            async with trio.open_nursery() as outer:
                await outer.start(self.bus.run)
                try:
                    async with trio.open_nursery() as handlers:
                        for route in self.routes:
                            await self.bus.subscribe(
                                route.pattern,
                                route.handler,
                                capacity=route.capacity,
                                overflow=route.overflow,
                                concurrency=route.concurrency,
                                name=route.name,
                                restart=self.restart,
                                nursery=handlers,
                                on_malformed=route.on_malformed,
                                dedupe=route.dedupe,
                            )
                        await self.bus.publish_health(True, "ready")
                        task_status.started()
                        await trio.sleep_forever()
                finally:
                    # A failed route already set the bus's exit health to "crashed" (Bus.subscribe).
                    outer.cancel_scope.cancel()  # handlers are gone: stop the bus (it says goodbye)
        except BaseException as exc:
            failure = find_intensity(exc)
            if failure is None:
                raise
            raise ServiceFailed(self.name, failure) from exc


async def run_service(service: Service) -> int:
    """Run ``service`` until it ends; the process exit code: 1 if it failed, else 0."""
    try:
        await service.run()
    except ServiceFailed as exc:
        logger.error("%s", exc)
        return 1
    return 0
