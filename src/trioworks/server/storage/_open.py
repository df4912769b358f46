"""``open_storage(url)``: a storage backend from a database URL."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .._errors import StorageUnavailable
from ._interface import Storage
from ._sqlite import SQLiteStorage

__all__ = ["StorageUnavailable", "mask_url", "open_storage"]

_CONNINFO_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(password=)[^&]*", re.IGNORECASE)


def mask_url(url: str | Path) -> str:
    """``url`` with any password replaced by ``***``, for logs and messages.

    Handles URLs (``postgresql://user:pw@host/db``, ``?password=pw``) and libpq key=value
    strings (``host=h password=pw``); anything else is returned as it is (a SQLite path).
    """
    text = str(url)
    if "://" not in text:
        return _CONNINFO_PASSWORD.sub(r"\1***", text)
    try:
        parts = urlsplit(text)
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, host = netloc.rpartition("@")
            netloc = f"{userinfo.partition(':')[0]}:***@{host}"
        query = _QUERY_PASSWORD.sub(r"\1***", parts.query)
        if netloc == parts.netloc and query == parts.query:
            return text  # nothing to hide (urlunsplit would also drop an empty netloc's //)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:  # unparsable (a bad port...): say nothing that could be the password
        return text.split("://", 1)[0] + "://<unparsable URL>"


def open_storage(url: str | Path, *, max_threads: int | None = None, control_threads: int = 2) -> Storage:
    """Open (creating the schema if needed) the database at ``url``.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a bare file path give
    :class:`SQLiteStorage`; ``postgresql://...`` gives the Postgres backend when it is installed.
    Blocking: call it from a thread (or before ``trio.run``).

    ``max_threads`` (default: the backend's own) becomes the storage's ``max_threads``, the size
    of the storage limiter the server builds: :class:`Server` passes ``ServerConfig.storage_threads``.
    Postgres sizes its connection pool from it, plus ``control_threads + 1`` connections for the
    control limiter's threads and the opener, so control-plane calls never wait for a
    connection behind user work. SQLite ignores ``control_threads`` (its connections are per
    thread and its writers queue on one lock).
    """
    sizes = {} if max_threads is None else {"max_threads": max_threads}
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            from ._postgres import PostgresStorage
        except ImportError as exc:
            raise StorageUnavailable(
                f"Postgres backend not available for {mask_url(text)!r}: "
                "trioworks.server.storage._postgres is missing or psycopg is not installed"
            ) from exc
        return PostgresStorage(text, control_connections=control_threads + 1, **sizes)
    if text.startswith("sqlite://"):
        path = text.removeprefix("sqlite://")
        if not path.startswith("/") or path == "/":
            raise StorageUnavailable(f"bad SQLite URL {text!r}: expected sqlite:///path/to/file.db")
        path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
    elif "://" in text:
        raise StorageUnavailable(
            f"unsupported database URL {mask_url(text)!r}: use sqlite:///path or postgresql://..."
        )
    else:
        path = text
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStorage(path, **sizes)
    except (OSError, sqlite3.Error) as exc:
        raise StorageUnavailable(f"cannot open SQLite database {path!r}: {exc}") from exc
