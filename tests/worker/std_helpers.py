"""Run one std activity directly, with a real :class:`ActivityContext` (no server needed)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import trio
from worker_fake import make_config

from trioworks.worker import (
    ActivityContext,
    ActivityDefinition,
    ActivityFiles,
    ActivityResult,
    PendingActivity,
    WorkerApiClient,
)


@contextlib.asynccontextmanager
async def activity_context(
    name: str, *, key: str = "step", outputs: list[dict[str, Any]] | None = None
) -> AsyncIterator[ActivityContext]:
    """A context whose API client reaches nothing (the std activities never call the server)."""
    pending = PendingActivity(
        activity_id=str(uuid.uuid4()),
        workflow_id=str(uuid.uuid4()),
        activity_key=key,
        worker="std",
        activity_name=name,
        output_definitions=outputs,
    )
    client = WorkerApiClient(make_config(), transport=httpx.MockTransport(lambda _r: httpx.Response(503)))
    files = ActivityFiles(client, pending.workflow_id, key, trio.CapacityLimiter(1))
    try:
        yield ActivityContext(
            pending, worker_id="w", client=client, files=files, cancel_scope=trio.CancelScope()
        )
    finally:
        await files.cleanup()


async def run_std(
    definition: ActivityDefinition, parameters: dict[str, Any], **ctx_args: Any
) -> ActivityResult:
    """Parse ``parameters`` as the worker does and call the activity; its exceptions propagate."""
    async with activity_context(definition.name, **ctx_args) as ctx:
        result = await definition.fn(definition.parse_params(parameters), ctx)
    assert isinstance(result, ActivityResult)
    return result


def output(result: ActivityResult, name: str) -> Any:
    return result.to_output_dict()[name]
