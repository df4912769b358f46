"""Where a command writes: rich consoles on stdout and stderr."""

from __future__ import annotations

import sys
from typing import TextIO

import attrs
from rich.console import Console

__all__ = ["Streams"]


@attrs.frozen
class Streams:
    """The command's output (``out``) and its diagnostics, progress and logs (``err``).

    Both consoles are made with ``markup=False``: workflow output and error messages are
    printed as they are, never read as rich markup (``[...]`` is common in both).
    """

    out: Console
    err: Console

    @classmethod
    def from_sys(cls) -> Streams:
        """Consoles on the *current* ``sys.stdout`` / ``sys.stderr`` (so tests can capture them)."""

        def console(file: TextIO) -> Console:
            return Console(file=file, markup=False, emoji=False, highlight=False)

        return cls(out=console(sys.stdout), err=console(sys.stderr))

    def write(self, text: str) -> None:
        """Raw text on stdout (JSON, DOT, Mermaid): no wrapping, no styling."""
        self.out.file.write(text if text.endswith("\n") else text + "\n")
        self.out.file.flush()

    def note(self, message: str) -> None:
        """One line on stderr, never wrapped."""
        self.err.file.write(message + "\n")
        self.err.file.flush()

    def error(self, message: str) -> None:
        self.note(f"error: {message}")

    def warning(self, message: str) -> None:
        self.note(f"warning: {message}")
