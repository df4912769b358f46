"""The reference server: Kruxia Flow's HTTP API, orchestrating workflows over a SQL store.

- :class:`Storage`: the synchronous, one-transaction-per-method interface of a backend;
  :class:`SqlStorage` writes the operations once in portable SQL, a :class:`Dialect` holding what
  differs; :class:`SQLiteStorage` is the SQLite backend (Postgres: ``_postgres``);
  :func:`open_storage` picks one from a URL.
- :class:`Server` with :class:`ServerConfig`: the HTTP API (Starlette on hypercorn's Trio
  worker) and the lease sweeper; ``url = await nursery.start(Server(config).run)``.
- The rules (scheduling, templates, conditions, retries, leases) are pure functions in
  ``_engine``, shared by every backend; ``_progress`` applies scheduling incrementally, so that
  a completion reads only the rows it changes.
"""

from ._auth import parse_clients
from ._definitions import parse_definition
from ._errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ServerError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from ._models import (
    ActivityDef,
    ActivityRow,
    ActivityStatus,
    Definition,
    DefinitionSummary,
    Dependency,
    FileRecord,
    OutputDef,
    PendingActivity,
    PutDefinitionResult,
    RetrySettings,
    StoredDefinition,
    WorkflowPage,
    WorkflowRow,
    WorkflowStatus,
)
from ._open import StorageUnavailable, open_storage
from ._server import Server, ServerConfig
from ._sql import SqlStorage
from ._sqlbase import Dialect
from ._sqlite import SQLiteStorage
from ._storage import Storage
from ._templates import TemplateError

__all__ = [
    "ActivityDef",
    "ActivityRow",
    "ActivityStatus",
    "BadRequest",
    "Conflict",
    "Definition",
    "DefinitionSummary",
    "Dependency",
    "Dialect",
    "FileRecord",
    "NotFound",
    "OutputDef",
    "PayloadTooLarge",
    "PendingActivity",
    "PutDefinitionResult",
    "RetrySettings",
    "SQLiteStorage",
    "Server",
    "ServerConfig",
    "ServerError",
    "SqlStorage",
    "Storage",
    "StorageUnavailable",
    "StoredDefinition",
    "TemplateError",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
    "WorkflowPage",
    "WorkflowRow",
    "WorkflowStatus",
    "open_storage",
    "parse_clients",
    "parse_definition",
]
