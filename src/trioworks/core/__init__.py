"""Shared core of trioworks: offload, retry, supervision and metrics.

This package depends on nothing else in trioworks; every subsystem builds on it.

- :func:`run_in_thread` / :func:`run_in_process`: the one offload helper pair. Blocking work
  always runs under a named limiter, and a cancelled call reports how it ended as a
  :class:`CancelOutcome`.
- :class:`ThreadBatcher`: calls that arrive while a thread is busy are run together in the next
  thread hop (one ``run_batch`` call); leader/follower, no task of its own.
- :func:`retry` with a :class:`RetryPolicy`: exponential backoff with jitter; the limiter slot
  is released while waiting between attempts; Cancelled is never retried.
- :func:`supervise` with a :class:`RestartPolicy`: restart a failing child task with backoff,
  giving up with :exc:`RestartIntensityExceeded` when it fails too often.
- :class:`Metrics`, :class:`Counter`, :class:`Gauge`: thread-safe counters and gauges.
- :func:`start_process` / :func:`stop_process` / :func:`child_process`: the one way to run a
  long-lived child process (killed if still running, reaped shielded and bounded, pipes closed),
  and :func:`read_exactly` for its pipes.
- :class:`Correlator`: the one waiter table keyed by correlation id (registered before the
  request is sent, removed in ``finally``, a duplicate id raises :exc:`DuplicateCorrelationId`).
- :func:`single_error`, :func:`find_error`, :func:`leaf_errors`: the one way to find the real
  error inside (nested) exception groups, for reporting it or acting on one kind of error.
"""

from ._batch import ThreadBatcher
from ._correlation import Correlator, DuplicateCorrelationId, Waiter
from ._errors import find_error, leaf_errors, single_error
from ._lazy import lazy_exports
from ._metrics import Counter, Gauge, Metrics
from ._offload import CancelOutcome, run_in_process, run_in_thread
from ._process import child_process, read_exactly, start_process, stop_process
from ._prometheus import PROMETHEUS_CONTENT_TYPE, prometheus_text, serve_prometheus
from ._retry import RetryPolicy, retry
from ._supervisor import RestartIntensityExceeded, RestartPolicy, supervise

__all__ = [
    "PROMETHEUS_CONTENT_TYPE",
    "CancelOutcome",
    "Correlator",
    "Counter",
    "DuplicateCorrelationId",
    "Gauge",
    "Metrics",
    "RestartIntensityExceeded",
    "RestartPolicy",
    "RetryPolicy",
    "ThreadBatcher",
    "Waiter",
    "child_process",
    "find_error",
    "lazy_exports",
    "leaf_errors",
    "prometheus_text",
    "read_exactly",
    "retry",
    "run_in_process",
    "run_in_thread",
    "serve_prometheus",
    "single_error",
    "start_process",
    "stop_process",
    "supervise",
]
