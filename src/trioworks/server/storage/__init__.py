"""The server's storage: durable state behind one synchronous interface, :class:`Storage`.

The bottom layer of :mod:`trioworks.server` (``http`` → ``rules`` ← ``storage``): it calls the
rules and knows nothing of HTTP. One class, :class:`SqlStorage`, writes every operation once in
portable SQL; a backend is what it is handed, not a subclass::

    SqlStorage(dialect, connections)   # Dialect: the SQL text that differs
                                       # Connections: where transactions come from

- ``_dialect``: :class:`Dialect` and the :class:`Connections` protocol; ``_tables``: what every
  operation shares (transactions, the definitions cache, row loads, locks and writes);
  ``_rows``: columns, row mapping, the schema;
- ``_sql``: :class:`SqlStorage` (definitions, workflows, signals, files), with the activity
  queue (claim, heartbeat, complete, fail, sweep) as its ``SqlQueue`` component (``_queue``);
- ``_sqlite``: :data:`SQLITE` and :class:`SQLiteConnections`; ``_postgres``: ``POSTGRES`` and
  ``PostgresConnections`` (imported on first use: they need psycopg). :class:`SQLiteStorage`
  and ``PostgresStorage`` put the pieces together for one URL or path;
- ``_open``: :func:`open_storage` picks the backend from a URL; ``_files``: :class:`FileStore`,
  the contents of activity files on disk.

The stable API is :mod:`trioworks.server`; these names are for the other layers.
"""

import typing

from ...core import lazy_exports as _lazy_exports
from ._dialect import Connections, Dialect, Tx
from ._files import FILENAME, FileStore, check_filename
from ._interface import BATCHABLE, Storage, StorageCall, run_each
from ._open import mask_url, open_storage
from ._sql import SqlStorage
from ._sqlite import SQLITE, SQLiteConnections, SQLiteStorage

if typing.TYPE_CHECKING:
    from ._postgres import POSTGRES, PostgresConnections, PostgresStorage

__all__ = [
    "BATCHABLE",
    "FILENAME",
    "POSTGRES",
    "SQLITE",
    "Connections",
    "Dialect",
    "FileStore",
    "PostgresConnections",
    "PostgresStorage",
    "SQLiteConnections",
    "SQLiteStorage",
    "SqlStorage",
    "Storage",
    "StorageCall",
    "Tx",
    "check_filename",
    "mask_url",
    "open_storage",
    "run_each",
]

if not typing.TYPE_CHECKING:  # type checkers see the imports above instead
    # The Postgres backend needs psycopg (the postgres extra): imported when first asked for,
    # so that the server and SQLite work without it.
    __getattr__, __dir__ = _lazy_exports(
        globals(),
        dict.fromkeys(("POSTGRES", "PostgresConnections", "PostgresStorage"), "_postgres"),
        __all__,
        extra="postgres",
    )
