"""Where blocking work ran: the thread of every call of some wrapped functions.

A test that wants to show that a service keeps the Trio loop free asserts *where* its heavy
calls ran (a worker thread, or not in this process at all) instead of timing the loop: how long
a tick waits is a property of the machine and its load, where a call runs is a property of the
code. The loop-lag figures themselves are measured by the benchmarks (``benchmarks/voice.py``,
``docs/performance.md``).

    sites = CallSites()  # on the loop's thread, i.e. inside the async test
    sites.patch(monkeypatch, Recognizer, "feed", "flush")
    ...
    assert sites.calls and sites.on_loop() == []
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import attrs
import pytest


@attrs.define
class CallSites:
    """Calls of the patched functions, in order, as ``(label, thread ident)``.

    ``loop`` is the thread that created it: create it inside the async test (the loop's thread).
    """

    loop: int = attrs.field(factory=threading.get_ident)
    calls: list[tuple[str, int]] = attrs.field(factory=list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def patch(self, monkeypatch: pytest.MonkeyPatch, owner: Any, *names: str) -> None:
        """Record every call of ``owner.<name>`` (a class's plain method, or a module function)."""
        for name in names:
            original = getattr(owner, name)
            label = f"{getattr(owner, '__name__', type(owner).__name__).rsplit('.', 1)[-1]}.{name}"
            monkeypatch.setattr(owner, name, self._recorded(label, original))

    def _recorded(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls.append((label, threading.get_ident()))
            return fn(*args, **kwargs)

        return recorded

    def labels(self) -> set[str]:
        with self._lock:
            return {label for label, _ in self.calls}

    def on_loop(self) -> list[str]:
        """Labels of the calls that ran on the loop's thread (what must stay empty)."""
        with self._lock:
            return [label for label, ident in self.calls if ident == self.loop]
