"""Bad-input errors of the CLI, and where in the user's code an exception came from."""

from __future__ import annotations

import difflib
import os
import sysconfig
import traceback
from collections.abc import Iterable
from pathlib import Path

import trioworks

__all__ = ["CliError", "Unavailable", "describe", "did_you_mean", "location", "short_path"]

# Frames in these directories are never "where the user's code went wrong".
_LIBRARY_DIRS = tuple(
    {
        str(Path(trioworks.__file__).parent),
        *(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")),
    }
)


class CliError(Exception):
    """Bad input: a file, attribute, node or input at fault.

    ``main`` prints it as one ``error: ...`` line and exits with ``exit_code`` (2, like argparse).
    Raise it ``from`` the original exception so that ``--traceback`` can show the chain.
    """

    exit_code = 2


class Unavailable(CliError):
    """Something the command needs is not there (a broker, a program, a model): exit 1, not a usage error."""

    exit_code = 1


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe(exc: BaseException) -> str:
    """``"ValueError: message"``, or just the type name when the message is empty."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def short_path(filename: str) -> str:
    """``filename`` relative to the working directory when it is inside it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if relative.startswith("..") else relative


def _is_library(filename: str) -> bool:
    return filename.startswith("<frozen") or filename.startswith(_LIBRARY_DIRS)


def location(exc: BaseException, filename: str | None = None) -> str | None:
    """``"file:line"`` of the innermost frame of ``exc``'s traceback in the user's code.

    With ``filename``, only frames of that file count (the workflow file the user named);
    otherwise any frame outside trioworks, the standard library and site-packages. A
    :class:`SyntaxError` is located by its own ``filename`` and ``lineno``.
    """
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{short_path(exc.filename)}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if (frame.filename == filename) if filename is not None else not _is_library(frame.filename):
            return f"{short_path(frame.filename)}:{frame.lineno}"
    return None
