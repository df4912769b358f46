"""The reference server: Kruxia Flow's HTTP API, orchestrating workflows over a SQL store.

- :class:`Storage`: the synchronous, one-transaction-per-method interface of a backend;
  :class:`SqlStorage` writes the operations once in portable SQL and is handed a
  :class:`Dialect` (the SQL that differs) and the connections to use; :class:`SQLiteStorage` is
  the SQLite backend, :class:`PostgresStorage` the Postgres one (imported on first use: it needs
  ``pip install 'trioworks[postgres]'``); :func:`open_storage` picks one from a URL.
- :class:`Server` with :class:`ServerConfig`: the HTTP API (Starlette's routes on the
  server's own HTTP/1.1 front), the lease sweeper, the signal-timeout timer and the schedules
  task (recurring schedules: :class:`ScheduleRow`, :class:`Cadence`); ``url = await nursery.start(Server(config).run)``.

Three layers, each a subpackage: :mod:`.http` (routes, request checking, auth) calls the
:mod:`.storage` (SQL, connections, files), which calls the :mod:`.rules` (scheduling,
templates, conditions, retries, leases: pure functions from rows to rows). ``_models``,
``_errors`` and ``_wire`` are shared by all three; ``_server`` wires them together.
"""

import typing

from ..core import lazy_exports as _lazy_exports
from ._errors import (
    BadRequest,
    ConfigurationError,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServerError,
    StorageUnavailable,
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
from ._schedules import NewSchedule, ScheduleChanges, ScheduleFire, ScheduleRow
from ._server import Server, ServerConfig
from .http import Client, load_clients_file, parse_clients
from .rules import Cadence, TemplateError, parse_definition
from .storage import Dialect, SQLiteStorage, SqlStorage, Storage, mask_url, open_storage

if typing.TYPE_CHECKING:
    from .storage import PostgresStorage

__all__ = [
    "ActivityDef",
    "ActivityRow",
    "ActivityStatus",
    "BadRequest",
    "Cadence",
    "Client",
    "ConfigurationError",
    "Conflict",
    "Definition",
    "DefinitionSummary",
    "Dependency",
    "Dialect",
    "FileRecord",
    "Forbidden",
    "NewSchedule",
    "NotFound",
    "OutputDef",
    "PayloadTooLarge",
    "PendingActivity",
    "PostgresStorage",
    "PutDefinitionResult",
    "RetrySettings",
    "SQLiteStorage",
    "ScheduleChanges",
    "ScheduleFire",
    "ScheduleRow",
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
    "load_clients_file",
    "mask_url",
    "open_storage",
    "parse_clients",
    "parse_definition",
]


if not typing.TYPE_CHECKING:  # type checkers see the imports above instead
    # PostgresStorage needs psycopg (the postgres extra): read from .storage when first asked
    # for, so that the server and SQLite work without it.
    __getattr__, __dir__ = _lazy_exports(globals(), {"PostgresStorage": "storage"}, __all__)
