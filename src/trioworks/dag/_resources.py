"""Named shared resources for workflow nodes: created lazily once, health-checked, circuit-broken.

A Trio port of Kailash's ``ResourceRegistry``. Nodes ask for a resource by name (a database
pool, an HTTP client) instead of receiving the object through JSON-able inputs.

Limiters: sync factories, health checks and cleanups run in threads under the registry's
``thread_limiter`` (one per registry unless the owner passes a shared one).
"""

from __future__ import annotations

import abc
import difflib
import enum
import inspect
import logging
from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeAlias

import attrs
import trio

from trioworks.core import Counter, Metrics, run_in_thread

__all__ = [
    "CircuitBreakerPolicy",
    "CircuitOpenError",
    "HealthState",
    "HealthStatus",
    "ResourceCreationError",
    "ResourceError",
    "ResourceFactory",
    "ResourceNotFoundError",
    "ResourceRegistry",
    "UnknownResourceError",
]

logger = logging.getLogger("trioworks.dag.resources")

CircuitState = Literal["closed", "open", "half_open"]
_COUNTERS = ("created", "accessed", "health_failures", "recreations", "failures")
_MISSING: Any = object()


class SupportsCreate(Protocol):
    """Kailash ``ResourceFactory`` style: ``create()`` (sync or async) returns the resource."""

    def create(self) -> Any: ...


Factory: TypeAlias = Callable[[], Any] | SupportsCreate
HealthCheck: TypeAlias = Callable[[Any], Any]
Cleanup: TypeAlias = Callable[[Any], Any]


class HealthState(enum.Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@attrs.define
class HealthStatus:
    """What a health check may return instead of a bool (Kailash's ``HealthStatus``)."""

    state: HealthState
    message: str | None = None
    details: dict[str, Any] | None = None

    @property
    def is_healthy(self) -> bool:
        return self.state in (HealthState.HEALTHY, HealthState.DEGRADED)

    @classmethod
    def healthy(cls, message: str = "Resource is healthy") -> HealthStatus:
        return cls(HealthState.HEALTHY, message)

    @classmethod
    def unhealthy(cls, message: str, details: dict[str, Any] | None = None) -> HealthStatus:
        return cls(HealthState.UNHEALTHY, message, details)

    @classmethod
    def degraded(cls, message: str, details: dict[str, Any] | None = None) -> HealthStatus:
        return cls(HealthState.DEGRADED, message, details)


class ResourceFactory(abc.ABC):
    """Kailash's factory base: ``async def create(self)`` makes the resource."""

    @abc.abstractmethod
    async def create(self) -> Any: ...

    def get_config(self) -> dict[str, Any]:
        return {}


class ResourceNotFoundError(Exception):
    """Kailash's error for a resource that cannot be had: unknown, or its circuit is open."""


class ResourceError(Exception):
    """Base of the registry's errors; ``name`` is the resource concerned."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])  # KeyError subclasses would otherwise repr() the message


class UnknownResourceError(ResourceError, ResourceNotFoundError, KeyError):
    """No factory is registered under ``name``; the message lists the names that are."""

    def __init__(self, name: str, registered: list[str]) -> None:
        listed = ", ".join(repr(n) for n in registered) or "none"
        message = f"no resource named {name!r} is registered (registered: {listed})"
        close = difflib.get_close_matches(str(name), registered, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        super().__init__(name, message)


class ResourceCreationError(ResourceError):
    """The factory raised; the factory's exception is ``__cause__``."""


class CircuitOpenError(ResourceError, ResourceNotFoundError):
    """Too many consecutive failures: no creation is tried before ``retry_at`` (Trio clock time)."""

    def __init__(self, name: str, retry_at: float, failures: int) -> None:
        super().__init__(
            name,
            f"Circuit breaker open for resource {name!r} after {failures} consecutive failures; "
            f"next attempt allowed at trio time {retry_at:.3f}",
        )
        self.retry_at = retry_at


@attrs.frozen
class CircuitBreakerPolicy:
    """When a resource's circuit opens; the defaults are Kailash's (5 failures, 30 s)."""

    failure_threshold: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    reset_timeout: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))


@attrs.define(eq=False)
class _Entry:
    name: str
    create: Callable[[], Any]
    health_check: HealthCheck | None
    cleanup: Cleanup | None
    counters: dict[str, Counter]
    lock: trio.Lock = attrs.field(factory=trio.Lock)
    instance: Any = _MISSING
    checked_at: float = 0.0
    consecutive_failures: int = 0
    last_error: BaseException | None = None
    state: CircuitState = "closed"
    retry_at: float = 0.0
    policy: CircuitBreakerPolicy | None = None  # per resource (Kailash metadata), else the registry's


def _is_async(fn: Callable[..., Any]) -> bool:
    # The second test catches instances of classes with ``async def __call__``.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def _creator(factory: Factory) -> Callable[[], Any]:
    create = getattr(factory, "create", None)
    if callable(create) and not inspect.isroutine(factory) and not isinstance(factory, type):
        return create
    if callable(factory):
        return factory
    raise TypeError(f"factory must be callable or have a create() method, got {factory!r}")


class ResourceRegistry:
    """Shared resources by name, each created on first use and cleaned up when the owner ends.

    Use as ``async with ResourceRegistry() as registry:``; leaving the block calls :meth:`cleanup`.
    """

    def __init__(
        self,
        *,
        circuit_breaker: CircuitBreakerPolicy = CircuitBreakerPolicy(),
        health_check_interval: float = 0.0,
        cleanup_timeout: float = 10.0,
        thread_limiter: trio.CapacityLimiter | None = None,
        metrics: Metrics | None = None,
        enable_metrics: bool = True,
    ) -> None:
        self.enable_metrics = enable_metrics
        if health_check_interval < 0 or cleanup_timeout <= 0:
            raise ValueError("health_check_interval must be >= 0 and cleanup_timeout > 0")
        self._policy = circuit_breaker
        self._interval = health_check_interval
        self._cleanup_timeout = cleanup_timeout
        self._limiter = thread_limiter if thread_limiter is not None else trio.CapacityLimiter(4)
        self._metrics = metrics if metrics is not None else Metrics()
        self._entries: dict[str, _Entry] = {}
        self._created: list[_Entry] = []  # entries holding an instance, in creation order

    def register_factory(
        self,
        name: str,
        factory: Factory,
        health_check: HealthCheck | None = None,
        cleanup: Cleanup | None = None,
        *,
        cleanup_handler: Cleanup | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Register how to make resource ``name``; nothing is created until first use.

        ``factory`` is a callable returning the resource or an object with ``create()``;
        ``health_check(resource)`` returns truthy when healthy; ``cleanup(resource)`` disposes of
        it (default: ``resource.aclose()`` or ``resource.close()`` if it has one). Each may be
        sync (run in a thread) or async. ``cleanup_handler`` is Kailash's name for ``cleanup``.
        Raises ValueError for an empty or already registered name, TypeError for a bad argument.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"resource name must be a non-empty str, got {name!r}")
        if name in self._entries:
            raise ValueError(f"a factory for resource {name!r} is already registered")
        if cleanup is not None and cleanup_handler is not None:
            raise TypeError("pass cleanup or cleanup_handler, not both")
        cleanup = cleanup if cleanup is not None else cleanup_handler
        for label, fn in (("health_check", health_check), ("cleanup", cleanup)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{label} for resource {name!r} must be callable, got {fn!r}")
        counters = {kind: self._metrics.counter(f"resources.{name}.{kind}") for kind in _COUNTERS}
        self._entries[name] = _Entry(name, _creator(factory), health_check, cleanup, counters)
        meta = metadata or {}
        if "circuit_breaker_threshold" in meta or "circuit_breaker_timeout" in meta:
            self._entries[name].policy = CircuitBreakerPolicy(
                failure_threshold=meta.get("circuit_breaker_threshold", self._policy.failure_threshold),
                reset_timeout=meta.get("circuit_breaker_timeout", self._policy.reset_timeout),
            )

    def has_factory(self, name: str) -> bool:
        return name in self._entries

    def has_resource(self, name: str) -> bool:
        entry = self._entries.get(name)
        return entry is not None and entry.instance is not _MISSING

    def list_resources(self) -> set[str]:
        return set(self._entries)

    def get_metrics(self) -> dict[str, Any]:
        """Kailash's shape: ``{"resources": {name: {...}}}``; ``{}`` when metrics are disabled."""
        if not self.enable_metrics:
            return {}
        return {"resources": self.metrics()}

    async def check_health(self, name: str) -> bool:
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownResourceError(name, self.names())
        if entry.instance is _MISSING or entry.health_check is None:
            return entry.instance is not _MISSING
        async with entry.lock:
            return await self._check_health(entry)

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    async def get_resource(self, name: str) -> Any:
        """The resource called ``name``, creating it (once, whoever asks concurrently) if needed.

        If a health check is registered and due (see ``health_check_interval``) it runs first; an
        unhealthy resource is cleaned up (shielded, up to ``cleanup_timeout``) and recreated. Callers waiting while another task creates
        the resource get that task's result: the same object, or ResourceCreationError if it failed.

        Errors: UnknownResourceError, CircuitOpenError (raised at once, before any checkpoint;
        the factory is not called), ResourceCreationError (a later call tries again).

        Checkpoints: always, except when raising one of the first two errors above.
        Cancellation: waiting for another task's creation is simply abandoned. If this task is
        creating, an async factory sees the Cancelled; a sync factory's thread is waited for and
        the resource it returns is kept, not leaked. A cancelled creation is not a failure.
        """
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownResourceError(name, self.names())
        entry.counters["accessed"].inc()
        self._check_circuit(entry)
        failures_seen = entry.counters["failures"].value
        async with entry.lock:
            if entry.counters["failures"].value != failures_seen:
                # The attempt we queued behind failed: share its error instead of retrying at once.
                raise ResourceCreationError(
                    name, f"creating resource {name!r} failed: {entry.last_error!r}"
                ) from entry.last_error
            recreating = False
            if entry.instance is not _MISSING and self._health_due(entry):
                recreating = not await self._check_health(entry)
            if entry.instance is _MISSING:
                self._check_circuit(entry)
                await self._create(entry)
                if recreating:
                    entry.counters["recreations"].inc()
            return entry.instance

    def metrics(self) -> dict[str, dict[str, int | str]]:
        """Per resource: ``created``, ``accessed``, ``health_failures``, ``recreations``,
        ``failures`` (creation failures), ``consecutive_failures`` and the circuit ``state``."""
        out: dict[str, dict[str, int | str]] = {}
        for name, entry in self._entries.items():
            counts: dict[str, int | str] = {kind: c.value for kind, c in entry.counters.items()}
            counts["consecutive_failures"] = entry.consecutive_failures
            counts["state"] = self._state(entry)
            out[name] = counts
        return out

    async def cleanup(self) -> None:
        """Clean up every created resource, newest first; the registry can create them again after.

        Each cleanup runs shielded from cancellation and bounded by ``cleanup_timeout``, so it
        runs even when the calling scope is cancelled; a failing or timed-out cleanup is logged
        and the others still run. Idempotent. Not a cancellation point: never raises Cancelled.
        A creation still in flight when this runs is kept for the next cleanup.
        """
        while self._created:
            entry = self._created.pop()
            instance, entry.instance = entry.instance, _MISSING
            await self._dispose(entry, instance)

    async def __aenter__(self) -> ResourceRegistry:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cleanup()

    # -- internals; the caller of each of these holds entry.lock, except _dispose from cleanup()

    def _state(self, entry: _Entry) -> CircuitState:
        try:
            if entry.state == "open" and trio.current_time() >= entry.retry_at:
                return "half_open"  # what the next get_resource will find
        except RuntimeError:  # called outside trio.run
            pass
        return entry.state

    def _check_circuit(self, entry: _Entry) -> None:
        if entry.state != "open":
            return
        if trio.current_time() < entry.retry_at:
            raise CircuitOpenError(entry.name, entry.retry_at, entry.consecutive_failures)
        entry.state = "half_open"  # this caller makes the one trial; others queue on the lock

    async def _invoke(self, fn: Callable[..., Any], *args: Any, abandon_on_cancel: bool = False) -> Any:
        if _is_async(fn):
            result = await fn(*args)
        else:
            result = await run_in_thread(
                fn, *args, limiter=self._limiter, abandon_on_cancel=abandon_on_cancel
            )
        if inspect.iscoroutine(result):  # an async function hidden behind a decorator
            result = await result
        return result

    async def _create(self, entry: _Entry) -> None:
        made: list[Any] = []

        def build() -> Any:
            made.append(entry.create())
            return made[-1]

        try:
            instance = await self._invoke(entry.create if _is_async(entry.create) else build)
        except trio.Cancelled:
            if made and not inspect.iscoroutine(made[0]):
                self._store(entry, made[0])  # the thread finished after the cancel: keep, don't leak
            raise
        except Exception as exc:
            self._record_failure(entry, exc)
            raise ResourceCreationError(
                entry.name, f"creating resource {entry.name!r} failed: {exc!r}"
            ) from exc
        self._store(entry, instance)

    def _store(self, entry: _Entry, instance: Any) -> None:
        entry.instance = instance
        entry.checked_at = trio.current_time()
        entry.consecutive_failures = 0
        entry.last_error = None
        entry.state = "closed"
        entry.counters["created"].inc()
        self._created.append(entry)

    def _record_failure(self, entry: _Entry, exc: Exception) -> None:
        entry.counters["failures"].inc()
        entry.consecutive_failures += 1
        entry.last_error = exc
        # No reset on half-open: a failed trial is still past the threshold, so it re-opens.
        policy = entry.policy or self._policy
        if entry.consecutive_failures >= policy.failure_threshold:
            entry.state = "open"
            entry.retry_at = trio.current_time() + policy.reset_timeout
            logger.warning(
                "circuit for resource %r opened after %d consecutive failures",
                entry.name,
                entry.consecutive_failures,
            )

    def _health_due(self, entry: _Entry) -> bool:
        return entry.health_check is not None and trio.current_time() >= entry.checked_at + self._interval

    async def _check_health(self, entry: _Entry) -> bool:
        """Run the health check; dispose of an unhealthy instance. False if it was unhealthy."""
        assert entry.health_check is not None
        instance = entry.instance
        entry.checked_at = trio.current_time()
        try:
            result = await self._invoke(entry.health_check, instance)
            healthy = bool(getattr(result, "is_healthy", result))  # Kailash HealthStatus or bool
        except Exception:
            logger.warning("health check of resource %r raised", entry.name, exc_info=True)
            healthy = False
        if healthy:
            return True
        entry.counters["health_failures"].inc()
        if entry.instance is instance:  # else cleanup() disposed of it while we checked
            entry.instance = _MISSING
            self._created.remove(entry)
            await self._dispose(entry, instance)
        return False

    async def _dispose(self, entry: _Entry, instance: Any) -> None:
        args: tuple[Any, ...]
        if entry.cleanup is not None:
            fn, args = entry.cleanup, (instance,)
        elif callable(getattr(instance, "aclose", None)):
            fn, args = instance.aclose, ()
        elif callable(getattr(instance, "close", None)):
            fn, args = instance.close, ()
        else:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(self._cleanup_timeout) as timeout:
            try:
                # Abandon a stuck cleanup thread so cleanup_timeout holds.
                await self._invoke(fn, *args, abandon_on_cancel=True)
            except Exception:
                logger.exception("cleanup of resource %r failed", entry.name)
        if timeout.cancelled_caught:
            logger.error("cleanup of resource %r timed out after %s s", entry.name, self._cleanup_timeout)
