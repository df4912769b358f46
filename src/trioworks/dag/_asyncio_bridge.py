"""Kailash ``AsyncNode`` code written for asyncio, run from the Trio engine.

Kailash is an asyncio library, so its users' ``async_run`` methods await ``asyncio.sleep``,
``asyncio.gather``, aiohttp and the like; on the Trio loop those fail ("no running event loop").
Such a node class is detected once (:func:`uses_asyncio`) and each call of its coroutine runs
on a fresh asyncio event loop in a worker thread (:func:`run_on_asyncio`), through the core's
:func:`~trioworks.core.run_in_thread` under a named per-run limiter. Trio-native nodes (and
nodes that await nothing library-specific) stay on the Trio loop: no thread hop.

Detection reads the class's own methods (not trioworks' base classes): a method whose code
refers to a global bound to ``asyncio`` or to an asyncio-only library (``aiohttp``,
``aiofiles``, ``asyncpg``, ``aiosqlite``, ``uvloop``), or to an object defined in one, marks
the class, unless the class also refers to ``trio``. A class states it explicitly with
``async_library = "asyncio"`` or ``"trio"`` (needed when the asyncio use is hidden in a helper
module the class calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import types
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Generic, TypeVar

import trio

from ..core import CancelOutcome, run_in_thread

__all__ = ["ASYNCIO_NODE_THREADS", "code_uses_asyncio", "run_on_asyncio", "uses_asyncio"]

T = TypeVar("T")

ASYNCIO_NODE_THREADS = 16
"""Size of the per-run limiter ``asyncio_node_limiter``: asyncio-node calls in threads at once
(the runtime's ``max_concurrent_nodes`` bounds them as well)."""

_ASYNCIO_ONLY = frozenset({"asyncio", "aiohttp", "aiofiles", "asyncpg", "aiosqlite", "uvloop"})
_limiter: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("asyncio_node_limiter")


def _top_package(obj: Any) -> str:
    name = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    return name.split(".", 1)[0] if isinstance(name, str) else ""


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _functions(cls: type) -> Iterator[types.FunctionType]:
    for klass in cls.__mro__:
        if klass.__module__.startswith("trioworks.") or klass is object:
            continue
        for value in vars(klass).values():
            if isinstance(value, staticmethod | classmethod):
                value = value.__func__
            elif isinstance(value, property):
                value = value.fget
            value = _unwrap(value)
            if isinstance(value, types.FunctionType):
                yield value


def _unwrap(value: Any) -> Any:
    while hasattr(value, "__wrapped__"):
        value = value.__wrapped__
    return value


@functools.cache
def uses_asyncio(cls: type) -> bool:
    """True if ``cls``'s coroutines must run on asyncio (see the module docstring)."""
    declared = getattr(cls, "async_library", None)
    if declared is not None:
        if declared not in ("asyncio", "trio"):
            raise ValueError(f"{cls.__name__}.async_library must be 'asyncio' or 'trio', got {declared!r}")
        return declared == "asyncio"
    packages: set[str] = set()
    for fn in _functions(cls):
        for code in _code_objects(fn.__code__):
            for name in code.co_names:
                if name in fn.__globals__:
                    packages.add(_top_package(fn.__globals__[name]))
    return bool(packages & _ASYNCIO_ONLY) and "trio" not in packages


@functools.cache
def code_uses_asyncio(code: types.CodeType) -> bool:
    """True if an ``AsyncPythonCodeNode``'s code names ``asyncio`` (or an asyncio-only
    library) and not ``trio``: its top-level awaits then run on an asyncio loop in a thread."""
    names = {name for c in _code_objects(code) for name in c.co_names}
    return bool(names & _ASYNCIO_ONLY) and "trio" not in names


class _AsyncioCall(Generic[T]):
    """One coroutine on its own asyncio loop, cancellable from the Trio side."""

    def __init__(self, make: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[T] | None = None
        self._cancelled = False
        self._done = False

    def run(self) -> T | None:
        """In the worker thread: run the coroutine to its end (``None`` if cancelled first)."""
        loop = asyncio.new_event_loop()
        try:
            with self._lock:
                if self._cancelled:
                    return None
                self._loop = loop
                self._task = loop.create_task(self._make())
            try:
                return loop.run_until_complete(self._task)
            except asyncio.CancelledError:
                if self._cancelled:
                    return None  # the Trio side delivers its Cancelled
                raise
        finally:
            with self._lock:
                self._done = True
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def cancel(self) -> None:
        """On the Trio loop: cancel the asyncio task (or stop it from starting)."""
        with self._lock:
            if self._done or self._cancelled:
                return
            self._cancelled = True
            if self._loop is not None and self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)


async def run_on_asyncio(
    make: Callable[[], Coroutine[Any, Any, T]],
    *,
    on_cancel: Callable[[CancelOutcome], None] | None = None,
) -> T:
    """Await ``make()`` on a fresh asyncio loop in a worker thread; return its result.

    Exceptions raised by the coroutine propagate unchanged.

    Cancellation: a checkpoint. Cancelling the caller cancels the asyncio task
    (``task.cancel()``: the coroutine sees ``asyncio.CancelledError`` at its current await),
    waits (shielded) for the thread to end, then lets :exc:`trio.Cancelled` propagate;
    ``on_cancel`` gets ``WAITED``. A call still waiting for a slot of the per-run
    ``asyncio_node_limiter`` never starts (``NOT_STARTED``). A coroutine that swallows the
    cancellation is waited for to its end (its result is dropped).
    """
    try:
        limiter = _limiter.get()
    except LookupError:
        limiter = trio.CapacityLimiter(ASYNCIO_NODE_THREADS)
        _limiter.set(limiter)
    call = _AsyncioCall(make)
    ended = trio.Event()
    token = trio.lowlevel.current_trio_token()
    outcomes: list[CancelOutcome] = []

    def in_thread() -> T | None:
        try:
            return call.run()
        finally:
            token.run_sync_soon(ended.set)

    try:
        # Abandoning returns control at once on cancellation, so that the task can be
        # cancelled; the thread is then waited for below.
        result = await run_in_thread(
            in_thread, limiter=limiter, abandon_on_cancel=True, on_cancel=outcomes.append
        )
    except trio.Cancelled:
        if outcomes and outcomes[0] is CancelOutcome.ABANDONED:
            call.cancel()
            with trio.CancelScope(shield=True):
                await ended.wait()
            outcomes[0] = CancelOutcome.WAITED
        if on_cancel is not None and outcomes:
            on_cancel(outcomes[0])
        raise
    return result  # type: ignore[return-value]  # None only when cancelled, and then Cancelled is raised
