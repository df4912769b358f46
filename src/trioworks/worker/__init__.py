"""The activity worker: runs Kruxia Flow activities on Trio.

Wire-compatible with a Kruxia Flow server (see ``docs/worker.md``)::

    from trioworks.worker import ActivityContext, ActivityResult, Worker, WorkerConfig, activity

    @activity()
    async def greet(params: dict, ctx: ActivityContext) -> ActivityResult:
        return ActivityResult.value("greeting", f"hello {params['name']}")

    trio.run(Worker(WorkerConfig.from_env(), [greet]).run)
"""

from ._activity import Activity, ActivityDefinition, ActivityKind, InvalidParameters, activity
from ._client import WorkerApiClient
from ._config import ENV_VARS, WorkerConfig
from ._context import ActivityContext, CancelReason
from ._dag_activity import DAG_WORKER, dag_activities
from ._errors import (
    ActivityError,
    ApiError,
    AuthenticationError,
    ConfigError,
    LeaseLostError,
    TerminalActivityError,
    WorkerError,
)
from ._files import ActivityFiles
from ._results import ActivityOutput, ActivityResult, OutputType
from ._wire import FileReference, PendingActivity, UsageEntry
from ._worker import Worker, WorkerStats

__all__ = [
    "DAG_WORKER",
    "ENV_VARS",
    "Activity",
    "ActivityContext",
    "ActivityDefinition",
    "ActivityError",
    "ActivityFiles",
    "ActivityKind",
    "ActivityOutput",
    "ActivityResult",
    "ApiError",
    "AuthenticationError",
    "CancelReason",
    "ConfigError",
    "FileReference",
    "InvalidParameters",
    "LeaseLostError",
    "OutputType",
    "PendingActivity",
    "TerminalActivityError",
    "UsageEntry",
    "Worker",
    "WorkerApiClient",
    "WorkerConfig",
    "WorkerError",
    "WorkerStats",
    "activity",
    "dag_activities",
]
