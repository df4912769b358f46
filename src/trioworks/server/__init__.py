"""The reference server: Kruxia Flow's HTTP API, orchestrating workflows over a SQL store.

- :class:`Storage`: the synchronous, one-transaction-per-method interface of a backend;
  :class:`SqlStorage` writes the operations once in portable SQL, a :class:`Dialect` holding what
  differs; :class:`SQLiteStorage` is the SQLite backend, :class:`PostgresStorage` the Postgres
  one (imported on first use: it needs ``pip install 'trioworks[postgres]'``);
  :func:`open_storage` picks one from a URL.
- :class:`Server` with :class:`ServerConfig`: the HTTP API (Starlette on hypercorn's Trio
  worker) and the lease sweeper; ``url = await nursery.start(Server(config).run)``.
- The rules (scheduling, templates, conditions, retries, leases) are pure functions in
  ``_engine``, shared by every backend; ``_progress`` applies scheduling incrementally, so that
  a completion reads only the rows it changes.
"""

import typing

from ._auth import Client, load_clients_file, parse_clients
from ._definitions import parse_definition
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
from ._open import mask_url, open_storage
from ._server import Server, ServerConfig
from ._sql import SqlStorage
from ._sqlbase import Dialect
from ._sqlite import SQLiteStorage
from ._storage import Storage
from ._templates import TemplateError

if typing.TYPE_CHECKING:
    from ._postgres import PostgresStorage

__all__ = [
    "ActivityDef",
    "ActivityRow",
    "ActivityStatus",
    "BadRequest",
    "Client",
    "ConfigurationError",
    "Conflict",
    "Definition",
    "DefinitionSummary",
    "Dependency",
    "Dialect",
    "FileRecord",
    "Forbidden",
    "NotFound",
    "OutputDef",
    "PayloadTooLarge",
    "PendingActivity",
    "PostgresStorage",
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
    "load_clients_file",
    "mask_url",
    "open_storage",
    "parse_clients",
    "parse_definition",
]


if not typing.TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        # PostgresStorage needs psycopg (the postgres extra): imported when first asked for, so
        # that the server and SQLite work without it.
        if name != "PostgresStorage":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        try:
            from ._postgres import PostgresStorage
        except ModuleNotFoundError as exc:
            raise ImportError(
                f"trioworks.server.PostgresStorage needs the postgres extra (missing {exc.name!r}): "
                "pip install 'trioworks[postgres]'",
                name=exc.name,
            ) from exc
        globals()[name] = PostgresStorage
        return PostgresStorage

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
