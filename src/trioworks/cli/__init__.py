# PYTHON_ARGCOMPLETE_OK (this marker lets argcomplete's global completion find the command)
"""The ``trioworks`` command line: a thin layer over the subsystems.

Each command lives in its own module with a ``register(commands, common)`` function that
adds its sub-parser and sets ``handler(args, io) -> int`` as its default; :data:`COMMANDS`
maps each command name to its module. Only the module of the command on the line is imported
(``trioworks server`` does not import the voice services); without a command, for ``--help``
or a shell's completion request, all of them are.

Exit codes: 0 ok; 1 the workflow (or a demo highlight) failed; 2 bad input, as argparse
does for usage errors; 130 stopped by Ctrl-C (one ``stopped`` line). Bad input is reported
as one ``error: ...`` line on stderr naming the file, attribute, node or input at fault,
found inside exception groups by :func:`trioworks.core.single_error`; ``--traceback`` adds
the full traceback. Logs go to stderr (:mod:`._logs`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

import trio

from .. import __version__
from ..core import find_error, leaf_errors, single_error
from ._errors import CliError, describe
from ._logs import LOG_FORMATS, logging_to
from ._streams import Streams

__all__ = ["COMMANDS", "main"]

# Each command and the module that registers it. A module is imported only when its command is
# the one on the line (or for the full help): each subsystem costs a fraction of a second to import.
COMMANDS: dict[str, str] = {
    "dag": "_dag",
    "definitions": "_workflow",
    "demo": "_demo",
    "schedule": "_schedule",
    "server": "_server",
    "services": "_services",
    "worker": "_worker",
    "workflow": "_workflow",
}

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LOG_FORMAT_ENV = "TRIOWORKS_LOG_FORMAT"
_EPILOG = (
    "Shell completion (bash, zsh): "
    'eval "$(register-python-argcomplete trioworks)" (add it to ~/.bashrc or ~/.zshrc).'
)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: with a command on the line, only that command's module is
    registered; else (or with ``argv`` None) every command. Global options work before or after
    the command name."""
    # The global options, for every sub-parser too, defaulting to "not given" there so that
    # a value given before the command name is not overwritten by the sub-parser's default.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    _add_global_options(common)
    parser = argparse.ArgumentParser(
        prog="trioworks",
        description="Trio rebuilds of three asyncio systems. Start with `trioworks demo`.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"trioworks {__version__}")
    _add_global_options(parser)
    parser.set_defaults(
        handler=None,
        log_level="WARNING",
        log_format=os.environ.get(_LOG_FORMAT_ENV) or "text",
        traceback=False,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in _modules_for(argv):
        importlib.import_module(f"{__name__}.{module}").register(commands, common)
    return parser


def _modules_for(argv: list[str] | None) -> list[str]:
    """The command modules to register for ``argv``: the named command's, else all of them."""
    if argv is not None and "_ARGCOMPLETE" not in os.environ:
        words = iter(argv)
        for word in words:
            if word in ("-h", "--help"):
                break  # the top-level help lists every command
            if word in _VALUED_OPTIONS:
                next(words, None)  # the option's value, even if it spells a command's name
            elif not word.startswith("-"):
                if word in COMMANDS:
                    return [COMMANDS[word]]
                break  # not a command: argparse's full error message lists the valid ones
    return sorted(set(COMMANDS.values()))


# The global options that take a value as the next word (``--log-level=INFO`` is one word).
_VALUED_OPTIONS = frozenset({"--log-level", "--log-format"})


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=_LOG_LEVELS,
        metavar="LEVEL",
        help=f"log level on stderr: {', '.join(_LOG_LEVELS)} (default WARNING)",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="log records as text (rich on a terminal, one plain line each in a file or pipe) or one "
        f"JSON object per line (default text, or ${_LOG_FORMAT_ENV})",
    )
    parser.add_argument("--traceback", action="store_true", help="on an error, show the full traceback")


def _complete(parser: argparse.ArgumentParser) -> None:
    """Answer a shell's completion request (argcomplete sets ``_ARGCOMPLETE``) and exit."""
    if "_ARGCOMPLETE" in os.environ:
        import argcomplete

        argcomplete.autocomplete(parser)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser(sys.argv[1:] if argv is None else argv)
    _complete(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    if args.handler is None:
        parser.print_usage(sys.stderr)
        print("error: give a command; `trioworks --help` lists them", file=sys.stderr)
        return 2
    if args.log_format not in LOG_FORMATS:  # only an environment variable can get here
        print(
            f"error: {_LOG_FORMAT_ENV}: expected one of {', '.join(LOG_FORMATS)}, got {args.log_format!r}",
            file=sys.stderr,
        )
        return 2
    io = Streams.from_sys(json_lines=args.log_format == "json")
    with logging_to(io, args.log_level, args.log_format, show_traceback=args.traceback):
        try:
            return args.handler(args, io)
        except BaseException as exc:
            return _exit_code(exc, io, show_traceback=args.traceback)


def _exit_code(exc: BaseException, io: Streams, *, show_traceback: bool) -> int:
    """Report what a command raised as one line (plus the traceback if asked); the exit code."""
    if find_error(exc, KeyboardInterrupt) is not None:
        io.note("stopped")  # Ctrl-C is how a long-running command is meant to end
        return 130
    error = single_error(exc)
    if not isinstance(error, Exception):
        raise exc  # SystemExit and the like are not ours to report
    if show_traceback:
        text = "".join(traceback.format_exception(exc))
        if io.json_lines:
            io.note(text.rstrip(), level="ERROR")  # one JSON line, like everything else on stderr
        else:
            io.err.file.write(text)
    if isinstance(error, CliError):
        io.error(str(error))
        return error.exit_code
    from ..dag import DagError  # here: importing the DAG runner is not free, and most commands never need it

    if isinstance(error, DagError):  # e.g. a node input no connection, config or input gives
        io.error(str(error))
        return 2
    if isinstance(error, FileNotFoundError):  # without a file name, the message says what is missing
        io.error(f"no such file: {error.filename}" if error.filename else str(error))
        return 2
    hint = "" if show_traceback else " (rerun with --traceback for details)"
    if isinstance(error, BaseExceptionGroup):  # several errors at once: the first, and how many more
        errors = [e for e in leaf_errors(error) if not isinstance(e, trio.Cancelled)]
        io.error(f"unexpected {describe(errors[0])} (and {len(errors) - 1} more){hint}")
        return 1
    io.error(f"unexpected {describe(error)}{hint}")
    return 1
