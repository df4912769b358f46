"""A Trio program in a thread of its own, for synchronous tests (hypothesis) that drive it.

``with TrioThread(main) as running:`` runs ``await main(task_status)`` under ``trio.run`` in a
daemon thread and returns once ``main`` called ``task_status.started(value)`` (``running.value``);
``running.call(async_fn, *args)`` runs a coroutine on that loop from the test thread; leaving the
block cancels ``main`` and joins the thread. ``running.error`` is what ``main`` raised, if it ended.

(``tests/`` is on ``sys.path`` through the root conftest.)
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["TrioThread"]


class TrioThread:
    def __init__(self, main: Callable[..., Awaitable[Any]], *, start_timeout: float = 120) -> None:
        self._main = main
        self._start_timeout = start_timeout
        self.value: Any = None
        self.error: BaseException | None = None
        self._started = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._thread = threading.Thread(target=self._run, name="trio-under-test", daemon=True)

    def _run(self) -> None:
        async def outer() -> None:
            self._token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                self.value = await nursery.start(self._main)
                self._started.set()

        try:
            trio.run(outer)
        except BaseException as exc:
            self.error = exc
        finally:
            self._started.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> None:
        """Wait for the program to end (it is ending: a call into it was cancelled)."""
        self._thread.join(timeout)

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        assert self._token is not None
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def __enter__(self) -> TrioThread:
        self._thread.start()
        self._started.wait(self._start_timeout)
        if self.error is not None or not self.alive:
            raise RuntimeError(f"the program under test did not start: {self.error!r}") from self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._scope is not None and self._token is not None and self.alive:
            trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(60)
