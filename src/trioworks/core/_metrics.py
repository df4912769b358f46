"""Tiny in-process metrics: counters and gauges, safe to update from worker threads.

Every operation takes a :class:`threading.Lock` for a few instructions only, so it is fine
to call from the Trio loop (it never waits on anything slow) and from ``trio.to_thread`` workers.
None of these calls are checkpoints.
"""

from __future__ import annotations

import threading
from typing import TypeVar

__all__ = ["Counter", "Gauge", "Metrics"]


class Counter:
    """A monotonically increasing integer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def inc(self, n: int = 1) -> None:
        """Add ``n`` (must be >= 0; a counter never goes down)."""
        if n < 0:
            raise ValueError(f"Counter.inc needs n >= 0, got {n}")
        with self._lock:
            self._value += n

    @property
    def value(self) -> int:
        with self._lock:
            return self._value


class Gauge:
    """A value that goes up and down, remembering the highest value it ever had."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: int | float = 0
        self._high_water: int | float = 0

    def _store(self, value: int | float) -> None:
        # Caller holds the lock.
        self._value = value
        if value > self._high_water:
            self._high_water = value

    def inc(self, n: int | float = 1) -> None:
        with self._lock:
            self._store(self._value + n)

    def dec(self, n: int | float = 1) -> None:
        with self._lock:
            self._store(self._value - n)

    def set(self, v: int | float) -> None:
        with self._lock:
            self._store(v)

    @property
    def value(self) -> int | float:
        with self._lock:
            return self._value

    @property
    def high_water(self) -> int | float:
        """The maximum value ever held (starts at 0)."""
        with self._lock:
            return self._high_water


_M = TypeVar("_M", Counter, Gauge)


class Metrics:
    """A registry of named counters and gauges, created on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: dict[str, Counter | Gauge] = {}

    def _get(self, name: str, kind: type[_M]) -> _M:
        with self._lock:
            metric = self._metrics.get(name)
            if metric is None:
                metric = self._metrics[name] = kind()
        if not isinstance(metric, kind):
            raise TypeError(f"metric {name!r} is a {type(metric).__name__}, not a {kind.__name__}")
        return metric

    def counter(self, name: str) -> Counter:
        """The counter called ``name``; the same object on every call. TypeError if it is a gauge."""
        return self._get(name, Counter)

    def gauge(self, name: str) -> Gauge:
        """The gauge called ``name``; the same object on every call. TypeError if it is a counter."""
        return self._get(name, Gauge)

    def items(self) -> list[tuple[str, Counter | Gauge]]:
        """Every metric, by name."""
        with self._lock:
            return sorted(self._metrics.items(), key=lambda item: item[0])

    def snapshot(self) -> dict[str, int | float]:
        """Current values: counters by name, gauges as ``name`` and ``f"{name}.high_water"``."""
        with self._lock:
            metrics = list(self._metrics.items())
        out: dict[str, int | float] = {}
        for name, metric in sorted(metrics, key=lambda item: item[0]):
            out[name] = metric.value
            if isinstance(metric, Gauge):
                out[f"{name}.high_water"] = metric.high_water
        return out
