"""Where the command's log records go: stderr, as a person or a log collector wants them.

- ``text`` on a terminal: rich's handler (colours, times, wrapped to the terminal's width).
- ``text`` into a file or a pipe: one plain line per record, never wrapped (rich would wrap at
  80 columns there), e.g. ``2025-01-02T03:04:05.678Z WARNING trioworks.bus: message``.
- ``json``: one JSON object per line (``time``, ``level``, ``logger``, ``message``, then
  ``exception`` and any ``extra=`` fields), for a log collector; the command's own notes,
  warnings and errors are JSON objects too (logger ``trioworks.cli``, see :class:`Streams`).

An exception attached to a record is one ``: Type: message`` suffix on that line; with
``--traceback`` the plain format prints the traceback below it, and JSON carries it in
``traceback``. Exactly one handler is installed, on the root logger, so a record is written
once however many loggers it passes on its way up.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator

from ._errors import describe
from ._streams import Streams, utc_timestamp

__all__ = ["LOG_FORMATS", "logging_to"]

LOG_FORMATS = ("text", "json")

# What every LogRecord has; anything else on a record came from ``extra=`` and goes into JSON.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _one_line(text: str) -> str:
    return " ".join(text.split("\n")).rstrip() if "\n" in text else text


class PlainFormatter(logging.Formatter):
    """``time LEVEL logger: message[: Type: error]`` on one line (plus the traceback if asked)."""

    def __init__(self, *, show_traceback: bool = False) -> None:
        super().__init__()
        self.show_traceback = show_traceback

    def format(self, record: logging.LogRecord) -> str:
        line = f"{utc_timestamp(record.created)} {record.levelname} {record.name}: {_one_line(record.getMessage())}"
        if record.exc_info and record.exc_info[1] is not None:
            line += f": {_one_line(describe(record.exc_info[1]))}"
            if self.show_traceback:
                line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, *, show_traceback: bool = False) -> None:
        super().__init__()
        self.show_traceback = show_traceback

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[1] is not None:
            entry["exception"] = describe(record.exc_info[1])
            if self.show_traceback:
                entry["traceback"] = self.formatException(record.exc_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


def _handler(io: Streams, log_format: str, show_traceback: bool) -> logging.Handler:
    if log_format == "json":
        handler: logging.Handler = logging.StreamHandler(io.err.file)
        handler.setFormatter(JsonFormatter(show_traceback=show_traceback))
        return handler
    if io.err.is_terminal:
        from rich.logging import RichHandler

        return RichHandler(console=io.err, show_path=False, markup=False, rich_tracebacks=False)
    handler = logging.StreamHandler(io.err.file)
    handler.setFormatter(PlainFormatter(show_traceback=show_traceback))
    return handler


@contextlib.contextmanager
def logging_to(
    io: Streams, level: str, log_format: str = "text", *, show_traceback: bool = False
) -> Iterator[None]:
    """Log records at ``level`` and above on ``io.err`` in ``log_format`` while inside.

    The root logger's level and handlers are restored on exit, so that ``main`` can be called
    again (tests).
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format: expected one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    handler = _handler(io, log_format, show_traceback)
    handler.setLevel(level)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(min(previous or logging.WARNING, logging.getLevelName(level)))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
