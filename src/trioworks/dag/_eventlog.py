"""The runtime's node events as log records on the ``trioworks.dag`` logger.

DEBUG: a node started, a node completed. INFO: a node failed, was skipped or was cancelled
(retries are logged at INFO where they happen, with the delay). Each record carries
``workflow_id``, ``run_id``, ``node_id`` and ``status`` as ``extra`` fields, so ``--log-format
json`` gives them to a log collector as fields.
"""

from __future__ import annotations

import logging
from typing import Any

from ._result import NodeStatus

__all__ = ["log_node_event"]

log = logging.getLogger("trioworks.dag")

_LEVELS = {
    NodeStatus.RUNNING: logging.DEBUG,
    NodeStatus.COMPLETED: logging.DEBUG,
    NodeStatus.FAILED: logging.INFO,
    NodeStatus.SKIPPED: logging.INFO,
    NodeStatus.CANCELLED: logging.INFO,
}


def log_node_event(
    workflow_id: str, run_id: str, node_id: str, status: NodeStatus, fields: dict[str, Any]
) -> None:
    """Log one node event; costs one ``isEnabledFor`` call when its level is off."""
    level = _LEVELS.get(status, logging.DEBUG)
    if not log.isEnabledFor(level):
        return
    extra = {"workflow_id": workflow_id, "run_id": run_id, "node_id": node_id, "status": status.value}
    attempt = fields.get("attempt", 1)
    duration = fields.get("duration")
    took = f" in {duration:.3f} s" if duration is not None else ""
    if status is NodeStatus.RUNNING:
        log.log(level, "node %r started", node_id, extra=extra)
    elif status is NodeStatus.COMPLETED:
        tries = f" (attempt {attempt})" if attempt > 1 else ""
        log.log(level, "node %r completed%s%s", node_id, took, tries, extra=extra)
    elif status is NodeStatus.FAILED:
        error = fields.get("error")
        log.log(level, "node %r failed%s after %d attempt(s): %r", node_id, took, attempt, error, extra=extra)
    elif status is NodeStatus.SKIPPED:
        log.log(level, "node %r skipped: %s", node_id, fields.get("skip_reason") or "-", extra=extra)
    else:
        log.log(level, "node %r cancelled%s", node_id, took, extra=extra)
