"""Kailash's file readers and writers: CSV, JSON and text.

Names are Kailash's: in ``file_path`` (and ``headers``, ``delimiter``, ``index_column``,
``encoding``, ``indent``, ``append``; ``data`` / ``text`` for the writers); out ``{"data": ...}``
for the CSV and JSON readers (plus ``data_indexed`` with ``index_column``), ``{"text": ...}`` for
the text reader, ``{"rows_written", "file_path"}``, ``{"file_path"}`` and ``{"file_path",
"bytes_written"}`` for the writers.

They are sync nodes doing blocking file I/O: the runtime runs them in a worker thread.
A missing file raises ``FileNotFoundError`` (wrapped in :class:`NodeExecutionError` naming the
node), as in Kailash.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ._node_api import Node, NodeParameter, register_node

__all__ = [
    "CSVReaderNode",
    "CSVWriterNode",
    "JSONReaderNode",
    "JSONWriterNode",
    "TextReaderNode",
    "TextWriterNode",
]


def _path() -> NodeParameter:
    return NodeParameter(name="file_path", type=str, required=True, description="the file")


def _opt(name: str, kind: Any, default: Any = None, description: str = "") -> NodeParameter:
    return NodeParameter(name=name, type=kind, required=False, default=default, description=description)


@register_node()
class CSVReaderNode(Node):
    """Reads a CSV file: ``{"data": rows}`` (dicts keyed by the header row when ``headers``)."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "file_path": _path(),
            "headers": _opt("headers", bool, True, "the first row names the columns"),
            "delimiter": _opt("delimiter", str, ","),
            "index_column": _opt("index_column", str, None, "also give data_indexed: rows by this column"),
            "encoding": _opt("encoding", str, "utf-8"),
        }

    def run(self, **kwargs: Any) -> dict[str, Any]:
        path = Path(kwargs["file_path"])
        delimiter = kwargs.get("delimiter", ",")
        index_column = kwargs.get("index_column")
        with path.open(newline="", encoding=kwargs.get("encoding", "utf-8")) as f:
            if not kwargs.get("headers", True):
                return {"data": list(csv.reader(f, delimiter=delimiter))}
            reader = csv.DictReader(f, delimiter=delimiter)
            rows: list[dict[str, Any]] = list(reader)
        result: dict[str, Any] = {"data": rows}
        if index_column:
            if index_column not in (reader.fieldnames or []):
                raise KeyError(
                    f"index_column {index_column!r} is not a column of {path}: {reader.fieldnames}"
                )
            result["data_indexed"] = {row[index_column]: row for row in rows}
        return result


@register_node()
class CSVWriterNode(Node):
    """Writes rows (dicts or lists) to a CSV file: ``{"rows_written", "file_path"}``."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "file_path": _path(),
            "data": NodeParameter(name="data", type=list, required=True, description="rows to write"),
            "headers": _opt("headers", list, None, "column order (default: the first row's keys)"),
            "delimiter": _opt("delimiter", str, ","),
        }

    def run(self, **kwargs: Any) -> dict[str, Any]:
        data = kwargs["data"]
        path = Path(kwargs["file_path"])
        if not data:
            return {"rows_written": 0, "file_path": str(path)}
        delimiter = kwargs.get("delimiter", ",")
        with path.open("w", newline="", encoding="utf-8") as f:
            if isinstance(data[0], dict):
                writer = csv.DictWriter(
                    f, fieldnames=kwargs.get("headers") or list(data[0]), delimiter=delimiter
                )
                writer.writeheader()
                writer.writerows(data)
            else:
                plain = csv.writer(f, delimiter=delimiter)
                if kwargs.get("headers"):
                    plain.writerow(kwargs["headers"])
                plain.writerows(data)
        return {"rows_written": len(data), "file_path": str(path)}


@register_node()
class JSONReaderNode(Node):
    """Reads a JSON file: ``{"data": value}``."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {"file_path": _path(), "encoding": _opt("encoding", str, "utf-8")}

    def run(self, **kwargs: Any) -> dict[str, Any]:
        text = Path(kwargs["file_path"]).read_text(encoding=kwargs.get("encoding", "utf-8"))
        return {"data": json.loads(text)}


@register_node()
class JSONWriterNode(Node):
    """Writes ``data`` to a JSON file: ``{"file_path"}``."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "file_path": _path(),
            "data": NodeParameter(name="data", type=Any, required=True, description="JSON-serialisable"),
            "indent": _opt("indent", int, 2),
        }

    def run(self, **kwargs: Any) -> dict[str, Any]:
        path = Path(kwargs["file_path"])
        path.write_text(json.dumps(kwargs["data"], indent=kwargs.get("indent", 2)), encoding="utf-8")
        return {"file_path": str(path)}


@register_node()
class TextReaderNode(Node):
    """Reads a text file: ``{"text": str}``."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {"file_path": _path(), "encoding": _opt("encoding", str, "utf-8")}

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return {"text": Path(kwargs["file_path"]).read_text(encoding=kwargs.get("encoding", "utf-8"))}


@register_node()
class TextWriterNode(Node):
    """Writes ``text`` to a file (``append`` to add to it): ``{"file_path", "bytes_written"}``."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "file_path": _path(),
            "text": NodeParameter(name="text", type=str, required=True, description="what to write"),
            "encoding": _opt("encoding", str, "utf-8"),
            "append": _opt("append", bool, False),
        }

    def run(self, **kwargs: Any) -> dict[str, Any]:
        path = Path(kwargs["file_path"])
        encoding = kwargs.get("encoding", "utf-8")
        with path.open("a" if kwargs.get("append") else "w", encoding=encoding) as f:
            f.write(kwargs["text"])
        return {"file_path": str(path), "bytes_written": len(kwargs["text"].encode(encoding))}
