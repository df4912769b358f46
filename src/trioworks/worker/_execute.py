"""One claimed activity, end to end: execute under its cancel scope, heartbeat, report."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import httpx
import trio
import trio_parallel

from ..core import CancelOutcome, Metrics, run_in_process, run_in_thread
from ._activity import ActivityDefinition, ActivityKind, InvalidParameters, call_process_activity
from ._client import REPORT_RETRY, EncodedJSON, WorkerApiClient, encode_json
from ._config import WorkerConfig
from ._context import ActivityContext, CancelReason
from ._errors import ActivityError, ApiError, LeaseLostError
from ._files import ActivityFiles
from ._heartbeats import HeartbeatStarter
from ._results import ActivityResult, OutputType
from ._wire import PendingActivity, unstructure_usage

__all__ = ["ActivityRunner", "Limiters", "Report"]

logger = logging.getLogger("trioworks.worker")

_OUTCOME_NOTE = {
    CancelOutcome.ABANDONED: "; its thread was abandoned and may still be running",
    CancelOutcome.KILLED: "; its worker process was killed",
    CancelOutcome.NOT_STARTED: "; it never started (it was waiting for a thread or process slot)",
    CancelOutcome.WAITED: "",
}


@attrs.frozen
class Limiters:
    """The worker's named limiters (control-plane calls take none of these)."""

    threads: trio.CapacityLimiter
    """Plain ``def`` activities (an abandoned thread holds its token until it really ends)."""
    processes: trio.CapacityLimiter
    """``process=True`` activities."""
    io: trio.CapacityLimiter
    """Disk reads/writes of file transfers and temp directories."""


@attrs.frozen
class Report:
    """What to tell the server: complete with ``output`` or fail with ``code``."""

    code: str | None = None
    message: str = ""
    retryable: bool = True
    output: dict[str, Any] = attrs.field(factory=dict)
    output_json: EncodedJSON | None = None
    """``output`` as sent (encoded once, when it was checked to be JSON)."""

    @property
    def ok(self) -> bool:
        return self.code is None


class ActivityRunner:
    """Runs claimed activities: one call of :meth:`run` per activity, in its own task."""

    def __init__(
        self,
        config: WorkerConfig,
        client: WorkerApiClient,
        registry: Mapping[str, ActivityDefinition],
        limiters: Limiters,
        metrics: Metrics,
        heartbeats: HeartbeatStarter,
    ) -> None:
        self._config = config
        self._heartbeats = heartbeats
        self._client = client
        self._registry = registry
        self._limiters = limiters
        self._metrics = metrics
        self._started = metrics.counter("activities.started")
        self._completed = metrics.counter("activities.completed")
        self._failed = metrics.counter("activities.failed")

    def lease_of(self, pending: PendingActivity) -> float:
        return float(pending.timeout_seconds or self._config.server_lease)

    def heartbeat_period(self, pending: PendingActivity) -> float:
        return min(self._config.heartbeat_interval, self.lease_of(pending) / 3)

    async def run(
        self, pending: PendingActivity, on_context: Callable[[ActivityContext | None], None]
    ) -> None:
        """Execute ``pending``, heartbeating, then report the outcome (shielded, own deadline).

        ``on_context(ctx)`` is called when the context exists, ``on_context(None)`` at the end.

        Cancellation: if this task is cancelled from outside (the worker's nursery), the activity
        is cancelled with reason SHUTDOWN, reported as ``WORKER_SHUTDOWN`` in a shielded scope,
        and Cancelled propagates.
        """
        timeout = float(pending.timeout_seconds or self._config.activity_timeout)
        files = ActivityFiles(self._client, pending.workflow_id, pending.activity_key, self._limiters.io)
        now = trio.current_time()
        ctx = ActivityContext(
            pending,
            worker_id=self._config.worker_id,
            client=self._client,
            files=files,
            cancel_scope=trio.CancelScope(deadline=now + timeout),
        )
        on_context(ctx)
        self._started.inc()
        period = self.heartbeat_period(pending)
        # The heartbeat task starts (in the starter's nursery) when the first heartbeat is due;
        # most activities are done by then.
        heartbeat = self._heartbeats.schedule(now + period, self._heartbeat_loop, ctx, period)
        try:
            await self._execute_and_report(pending, ctx, files, timeout)
        finally:
            heartbeat.stop()  # heartbeats stop only after the report
            await files.cleanup()  # shielded
            on_context(None)

    async def _execute_and_report(
        self, pending: PendingActivity, ctx: ActivityContext, files: ActivityFiles, limit: float
    ) -> None:
        try:
            report = await self._execute(pending, ctx, files, limit)
        except trio.Cancelled:
            ctx.cancel(CancelReason.SHUTDOWN)
            await self._report(ctx, self._cancelled_report(ctx, limit))
            raise
        except Exception as exc:  # a bug outside the activity body: report it, keep serving
            logger.exception("activity %s: worker error", pending.activity_id)
            report = Report("WORKER_ERROR", f"{type(exc).__name__}: {exc}")
        if report is not None:
            await self._report(ctx, report)

    # -- executing -------------------------------------------------------------

    async def _execute(
        self, pending: PendingActivity, ctx: ActivityContext, files: ActivityFiles, limit: float
    ) -> Report | None:
        definition = self._registry.get(pending.activity_name)
        if definition is None:
            known = ", ".join(sorted(self._registry)) or "none"
            return Report(
                "ACTIVITY_NOT_FOUND",
                f"worker {self._config.worker!r} has no activity {pending.activity_name!r} (it has: {known})",
            )
        try:
            params = definition.parse_params(pending.parameters)
        except InvalidParameters as exc:
            return Report("INVALID_PARAMETERS", f"activity {definition.name!r}: {exc}", retryable=False)
        report: Report | None = None
        with ctx.cancel_scope:
            report = await self._attempt(definition, params, ctx, files)
        if ctx.cancel_reason is CancelReason.LEASE_LOST:
            logger.warning("activity %s lost its lease; not reporting it", pending.activity_id)
            return None
        return report if report is not None else self._cancelled_report(ctx, limit)

    async def _attempt(
        self, definition: ActivityDefinition, params: Any, ctx: ActivityContext, files: ActivityFiles
    ) -> Report:
        try:
            raw = await self._invoke(definition, params, ctx)
        except trio_parallel.BrokenWorkerError as exc:
            return Report("PANIC", f"activity {definition.name!r}: its worker process died: {exc}")
        except ActivityError as exc:
            return Report(exc.code, exc.message or exc.code, exc.retryable)
        except Exception as exc:
            retryable = not isinstance(exc, definition.terminal)
            return Report("EXECUTION_ERROR", f"{type(exc).__name__}: {exc}", retryable)
        return await self._outputs(definition, raw, ctx, files)

    async def _invoke(self, definition: ActivityDefinition, params: Any, ctx: ActivityContext) -> Any:
        def record(outcome: CancelOutcome) -> None:
            ctx.offload_outcome = outcome

        if definition.kind is ActivityKind.ASYNC:
            return await definition.fn(params, ctx)
        if definition.kind is ActivityKind.THREAD:
            return await run_in_thread(
                definition.fn,
                params,
                ctx,
                limiter=self._limiters.threads,
                abandon_on_cancel=True,
                on_cancel=record,
            )
        assert definition.process_ref is not None
        return await run_in_process(
            call_process_activity,
            *definition.process_ref,
            params,
            limiter=self._limiters.processes,
            on_cancel=record,
        )

    async def _outputs(
        self, definition: ActivityDefinition, raw: Any, ctx: ActivityContext, files: ActivityFiles
    ) -> Report:
        if raw is None:
            raw = ActivityResult()
        elif isinstance(raw, Mapping):
            raw = ActivityResult.values(raw)
        if not isinstance(raw, ActivityResult):
            return Report(
                "INVALID_OUTPUT",
                f"activity {definition.name!r} returned {type(raw).__name__}; expected an ActivityResult or a dict",
                retryable=False,
            )
        if raw.cost_usd is not None or raw.usage:
            ctx.add_cost(raw.cost_usd or 0.0, *raw.usage)
        if raw.is_error:
            return Report(raw.error_code, raw.error_message or "", raw.retryable)
        output = raw.to_output_dict()
        declared = {d.get("name"): d.get("type") for d in ctx.output_definitions if isinstance(d, Mapping)}
        for out in raw.outputs:
            kind = out.output_type
            if kind is OutputType.VALUE and isinstance(out.value, str) and "://" not in out.value:
                # The definition says this output is a file/folder and the activity gave a local path.
                # str(): a missing or malformed (e.g. unhashable) declared type keeps the kind.
                kind = {"file": OutputType.FILE, "folder": OutputType.FOLDER}.get(
                    str(declared.get(out.name)), kind
                )
            try:
                if kind is OutputType.FILE:
                    output[out.name] = await files.upload(out.value)
                elif kind is OutputType.FOLDER:
                    output[out.name] = await files.upload_folder(out.value, out.name)
            except (OSError, ValueError, ApiError, httpx.HTTPError) as exc:
                return Report("EXECUTION_ERROR", f"uploading output {out.name!r} failed: {exc}")
        try:
            encoded = encode_json(output)
        except (TypeError, ValueError) as exc:
            return Report("INVALID_OUTPUT", f"activity {definition.name!r}: output is not JSON: {exc}", False)
        return Report(output=output, output_json=encoded)

    def _cancelled_report(self, ctx: ActivityContext, timeout: float) -> Report:
        note = _OUTCOME_NOTE.get(ctx.offload_outcome, "") if ctx.offload_outcome else ""
        if ctx.cancel_reason is CancelReason.SHUTDOWN:
            return Report(
                "WORKER_SHUTDOWN", f"worker {self._config.worker_id} shut down before it finished{note}"
            )
        return Report("TIMEOUT", f"activity execution timed out after {timeout:g} s{note}")

    # -- heartbeat and report --------------------------------------------------

    async def _heartbeat_loop(self, ctx: ActivityContext, period: float) -> None:
        """Started when the first heartbeat is due: heartbeat now and every ``period`` until
        cancelled; on 409/404 cancel the activity (LEASE_LOST)."""
        while True:
            try:
                await self._client.heartbeat(ctx.activity_id)
            except LeaseLostError as exc:
                logger.warning("activity %s: heartbeat refused (%s); cancelling it", ctx.activity_id, exc)
                self._metrics.counter("activities.lease_lost").inc()
                ctx.cancel(CancelReason.LEASE_LOST)
                return
            except (ApiError, httpx.HTTPError, ValueError) as exc:
                # (ValueError: a 200 whose body is not JSON.) The lease still has about two periods
                # left: try again sooner.
                logger.warning("activity %s: heartbeat failed (%s)", ctx.activity_id, exc)
                delay = period / 3
            else:
                self._metrics.counter("heartbeats").inc()
                delay = period
            await trio.sleep(delay)

    async def _report(self, ctx: ActivityContext, report: Report) -> None:
        """Complete or fail, shielded, retrying transient errors until ``report_timeout``."""
        extra: dict[str, Any] = {}
        if ctx.cost_usd and math.isfinite(ctx.cost_usd):
            extra["cost_usd"] = ctx.cost_usd
        if ctx.usage:
            extra["usage"] = unstructure_usage(tuple(ctx.usage))
        # Shielded from the worker's cancellation, bounded by its own deadline.
        with trio.CancelScope(
            shield=True, deadline=trio.current_time() + self._config.report_timeout
        ) as deadline:
            try:
                if report.ok:
                    try:
                        output = report.output if report.output_json is None else report.output_json
                        await self._client.complete(
                            ctx.activity_id, {"output": output, **extra}, REPORT_RETRY
                        )
                    except ApiError as exc:
                        if exc.status != 422 or isinstance(exc, LeaseLostError):
                            raise
                        # The server refused the output (e.g. not JSON-serialisable): say so instead.
                        report = Report("INVALID_OUTPUT", f"server refused the output: {exc.message}", False)
                if not report.ok:
                    error = {
                        "code": report.code,
                        "message": report.message or report.code,
                        "retryable": report.retryable,
                    }
                    await self._client.fail(ctx.activity_id, {"error": error, **extra}, REPORT_RETRY)
            except LeaseLostError as exc:
                logger.warning(
                    "activity %s: report refused (%s): another worker owns it", ctx.activity_id, exc
                )
                self._metrics.counter("activities.lease_lost").inc()
                return
            except (ApiError, httpx.HTTPError, TypeError, ValueError) as exc:
                logger.error("activity %s: report failed for good: %s", ctx.activity_id, exc)
                self._metrics.counter("reports.lost").inc()
                return
        if deadline.cancelled_caught:
            logger.error(
                "activity %s: report not delivered within %g s", ctx.activity_id, self._config.report_timeout
            )
            self._metrics.counter("reports.lost").inc()
            return
        (self._completed if report.ok else self._failed).inc()
        logger.info("activity %s %s", ctx.activity_id, "completed" if report.ok else f"failed: {report.code}")
