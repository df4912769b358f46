"""What an activity sees while it runs: :class:`ActivityContext` and :class:`CancelReason`."""

from __future__ import annotations

import enum
import functools
import logging
import os
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ..core import CancelOutcome
from ._errors import LeaseLostError
from ._wire import PendingActivity, UsageEntry

if TYPE_CHECKING:
    from ._client import WorkerApiClient
    from ._files import ActivityFiles

__all__ = ["ActivityContext", "CancelReason"]


class CancelReason(enum.Enum):
    """Why the worker cancelled an activity."""

    TIMEOUT = "timeout"
    """``timeout_seconds`` (or the worker's default) elapsed; reported as retryable ``TIMEOUT``."""
    LEASE_LOST = "lease_lost"
    """The server answered 409/404 to a heartbeat: another worker owns it now; nothing is reported."""
    SHUTDOWN = "shutdown"
    """The worker is shutting down; reported as retryable ``WORKER_SHUTDOWN``."""


class ActivityContext:
    """Identity of the running activity, its cancel scope and reason, heartbeat, files, cost.

    ``cancel_scope`` is the activity's own scope: its deadline is the activity's timeout, and
    the worker cancels it on a lost lease or shutdown, setting :attr:`cancel_reason` first. An
    activity may read :attr:`cancel_reason` in a ``finally:`` or ``except trio.Cancelled:``
    block to learn why it is being cancelled.
    """

    def __init__(
        self,
        pending: PendingActivity,
        *,
        worker_id: str,
        client: WorkerApiClient,
        files: ActivityFiles,
        cancel_scope: trio.CancelScope,
    ) -> None:
        self.workflow_id = pending.workflow_id
        self.activity_id = pending.activity_id
        self.activity_key = pending.activity_key
        self.activity_name = pending.activity_name
        self.signal: dict[str, Any] | None = pending.signal_data
        """Data of the signal the activity waited for, if any (the original's ``ctx.signal``)."""
        self.settings = pending.settings
        self.output_definitions: list[dict[str, Any]] = list(pending.output_definitions or [])
        """The definition's ``outputs`` (``{name, type}``), when the server sends them."""
        self.worker_id = worker_id
        self.cancel_scope = cancel_scope
        self.heartbeat_details: Any = None
        """The last ``details`` given to :meth:`heartbeat` (kept locally: the wire has no field)."""
        self.cost_usd: float = 0.0
        self.usage: list[UsageEntry] = []
        self.offload_outcome: CancelOutcome | None = None
        """How a cancelled thread/process activity ended (abandoned thread, killed process)."""
        self._client = client
        self._files = files
        self._reason: CancelReason | None = None

    @functools.cached_property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """``trioworks.activity.{activity_key}``, with the activity and workflow ids as ``extra``
        (made on first use: most activities never log)."""
        return logging.LoggerAdapter(
            logging.getLogger(f"trioworks.activity.{self.activity_key}"),
            {"activity_id": self.activity_id, "workflow_id": self.workflow_id},
        )

    @property
    def signal_data(self) -> dict[str, Any] | None:
        return self.signal

    @property
    def cancel_reason(self) -> CancelReason | None:
        """``None`` while not cancelled; TIMEOUT once the deadline has passed."""
        if self._reason is None and self.cancel_scope.cancel_called:
            return CancelReason.TIMEOUT
        return self._reason

    @property
    def cancelled(self) -> bool:
        return self.cancel_scope.cancel_called

    def cancel(self, reason: CancelReason) -> None:
        """Cancel the activity for ``reason`` (the first reason given wins). Not a checkpoint."""
        if self._reason is None and not self.cancel_scope.cancel_called:
            self._reason = reason
        self.cancel_scope.cancel()

    async def heartbeat(self, details: Any = None) -> None:
        """Send a heartbeat now, extending the lease. The worker also heartbeats on its own.

        On 409/404 the activity is cancelled with ``LEASE_LOST`` (so the next checkpoint raises
        Cancelled). Network errors and 5xx propagate; the automatic heartbeat keeps trying.
        """
        self.heartbeat_details = details
        try:
            await self._client.heartbeat(self.activity_id)
        except LeaseLostError:
            self.cancel(CancelReason.LEASE_LOST)
            await trio.lowlevel.checkpoint()

    def add_cost(self, cost_usd: Decimal | float, *usage: UsageEntry) -> None:
        """Add to the cost (and usage) reported with the result, whatever the outcome."""
        self.cost_usd += float(cost_usd)
        self.usage.extend(usage)

    async def temp_dir(self) -> Path:
        """This activity's temporary directory, removed when the activity ends."""
        return await self._files.temp_dir()

    async def upload_file(self, local_path: str | os.PathLike[str], filename: str | None = None) -> str:
        """Stream a local file to workflow storage; return its reference string."""
        return await self._files.upload(local_path, filename)

    async def download_file(self, reference: str) -> str:
        """Stream a stored file (reference string) into :meth:`temp_dir`; return the local path."""
        return await self._files.download(reference)
