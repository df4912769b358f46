"""The ``trioworks`` command line: a thin layer over the subsystems.

Each command lives in its own module with a ``register(commands, common)`` function that
adds its sub-parser and sets ``handler(args, io) -> int`` as its default; :data:`COMMANDS`
lists their names (imported when the parser is built).

Exit codes: 0 ok; 1 the workflow (or a demo highlight) failed; 2 bad input, as argparse
does for usage errors; 130 interrupted by Ctrl-C. Bad input is reported as one
``error: ...`` line on stderr naming the file, attribute, node or input at fault;
``--traceback`` adds the full traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import traceback
from collections.abc import Iterator

from ..dag import DagError
from ._errors import CliError, describe
from ._streams import Streams

__all__ = ["COMMANDS", "main"]

# Command modules, imported when the parser is built: importing ``trioworks.cli`` itself stays
# cheap, which matters to worker processes that import a demo module living in this package.
COMMANDS: tuple[str, ...] = ("_dag", "_demo", "_server", "_services", "_worker", "_workflow")

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def build_parser() -> argparse.ArgumentParser:
    """The full parser. Global options work before or after the command name."""
    # The global options, for every sub-parser too, defaulting to "not given" there so that
    # a value given before the command name is not overwritten by the sub-parser's default.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    _add_global_options(common)
    parser = argparse.ArgumentParser(
        prog="trioworks",
        description="Trio rebuilds of three asyncio systems. Start with `trioworks demo`.",
    )
    _add_global_options(parser)
    parser.set_defaults(handler=None, log_level="WARNING", traceback=False)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(commands, common)
    return parser


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=_LOG_LEVELS,
        metavar="LEVEL",
        help=f"log level on stderr: {', '.join(_LOG_LEVELS)} (default WARNING)",
    )
    parser.add_argument("--traceback", action="store_true", help="on an error, show the full traceback")


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    if args.handler is None:
        parser.print_usage(sys.stderr)
        print("error: give a command; `trioworks --help` lists them", file=sys.stderr)
        return 2
    io = Streams.from_sys()
    with _logging_to(io, args.log_level):
        try:
            return args.handler(args, io)
        except BaseException as exc:
            return _exit_code(exc, io, show_traceback=args.traceback)


@contextlib.contextmanager
def _logging_to(io: Streams, level: str) -> Iterator[None]:
    """Log records at ``level`` and above on stderr (the console the progress bar shares).

    The root logger is restored on exit, so that ``main`` can be called again (tests).
    """
    from rich.logging import RichHandler

    handler = RichHandler(console=io.err, show_path=False, markup=False)
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


def _is_interrupt(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(KeyboardInterrupt) is not None
    return isinstance(exc, KeyboardInterrupt)


def _exit_code(exc: BaseException, io: Streams, *, show_traceback: bool) -> int:
    """Report what a command raised as one line (plus the traceback if asked); the exit code."""
    if _is_interrupt(exc):
        io.error("interrupted")
        return 130
    if not isinstance(exc, Exception):
        raise exc  # SystemExit and the like are not ours to report
    if show_traceback:
        io.err.file.write("".join(traceback.format_exception(exc)))
    if isinstance(exc, CliError):
        io.error(str(exc))
        return exc.exit_code
    if isinstance(exc, DagError):  # e.g. a node input no connection, config or input gives
        io.error(str(exc))
        return 2
    if isinstance(exc, FileNotFoundError):
        io.error(f"no such file: {exc.filename}")
        return 2
    io.error(
        f"unexpected {describe(exc)}" + ("" if show_traceback else " (rerun with --traceback for details)")
    )
    return 1
