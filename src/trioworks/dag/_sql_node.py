"""Kailash's ``SQLDatabaseNode`` on SQLite (``sqlite3``) and Postgres (psycopg 3).

In: ``connection_string`` (``sqlite:///relative.db``, ``sqlite:////abs/path.db``,
``sqlite:///:memory:``, ``postgresql://user:pw@host/db``), ``query``, ``parameters`` (a list for
positional placeholders, a dict for named ones, or one value) and ``result_format`` (``dict``,
``list`` or ``raw``). Out: ``{"data", "row_count", "columns", "execution_time"}``.

Placeholders are Kailash's: ``?``, ``$1``, ``%s`` (positional) and ``:name`` (named) work on
both databases; each is rewritten into the driver's own style and the values are **bound by the
driver, never formatted into the SQL text**. Each execution is one transaction: committed when
the statement succeeds, rolled back when it fails.

The node is sync and blocking: the runtime runs it in a worker thread under its thread limiter.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import re
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ._errors import NodeExecutionError, NodeValidationError
from ._node_api import Node, NodeParameter, register_node

__all__ = ["SQLDatabaseNode", "rewrite_placeholders"]

RESULT_FORMATS = ("dict", "list", "raw")

# Quoted text, comments and placeholders, in the order they are tried at each position.
_TOKEN = re.compile(
    r"""
      (?P<skip>'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|\$\$.*?\$\$|::)
    | (?P<numbered>\$(?P<number>[1-9][0-9]*))
    | (?P<pyformat>%\((?P<pyname>[A-Za-z_][A-Za-z0-9_]*)\)s)
    | (?P<format>%s)
    | (?P<percent>%)
    | (?P<qmark>\?)
    | (?P<named>(?<![A-Za-z0-9_:]):(?P<name>[A-Za-z_][A-Za-z0-9_]*))
    """,
    re.VERBOSE | re.DOTALL,
)


def rewrite_placeholders(
    query: str, parameters: Sequence[Any] | Mapping[str, Any], dialect: str
) -> tuple[str, Sequence[Any] | Mapping[str, Any]]:
    """Rewrite Kailash-style placeholders for ``dialect`` (``sqlite`` or ``postgresql``).

    Returns the query and the values in the driver's order. Raises :class:`NodeValidationError`
    when positional and named placeholders are mixed, a value is missing, or the parameter kind
    (list or dict) does not fit the placeholders.
    """
    pg = dialect == "postgresql"
    out: list[str] = []
    positional: list[Any] = []
    names: set[str] = set()
    kinds: set[str] = set()
    next_index = 0
    pos = 0
    for m in _TOKEN.finditer(query):
        out.append(query[pos : m.start()])
        pos = m.end()
        if m.group("skip") is not None:
            # psycopg reads % everywhere in the text, quoted or not, once values are bound.
            out.append(m.group(0).replace("%", "%%") if pg else m.group(0))
        elif m.group("percent") is not None:
            out.append("%%" if pg else "%")
        elif m.group("numbered") is not None:
            kinds.add("numbered")
            n = int(m.group("number"))
            if pg:
                positional.append(_nth(parameters, n - 1, query))
                out.append("%s")
            else:
                out.append(f"?{n}")
        elif m.group("format") is not None or m.group("qmark") is not None:
            kinds.add("sequential")
            if pg:
                positional.append(_nth(parameters, next_index, query))
            next_index += 1
            out.append("%s" if pg else "?")
        else:
            kinds.add("named")
            name = m.group("pyname") or m.group("name")
            names.add(name)
            out.append(f"%({name})s" if pg else f":{name}")
    out.append(query[pos:])
    if len(kinds) > 1:
        raise NodeValidationError(
            f"query mixes placeholder styles ({', '.join(sorted(kinds))}); use one: ? or %s, $1, or :name: {query!r}"
        )
    if "named" in kinds:
        if not isinstance(parameters, Mapping):
            raise NodeValidationError(
                f"query has named placeholders ({', '.join(sorted(names))}); 'parameters' must be a dict"
            )
        missing = sorted(names - set(parameters))
        if missing:
            raise NodeValidationError(f"'parameters' has no value for placeholder(s) {missing}")
        return "".join(out), dict(parameters)
    if isinstance(parameters, Mapping):
        raise NodeValidationError("query has positional placeholders; 'parameters' must be a list")
    if not pg:
        return "".join(out), list(parameters)
    return "".join(out), positional


def _nth(parameters: Sequence[Any] | Mapping[str, Any], index: int, query: str) -> Any:
    if isinstance(parameters, Mapping):
        raise NodeValidationError("query has positional placeholders; 'parameters' must be a list")
    if index >= len(parameters):
        raise NodeValidationError(
            f"query has more placeholders than 'parameters' has values ({len(parameters)}): {query!r}"
        )
    return parameters[index]


def _connect(node_id: str, url: str) -> tuple[str, Any]:
    """Open a DB-API connection for ``url``; return the dialect and the connection."""
    scheme, sep, rest = url.partition("://")
    base = scheme.split("+", 1)[0].lower()
    if not sep:
        raise NodeValidationError(
            f"SQLDatabaseNode {node_id!r}: connection_string {url!r} is not a URL "
            "(sqlite:///file.db or postgresql://user@host/db)"
        )
    if base == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        return "sqlite", sqlite3.connect(path or ":memory:")
    if base in ("postgresql", "postgres"):
        try:
            import psycopg
        except ModuleNotFoundError as exc:
            raise NodeExecutionError(
                f"SQLDatabaseNode {node_id!r}: Postgres needs psycopg: pip install 'trioworks[postgres]'"
            ) from exc
        return "postgresql", psycopg.connect(f"postgresql://{rest}")
    raise NodeValidationError(
        f"SQLDatabaseNode {node_id!r}: unsupported database {scheme!r} in connection_string; "
        "use sqlite:/// or postgresql://"
    )


def _plain(value: Any) -> Any:
    """A JSON-friendly value, as Kailash serialises row values."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def _mask(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


@register_node()
class SQLDatabaseNode(Node):
    """One SQL statement against SQLite or Postgres, in its own transaction."""

    def __init__(self, connection_string: str | None = None, **kwargs: Any) -> None:
        if connection_string is not None:
            kwargs["connection_string"] = connection_string
        super().__init__(**kwargs)
        self.connection_string = connection_string

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "connection_string": NodeParameter(
                name="connection_string",
                type=str,
                required=True,
                description="sqlite:///file.db or postgresql://user:password@host/db",
            ),
            "query": NodeParameter(name="query", type=str, required=False, description="one SQL statement"),
            "parameters": NodeParameter(
                name="parameters", type=Any, required=False, description="list (positional) or dict (named)"
            ),
            "result_format": NodeParameter(
                name="result_format",
                type=str,
                required=False,
                default="dict",
                description="dict, list or raw",
            ),
        }

    def get_output_schema(self) -> dict[str, NodeParameter]:
        return {
            name: NodeParameter(name=name, type=kind)
            for name, kind in (
                ("data", list),
                ("row_count", int),
                ("columns", list),
                ("execution_time", float),
            )
        }

    def run(self, **kwargs: Any) -> dict[str, Any]:
        query = kwargs.get("query")
        if not query or not isinstance(query, str):
            raise NodeValidationError(f"SQLDatabaseNode {self.id!r}: parameter 'query' is required")
        fmt = kwargs.get("result_format") or "dict"
        if fmt not in RESULT_FORMATS:
            raise NodeValidationError(
                f"SQLDatabaseNode {self.id!r}: result_format must be one of {', '.join(RESULT_FORMATS)}, got {fmt!r}"
            )
        url = kwargs["connection_string"]
        parameters = kwargs.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping | list | tuple):
            parameters = [parameters]
        dialect, conn = _connect(self.id, url)
        self.logger.debug("node %r: query on %s: %s", self.id, _mask(url), query)
        start = time.perf_counter()
        try:
            cursor = conn.cursor()
            if parameters:
                sql, values = rewrite_placeholders(query, parameters, dialect)
                cursor.execute(sql, values)
            else:
                cursor.execute(query)
            if cursor.description is not None:
                columns = [str(d[0]) for d in cursor.description]
                rows = cursor.fetchall()
                row_count = len(rows)
                if fmt == "dict":
                    data: list[Any] = [
                        {c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows
                    ]
                else:
                    data = [[_plain(v) for v in row] for row in rows]
            else:
                columns, data = [], []
                row_count = max(cursor.rowcount, 0)
            conn.commit()
        except NodeValidationError:
            conn.rollback()
            raise
        except Exception as exc:
            conn.rollback()
            raise NodeExecutionError(
                f"SQLDatabaseNode {self.id!r}: database error on {_mask(url)}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            conn.close()
        return {
            "data": data,
            "row_count": row_count,
            "columns": columns,
            "execution_time": time.perf_counter() - start,
        }
