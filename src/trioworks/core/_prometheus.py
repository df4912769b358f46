"""A :class:`~trioworks.core.Metrics` registry in the Prometheus text format.

One exposition, the ``prometheus-client`` library's: a collector reads the registry on each
scrape, so the counters stay the core's (thread-safe, no second bookkeeping). Names become
Prometheus names: ``server.activities_claimed`` -> ``trioworks_server_activities_claimed_total``
(counters), a gauge ``server.requests_in_flight`` -> ``trioworks_server_requests_in_flight`` plus
``..._high_water``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ._metrics import Counter, Metrics

__all__ = ["PROMETHEUS_CONTENT_TYPE", "prometheus_text", "serve_prometheus"]

PROMETHEUS_CONTENT_TYPE: str = CONTENT_TYPE_LATEST
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def _name(prefix: str, name: str) -> str:
    return _INVALID.sub("_", f"{prefix}_{name}" if prefix else name)


Source = Metrics | tuple[Metrics, Mapping[str, str]]
"""A registry, or a registry and the labels of all its samples (``{"queue": "std"}``)."""


class _Collector:
    def __init__(self, sources: Sequence[Source], prefix: str) -> None:
        self._sources = [(s, {}) if isinstance(s, Metrics) else s for s in sources]
        self._prefix = prefix

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for metrics, labels in self._sources:
            keys, values = list(labels), list(labels.values())
            for name, metric in metrics.items():
                full = _name(self._prefix, name)
                samples: list[tuple[str, float, type[CounterMetricFamily | GaugeMetricFamily], str]]
                if isinstance(metric, Counter):
                    samples = [(full, metric.value, CounterMetricFamily, f"{name} (counter)")]
                else:
                    samples = [
                        (full, metric.value, GaugeMetricFamily, f"{name} (gauge)"),
                        (f"{full}_high_water", metric.high_water, GaugeMetricFamily, f"highest {name} seen"),
                    ]
                for family_name, value, kind, text in samples:
                    family = families.get(family_name)
                    if family is None:
                        family = families[family_name] = kind(family_name, text, labels=keys)
                    family.add_metric(values, value)
        yield from families.values()


def prometheus_text(*sources: Source, prefix: str = "trioworks") -> bytes:
    """Every counter and gauge of ``sources`` in the Prometheus text format (no I/O, no checkpoint).

    Registries given with labels share metric families: ``(worker_a.metrics, {"queue": "std"})``
    and ``(worker_b.metrics, {"queue": "py-std"})`` become two samples of each metric.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(sources, prefix))
    return generate_latest(registry)


_MAX_REQUEST = 8192


async def _answer(stream: trio.abc.Stream, render: Callable[[], bytes]) -> None:
    head = b""
    with trio.move_on_after(10):  # a client that sends nothing does not hold the connection
        while b"\r\n\r\n" not in head and len(head) < _MAX_REQUEST:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            head += chunk
    parts = head.split(b" ", 2)
    if len(parts) == 3 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/metrics":
        status, body, kind = b"200 OK", render(), PROMETHEUS_CONTENT_TYPE.encode()
    else:
        status, body, kind = b"404 Not Found", b"only GET /metrics here\n", b"text/plain"
    response = (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: "
        + kind
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    try:
        await stream.send_all(response)
    except trio.BrokenResourceError:
        pass  # the scraper went away
    finally:
        await trio.aclose_forcefully(stream)


async def serve_prometheus(
    port: int,
    render: Callable[[], bytes],
    *,
    host: str = "127.0.0.1",
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer ``GET /metrics`` on ``host:port`` with ``render()`` until cancelled.

    ``task_status.started(port)`` once listening (the bound port: ``port=0`` picks one).
    Resource handling: one task per connection in this call's nursery, each closed after one
    answer; cancelling the call closes the listener and every connection.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        task_status.started(bound)

        async def answer(stream: trio.SocketStream) -> None:
            await _answer(stream, render)

        await trio.serve_listeners(answer, listeners, handler_nursery=nursery)
