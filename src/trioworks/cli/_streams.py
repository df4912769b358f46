"""Where a command writes: rich consoles on stdout and stderr."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

import attrs
from rich.console import Console

__all__ = ["Streams", "utc_timestamp"]


def utc_timestamp(created: float) -> str:
    """``2025-01-02T03:04:05.678Z``: the time of a log line."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created * 1000) % 1000:03d}Z"


@attrs.frozen
class Streams:
    """The command's output (``out``) and its diagnostics, progress and logs (``err``).

    Both consoles are made with ``markup=False``: workflow output and error messages are
    printed as they are, never read as rich markup (``[...]`` is common in both). With
    ``json_lines`` (``--log-format json``) the notes, warnings and errors on stderr are JSON
    objects like the log records (logger ``trioworks.cli``), so stderr is JSON throughout.
    """

    out: Console
    err: Console
    json_lines: bool = False

    @classmethod
    def from_sys(cls, *, json_lines: bool = False) -> Streams:
        """Consoles on the *current* ``sys.stdout`` / ``sys.stderr`` (so tests can capture them)."""

        def console(file: TextIO) -> Console:
            return Console(file=file, markup=False, emoji=False, highlight=False)

        return cls(out=console(sys.stdout), err=console(sys.stderr), json_lines=json_lines)

    def write(self, text: str) -> None:
        """Raw text on stdout (JSON, DOT, Mermaid): no wrapping, no styling."""
        self.out.file.write(text if text.endswith("\n") else text + "\n")
        self.out.file.flush()

    def note(self, message: str, *, level: str = "INFO") -> None:
        """One line on stderr, never wrapped (a JSON object with ``json_lines``)."""
        if self.json_lines:
            entry = {"time": utc_timestamp(time.time()), "level": level, "logger": "trioworks.cli"}
            message = json.dumps({**entry, "message": message}, ensure_ascii=False)
        self.err.file.write(message + "\n")
        self.err.file.flush()

    def error(self, message: str) -> None:
        self.note(message if self.json_lines else f"error: {message}", level="ERROR")

    def warning(self, message: str) -> None:
        self.note(message if self.json_lines else f"warning: {message}", level="WARNING")
