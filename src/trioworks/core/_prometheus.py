"""A :class:`~trioworks.core.Metrics` registry in the Prometheus text format.

One exposition, the ``prometheus-client`` library's: a collector reads the registry on each
scrape, so the counters stay the core's (thread-safe, no second bookkeeping). Names become
Prometheus names: ``server.activities_claimed`` -> ``trioworks_server_activities_claimed_total``
(counters), a gauge ``server.requests_in_flight`` -> ``trioworks_server_requests_in_flight`` plus
``..._high_water``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ._metrics import Counter, Metrics

__all__ = ["PROMETHEUS_CONTENT_TYPE", "prometheus_text"]

PROMETHEUS_CONTENT_TYPE: str = CONTENT_TYPE_LATEST
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def _name(prefix: str, name: str) -> str:
    return _INVALID.sub("_", f"{prefix}_{name}" if prefix else name)


class _Collector:
    def __init__(self, metrics: Metrics, prefix: str) -> None:
        self._metrics = metrics
        self._prefix = prefix

    def collect(self) -> Iterator[Metric]:
        for name, metric in self._metrics.items():
            full = _name(self._prefix, name)
            if isinstance(metric, Counter):
                family: Metric = CounterMetricFamily(full, f"{name} (counter)", value=metric.value)
                yield family
            else:
                yield GaugeMetricFamily(full, f"{name} (gauge)", value=metric.value)
                yield GaugeMetricFamily(f"{full}_high_water", f"highest {name} seen", value=metric.high_water)


def prometheus_text(metrics: Metrics, *, prefix: str = "trioworks") -> bytes:
    """Every counter and gauge of ``metrics`` in the Prometheus text format (no I/O, no checkpoint)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics, prefix))  # type: ignore[arg-type]  # duck-typed Collector
    return generate_latest(registry)
